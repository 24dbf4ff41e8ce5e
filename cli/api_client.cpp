#include "cli/api_client.hpp"

#include "cli/cli_error.hpp"
#include "cli/exit_codes.hpp"
#include "cli/json_access.hpp"
#include "embedded_server/store/command_status.hpp"

#include <podwrangler/redact.hpp>
#include <podwrangler/sigpipe.hpp>

#include <httplib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>
#include <vector>

namespace pw::cli {

namespace {

const char* kHintServer = "is the server running? try --local";

struct HostPort {
  std::string host;
  int port = 0;
};

HostPort host_port(const std::string& origin) {
  HostPort hp;
  auto p = origin.find("://");
  std::string scheme = origin.substr(0, p);
  std::string rest = origin.substr(p + 3);
  hp.port = scheme == "https" ? 443 : 80;
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    hp.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') hp.port = std::atoi(rest.c_str() + close + 2);
  } else {
    auto colon = rest.rfind(':');
    hp.host = rest.substr(0, colon);
    if (colon != std::string::npos) hp.port = std::atoi(rest.c_str() + colon + 1);
  }
  return hp;
}

std::string lower_first(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

// Why a connection failed: only on the error path, to word the message ("connection
// refused", "connection timed out", "cannot resolve host x").
std::string diagnose_connect(const std::string& origin, double timeout_s) {
  HostPort hp = host_port(origin);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(hp.port);
  if (int rc = ::getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &res); rc != 0)
    return "cannot resolve host " + hp.host + " (" + ::gai_strerror(rc) + ")";
  std::string reason = "connection failed";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    int err = 0;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd pfd{fd, POLLOUT, 0};
        int n = ::poll(&pfd, 1, static_cast<int>(timeout_s * 1000));
        if (n == 0)
          err = ETIMEDOUT;
        else {
          socklen_t len = sizeof err;
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        }
      }
    }
    ::close(fd);
    if (err == 0) {
      reason = "the connection was closed";
      break;
    }
    reason = lower_first(std::strerror(err));
  }
  ::freeaddrinfo(res);
  return reason;
}

}  // namespace

BaseUrl split_base_url(const std::string& url) {
  auto bad = [&](const std::string& why) {
    return CliError(exit_code::config, "invalid API URL '" + pw::redact_url(url) + "': " + why,
                    "use http://HOST:PORT or https://HOST:PORT");
  };
  auto p = url.find("://");
  if (p == std::string::npos) throw bad("no scheme");
  std::string scheme = url.substr(0, p);
  if (scheme != "http" && scheme != "https") throw bad("scheme must be http or https");
  auto slash = url.find('/', p + 3);
  BaseUrl b;
  b.origin = url.substr(0, slash);
  if (b.origin.size() == p + 3) throw bad("no host");
  if (slash != std::string::npos) {
    b.prefix = url.substr(slash);
    while (!b.prefix.empty() && b.prefix.back() == '/') b.prefix.pop_back();
  }
  if (b.origin.find('@') != std::string::npos)
    throw bad("credentials in the URL are not supported (set PODWRANGLER_API_KEY)");
  if (url.find_first_of("?# \t\r\n") != std::string::npos) throw bad("unexpected character");
  return b;
}

int exit_code_for_api_error(int status, const std::string& code) {
  // A code of the error table decides; an answer without one of ours (a proxy, another
  // server) goes by its status.
  if (const ErrorInfo* e = error_info_for_code(code)) return e->api_exit_code;
  if (status == 401 || status == 403) return exit_code::auth;
  switch (status) {
    case 400:
    case 413:
    case 415:
    case 422: return exit_code::data;
    case 404: return exit_code::not_found;
    case 409: return exit_code::conflict;
    case 408:
    case 504: return exit_code::timeout;
    case 500: return exit_code::software;
    default: break;
  }
  if (status >= 500) return exit_code::unavailable;
  return exit_code::software;
}

std::string ApiReply::code() const { return std::string(field::string(body, "code").value_or("")); }

bool ApiReply::is(ErrorKind kind) const { return status >= 400 && error_info_for_code(code()) == &error_info(kind); }

std::string api_error_message(const ApiReply& reply) {
  const auto& b = reply.body;
  std::string msg;
  if (b.is_object() && b.contains("message") && b["message"].is_string()) {
    msg = b["message"].get<std::string>();
    if (b.contains("field") && b["field"].is_string()) {
      std::string field = b["field"].get<std::string>();
      if (msg.find(field) == std::string::npos) msg = field + ": " + msg;
    }
  } else {
    msg = "unexpected answer from the API (HTTP " + std::to_string(reply.status) + ")";
  }
  for (char& c : msg)
    if (c == '\n' || c == '\r') c = ' ';
  return msg;
}

namespace contract {

namespace {
bool has_string(const nlohmann::json& j, const char* k) { return j.contains(k) && j[k].is_string(); }
// "" when absent or of the type; else what is wrong.
std::string optional_field(const nlohmann::json& j, const char* k, bool (nlohmann::json::*is)() const noexcept,
                           const char* type, bool nullable) {
  if (!j.contains(k)) return "";
  const auto& v = j[k];
  if ((v.*is)() || (nullable && v.is_null())) return "";
  return std::string("\"") + k + "\" is not " + type;
}
std::string required_string(const nlohmann::json& j, const char* k) {
  if (!j.contains(k)) return std::string("\"") + k + "\" is missing";
  if (!j[k].is_string()) return std::string("\"") + k + "\" is not a string";
  return "";
}
}  // namespace

std::string error_body(const nlohmann::json& j) {
  if (!j.is_object()) return "the error body is not a JSON object";
  if (!has_string(j, "code") || !has_string(j, "message")) return "the error body has no \"code\" and \"message\"";
  return "";
}

std::string pod(const nlohmann::json& j) {
  if (!j.is_object()) return "a pod is not a JSON object";
  for (const char* k : {"alias", "url", "provider"})
    if (auto p = required_string(j, k); !p.empty()) return "pod: " + p;
  if (auto p = optional_field(j, "labels", &nlohmann::json::is_object, "an object", false); !p.empty())
    return "pod: " + p;
  return "";
}

std::string pod_list(const nlohmann::json& j) {
  if (!j.is_array()) return "the pod list is not a JSON array";
  for (const auto& p : j)
    if (auto problem = pod(p); !problem.empty()) return problem;
  return "";
}

std::string result(const nlohmann::json& j) {
  if (!j.is_object()) return "a command result is not a JSON object";
  for (const char* k : {"alias", "status", "output"})
    if (auto p = required_string(j, k); !p.empty()) return "result: " + p;
  const std::string st = j["status"].get<std::string>();
  if (!pw::server::command_status_from_string(st)) return "result: unknown status \"" + st.substr(0, 40) + "\"";
  for (const auto& p : {optional_field(j, "output_b64", &nlohmann::json::is_string, "a string", false),
                        optional_field(j, "exit_code", &nlohmann::json::is_number_integer, "an integer", true),
                        optional_field(j, "id", &nlohmann::json::is_number_integer, "an integer", true),
                        optional_field(j, "error", &nlohmann::json::is_string, "a string", true),
                        optional_field(j, "truncated", &nlohmann::json::is_boolean, "a boolean", false),
                        optional_field(j, "duration", &nlohmann::json::is_number, "a number", true)})
    if (!p.empty()) return "result: " + p;
  return "";
}

std::string history_page(const nlohmann::json& j) {
  if (!j.is_object()) return "the history page is not a JSON object";
  if (!j.contains("items")) return "\"items\" is missing";
  if (!j["items"].is_array()) return "\"items\" is not an array";
  if (!j.contains("next_before")) return "\"next_before\" is missing";
  if (!j["next_before"].is_null() && !j["next_before"].is_number_integer()) return "\"next_before\" is not an id";
  for (const auto& it : j["items"])
    if (auto p = result(it); !p.empty()) return p;
  return "";
}

std::string health(const nlohmann::json& j) {
  if (!j.is_object()) return "the health answer is not a JSON object";
  return required_string(j, "status");
}

std::string stream_event(const nlohmann::json& j) {
  if (!j.is_object()) return "an event is not a JSON object";
  if (auto p = required_string(j, "event"); !p.empty()) return "event: " + p;
  const std::string ev = j["event"].get<std::string>();
  if (ev == "start") {
    if (!j.contains("total") || !j["total"].is_number_integer() || j["total"].get<long long>() < 0)
      return "start event: \"total\" is not a count";
    if (j.contains("aliases") && !j["aliases"].is_array()) return "start event: \"aliases\" is not an array";
  } else if (ev == "result") {
    if (!j.contains("index") || !j["index"].is_number_integer()) return "result event: \"index\" is missing";
    return result(j);
  } else if (ev == "summary") {
    if (!j.contains("total") || !j["total"].is_number_integer()) return "summary event: \"total\" is missing";
  }
  return "";  // other events: ignored by this version
}

}  // namespace contract

namespace {
template <class T>
void set_seconds(T&& setter, double s) {
  auto sec = static_cast<time_t>(s);
  auto usec = static_cast<time_t>((s - static_cast<double>(sec)) * 1e6);
  setter(sec, usec);
}
}  // namespace

ApiClient::ApiClient(const std::string& base_url, const std::string& api_key, ApiTimeouts t)
    : url_(base_url), base_(split_base_url(base_url)) {
  while (!url_.empty() && url_.back() == '/') url_.pop_back();
  shown_url_ = pw::redact_url(url_);
  client_ = std::make_unique<httplib::Client>(base_.origin);
  client_->set_keep_alive(true);
  client_->set_tcp_nodelay(true);
  set_seconds([&](time_t s, time_t u) { client_->set_connection_timeout(s, u); }, t.connect_s);
  set_seconds([&](time_t s, time_t u) { client_->set_read_timeout(s, u); }, t.read_s);
  set_seconds([&](time_t s, time_t u) { client_->set_write_timeout(s, u); }, std::max(5.0, t.connect_s));
  if (!api_key.empty()) client_->set_bearer_token_auth(api_key);
  client_->set_default_headers({{"User-Agent", "podwrangler-cli"}, {"Accept", "application/json"}});
  read_s_ = t.read_s;
  connect_s_ = t.connect_s;
}

ApiClient::~ApiClient() = default;

void ApiClient::set_read_timeout(double seconds) {
  read_s_ = seconds;
  set_seconds([&](time_t s, time_t u) { client_->set_read_timeout(s, u); }, seconds);
}

namespace {

// The first OpenSSL error on this thread's queue that names a reason, as text (no numbers).
struct TlsReason {
  int reason = 0;
  std::string text;
};
TlsReason drain_tls_errors() {
  TlsReason r;
  while (unsigned long e = ERR_get_error()) {
    if (r.reason != 0) continue;
    r.reason = ERR_GET_REASON(e);
    if (const char* t = ERR_reason_error_string(e)) r.text = t;
  }
  return r;
}

bool not_tls_reason(int reason) {
  return reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_HTTP_REQUEST || reason == SSL_R_PACKET_LENGTH_TOO_LONG;
}

// Only on the error path: does the port answer plain HTTP? (The clearest sign that an
// https:// URL names a plain-HTTP port.)
bool answers_plain_http(const std::string& origin, double timeout_s) {
  HostPort hp = host_port(origin);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(hp.host.c_str(), std::to_string(hp.port).c_str(), &hints, &res) != 0) return false;
  bool http = false;
  for (addrinfo* ai = res; ai && !http; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    timeval tv{static_cast<time_t>(timeout_s), static_cast<suseconds_t>((timeout_s - std::floor(timeout_s)) * 1e6)};
    if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 100000;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      static constexpr char kProbe[] = "HEAD / HTTP/1.0\r\n\r\n";
      char buf[5] = {};
      if (::send(fd, kProbe, sizeof kProbe - 1, MSG_NOSIGNAL) > 0 && ::recv(fd, buf, sizeof buf, MSG_WAITALL) == 5)
        http = std::string_view(buf, 5) == "HTTP/";
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return http;
}

}  // namespace

void ApiClient::raise_transport(int error) const {
  auto e = static_cast<httplib::Error>(error);
  const bool tls = base_.origin.rfind("https://", 0) == 0;
  switch (e) {
    case httplib::Error::Connection:
    case httplib::Error::ConnectionTimeout:
      throw CliError(
          exit_code::unavailable,
          "cannot reach the API at " + shown_url_ + ": " + diagnose_connect(base_.origin, std::min(connect_s_, 2.0)),
          kHintServer);
    case httplib::Error::SSLConnection: {
      TlsReason why = drain_tls_errors();
      if (why.reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        long v = client_->get_openssl_verify_result();
        throw CliError(exit_code::unavailable,
                       "certificate of the API at " + shown_url_ + " is not trusted: " +
                           (v != X509_V_OK ? X509_verify_cert_error_string(v) : "verification failed"),
                       "SSL_CERT_FILE names a CA bundle to trust");
      }
      if (not_tls_reason(why.reason) || answers_plain_http(base_.origin, std::min(connect_s_, 2.0)))
        throw CliError(exit_code::unavailable,
                       "TLS handshake with the API at " + shown_url_ +
                           " failed: the server does not speak TLS (a plain-HTTP port?)",
                       "use http:// for a server without --tls-cert");
      std::string detail = why.text.empty() ? "the connection was closed during the handshake" : why.text;
      throw CliError(exit_code::unavailable, "TLS handshake with the API at " + shown_url_ + " failed: " + detail);
    }
    case httplib::Error::SSLServerVerification: {
      drain_tls_errors();
      long v = client_->get_openssl_verify_result();
      std::string detail =
          v != X509_V_OK ? X509_verify_cert_error_string(v) : "it does not name host " + host_port(base_.origin).host;
      throw CliError(exit_code::unavailable, "certificate of the API at " + shown_url_ + " is not trusted: " + detail,
                     "SSL_CERT_FILE names a CA bundle to trust");
    }
    case httplib::Error::SSLLoadingCerts:
      drain_tls_errors();
      throw CliError(exit_code::unavailable, "cannot load the CA certificates to check the API at " + shown_url_,
                     "SSL_CERT_FILE names a CA bundle to trust");
    case httplib::Error::Read:
    case httplib::Error::Write:
      throw CliError(exit_code::unavailable,
                     "the API at " + shown_url_ + " closed the connection or did not answer in time",
                     tls ? std::string() : "if the server uses TLS (--tls-cert), use https://");
    case httplib::Error::Canceled:
      throw CliError(exit_code::unavailable, "the request to the API at " + shown_url_ + " was cancelled");
    case httplib::Error::Compression:
      throw CliError(exit_code::software, "the API at " + shown_url_ + " sent a body that does not decompress");
    default: throw CliError(exit_code::unavailable, "the request to the API at " + shown_url_ + " failed");
  }
}

namespace {

std::string media_type(const std::string& header) {
  std::string t = header.substr(0, header.find(';'));
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.pop_back();
  std::size_t b = t.find_first_not_of(" \t");
  t = b == std::string::npos ? std::string() : t.substr(b);
  for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return t;
}

}  // namespace

nlohmann::json ApiClient::check_envelope(const std::string& request, int status, const std::string& content_type,
                                         const std::string& body, const std::string& location) const {
  if (status == 204) return nullptr;
  std::string what;  // why this is not our answer
  nlohmann::json j;
  if (content_type != "application/json") {
    what = content_type.empty() ? (body.empty() ? "empty body" : "no content type") : content_type.substr(0, 60);
  } else if (body.empty()) {
    what = "empty body";
  } else {
    j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded())
      what = "application/json that is not JSON";
    else if (status >= 400 && !contract::error_body(j).empty())
      what = "JSON without \"code\" and \"message\"";
    else if (status < 200 || (status >= 300 && status < 400))
      what = "application/json";
  }
  if (what.empty()) return j;
  std::string statusline = "HTTP " + std::to_string(status) + ", " + what;
  if (status == 502 || status == 503 || status == 504)
    throw CliError(status == 504 ? exit_code::timeout : exit_code::unavailable,
                   "the API at " + shown_url_ + " answered " + request + " with a gateway error (" + statusline +
                       "), not the API's JSON",
                   "is a proxy in front of the server unable to reach it?");
  std::string hint = "check --api-url, PODWRANGLER_API_URL or api_url in ~/.podwrangler.toml";
  if (status >= 300 && status < 400 && !location.empty())
    hint = "it redirects to " + pw::redact_url(location.substr(0, 200)) + "; " + hint;
  throw CliError(exit_code::software,
                 "not a podwrangler API at " + shown_url_ + " (" + statusline + " for " + request + ")", hint);
}

void ApiClient::expect(const std::string& request, const std::string& problem) const {
  if (problem.empty()) return;
  throw CliError(exit_code::software,
                 "unexpected answer from the API at " + shown_url_ + " (" + request + "): " + problem,
                 "is it a podwrangler API of this version?");
}

ApiReply ApiClient::call(const std::string& method, const std::string& path, const nlohmann::json* body) {
  httplib::Request req;
  req.method = method;
  req.path = base_.prefix + path;
  if (body) {
    req.body = body->dump();
    req.set_header("Content-Type", "application/json");
  }
  ERR_clear_error();
  ScopedSigpipeBlock nopipe;  // a server that closes early is EPIPE here, not the end of the CLI
  auto start = std::chrono::steady_clock::now();
  auto res = client_->send(req);
  if (!res) {
    if (res.error() == httplib::Error::Read) {
      double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (elapsed + 0.05 >= read_s_)
        throw CliError(exit_code::timeout, "the API at " + shown_url_ + " did not answer within " +
                                               std::to_string(static_cast<int>(std::lround(read_s_))) + " s");
    }
    raise_transport(static_cast<int>(res.error()));
  }
  ApiReply reply;
  reply.status = res->status;
  reply.content_type = media_type(res->get_header_value("Content-Type"));
  reply.body = check_envelope(method + " " + path.substr(0, path.find('?')), res->status, reply.content_type, res->body,
                              res->get_header_value("Location"));
  return reply;
}

void ApiClient::raise(const ApiReply& reply) const {
  int rc = exit_code_for_api_error(reply.status, reply.code());
  std::string hint;
  if (rc == exit_code::auth)
    hint = "set PODWRANGLER_API_KEY or api_key in ~/.podwrangler.toml";
  else if (reply.is(ErrorKind::route_not_found) || reply.is(ErrorKind::method_not_allowed))
    hint = "is " + shown_url_ + " a podwrangler API of this version?";
  throw CliError(rc, api_error_message(reply), hint);
}

nlohmann::json ApiClient::get(const std::string& path, Contract contract) {
  auto r = call("GET", path);
  if (r.status >= 400) raise(r);
  if (contract) expect("GET " + path.substr(0, path.find('?')), contract(r.body));
  return r.body;
}

nlohmann::json ApiClient::send(const std::string& method, const std::string& path, const nlohmann::json& body,
                               Contract contract) {
  auto r = call(method, path, &body);
  if (r.status >= 400) raise(r);
  if (contract) expect(method + " " + path.substr(0, path.find('?')), contract(r.body));
  return r.body;
}

bool ApiClient::post_stream(const std::string& path, const nlohmann::json& body,
                            const std::function<bool(const nlohmann::json&)>& on_event, Contract contract) {
  if (!contract) contract = contract::stream_event;
  const std::string request = "POST " + path;
  httplib::Request req;
  req.method = "POST";
  req.path = base_.prefix + path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", "application/x-ndjson");
  int status = 0;
  std::string ctype, location, pending, other_body;
  bool stopped = false;
  std::exception_ptr failure;
  req.response_handler = [&](const httplib::Response& r) {
    status = r.status;
    ctype = media_type(r.get_header_value("Content-Type"));
    location = r.get_header_value("Location");
    return true;
  };
  auto handle_line = [&](const std::string& line) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded())
      throw CliError(exit_code::software,
                     "unexpected answer from the API at " + shown_url_ + " (" + request +
                         "): a line of the event stream is not JSON",
                     "is it a podwrangler API of this version?");
    expect(request, contract(j));
    return on_event(j);
  };
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    if (status != 200 || ctype != "application/x-ndjson") {
      // Not the event stream: kept (bounded) for the error report after the request.
      if (other_body.size() < (1u << 20))
        other_body.append(data, std::min<std::size_t>(len, (1u << 20) - other_body.size()));
      return true;
    }
    pending.append(data, len);
    std::size_t nl;
    try {
      while ((nl = pending.find('\n')) != std::string::npos) {
        std::string line = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        if (line.empty() || line == "\r") continue;
        if (!handle_line(line)) {
          stopped = true;
          return false;
        }
      }
    } catch (...) {
      failure = std::current_exception();
      return false;
    }
    return true;
  };
  ERR_clear_error();
  ScopedSigpipeBlock nopipe;  // a server that closes early is EPIPE here, not the end of the CLI
  auto res = client_->send(req);
  if (failure) {
    client_->stop();
    std::rethrow_exception(failure);
  }
  if (stopped) {
    client_->stop();
    return false;
  }
  if (!res) raise_transport(static_cast<int>(res.error()));
  if (res->status != 200 || ctype != "application/x-ndjson") {
    ApiReply r;
    r.status = res->status;
    r.content_type = ctype;
    r.body = check_envelope(request, res->status, ctype, other_body.empty() ? res->body : other_body, location);
    if (r.status >= 400) raise(r);
    throw CliError(exit_code::software,
                   "not a podwrangler API at " + shown_url_ + " (HTTP " + std::to_string(r.status) + ", " +
                       (ctype.empty() ? std::string("no content type") : ctype) + " for " + request +
                       ", expected an application/x-ndjson event stream)",
                   "is it a podwrangler API of this version?");
  }
  if (!pending.empty() && pending != "\r") handle_line(pending);
  return true;
}

ApiReply ApiClient::put_stream(const std::string& path, std::uint64_t length,
                               const std::function<std::size_t(char*, std::size_t)>& read,
                               const std::string& content_type) {
  const std::string request = "PUT " + path.substr(0, path.find('?'));
  std::exception_ptr failure;
  std::vector<char> chunk(std::size_t{64} * 1024);
  auto provider = [&](size_t, size_t, httplib::DataSink& sink) -> bool {
    try {
      std::size_t n = read(chunk.data(), chunk.size());
      if (n == 0) {
        sink.done();
        return true;
      }
      return sink.write(chunk.data(), n);
    } catch (...) {
      failure = std::current_exception();
      return false;
    }
  };
  httplib::Headers headers{{"Accept", "application/json"}};
  ERR_clear_error();
  ScopedSigpipeBlock nopipe;  // a server that closes early is EPIPE here, not the end of the CLI
  const std::string target = base_.prefix + path;
  auto res = length == kUnknownLength
                 ? client_->Put(
                       target, headers,
                       [&](size_t offset, httplib::DataSink& sink) { return provider(offset, 0, sink); }, content_type)
                 : client_->Put(target, headers, static_cast<size_t>(length), provider, content_type);
  if (failure) {
    client_->stop();
    std::rethrow_exception(failure);
  }
  if (!res) raise_transport(static_cast<int>(res.error()));
  ApiReply reply;
  reply.status = res->status;
  reply.content_type = media_type(res->get_header_value("Content-Type"));
  reply.body = check_envelope(request, res->status, reply.content_type, res->body, res->get_header_value("Location"));
  return reply;
}

ApiReply ApiClient::get_stream(const std::string& path, const std::function<bool(const char*, std::size_t)>& on_data,
                               const std::vector<std::string>& types) {
  const std::string request = "GET " + path.substr(0, path.find('?'));
  int status = 0;
  std::string ctype, location, other_body;
  bool stopped = false;
  std::exception_ptr failure;
  auto on_response = [&](const httplib::Response& r) {
    status = r.status;
    ctype = media_type(r.get_header_value("Content-Type"));
    location = r.get_header_value("Location");
    return true;
  };
  auto ours = [&] { return std::find(types.begin(), types.end(), ctype) != types.end(); };
  auto on_content = [&](const char* data, size_t len) {
    if (status != 200 || !ours()) {
      if (other_body.size() < (1u << 20))
        other_body.append(data, std::min<std::size_t>(len, (1u << 20) - other_body.size()));
      return true;
    }
    try {
      if (!on_data(data, len)) {
        stopped = true;
        return false;
      }
    } catch (...) {
      failure = std::current_exception();
      return false;
    }
    return true;
  };
  std::string accept;
  for (const auto& t : types) accept += t + ", ";
  httplib::Headers headers{{"Accept", accept + "application/json"}};
  ERR_clear_error();
  ScopedSigpipeBlock nopipe;  // a server that closes early is EPIPE here, not the end of the CLI
  auto res = client_->Get(base_.prefix + path, headers, on_response, on_content);
  if (failure) {
    client_->stop();
    std::rethrow_exception(failure);
  }
  if (stopped) {
    client_->stop();
    return ApiReply{200, ctype, nullptr};
  }
  if (!res) {
    if (status == 200)
      throw CliError(exit_code::unavailable, "the download from the API at " + shown_url_ + " broke off (" + request +
                                                 "): the file is incomplete");
    raise_transport(static_cast<int>(res.error()));
  }
  ApiReply reply;
  reply.status = res->status;
  reply.content_type = ctype;
  if (res->status == 200 && ours()) return reply;
  reply.body = check_envelope(request, res->status, ctype, other_body.empty() ? res->body : other_body, location);
  if (reply.status == 200)
    expect(request,
           "HTTP 200 with " + (ctype.empty() ? std::string("no content type") : ctype) + ", expected " + types.front());
  return reply;
}

}  // namespace pw::cli
