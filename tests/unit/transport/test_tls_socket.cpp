// Unit tests for libpodwrangler/src/transport/tls_socket.{hpp,cpp}: TlsSocket against an
// in-process OpenSSL server on a loopback port, with a self-signed certificate made in memory.
// The header is private to the library, hence the path from the repository root.
#include "../../../libpodwrangler/src/transport/tls_socket.hpp"

#include <doctest/doctest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <optional>
#include <pthread.h>
#include <string>
#include <thread>
#include <unistd.h>

namespace net = boost::asio;
using boost::system::error_code;
using pw::transport::TlsSocket;
using tcp = net::ip::tcp;

namespace {

// SIGPIPE at its default disposition (the process dies of it) and unblocked in this thread,
// as in a host program that never heard of SIGPIPE; restored on scope exit. Other tests in
// this binary ignore it (test_sentinel.cpp).
class DefaultSigpipe {
 public:
  DefaultSigpipe() {
    old_handler_ = std::signal(SIGPIPE, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_UNBLOCK, &set, &old_mask_);
  }
  ~DefaultSigpipe() {
    pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
    std::signal(SIGPIPE, old_handler_);
  }
  DefaultSigpipe(const DefaultSigpipe&) = delete;
  DefaultSigpipe& operator=(const DefaultSigpipe&) = delete;

 private:
  void (*old_handler_)(int) = SIG_DFL;
  sigset_t old_mask_{};
};

// A server context with a throwaway self-signed P-256 certificate for 127.0.0.1.
SSL_CTX* make_server_ctx() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  REQUIRE(key);
  REQUIRE(cert);
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  REQUIRE(X509_sign(cert, key, EVP_sha256()) > 0);
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  REQUIRE(ctx);
  REQUIRE(SSL_CTX_use_certificate(ctx, cert) == 1);
  REQUIRE(SSL_CTX_use_PrivateKey(ctx, key) == 1);
  X509_free(cert);
  EVP_PKEY_free(key);
  return ctx;
}

// A TlsSocket connected to a blocking OpenSSL server on its own thread. The server completes
// the handshake, then does `after_handshake` with its SSL object and closes the connection
// (just the descriptor: no close_notify unless `after_handshake` sends one).
class LoopbackTls {
 public:
  explicit LoopbackTls(std::function<void(SSL*)> after_handshake) {
    server_ctx_ = make_server_ctx();
    client_ctx_ = SSL_CTX_new(TLS_client_method());
    REQUIRE(client_ctx_);
    SSL_CTX_set_verify(client_ctx_, SSL_VERIFY_NONE, nullptr);

    tcp::acceptor acceptor(io, tcp::endpoint(net::ip::address_v4::loopback(), 0));
    tcp::socket client(io);
    client.connect(acceptor.local_endpoint());
    int server_fd = acceptor.accept().release();  // blocking: the server thread's socket
    server_ = std::thread([this, server_fd, after = std::move(after_handshake)] {
      SSL* ssl = SSL_new(server_ctx_);
      SSL_set_fd(ssl, server_fd);
      server_handshake_ok_ = SSL_accept(ssl) == 1;
      if (server_handshake_ok_) after(ssl);
      SSL_free(ssl);
      ::close(server_fd);
    });

    SSL* ssl = SSL_new(client_ctx_);
    REQUIRE(ssl);
    SSL_set_connect_state(ssl);
    tls.emplace(std::move(client), ssl);
    error_code ec = net::error::would_block;
    tls->async_handshake([&](error_code e, std::size_t) { ec = e; });
    io.run();
    io.restart();
    join_server();
    REQUIRE(server_handshake_ok_);
    REQUIRE_MESSAGE(!ec, ec.message());
  }
  ~LoopbackTls() {
    join_server();
    tls.reset();
    SSL_CTX_free(client_ctx_);
    SSL_CTX_free(server_ctx_);
  }
  LoopbackTls(const LoopbackTls&) = delete;
  LoopbackTls& operator=(const LoopbackTls&) = delete;

  // One async_write_some / async_read_some through the library's TLS path, run to completion.
  error_code write_some(const std::string& data, std::size_t& n) {
    error_code ec = net::error::would_block;
    tls->async_write_some(net::buffer(data), [&](error_code e, std::size_t k) {
      ec = e;
      n = k;
    });
    io.run();
    io.restart();
    return ec;
  }
  error_code read_some(std::string& out) {
    char buf[4096];
    error_code ec = net::error::would_block;
    tls->async_read_some(net::buffer(buf), [&](error_code e, std::size_t k) {
      ec = e;
      out.append(buf, k);
    });
    io.run();
    io.restart();
    return ec;
  }

  net::io_context io;
  std::optional<TlsSocket> tls;

 private:
  void join_server() {
    if (server_.joinable()) server_.join();
  }
  SSL_CTX* server_ctx_ = nullptr;
  SSL_CTX* client_ctx_ = nullptr;
  std::thread server_;
  bool server_handshake_ok_ = false;
};

}  // namespace

TEST_CASE("TlsSocket: a write to a peer that has closed fails with an error, never SIGPIPE") {
  DefaultSigpipe sigpipe;  // without MSG_NOSIGNAL the process dies here (exit status 141)
  LoopbackTls pair([](SSL*) {});
  // The first writes may still be accepted by the kernel; once the peer's reset has
  // arrived, every write fails (EPIPE, where write() without MSG_NOSIGNAL raises SIGPIPE).
  std::string data(1024, 'x');
  error_code ec;
  int writes = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!ec && std::chrono::steady_clock::now() < deadline) {
    std::size_t n = 0;
    ec = pair.write_some(data, n);
    if (!ec) CHECK(n == data.size());
    ++writes;
    if (!ec) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  INFO("writes: " << writes << ", error: " << ec.message());
  CHECK(ec);
  CHECK(ec != net::error::would_block);
  // The socket stays usable for the caller: another write fails the same way.
  std::size_t n = 0;
  CHECK(pair.write_some(data, n));
  CHECK(n == 0);
}

TEST_CASE("TlsSocket: data, then close_notify, reads as the data and then eof") {
  LoopbackTls pair([](SSL* ssl) {
    SSL_write(ssl, "hello\n", 6);
    SSL_shutdown(ssl);
  });
  CHECK(SSL_get_fd(pair.tls->native_handle()) == static_cast<int>(pair.tls->next_layer().native_handle()));
  std::string out;
  error_code ec;
  while (!ec) ec = pair.read_some(out);
  CHECK(out == "hello\n");
  CHECK(ec == net::error::eof);
}

TEST_CASE("TlsSocket: a peer that closes without close_notify is an unexpected EOF") {
  LoopbackTls pair([](SSL*) {});
  std::string out;
  error_code ec;
  while (!ec) ec = pair.read_some(out);
  CHECK(out.empty());
  // OpenSSL tells a truncated stream from a clean end by the BIO's EOF flag.
  REQUIRE(&ec.category() == &pw::transport::tls_category());
  CHECK(ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
}
