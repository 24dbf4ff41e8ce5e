// embedded_server/capsule_templates.cpp: the server's capsule templates file (TOML), every
// field checked as a create request's, errors naming the template and the field.
#include "embedded_server/capsule_templates.hpp"

#include <podwrangler/errors.hpp>

#include <doctest/doctest.h>

#include <string>

using pw::server::parse_capsule_templates;

namespace {

// The message of the PodConfigValidationError that parsing `text` raises ("" if none).
std::string refusal(const std::string& text) {
  try {
    parse_capsule_templates(text, "templates.toml");
  } catch (const pw::PodConfigValidationError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("capsule templates: specs with their defaults, and warm counts per image") {
  auto t = parse_capsule_templates(R"(
[templates.python]
image = "python:3.12-slim"
memory_mb = 1024
vcpus = 2
timeout_sec = 900
on_expire = "stop"
env = { PYTHONUNBUFFERED = "1" }
labels = { kind = "py" }
ports = [8080]
warm = 2

[templates.py-big]
image = "python:3.12-slim"
memory_mb = 4096
warm = 1

[templates.tiny]
image = "busybox:latest"
)",
                                   "templates.toml");
  REQUIRE(t.specs.size() == 3);
  const auto& py = t.specs.at("python");
  CHECK(py.image == "python:3.12-slim");
  CHECK(py.memory_mb == 1024);
  CHECK(py.vcpus == doctest::Approx(2.0));
  CHECK(py.idle_timeout_s == 900);
  CHECK(py.env.at("PYTHONUNBUFFERED") == "1");
  CHECK(py.labels.at("kind") == "py");
  CHECK(py.ports.size() == 1);
  CHECK(t.specs.at("tiny").memory_mb == pw::capsules::CapsuleSpec{}.memory_mb);  // the default
  // A pool per template (its capsules have the template's limits); none without `warm`.
  CHECK(t.warm == std::map<std::string, int>{{"py-big", 1}, {"python", 2}});
  CHECK(parse_capsule_templates("", "empty.toml").specs.empty());
}

TEST_CASE("capsule templates: a bad file is refused at start, naming the template and the field") {
  CHECK(refusal("[templates.a\nimage = 1").find("templates.toml: line") != std::string::npos);  // not TOML
  CHECK(refusal("[other]\nx = 1").find("unknown section [other]") != std::string::npos);
  CHECK(refusal("templates = 5").find("[templates.NAME]") != std::string::npos);
  CHECK(refusal("[templates.\"bad name\"]\nimage = \"x\"").find("not a valid template name") != std::string::npos);
  const std::string no_image = refusal("[templates.a]\nmemory_mb = 512");
  CHECK(no_image.find("template 'a'") != std::string::npos);
  CHECK(no_image.find("image") != std::string::npos);
  CHECK(refusal("[templates.a]\nimage = \"x\"\nmemory_mb = 1").find("memory_mb") != std::string::npos);
  CHECK(refusal("[templates.a]\nimage = \"x\"\nnetwork = \"host\"").find("network") != std::string::npos);
  CHECK(refusal("[templates.a]\nimage = \"x\"\ncolour = \"red\"").find("colour") != std::string::npos);
  CHECK(refusal("[templates.a]\nimage = \"x\"\ntemplate = \"b\"").find("another one") != std::string::npos);
  CHECK(refusal("[templates.a]\nimage = \"x\"\nwarm = 101").find("warm") != std::string::npos);
  CHECK(refusal("[templates.a]\nimage = \"x\"\nwarm = -1").find("warm") != std::string::npos);
  CHECK(refusal("[templates.a]\nimage = \"x\"\nlabels = { when = 1979-05-27 }").find("dates") != std::string::npos);
  CHECK(refusal("[templates.a]\nimage = \"x\"\nenv = { \"A-B\" = \"1\" }").find("env") != std::string::npos);
  // Every refusal names the setting, so the operator knows which file is meant.
  CHECK(refusal("[other]").find("PODWRANGLER_CAPSULE_TEMPLATES") != std::string::npos);
  CHECK_THROWS_AS(pw::server::load_capsule_templates("/nonexistent/templates.toml"), pw::PodConfigValidationError);
  CHECK(pw::server::load_capsule_templates("").specs.empty());
}
