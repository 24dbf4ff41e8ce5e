// The library's quickstart: one session, run/run_many, a registry fan-out.
//   pw-example [URL ...]        default: two local pods (local://web-1, local://web-2)
#include <podwrangler/podwrangler.hpp>

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include <iostream>

namespace asio = boost::asio;

static pw::Task<int> demo(std::vector<std::string> urls) {
  auto ex = co_await asio::this_coro::executor;
  int failures = 0;

  // 1. One session: run, check, run_many.
  pw::PodSession session = pw::PodSession::from_url(ex, urls.front());
  co_await session.connect();
  pw::CommandResult r = co_await session.run("echo \"hello from $(hostname)\"; uname -s");
  std::cout << "[" << r.pod_label << "] exit=" << r.exit_code << " in " << r.duration * 1000 << " ms\n"
            << r.output << "\n";
  try {
    co_await session.run("ls /definitely-missing", std::nullopt, /*check=*/true);
  } catch (const pw::PodCommandError& e) {
    std::cout << "check=true raised PodCommandError: exit " << e.exit_code() << "\n";
  }
  // (a named vector: GCC 12 miscompiles braced lists inside co_await expressions)
  std::vector<std::string> steps{"cd /tmp", "pwd", "false", "echo not reached"};
  auto many = co_await session.run_many(steps, 5.0, true);
  for (const auto& m : many) std::cout << (m.succeeded() ? "  ok   " : "  FAIL ") << m.command << "\n";
  co_await session.close();

  // 2. A registry and a parallel fan-out.
  pw::PodRegistry registry;
  for (std::size_t i = 0; i < urls.size(); ++i) registry.register_from_url("pod-" + std::to_string(i + 1), urls[i]);
  pw::FanOutOptions fan;
  fan.width = 8;
  auto results = co_await registry.fan_out(registry.aliases(), "hostname", fan);
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& res = results[i];
    std::cout << registry.aliases()[i] << " (" << res.pod_label << ") → "
              << (res.error ? "error: " + *res.error : res.output) << "\n";
    if (!res.succeeded()) ++failures;
  }
  co_return failures == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  std::vector<std::string> urls(argv + 1, argv + argc);
  if (urls.empty()) urls = {"local://web-1", "local://web-2"};
  asio::io_context io;
  int rc = 1;
  asio::co_spawn(io, demo(urls), [&](std::exception_ptr e, int v) {
    if (!e) {
      rc = v;
      return;
    }
    try {
      std::rethrow_exception(e);
    } catch (const pw::PodClientError& err) {
      std::cerr << "error: " << err.what() << "\n";
      rc = err.info().exit_code;
    } catch (const std::exception& err) {
      std::cerr << "error: " << err.what() << "\n";
    }
  });
  io.run();
  return rc;
}
