#pragma once
// HTTP client of the REST API (embedded_server/README.md): one keep-alive cpp-httplib
// connection, Bearer auth, timeouts, and the mapping of failures to CliError + exit code.
//
// Protocol rule: every answer is checked against the API's contract before it is used. An
// answer that is not ours (wrong content type, not JSON, an error body without
// {"code","message"}, JSON of the wrong shape, a missing required field) is a protocol
// error, exit 70 (EX_SOFTWARE) with one line naming the URL, the status and what was wrong;
// it is never read as an empty success or as "not found". Only a 502/503/504 that is not
// ours is reported as a gateway failure (69, 75 for 504): a proxy in front of the server.
#include <podwrangler/error_table.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
  std::string content_type;  // media type, lower-case, without parameters
  nlohmann::json body;       // the JSON answer (an error body has "code" and "message"); null for 204

  // The body's API "code" ("pod_not_found"); "" when it has none.
  std::string code() const;
  // An error answer (status >= 400) with the API code of this kind (error_table.hpp).
  // Asking for the code, not the status, keeps a 404 from a route that does not exist
  // (route_not_found, code "not_found": a wrong server or version, reported as unavailable
  // by raise()) from being read as a pod that is not registered (not_found, "pod_not_found").
  bool is(ErrorKind kind) const;
};

// The shapes of the API's answers (embedded_server/README.md). Each returns "" when `j`
// fits, else what is wrong ("\"items\" is missing"). Unknown extra fields are accepted.
namespace contract {
std::string error_body(const nlohmann::json& j);    // {"code","message",…}
std::string pod(const nlohmann::json& j);           // {"alias","url","provider","labels"?…}
std::string pod_list(const nlohmann::json& j);      // [pod…]
std::string result(const nlohmann::json& j);        // {"status","alias","output","output_b64"?…}
std::string history_page(const nlohmann::json& j);  // {"items":[result…],"next_before"}
std::string health(const nlohmann::json& j);        // {"status",…}
std::string stream_event(const nlohmann::json& j);  // {"event":"start"|"result"|"summary",…}
}  // namespace contract

// "http://host:port/prefix" → scheme+host+port and path prefix; throws CliError(config)
// (the URL in its message is redacted).
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

  // The base URL as messages show it (redacted).
  const std::string& url() const noexcept { return shown_url_; }
  void set_read_timeout(double seconds);

  using Contract = std::string (*)(const nlohmann::json&);

  // One request. Transport failures throw CliError (unavailable / timeout / TLS); an answer
  // that is not the API's JSON envelope throws the protocol error; any HTTP status with a
  // JSON body is returned (error bodies checked to hold "code" and "message").
  ApiReply call(const std::string& method, const std::string& path, const nlohmann::json* body = nullptr);
  // call() + throws CliError for any status >= 400 (message from the body, exit code from
  // exit_code_for_api_error) + checks the body against `contract` when given.
  nlohmann::json get(const std::string& path, Contract contract = nullptr);
  nlohmann::json send(const std::string& method, const std::string& path, const nlohmann::json& body,
                      Contract contract = nullptr);

  // Throws the protocol error (exit 70) for `request` ("GET /api/v1/commands") when
  // `problem` (from a contract:: check) is not empty.
  void expect(const std::string& request, const std::string& problem) const;

  // POST with an NDJSON answer (application/x-ndjson): `on_event` is called for each event
  // as it arrives (each checked with contract::stream_event); return false to stop reading
  // (the connection is closed). Error statuses throw like send(); a line that is not a JSON
  // event is a protocol error. Returns false when the reader stopped early.
  // `contract` checks each event (default: the fan-out stream's, contract::stream_event).
  bool post_stream(const std::string& path, const nlohmann::json& body,
                   const std::function<bool(const nlohmann::json&)>& on_event, Contract contract = nullptr);

  // Raw bodies, streamed (capsule files): a file never sits in memory.
  // PUT of `length` bytes pulled from `read` (fills up to n bytes, returns 0 at the end; it
  // may throw to abandon the request); kUnknownLength sends the body chunked. The answer as
  // call() returns it.
  static constexpr std::uint64_t kUnknownLength = ~std::uint64_t{0};
  ApiReply put_stream(const std::string& path, std::uint64_t length,
                      const std::function<std::size_t(char*, std::size_t)>& read,
                      const std::string& content_type = "application/octet-stream");
  // GET whose 200 answer is a byte stream of one of `types` (its content_type says which),
  // handed to `on_data` as it arrives (return false to stop). Any other answer is returned as
  // call() returns it (on_data never sees it); a 200 of another type is a protocol error, and
  // a stream cut short is an error (exit 69).
  ApiReply get_stream(const std::string& path, const std::function<bool(const char*, std::size_t)>& on_data,
                      const std::vector<std::string>& types = {"application/octet-stream"});

  // Throws the CliError for an error reply.
  [[noreturn]] void raise(const ApiReply& reply) const;

 private:
  [[noreturn]] void raise_transport(int error) const;
  // The body of an answer as the contract allows it; throws the protocol error otherwise.
  nlohmann::json check_envelope(const std::string& request, int status, const std::string& content_type,
                                const std::string& body, const std::string& location) const;
  std::string url_;
  std::string shown_url_;
  BaseUrl base_;
  std::unique_ptr<httplib::Client> client_;
  double read_s_ = 60.0;
  double connect_s_ = 5.0;
};

}  // namespace pw::cli
