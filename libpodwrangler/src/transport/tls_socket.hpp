#pragma once
// A lean TLS stream for Beast: OpenSSL reads and writes the non-blocking TCP socket
// directly (through a socket BIO that never raises SIGPIPE: set_nosignal_fd) and Asio
// only waits for readiness. Unlike asio::ssl::stream, which keeps four fixed 17 KiB
// buffers per connection (two in stream_core, two in its BIO pair), an idle connection
// here holds only the SSL object: OpenSSL's record buffers are released while idle
// (SSL_MODE_RELEASE_BUFFERS). Used by ws_connection.cpp and docker_api.cpp, which also
// share the two client steps declared at the end: connect_tcp and tls_client_handshake.
#include "tls_context.hpp"

#include <podwrangler/asio_fwd.hpp>

#include <utility>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <chrono>
#include <climits>
#include <string>

namespace pw::transport {

namespace net = boost::asio;
using boost::system::error_code;

// Maps an OpenSSL failure (SSL_get_error() result plus the error queue) to an error_code.
inline error_code tls_error(int ssl_error) {
  if (ssl_error == SSL_ERROR_ZERO_RETURN) return net::error::eof;
  unsigned long e = ERR_get_error();  // the first error: the root cause
  ERR_clear_error();
  if (e == 0)
    return ssl_error == SSL_ERROR_SYSCALL ? error_code(net::error::connection_reset)
                                          : error_code(EPROTO, boost::system::generic_category());
  if (ERR_SYSTEM_ERROR(e)) return error_code(static_cast<int>(ERR_GET_REASON(e)), boost::system::system_category());
  return error_code(static_cast<int>(e & 0x7fffffffUL), tls_category());
}

// Gives `ssl` a BIO on the socket `fd` (left open when the SSL object is freed) like
// SSL_set_fd, except that writes pass MSG_NOSIGNAL: a write to a peer that has gone fails
// with EPIPE instead of raising SIGPIPE in the host process (tls_socket.cpp). False when
// the BIO cannot be made (out of memory); `ssl` then has no BIO and its handshake fails.
bool set_nosignal_fd(SSL* ssl, int fd);

class TlsSocket {
 public:
  using executor_type = net::any_io_executor;
  using next_layer_type = net::ip::tcp::socket;
  using lowest_layer_type = net::ip::tcp::socket;

  TlsSocket(net::ip::tcp::socket sock, SSL* ssl) : sock_(std::move(sock)), ssl_(ssl) {
    sock_.non_blocking(true);
    set_nosignal_fd(ssl_, static_cast<int>(sock_.native_handle()));
    SSL_set_read_ahead(ssl_, 1);  // one read() per record instead of header + body
  }
  ~TlsSocket() {
    if (ssl_) SSL_free(ssl_);
  }
  TlsSocket(const TlsSocket&) = delete;
  TlsSocket& operator=(const TlsSocket&) = delete;

  executor_type get_executor() { return sock_.get_executor(); }
  net::ip::tcp::socket& next_layer() { return sock_; }
  SSL* native_handle() { return ssl_; }

  // One step of an OpenSSL call: >0 bytes done, 0 = wait (want_read/want_write set), <0 error.
  template <class Fn>
  int step(Fn fn, bool& want_write, error_code& ec) {
    // OpenSSL holds the raw descriptor number: once the socket is closed that number
    // may already belong to another file (a PTY, another socket), so never call into
    // OpenSSL again after close().
    if (!sock_.is_open()) {
      ec = net::error::operation_aborted;
      return -1;
    }
    ERR_clear_error();
    int n = fn();
    if (n > 0) return n;
    int e = SSL_get_error(ssl_, n);
    if (e == SSL_ERROR_WANT_READ) {
      want_write = false;
      return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
      want_write = true;
      return 0;
    }
    ec = tls_error(e);
    return -1;
  }

  template <class Op>
  struct io_op {
    TlsSocket& s;
    Op op;
    bool empty = false;
    bool started = false;
    bool finished = false;
    error_code saved_ec{};
    std::size_t saved_n = 0;

    template <class Self>
    void operator()(Self& self, error_code ec = {}) {
      if (finished) return self.complete(saved_ec, saved_n);
      if (ec) return self.complete(ec, 0);  // only after a wait: never inline
      int n = 0;
      bool want_write = false;
      if (!empty) n = s.step(op, want_write, ec);
      if (empty || n != 0) {
        if (n < 0) saved_ec = ec;
        saved_n = n > 0 ? static_cast<std::size_t>(n) : 0;
        if (!started) {
          // Done at once: never complete inside the initiating function.
          started = finished = true;
          return net::post(s.sock_.get_executor(), std::move(self));
        }
        return self.complete(saved_ec, saved_n);
      }
      started = true;
      s.sock_.async_wait(want_write ? net::ip::tcp::socket::wait_write : net::ip::tcp::socket::wait_read,
                         std::move(self));
    }
  };

  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    net::mutable_buffer b = first_buffer(buffers);
    auto op = [this, b] { return SSL_read(ssl_, b.data(), clamp(b.size())); };
    return start(op, b.size() == 0, std::forward<Token>(token));
  }

  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    net::const_buffer b = first_buffer(buffers);
    std::size_t total = net::buffer_size(buffers);
    if (total != b.size() && total <= kCoalesceMax) {
      // Beast writes a frame as [header, payload]: one TLS record (and one TCP segment)
      // instead of two. wbuf_ stays untouched until the write completes, as OpenSSL
      // requires for a retried SSL_write.
      wbuf_.resize(total);
      net::buffer_copy(net::buffer(wbuf_), buffers);
      b = net::buffer(wbuf_);
    } else if (wbuf_.capacity() > 4096) {
      std::string().swap(wbuf_);  // idle sessions keep no large write buffer
    }
    auto op = [this, b] { return SSL_write(ssl_, b.data(), clamp(b.size())); };
    return start(op, b.size() == 0, std::forward<Token>(token));
  }

  // Client handshake; the caller bounds it with a timer that cancels the socket.
  template <class Token>
  auto async_handshake(Token&& token) {
    auto op = [this] {
      int r = SSL_do_handshake(ssl_);
      return r == 1 ? 1 : r;
    };
    return net::async_compose<Token, void(error_code, std::size_t)>(io_op<decltype(op)>{*this, op, false}, token,
                                                                    sock_);
  }

  void close(error_code& ec) {
    if (sock_.is_open()) {
      SSL_set_quiet_shutdown(ssl_, 1);
      sock_.shutdown(net::ip::tcp::socket::shutdown_both, ec);
      sock_.close(ec);
    }
  }
  bool is_open() const { return sock_.is_open(); }

 private:
  template <class Buffers>
  static auto first_buffer(const Buffers& buffers) {
    auto it = net::buffer_sequence_begin(buffers);
    auto end = net::buffer_sequence_end(buffers);
    for (; it != end; ++it)
      if (net::buffer_size(*it) > 0) return *it;
    return *net::buffer_sequence_begin(buffers);
  }
  static int clamp(std::size_t n) { return n > INT_MAX ? INT_MAX : static_cast<int>(n); }

  template <class Op, class Token>
  auto start(Op op, bool empty, Token&& token) {
    return net::async_compose<Token, void(error_code, std::size_t)>(io_op<Op>{*this, op, empty}, token, sock_);
  }

  static constexpr std::size_t kCoalesceMax = 16384;
  net::ip::tcp::socket sock_;
  SSL* ssl_;
  std::string wbuf_;
};

// Connects a close-on-exec TCP socket (cloexec.hpp) to host:port, trying each resolved
// address in turn until one accepts or `deadline` passes. Throws PodConnectionError:
// "cannot resolve <where>: …" or "cannot connect to <where>: timed out" / ": <reason>".
Task<net::ip::tcp::socket> connect_tcp(const std::string& host, const std::string& port,
                                       std::chrono::steady_clock::time_point deadline, const std::string& where);

// The client handshake of a fresh TlsSocket: SNI and verification of `host`
// (prepare_client_ssl), bounded by `timeout`. Throws PodConnectionError naming what failed
// ("TLS handshake with <where> failed: …", describe_tls_failure).
Task<void> tls_client_handshake(TlsSocket& s, const std::string& host, const TlsOptions& tls,
                                std::chrono::milliseconds timeout, const std::string& where);

// Beast's WebSocket close handshake hooks for TlsSocket.
inline void teardown(boost::beast::role_type, TlsSocket& s, error_code& ec) { s.close(ec); }

template <class TeardownHandler>
void async_teardown(boost::beast::role_type, TlsSocket& s, TeardownHandler&& handler) {
  error_code ec;
  s.close(ec);
  net::post(s.get_executor(), [h = std::forward<TeardownHandler>(handler), ec]() mutable { h(ec); });
}

}  // namespace pw::transport
