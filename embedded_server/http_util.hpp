#pragma once
// Request/response helpers shared by the route files: JSON bodies, validation errors,
// the one error → status table.
#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace pw::server {

// An error that becomes an HTTP response: {"code","message"} (+ extra fields).
class HttpError : public std::runtime_error {
 public:
  HttpError(int status, std::string code, const std::string& message,
            nlohmann::json extra = nlohmann::json::object())
      : std::runtime_error(message), status_(status), code_(std::move(code)), extra_(std::move(extra)) {}
  int status() const noexcept { return status_; }
  const std::string& code() const noexcept { return code_; }
  const nlohmann::json& extra() const noexcept { return extra_; }

 private:
  int status_;
  std::string code_;
  nlohmann::json extra_;
};

// 422 validation_error naming the field.
HttpError validation_error(const std::string& field, const std::string& problem);

// Parses a JSON object body: 415 for a non-JSON content type, 400 for malformed JSON or
// a non-object, 422 for nesting deeper than `max_depth`.
nlohmann::json parse_object_body(const httplib::Request& req, int max_depth = 16);
// Rejects keys outside `allowed` (422 naming the first unknown one).
void reject_unknown_fields(const nlohmann::json& body, std::initializer_list<const char*> allowed);

void send_json(httplib::Response& res, int status, const nlohmann::json& body);
void send_error(httplib::Response& res, int status, const std::string& code,
                const std::string& message, const nlohmann::json& extra = nlohmann::json::object());
// Maps the exception being handled (HttpError, pw::PodClientError, StoreConflictError,
// StoreError, anything else) to its response; internals are logged, never sent.
void send_current_exception(httplib::Response& res);

}  // namespace pw::server

#include "embedded_server/store/store.hpp"

namespace pw::server {

// Aliases: [A-Za-z0-9][A-Za-z0-9._-]{0,62}.
bool is_valid_alias(std::string_view alias) noexcept;
// 422 naming `field` unless valid.
void check_alias(const std::string& alias, const std::string& field = "alias");
// {"k":"v",…} with label keys [A-Za-z0-9][A-Za-z0-9._/-]{0,62} and values [A-Za-z0-9._-]{0,63}.
Labels parse_labels(const nlohmann::json& j, const std::string& field = "labels");
// "k=v,k2=v2" (a selector); empty text → empty selector.
Labels parse_selector(const std::string& text, const std::string& field = "selector");

// A query parameter read from the raw request target, so that values holding '='
// (selector=app=web) survive; percent-decoded. nullopt when absent.
std::optional<std::string> query_param(const httplib::Request& req, std::string_view name);

// Typed accessors for request fields: 422 naming the field for a wrong type.
std::string required_string(const nlohmann::json& body, const char* field, std::size_t max_len);
std::optional<std::string> optional_string(const nlohmann::json& body, const char* field,
                                           std::size_t max_len);
// A number in (0, max]: seconds.
std::optional<double> optional_seconds(const nlohmann::json& body, const char* field, double max);
std::optional<bool> optional_bool(const nlohmann::json& body, const char* field);
std::optional<long> optional_int(const nlohmann::json& body, const char* field, long min, long max);

}  // namespace pw::server
