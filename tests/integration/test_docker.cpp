// DockerProvider against a real dockerd started by run_docker_tests.sh (private socket,
// busybox image imported from local files). Without PW_DOCKER_HOST these cases are not
// run: the main integration run excludes the "docker" suite.
#include "../support/fixtures.hpp"
#include "session_suite.hpp"

#include <podwrangler/providers/docker.hpp>
#include <podwrangler/url.hpp>

#include <utility>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <cstdio>
#include <cstdlib>
#include <thread>

using namespace pw;
using pw::testing::block;

namespace {
std::string env(const char* k) {
  const char* v = std::getenv(k);
  return v ? v : "";
}
std::string url_for(const std::string& ctr) {
  return "docker://" + ctr + "?host=" + percent_encode(env("PW_DOCKER_HOST"));
}
int docker_cli(const std::string& args) {
  return std::system(("docker -H '" + env("PW_DOCKER_HOST") + "' " + args + " >/dev/null 2>&1").c_str());
}
}  // namespace

TEST_SUITE("docker") {
  TEST_CASE("docker: the common session suite on a persistent shell") {
    REQUIRE_FALSE(env("PW_DOCKER_HOST").empty());
    testing::common_session_suite(
        [](SessionOptions o) { return BlockingSession::from_url(url_for(env("PW_DOCKER_CONTAINER")), {}, o); });
    testing::output_cap_suite(
        [](SessionOptions o) { return BlockingSession::from_url(url_for(env("PW_DOCKER_CONTAINER")), {}, o); });
  }

  TEST_CASE("security: docker: a timeout keeps the same shell (its children are signalled through an exec)") {
    REQUIRE_FALSE(env("PW_DOCKER_HOST").empty());
    testing::timeout_keeps_shell_suite(
        [](SessionOptions o) { return BlockingSession::from_url(url_for(env("PW_DOCKER_CONTAINER")), {}, o); }, false);
  }

  TEST_CASE("security: docker: a loop inside the shell cannot be interrupted: the shell is replaced, and says so") {
    auto s = BlockingSession::from_url(url_for(env("PW_DOCKER_CONTAINER")));
    s.connect();
    s.run("X=1");
    CHECK(testing::time_out(s, "while :; do :; done", false) < 5.0);
    CHECK(s.run("echo \"[$X]\"").output == "[]\n");
  }

  TEST_CASE("fidelity: docker: all 256 byte values and 1 MiB of random bytes round-trip") {
    SessionOptions o;
    o.max_output_bytes = 2u << 20;
    auto s = BlockingSession::from_url(url_for(env("PW_DOCKER_CONTAINER")), {}, o);
    s.connect();
    std::string fmt, all;
    for (int c = 0; c < 256; ++c) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\%03o", c);
      fmt += esc;
      all.push_back(static_cast<char>(c));
    }
    CHECK(s.run("printf '" + fmt + "'").output == all);
    s.run("head -c 1048576 /dev/urandom > /tmp/pw-blob");
    auto blob = s.run("cat /tmp/pw-blob", 60.0);
    CHECK(blob.output.size() == 1048576);
    CHECK_FALSE(blob.truncated);
    auto sum = s.run("sha256sum /tmp/pw-blob; rm -f /tmp/pw-blob");
    CHECK(sum.output.substr(0, 64) == testing::sha256_hex(blob.output));
  }

  TEST_CASE("docker: one-shot exec keeps stdout and stderr apart, exit code from inspect") {
    auto [id, tok] = DockerProvider().parse_url(url_for(env("PW_DOCKER_CONTAINER")));
    std::vector<std::string> argv{"sh", "-c", "echo out; echo err >&2; exit 3"};
    ExecOutput o = block(DockerProvider::exec_once(id, argv, 10.0));
    CHECK(o.stdout_text == "out\n");
    CHECK(o.stderr_text == "err\n");
    CHECK(o.exit_code == 3);
    std::vector<std::string> big{"sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' a"};
    ExecOutput b = block(DockerProvider::exec_once(id, big, 30.0));
    CHECK(b.stdout_text.size() == 3000000);
    CHECK(b.exit_code == 0);
  }

  TEST_CASE("docker: list_pods lists running containers, filtered by label") {
    DockerProvider p;
    p.set_host(env("PW_DOCKER_HOST"));
    ListPodsOptions all;
    auto pods = block(p.list_pods(SecretString{}, all));
    bool found = false;
    for (const auto& id : pods) found = found || id.pod_name == env("PW_DOCKER_CONTAINER");
    CHECK(found);
    ListPodsOptions labelled;
    labelled.label_selector = "pw-role=main";
    auto only = block(p.list_pods(SecretString{}, labelled));
    REQUIRE(only.size() == 1);
    CHECK(only[0].pod_name == env("PW_DOCKER_CONTAINER"));
    // The identity's origin registers the container as a pod.
    auto s = BlockingSession::from_url(only[0].origin);
    s.connect();
    CHECK(s.run("echo via-list").output == "via-list\n");
  }

  TEST_CASE("docker: container stopped mid-command is a connection error") {
    const std::string ctr = env("PW_DOCKER_STOP_CONTAINER");
    auto s = BlockingSession::from_url(url_for(ctr));
    s.connect();
    CHECK(s.run("echo alive").output == "alive\n");
    // The command marks its start inside the container; the container is killed once it runs.
    auto started = [&] { return docker_cli("exec " + ctr + " test -e /tmp/pw-started") == 0; };
    std::thread stopper([&] {
      CHECK(testing::wait_until(started));
      docker_cli("kill " + ctr);
    });
    CHECK_THROWS_AS(s.run("touch /tmp/pw-started; sleep 20", 15.0), PodConnectionError);
    stopper.join();
    auto again = BlockingSession::from_url(url_for(ctr));
    CHECK_THROWS_WITH_AS(again.connect(), doctest::Contains("is not running"), PodConnectionError);
  }

  TEST_CASE("docker: a removed container is a clear error") {
    const std::string ctr = env("PW_DOCKER_RM_CONTAINER");
    REQUIRE(docker_cli("rm -f " + ctr) == 0);
    auto s = BlockingSession::from_url(url_for(ctr));
    CHECK_THROWS_WITH_AS(s.connect(), doctest::Contains("not found"), PodConnectionError);
  }

  TEST_CASE("docker: daemon not running names the socket") {
    auto s = BlockingSession::from_url("docker://c1?host=unix:///nonexistent/docker.sock");
    CHECK_THROWS_WITH_AS(s.connect(), doctest::Contains("/nonexistent/docker.sock"), PodConnectionError);
  }
}
