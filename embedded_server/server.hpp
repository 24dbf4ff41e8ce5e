#pragma once
// The REST server: cpp-httplib workers in front of the Store and the warm session pool.
#include "embedded_server/settings.hpp"

#include <memory>

namespace pw::server {

class Server {
 public:
  // Opens and migrates the database; throws PodConfigValidationError / StoreError.
  explicit Server(Settings settings);
  ~Server();  // stops (graceful, with the configured grace) if still running
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; returns the port (the chosen one when settings.port == 0).
  // Throws ListenError when the address cannot be bound (exit 78: the settings must change).
  int bind();
  // Serves until stop(); binds first if bind() was not called.
  void run();
  // bind() + run() on a background thread; returns the port.
  int start_background();
  // Graceful stop: no new connections, running commands get up to `grace_s` to
  // finish, the rest are recorded `interrupted`, sessions and database closed.
  void stop(double grace_s);
  int port() const noexcept;
  const Settings& settings() const noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// `podwrangler serve`: runs a Server in the foreground until SIGINT/SIGTERM, then stops
// gracefully. Prints one line with the address it listens on to stderr. Returns an exit
// code (0 after a clean stop).
int serve_forever(Settings settings);

}  // namespace pw::server
