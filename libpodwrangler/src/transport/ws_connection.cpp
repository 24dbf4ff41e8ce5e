// WebSocket transport (Boost.Beast): ws:// and wss:// with verified TLS.
// This is one of the few translation units that include Beast (build time).
#include "tls_context.hpp"
#include "tls_socket.hpp"

#include <podwrangler/connection.hpp>
#include <podwrangler/errors.hpp>
#include <podwrangler/redact.hpp>
#include <podwrangler/url.hpp>

#include <utility>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <optional>

namespace pw {

namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
constexpr auto use_aw = asio::use_awaitable_t<Executor>{};

struct Target {
  std::string host, port, host_header, path_and_query;
  bool tls = false;
};

Target split_target(const std::string& url) {
  Url u = parse_url_strict(url);
  Target t;
  if (u.scheme == "wss" || u.scheme == "https")
    t.tls = true;
  else if (u.scheme != "ws" && u.scheme != "http")
    throw PodURLParseError("scheme", "expected ws:// or wss://", url);
  if (u.host.empty()) throw PodURLParseError("host", "missing host", url);
  t.host = u.host;
  t.port = u.port.empty() ? (t.tls ? "443" : "80") : u.port;
  t.host_header = u.authority();
  std::size_t as = url.find("://") + 3;
  std::size_t ps = url.find_first_of("/?", as);
  t.path_and_query = ps == std::string::npos ? "/" : url.substr(ps);
  if (!t.path_and_query.empty() && t.path_and_query[0] == '?') t.path_and_query = "/" + t.path_and_query;
  if (auto h = t.path_and_query.find('#'); h != std::string::npos) t.path_and_query.resize(h);
  return t;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) {
    if (!s.empty()) s += ", ";
    s += x;
  }
  return s;
}

template <class WsStream>
class WsConnection final : public Connection {
 public:
  WsConnection(Executor ex, ConnectionSpec schema, std::shared_ptr<ssl::context> ctx)
      : ex_(ex), schema_(std::move(schema)), ctx_(std::move(ctx)) {}

  Task<void> connect(std::chrono::milliseconds timeout) override {
    Target t = split_target(schema_.url);
    std::string where = t.host_header;
    boost::system::error_code ec;
    auto connect_deadline = std::chrono::steady_clock::now() + timeout;
    tcp::socket sock = co_await transport::connect_tcp(t.host, t.port, connect_deadline, where);
    if constexpr (kTls) {
      SSL* ssl = SSL_new(ctx_->native_handle());
      if (!ssl) throw PodConnectionError("cannot create a TLS session for " + where);
      ws_.emplace(std::move(sock), ssl);
      co_await transport::tls_client_handshake(ws_->next_layer(), t.host, schema_.tls, timeout, where);
    } else {
      ws_.emplace(std::move(sock));
    }
    websocket::stream_base::timeout opt{};
    opt.handshake_timeout = timeout;
    opt.idle_timeout = websocket::stream_base::none();
    opt.keep_alive_pings = false;
    ws_->set_option(opt);
    auto headers = schema_.headers;
    auto protos = schema_.subprotocols;
    ws_->set_option(websocket::stream_base::decorator([headers, protos](websocket::request_type& req) {
      req.set(beast::http::field::user_agent, "podwrangler");
      if (!protos.empty()) req.set(beast::http::field::sec_websocket_protocol, join(protos));
      for (const auto& [k, v] : headers) req.set(k, v);
    }));
    ws_->read_message_max(64u * 1024u * 1024u);
    ws_->auto_fragment(false);
    websocket::response_type res;
    co_await ws_->async_handshake(res, t.host_header, t.path_and_query, asio::redirect_error(use_aw, ec));
    if (ec) {
      std::string why = "WebSocket handshake with " + where + " failed";
      if (res.result_int() != 0 && res.result_int() != 101)
        why += ": HTTP " + std::to_string(res.result_int()) + " " + std::string(res.reason());
      else
        why = fail_text(why, ec);
      throw PodConnectionError(why);
    }
    if (!protos.empty()) {
      std::string chosen(res[beast::http::field::sec_websocket_protocol]);
      bool ok = false;
      for (const auto& p : protos) ok = ok || p == chosen;
      if (!ok)
        throw PodConnectionError("server at " + where + " did not accept any of the subprotocols [" + join(protos) +
                                 "]");
      subprotocol_ = chosen;
    }
    ws_->binary(schema_.is_binary_framed);
    open_ = true;
  }

  Task<void> write(std::string_view data) override {
    if (!open_) throw PodNotConnectedError();
    if (schema_.line_framed && !schema_.is_binary_framed && !data.empty() && data.back() == '\n')
      data.remove_suffix(1);  // the peer appends the newline to each text frame
    boost::system::error_code ec;
    co_await ws_->async_write(asio::buffer(data.data(), data.size()), asio::redirect_error(use_aw, ec));
    if (ec) throw PodConnectionError(fail_text("write to " + describe() + " failed", ec));
  }

  Task<bool> read(std::string& out) override {
    if (!open_) co_return false;
    boost::system::error_code ec;
    buffer_.clear();
    co_await ws_->async_read(buffer_, asio::redirect_error(use_aw, ec));
    if (ec == websocket::error::closed) co_return false;
    if (ec) {
      if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) co_return false;
      throw PodConnectionError(fail_text("connection to " + describe() + " lost", ec));
    }
    auto data = buffer_.data();
    out.append(static_cast<const char*>(data.data()), data.size());
    if (schema_.line_framed && ws_->got_text()) out.push_back('\n');
    if (buffer_.capacity() > std::size_t{256} * 1024) buffer_.shrink_to_fit();
    co_return true;
  }

  void close() noexcept override {
    if (!ws_) return;
    open_ = false;
    beast::close_socket(beast::get_lowest_layer(*ws_));
  }

  bool is_tty() const noexcept override { return schema_.tty; }
  std::string describe() const override { return redact_url(schema_.url); }
  std::string subprotocol() const override { return subprotocol_; }

 private:
  static constexpr bool kTls = !std::is_same_v<WsStream, websocket::stream<beast::tcp_stream>>;

  static std::string fail_text(const std::string& what, const boost::system::error_code& ec) {
    if (ec == beast::error::timeout) return what + ": timed out";
    return what + ": " + ec.message();
  }

  Executor ex_;
  ConnectionSpec schema_;
  std::shared_ptr<ssl::context> ctx_;
  std::optional<WsStream> ws_;
  beast::flat_buffer buffer_;
  std::string subprotocol_;
  bool open_ = false;
};

using PlainWs = websocket::stream<beast::tcp_stream>;
using TlsWs = websocket::stream<transport::TlsSocket>;

}  // namespace

std::unique_ptr<Connection> make_websocket_connection(Executor ex, ConnectionSpec schema) {
  Target t = split_target(schema.url);
  if (t.tls) {
    auto ctx = transport::client_tls_context(schema.tls);
    return std::make_unique<WsConnection<TlsWs>>(ex, std::move(schema), std::move(ctx));
  }
  return std::make_unique<WsConnection<PlainWs>>(ex, std::move(schema), nullptr);
}

}  // namespace pw
