#pragma once
// The status of a recorded command: one enum and its one table of names, the text stored
// in the database and shown by the API ("status" of a result, ?status= of the history, the
// keys of a fan-out's summary). The CLI reads results with the same table.
#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace pw::server {

enum class CommandStatus {
  running,      // started, not finished (or its server died before it could say)
  succeeded,    // exit code 0
  failed,       // non-zero exit code
  timeout,      // deadline passed
  error,        // connection or pod error
  interrupted,  // the server stopped first
};

struct CommandStatusName {
  CommandStatus status;
  std::string_view name;
};

// In the enum's order.
inline constexpr std::array<CommandStatusName, 6> kCommandStatuses{{
    {CommandStatus::running, "running"},
    {CommandStatus::succeeded, "succeeded"},
    {CommandStatus::failed, "failed"},
    {CommandStatus::timeout, "timeout"},
    {CommandStatus::error, "error"},
    {CommandStatus::interrupted, "interrupted"},
}};

constexpr std::string_view to_string(CommandStatus s) noexcept {
  const auto i = static_cast<std::size_t>(s);
  return i < kCommandStatuses.size() ? kCommandStatuses[i].name : std::string_view("error");
}

// nullopt for text that is not a status (exact, case-sensitive: "Running" is not one).
constexpr std::optional<CommandStatus> command_status_from_string(std::string_view text) noexcept {
  for (const auto& s : kCommandStatuses)
    if (s.name == text) return s.status;
  return std::nullopt;
}

// A status read back from the database: a name this version does not know (written by a
// newer one) reads as `error`, so that the row is still listed.
constexpr CommandStatus command_status_from_stored(std::string_view text) noexcept {
  return command_status_from_string(text).value_or(CommandStatus::error);
}

// "running, succeeded, failed, timeout, error, interrupted": for messages.
inline std::string command_status_names() {
  std::string out;
  for (const auto& s : kCommandStatuses) {
    if (!out.empty()) out += ", ";
    out += s.name;
  }
  return out;
}

// nlohmann::json writes a status as its name, never as the enum's number (found by ADL;
// a template, so that this header needs no JSON include).
template <class Json>
void to_json(Json& j, CommandStatus s) {
  j = std::string(to_string(s));
}

namespace command_status_check {
constexpr bool in_enum_order() {
  for (std::size_t i = 0; i < kCommandStatuses.size(); ++i)
    if (static_cast<std::size_t>(kCommandStatuses[i].status) != i) return false;
  return true;
}
}  // namespace command_status_check
static_assert(command_status_check::in_enum_order(),
              "kCommandStatuses: one name per CommandStatus, in the enum's order");
static_assert(static_cast<std::size_t>(CommandStatus::interrupted) + 1 == kCommandStatuses.size(),
              "kCommandStatuses: every CommandStatus has a name");

}  // namespace pw::server
