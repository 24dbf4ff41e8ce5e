// pw-agent: the agent inside every capsule (its init). A static executable that runs
// unchanged in busybox, Alpine/musl and Debian images; see agent.hpp.
//   pw-agent --socket PATH [--lifetime SECONDS]
#include "agent.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

void say(std::string_view s) { [[maybe_unused]] const ssize_t n = ::write(2, s.data(), s.size()); }

constexpr std::string_view kUsage =
    "usage: pw-agent --socket PATH [--lifetime SECONDS]\n"
    "  The podwrangler agent: the init of a capsule. Listens on the unix socket PATH (0600)\n"
    "  and serves exec, files and processes to the host. With --lifetime it terminates its\n"
    "  children and exits after SECONDS of running time (paused time does not count).\n";

// A whole non-negative decimal number, nothing else.
bool parse_seconds(const char* s, long long& out) {
  if (s == nullptr || *s == '\0') return false;
  for (const char* p = s; *p != '\0'; ++p)
    if (*p < '0' || *p > '9') return false;
  errno = 0;
  char* end = nullptr;
  out = std::strtoll(s, &end, 10);
  return errno == 0 && end != nullptr && *end == '\0';
}

}  // namespace

int main(int argc, char** argv) {
  pwagent::Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      say(kUsage);
      return 0;
    }
    if ((a == "--socket" || a == "--lifetime") && i + 1 >= argc) {
      say("pw-agent: " + std::string(a) + " needs a value\n");
      return 2;
    }
    if (a == "--socket") {
      opt.socket_path = argv[++i];
    } else if (a == "--lifetime") {
      long long v = 0;
      if (!parse_seconds(argv[++i], v)) {
        say("pw-agent: --lifetime: not a number of seconds: " + std::string(argv[i]) + "\n");
        return 2;
      }
      opt.lifetime_s = v;
    } else {
      say("pw-agent: unknown argument " + std::string(a) + "\n");
      say(kUsage);
      return 2;
    }
  }
  if (opt.socket_path.empty() || opt.socket_path[0] != '/') {
    say("pw-agent: --socket needs an absolute path\n");
    say(kUsage);
    return 2;
  }
  return pwagent::run_agent(opt);
}
