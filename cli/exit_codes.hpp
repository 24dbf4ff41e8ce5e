#pragma once
// The CLI's exit codes are those of the one error table (podwrangler/error_table.hpp): the
// numbers (exit_code::…), their names and man-page lines (kExitCodes), and, for each API
// error code, the exit status the CLI gives for it (ErrorInfo::api_exit_code, read by
// exit_code_for_api_error in api_client.cpp). Every command, the man page and the tests use
// them from there.
#include <podwrangler/error_table.hpp>

namespace pw::cli {

namespace exit_code = ::pw::exit_code;
using ::pw::ExitCodeInfo;
using ::pw::kExitCodes;

}  // namespace pw::cli
