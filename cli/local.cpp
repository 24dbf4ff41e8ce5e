#include "cli/local.hpp"

#include "embedded_server/server.hpp"
#include "embedded_server/settings.hpp"

namespace pw::cli {

LocalServer::LocalServer() {
  auto settings = pw::server::Settings::from_env();
  settings.host = "127.0.0.1";
  settings.port = 0;
  settings.threads = 8;  // one CLI client: a few workers start faster than the default 64
  settings.access_log = false;
  // Commands still running at exit (after --fail-fast, or Ctrl-C) get half a second, then
  // are recorded as interrupted: the CLI does not linger.
  settings.shutdown_grace_s = 0.5;
  // The capsule manager (engine connection, reconcile, monitor) only when a capsule command
  // asks for it: `pod list` never waits for the engine.
  settings.capsules_lazy = true;
  server_ = std::make_unique<pw::server::Server>(std::move(settings));
  port_ = server_->start_background();
}

LocalServer::~LocalServer() { stop(); }

void LocalServer::stop() {
  if (!server_) return;
  server_->stop(0.5);
  server_.reset();
}

std::string LocalServer::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

}  // namespace pw::cli
