#pragma once
// `--local`/`-L`: the embedded server, started in-process on a background thread on
// 127.0.0.1 and an ephemeral port, with the default database (SQLite in the user's data dir
// unless PODWRANGLER_DATABASE_URL says otherwise) so state persists across invocations.
// The CLI still talks HTTP to it: local and remote behave the same.
#include <memory>
#include <string>

namespace pw::server {
class Server;
}

namespace pw::cli {

class LocalServer {
 public:
  LocalServer();   // starts it; throws PodClientError subclasses (config, bind)
  ~LocalServer();  // stop()
  LocalServer(const LocalServer&) = delete;
  LocalServer& operator=(const LocalServer&) = delete;
  std::string url() const;
  void stop();

 private:
  std::unique_ptr<pw::server::Server> server_;
  int port_ = 0;
};

}  // namespace pw::cli
