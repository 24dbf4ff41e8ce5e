// The socket BIO under TlsSocket. OpenSSL's own socket BIO (BIO_s_socket(), what SSL_set_fd
// installs) writes with write(): once the peer has reset the connection that raises SIGPIPE,
// which kills a host process that does not ignore it, and a library must not change its
// host's signal dispositions. This BIO writes with send(MSG_NOSIGNAL), so the write fails
// with EPIPE instead. Everything else (reads, retry flags, the EOF flag OpenSSL checks to
// report an unexpected EOF) does what OpenSSL's crypto/bio/bss_sock.c does.
#include "tls_socket.hpp"
#include "cloexec.hpp"

#include <podwrangler/errors.hpp>

#include <utility>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <openssl/bio.h>

#include <cerrno>
#include <memory>
#include <new>
#include <sys/socket.h>

namespace pw::transport {

namespace {

// The BIO's data is the descriptor (an int of its own, made in nosignal_create). The BIO
// never closes it: the Asio socket owns it (SSL_set_fd's BIO_NOCLOSE).
int& bio_fd(BIO* b) { return *static_cast<int*>(BIO_get_data(b)); }

int nosignal_write(BIO* b, const char* in, int len) {
  errno = 0;  // BIO_sock_should_retry() reads errno
  int ret = static_cast<int>(::send(bio_fd(b), in, static_cast<std::size_t>(len), MSG_NOSIGNAL));
  BIO_clear_retry_flags(b);
  if (ret <= 0 && BIO_sock_should_retry(ret)) BIO_set_retry_write(b);
  return ret;
}

int nosignal_read(BIO* b, char* out, int len) {
  if (out == nullptr) return 0;
  errno = 0;  // a read of 0 bytes is EOF only when errno says nothing else
  int ret = static_cast<int>(::recv(bio_fd(b), out, static_cast<std::size_t>(len), 0));
  BIO_clear_retry_flags(b);
  if (ret <= 0) {
    if (BIO_sock_should_retry(ret))
      BIO_set_retry_read(b);
    else if (ret == 0)
      BIO_set_flags(b, BIO_FLAGS_IN_EOF);
  }
  return ret;
}

long nosignal_ctrl(BIO* b, int cmd, long /*num*/, void* ptr) {
  switch (cmd) {
    case BIO_C_SET_FD:
      bio_fd(b) = *static_cast<int*>(ptr);
      BIO_set_init(b, 1);
      return 1;
    case BIO_C_GET_FD:
      if (!BIO_get_init(b)) return -1;
      if (ptr) *static_cast<int*>(ptr) = bio_fd(b);
      return bio_fd(b);
    case BIO_CTRL_GET_CLOSE: return BIO_NOCLOSE;
    case BIO_CTRL_DUP:
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_EOF: return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    default:
      // Kernel TLS included: OpenSSL then keeps the record layer in user space, as it
      // does on SSL_set_fd's BIO unless SSL_OP_ENABLE_KTLS is set (never, here).
      return 0;
  }
}

int nosignal_create(BIO* b) {
  int* fd = new (std::nothrow) int(-1);
  if (fd == nullptr) return 0;
  BIO_set_data(b, fd);
  BIO_set_init(b, 0);
  return 1;
}

int nosignal_destroy(BIO* b) {
  if (b == nullptr) return 0;
  delete static_cast<int*>(BIO_get_data(b));
  BIO_set_data(b, nullptr);
  return 1;
}

// Made once, on first use (thread-safe static), and kept for the life of the process.
BIO_METHOD* nosignal_socket_method() {
  static BIO_METHOD* const method = [] {
    int index = BIO_get_new_index();
    if (index == -1) return static_cast<BIO_METHOD*>(nullptr);
    // A descriptor BIO, so that SSL_get_fd() finds it.
    BIO_METHOD* m = BIO_meth_new(index | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "socket (MSG_NOSIGNAL)");
    if (m && BIO_meth_set_write(m, nosignal_write) == 1 && BIO_meth_set_read(m, nosignal_read) == 1 &&
        BIO_meth_set_ctrl(m, nosignal_ctrl) == 1 && BIO_meth_set_create(m, nosignal_create) == 1 &&
        BIO_meth_set_destroy(m, nosignal_destroy) == 1)
      return m;
    BIO_meth_free(m);
    return static_cast<BIO_METHOD*>(nullptr);
  }();
  return method;
}

}  // namespace

bool set_nosignal_fd(SSL* ssl, int fd) {
  BIO_METHOD* method = nosignal_socket_method();
  BIO* bio = method ? BIO_new(method) : nullptr;
  if (!bio) return false;
  BIO_set_fd(bio, fd, BIO_NOCLOSE);
  SSL_set_bio(ssl, bio, bio);  // one reference, read and write side alike
  return true;
}

namespace {
constexpr auto use_aw = net::use_awaitable_t<Executor>{};

// A deadline that runs `on_expiry` once unless done() came first. The timer's handler holds
// only a weak_ptr to the state and checks `done`, so an expiry queued just as the operation
// finished never touches an object that has gone or moved on.
struct Deadline {
  struct State {
    bool done = false;
    bool expired = false;
  };
  template <class OnExpiry>
  Deadline(const Executor& ex, std::chrono::steady_clock::time_point at, OnExpiry on_expiry)
      : state(std::make_shared<State>()), timer(ex, at) {
    timer.async_wait([w = std::weak_ptr<State>(state), on_expiry](error_code ec) {
      auto s = w.lock();
      if (ec || !s || s->done) return;
      s->expired = true;
      on_expiry();
    });
  }
  ~Deadline() { done(); }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  void done() {
    state->done = true;
    timer.cancel();
  }
  bool expired() const { return state->expired; }
  std::shared_ptr<State> state;
  net::steady_timer timer;
};
}  // namespace

Task<net::ip::tcp::socket> connect_tcp(const std::string& host, const std::string& port,
                                       std::chrono::steady_clock::time_point deadline, const std::string& where) {
  auto ex = co_await net::this_coro::executor;
  error_code ec;
  net::ip::tcp::resolver resolver(ex);
  net::ip::tcp::resolver::results_type results;
  {
    Deadline limit(ex, deadline, [&resolver] { resolver.cancel(); });
    results = co_await resolver.async_resolve(host, port, net::redirect_error(use_aw, ec));
    if (limit.expired()) throw PodConnectionError("cannot resolve " + where + ": timed out");
  }
  if (ec) throw PodConnectionError("cannot resolve " + where + ": " + ec.message());
  ec = net::error::host_not_found;
  for (const auto& entry : results) {
    auto sock = std::make_shared<net::ip::tcp::socket>(ex);
    open_cloexec(*sock, entry.endpoint().protocol(), ec);
    if (ec) continue;
    Deadline limit(ex, deadline, [sock] {
      error_code ignored;
      sock->close(ignored);
    });
    co_await sock->async_connect(entry.endpoint(), net::redirect_error(use_aw, ec));
    limit.done();
    if (limit.expired()) throw PodConnectionError("cannot connect to " + where + ": timed out");
    if (!ec) {
      sock->set_option(net::ip::tcp::no_delay(true), ec);
      co_return std::move(*sock);
    }
  }
  throw PodConnectionError("cannot connect to " + where + ": " + ec.message());
}

Task<void> tls_client_handshake(TlsSocket& s, const std::string& host, const TlsOptions& tls,
                                std::chrono::milliseconds timeout, const std::string& where) {
  SSL* ssl = s.native_handle();
  prepare_client_ssl(ssl, host, tls);
  SSL_set_connect_state(ssl);
  error_code ec;
  Deadline limit(s.get_executor(), std::chrono::steady_clock::now() + timeout, [&s] {
    error_code ignored;
    s.close(ignored);
  });
  std::size_t n = co_await s.async_handshake(net::redirect_error(use_aw, ec));
  (void)n;
  limit.done();
  if (limit.expired()) throw PodConnectionError("TLS handshake with " + where + " failed: timed out");
  if (ec) throw PodConnectionError(describe_tls_failure(ssl, "TLS handshake with " + where + " failed", ec, host));
}

}  // namespace pw::transport
