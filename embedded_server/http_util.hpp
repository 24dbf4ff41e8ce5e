#pragma once
// Request/response helpers shared by the route files: JSON bodies, validation errors, and
// error answers, whose status and code come from the one error table (error_table.hpp).
#include "embedded_server/httplib_fwd.hpp"

#include <podwrangler/base64.hpp>
#include <podwrangler/error_table.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pw::server {

// An error that becomes an HTTP response: {"code","message"} (+ extra fields), with the
// status and code of its kind's row. The message is kept whole in message() (what() is a
// C string: it would end at a NUL).
class HttpError : public std::runtime_error {
 public:
  HttpError(ErrorKind kind, const std::string& message, nlohmann::json extra = nlohmann::json::object())
      : std::runtime_error(message), kind_(kind), message_(message), extra_(std::move(extra)) {}
  ErrorKind kind() const noexcept { return kind_; }
  int status() const noexcept { return error_info(kind_).http_status; }
  std::string_view code() const noexcept { return error_info(kind_).code; }
  const std::string& message() const noexcept { return message_; }
  const nlohmann::json& extra() const noexcept { return extra_; }

 private:
  ErrorKind kind_;
  std::string message_;
  nlohmann::json extra_;
};

// A client's text shown in a message or a `field`: at most `max` bytes (cut on a UTF-8
// boundary, "…" appended), every control byte (0x00-0x1F, 0x7F) written as \xNN. Nothing
// a client sends can cut a message short or add a line to it.
std::string shown(std::string_view s, std::size_t max = 64);

// validation_error (422) naming the field.
HttpError validation_error(const std::string& field, const std::string& problem);

// Parses a JSON object body: 415 for a non-JSON content type, 400 for malformed JSON or
// a non-object, 422 for nesting deeper than `max_depth` and for a key given twice in one
// object (naming it: {"command":"a","command":"b"} is ambiguous, not "the last one wins").
nlohmann::json parse_object_body(const httplib::Request& req, int max_depth = 16);
// Rejects keys outside `allowed` (422 naming the first unknown one).
void reject_unknown_fields(const nlohmann::json& body, std::initializer_list<const char*> allowed);

void send_json(httplib::Response& res, int status, const nlohmann::json& body);
// An error answer: status and {"code"} from the kind's row, the message redacted, `extra`
// fields ("field", "result") added to the body.
void send_error(httplib::Response& res, ErrorKind kind, const std::string& message,
                const nlohmann::json& extra = nlohmann::json::object());
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
// "k=v,k2=v2" (a selector; "k==v" too); empty text → empty selector. An empty item
// ("a=b,"), a key given twice or anything but key=value is 422 naming `field`.
Labels parse_selector(const std::string& text, const std::string& field = "selector");

// A query parameter read from the raw request target, so that values holding '='
// (selector=app=web) survive; percent-decoded ('+' is a space). nullopt when absent.
// 422 naming the parameter when it is given twice, holds a malformed %-escape, a control
// byte (NUL included) or a leading/trailing space: no query value we take can hold those.
std::optional<std::string> query_param(const httplib::Request& req, std::string_view name);
// Every value of a repeatable query parameter (label=a=b&label=c=d), in order, each checked
// like query_param's.
std::vector<std::string> query_params(const httplib::Request& req, std::string_view name);
// 422 naming the first query parameter outside `allowed` (a misspelt `limt=5` is not
// silently ignored).
void reject_unknown_params(const httplib::Request& req, std::initializer_list<const char*> allowed);

// A whole-value decimal integer in [min, max]: ASCII digits only ('-' first when min < 0),
// no sign, space, prefix or suffix (no strtol-style "5abc" → 5). 422 naming the field.
std::int64_t parse_integer(std::string_view text, const std::string& field, std::int64_t min, std::int64_t max);
// 422 naming the field when `value` holds a control byte (0x00-0x1F, 0x7F) or starts or
// ends with a space: for single-token values (URLs, provider names, query values).
void check_token_text(std::string_view value, const std::string& field);

// Typed accessors for request fields: 422 naming the field for a wrong type. Strings never
// hold a NUL byte (JSON "\u0000"): 422 (a shell command cannot carry one either); other
// control bytes are the caller's business (a command may hold tabs and newlines).
std::string required_string(const nlohmann::json& body, const char* field, std::size_t max_len);
std::optional<std::string> optional_string(const nlohmann::json& body, const char* field, std::size_t max_len);
// A number in (0, max]: seconds.
std::optional<double> optional_seconds(const nlohmann::json& body, const char* field, double max);
std::optional<bool> optional_bool(const nlohmann::json& body, const char* field);
std::optional<long> optional_int(const nlohmann::json& body, const char* field, long min, long max);

// ---- byte-faithful output ----
// True when `s` is well-formed UTF-8 (Unicode table 3-7: no overlong forms, surrogates or
// code points above U+10FFFF). NUL is well-formed (JSON carries it as \u0000).
bool is_valid_utf8(std::string_view s) noexcept;
// `s` with every byte that is not part of a well-formed sequence replaced by U+FFFD.
std::string utf8_lossy(std::string_view s);
// pw::base64_encode (<podwrangler/base64.hpp>) for the `*_b64` fields.
using pw::base64_encode;

}  // namespace pw::server
