#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <csignal>

// The tests' own HTTP clients (cpp-httplib) write with send() without MSG_NOSIGNAL: a server
// that answers before reading a whole upload (413, 422) must be a failed request here, as in
// `podwrangler serve` and the CLI, not a process killed by SIGPIPE with no report.
int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  return doctest::Context(argc, argv).run();
}
