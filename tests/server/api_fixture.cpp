#include "api_fixture.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>

namespace pw::testing {

ServerTestEnv::ServerTestEnv() : pki(make_test_pki(dir)) {
  setenv("XDG_DATA_HOME", dir.file("data").c_str(), 1);
  setenv("PODWRANGLER_SECRET_KEY", "test-secret-key-for-the-server-suite", 1);
  // wss:// pods behind websocketd use certificates of the test CA.
  setenv("SSL_CERT_FILE", pki.ca_cert.c_str(), 1);
  unsetenv("PODWRANGLER_API_KEY");
  unsetenv("PODWRANGLER_DATABASE_URL");
}

PostgresCluster& ServerTestEnv::postgres() {
  if (!pg_) pg_ = std::make_unique<PostgresCluster>();
  return *pg_;
}

ServerTestEnv& server_env() {
  static ServerTestEnv e;
  return e;
}

const char* backend_name(Backend b) { return b == Backend::sqlite ? "sqlite" : "postgresql"; }

std::string fresh_database_url(Backend b) {
  static std::atomic<int> n{0};
  auto& env = server_env();
  if (b == Backend::sqlite) return "sqlite:///" + env.dir.file("api-" + std::to_string(++n) + ".db");
  auto& pg = env.postgres();
  return pg.url(pg.create_database());
}

ApiClient::ApiClient(int port, std::string bearer) : cli_("127.0.0.1", port) {
  cli_.set_keep_alive(true);
  cli_.set_read_timeout(120, 0);
  if (!bearer.empty()) headers_.emplace("Authorization", "Bearer " + bearer);
}

namespace {
Reply to_reply(const httplib::Result& r) {
  Reply out;
  if (!r) {
    out.status = -1;
    return out;
  }
  out.status = r->status;
  out.raw = r->body;
  out.content_type = r->get_header_value("Content-Type");
  out.body = nlohmann::json::parse(r->body, nullptr, false);
  if (out.body.is_discarded()) out.body = nullptr;
  return out;
}
}  // namespace

Reply ApiClient::get(const std::string& path) { return to_reply(cli_.Get(path.c_str(), headers_)); }
Reply ApiClient::del(const std::string& path) { return to_reply(cli_.Delete(path.c_str(), headers_)); }
Reply ApiClient::post(const std::string& path, const nlohmann::json& body) { return send("POST", path, body.dump()); }
Reply ApiClient::patch(const std::string& path, const nlohmann::json& body) { return send("PATCH", path, body.dump()); }
Reply ApiClient::send(const std::string& method, const std::string& path, const std::string& body,
                      const std::string& content_type) {
  if (method == "POST") return to_reply(cli_.Post(path.c_str(), headers_, body, content_type.c_str()));
  if (method == "PATCH") return to_reply(cli_.Patch(path.c_str(), headers_, body, content_type.c_str()));
  if (method == "PUT") return to_reply(cli_.Put(path.c_str(), headers_, body, content_type.c_str()));
  return to_reply(cli_.Delete(path.c_str(), headers_, body, content_type.c_str()));
}

TestServer::TestServer(std::string database_url, const std::function<void(server::Settings&)>& tweak)
    : url_(std::move(database_url)) {
  server_env();
  server::Settings s = server::Settings::from_env();
  s.host = "127.0.0.1";
  s.port = 0;
  s.database_url = url_;
  s.threads = 16;
  s.shutdown_grace_s = 5;
  if (tweak) tweak(s);
  server_ = std::make_unique<server::Server>(s);
  port_ = server_->start_background();
}

TestServer::~TestServer() { server_->stop(server_->settings().shutdown_grace_s); }

void for_each_backend(const std::function<void(Backend, const std::string&)>& body) {
  for (Backend b : {Backend::sqlite, Backend::postgresql}) {
    SUBCASE(backend_name(b)) { body(b, fresh_database_url(b)); }
  }
}

}  // namespace pw::testing
