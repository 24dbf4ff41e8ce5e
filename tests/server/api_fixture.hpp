#pragma once
// An in-process Server on a free loopback port with a fresh database (SQLite file or a
// database in the shared throwaway PostgreSQL cluster), and a JSON client for it.
#include "../support/fixtures.hpp"
#include "../support/postgres.hpp"

#include "embedded_server/server.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>

namespace pw::testing {

// Process-wide test environment: XDG_DATA_HOME and PODWRANGLER_SECRET_KEY in a temp dir,
// a test PKI whose CA the server trusts (SSL_CERT_FILE) for wss:// pods.
struct ServerTestEnv {
  ServerTestEnv();
  TempDir dir;
  TestPki pki;
  PostgresCluster& postgres();  // started on first use

 private:
  std::unique_ptr<PostgresCluster> pg_;
};
ServerTestEnv& server_env();

enum class Backend { sqlite, postgresql };
const char* backend_name(Backend b);
// A fresh, empty database of that kind.
std::string fresh_database_url(Backend b);

struct Reply {
  int status = 0;
  nlohmann::json body;  // null when the body is empty or not JSON
  std::string raw;
  std::string content_type;
};

class ApiClient {
 public:
  explicit ApiClient(int port, std::string bearer = "");
  Reply get(const std::string& path);
  Reply del(const std::string& path);
  Reply post(const std::string& path, const nlohmann::json& body);
  Reply patch(const std::string& path, const nlohmann::json& body);
  // Raw body with a content type (for malformed input).
  Reply send(const std::string& method, const std::string& path, const std::string& body,
             const std::string& content_type = "application/json");
  httplib::Client& raw() { return cli_; }

 private:
  httplib::Client cli_;
  httplib::Headers headers_;
};

class TestServer {
 public:
  explicit TestServer(std::string database_url, const std::function<void(server::Settings&)>& tweak = {});
  ~TestServer();
  int port() const { return port_; }
  server::Server& server() { return *server_; }
  const std::string& database_url() const { return url_; }
  ApiClient client(const std::string& bearer = "") const { return ApiClient(port_, bearer); }

 private:
  std::string url_;
  std::unique_ptr<server::Server> server_;
  int port_ = 0;
};

// Runs `body` once per backend, each on a fresh database (doctest SUBCASEs name it).
void for_each_backend(const std::function<void(Backend, const std::string& db_url)>& body);

}  // namespace pw::testing
