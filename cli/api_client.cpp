#include "cli/api_client.hpp"

#include "cli/cli_error.hpp"
#include "cli/exit_codes.hpp"

#include <httplib.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <exception>

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
        if (n == 0) err = ETIMEDOUT;
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
    return CliError(exit_code::config, "invalid API URL '" + url + "': " + why,
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
  if (b.origin.find_first_of("?#@ ") != std::string::npos) throw bad("unexpected character");
  return b;
}

int exit_code_for_api_error(int status, const std::string& code) {
  // README codes, and the library's own codes (errors.cpp) where a server passes them on.
  if (code == "command_failed" || code == "pod_command_failed") return exit_code::command_failed;
  if (code == "command_timeout" || code == "pod_command_timeout") return exit_code::timeout;
  if (code == "invalid_url" || code == "validation_error") return exit_code::data;
  if (code == "invalid_config") return exit_code::config;
  if (code == "pod_connection_error" || code == "database_unavailable") return exit_code::unavailable;
  if (code == "pod_not_found" || code == "command_not_found") return exit_code::not_found;
  if (code == "conflict") return exit_code::conflict;
  if (code == "unauthorized" || status == 401 || status == 403) return exit_code::auth;
  if (code == "not_found" || code == "method_not_allowed") return exit_code::unavailable;
  switch (status) {
    case 400: case 413: case 415: case 422: return exit_code::data;
    case 404: return exit_code::not_found;
    case 409: return exit_code::conflict;
    case 408: case 504: return exit_code::timeout;
    case 500: return exit_code::software;
    default: break;
  }
  if (status >= 500) return exit_code::unavailable;
  return exit_code::software;
}

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

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out.push_back(static_cast<char>(c));
    else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

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

void ApiClient::raise_transport(int error) const {
  auto e = static_cast<httplib::Error>(error);
  switch (e) {
    case httplib::Error::Connection:
    case httplib::Error::ConnectionTimeout:
      throw CliError(exit_code::unavailable,
                     "cannot reach the API at " + url_ + ": " + diagnose_connect(base_.origin, std::min(connect_s_, 2.0)),
                     kHintServer);
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLServerVerification:
    case httplib::Error::SSLLoadingCerts:
      throw CliError(exit_code::unavailable,
                     "TLS connection to the API at " + url_ + " failed (" + httplib::to_string(e) + ")",
                     "check the certificate; SSL_CERT_FILE names a CA bundle to trust");
    case httplib::Error::Read:
      throw CliError(exit_code::unavailable,
                     "the API at " + url_ + " closed the connection or did not answer in time");
    default:
      throw CliError(exit_code::unavailable,
                     "request to the API at " + url_ + " failed: " + httplib::to_string(e));
  }
}

namespace {
nlohmann::json parse_body(const std::string& text) {
  if (text.empty()) return nullptr;
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return nlohmann::json{{"raw", text.substr(0, 200)}};
  return j;
}
}  // namespace

ApiReply ApiClient::call(const std::string& method, const std::string& path, const nlohmann::json* body) {
  httplib::Request req;
  req.method = method;
  req.path = base_.prefix + path;
  if (body) {
    req.body = body->dump();
    req.set_header("Content-Type", "application/json");
  }
  auto start = std::chrono::steady_clock::now();
  auto res = client_->send(req);
  if (!res) {
    if (res.error() == httplib::Error::Read) {
      double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (elapsed + 0.05 >= read_s_)
        throw CliError(exit_code::timeout, "the API at " + url_ + " did not answer within " +
                                               std::to_string(static_cast<int>(std::lround(read_s_))) + " s");
    }
    raise_transport(static_cast<int>(res.error()));
  }
  ApiReply reply;
  reply.status = res->status;
  reply.body = parse_body(res->body);
  return reply;
}

void ApiClient::raise(const ApiReply& reply) const {
  std::string code;
  if (reply.body.is_object() && reply.body.contains("code") && reply.body["code"].is_string())
    code = reply.body["code"].get<std::string>();
  int rc = exit_code_for_api_error(reply.status, code);
  std::string hint;
  if (rc == exit_code::auth) hint = "set PODWRANGLER_API_KEY or api_key in ~/.podwrangler.toml";
  else if (code == "not_found" || code == "method_not_allowed" ||
           (!reply.body.is_object() && reply.status == 404))
    hint = "is " + url_ + " a podwrangler API?";
  throw CliError(rc, api_error_message(reply), hint);
}

nlohmann::json ApiClient::get(const std::string& path) {
  auto r = call("GET", path);
  if (r.status >= 400) raise(r);
  return r.body;
}

nlohmann::json ApiClient::send(const std::string& method, const std::string& path, const nlohmann::json& body) {
  auto r = call(method, path, &body);
  if (r.status >= 400) raise(r);
  return r.body;
}

bool ApiClient::post_stream(const std::string& path, const nlohmann::json& body,
                            const std::function<bool(const nlohmann::json&)>& on_event) {
  httplib::Request req;
  req.method = "POST";
  req.path = base_.prefix + path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", "application/x-ndjson");
  int status = 0;
  std::string pending, error_body;
  bool stopped = false;
  std::exception_ptr failure;
  req.response_handler = [&](const httplib::Response& r) {
    status = r.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    if (status >= 400) {
      error_body.append(data, len);
      return true;
    }
    pending.append(data, len);
    std::size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (line.empty() || line == "\r") continue;
      auto j = nlohmann::json::parse(line, nullptr, false);
      try {
        if (j.is_discarded())
          throw CliError(exit_code::software,
                         "unexpected line in the API's event stream: " + line.substr(0, 80));
        if (!on_event(j)) {
          stopped = true;
          return false;
        }
      } catch (...) {
        failure = std::current_exception();
        return false;
      }
    }
    return true;
  };
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
  if (res->status >= 400) {
    ApiReply r;
    r.status = res->status;
    r.body = parse_body(error_body.empty() ? res->body : error_body);
    raise(r);
  }
  if (!pending.empty()) {
    auto j = nlohmann::json::parse(pending, nullptr, false);
    if (!j.is_discarded()) on_event(j);
  }
  return true;
}

}  // namespace pw::cli
