#pragma once
// Reading fields of the API's answers: the one way the CLI reads a field of a JSON object.
// None of these throws: `j` may be anything (a value that is not an object has no fields),
// and a field that is absent, null or of another type is "not there" (nullopt, the fallback,
// an empty object or array). The contract:: checks of api_client.hpp decide whether an
// answer is acceptable; these only read it.
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace pw::cli::field {

// The field's value, or nullptr when `j` is not an object or has no such field.
const nlohmann::json* find(const nlohmann::json& j, std::string_view key);

// A field as text for display: a string as it is, another non-null value as its JSON text
// (7, true, {"a":1}); `fallback` when absent or null.
std::string text(const nlohmann::json& j, std::string_view key, std::string_view fallback = "");

// Typed reads: the value when the field has that type, else nullopt. string() views the
// string inside `j` (valid while `j` is unchanged).
std::optional<std::string_view> string(const nlohmann::json& j, std::string_view key);
std::optional<long long> integer(const nlohmann::json& j, std::string_view key);
std::optional<double> number(const nlohmann::json& j, std::string_view key);  // any number
std::optional<bool> boolean(const nlohmann::json& j, std::string_view key);

// The field when it is an object / an array, else an empty one.
const nlohmann::json& object(const nlohmann::json& j, std::string_view key);
const nlohmann::json& array(const nlohmann::json& j, std::string_view key);

}  // namespace pw::cli::field
