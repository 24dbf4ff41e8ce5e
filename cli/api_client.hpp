#pragma once
// HTTP client of the REST API (embedded_server/README.md): one keep-alive cpp-httplib
// connection, Bearer auth, timeouts, and the mapping of failures to CliError + exit code.
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>

namespace httplib {
class Client;
}

namespace pw::cli {

struct ApiTimeouts {
  double connect_s = 5.0;
  double read_s = 60.0;
};

struct ApiReply {
  int status = 0;
  nlohmann::json body;  // null for an empty body; {"raw": text} when not JSON
};

// "http://host:port/prefix" → scheme+host+port and path prefix; throws CliError(config).
struct BaseUrl {
  std::string origin;  // "http://127.0.0.1:8000"
  std::string prefix;  // "" or "/podwrangler"
};
BaseUrl split_base_url(const std::string& url);

// Exit code for an API error answer (HTTP status + the body's "code").
int exit_code_for_api_error(int status, const std::string& code);

// A one-line message for an error answer: the body's "message" (with "field"), else
// "HTTP <status>".
std::string api_error_message(const ApiReply& reply);

class ApiClient {
 public:
  ApiClient(const std::string& base_url, const std::string& api_key, ApiTimeouts timeouts = {});
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  const std::string& url() const noexcept { return url_; }
  void set_read_timeout(double seconds);

  // One request. Transport failures throw CliError (unavailable / timeout); any HTTP status
  // is returned.
  ApiReply call(const std::string& method, const std::string& path,
                const nlohmann::json* body = nullptr);
  // call() + throws CliError for any status >= 400 (message from the body, exit code from
  // exit_code_for_api_error).
  nlohmann::json get(const std::string& path);
  nlohmann::json send(const std::string& method, const std::string& path, const nlohmann::json& body);

  // POST with an NDJSON answer: `on_event` is called for each line as it arrives; return
  // false to stop reading (the connection is closed). Error statuses throw like send().
  // Returns false when the reader stopped early.
  bool post_stream(const std::string& path, const nlohmann::json& body,
                   const std::function<bool(const nlohmann::json&)>& on_event);

  // Throws the CliError for an error reply.
  [[noreturn]] void raise(const ApiReply& reply) const;

 private:
  [[noreturn]] void raise_transport(int error) const;
  std::string url_;
  BaseUrl base_;
  std::unique_ptr<httplib::Client> client_;
  double read_s_ = 60.0;
  double connect_s_ = 5.0;
};

// Percent-encodes a path segment or query value.
std::string url_encode(const std::string& s);

}  // namespace pw::cli
