#include "embedded_server/server_loop.hpp"

#include <thread>

namespace pw::server {

ServerLoop::ServerLoop() : LoopThread(log_to_stderr("podwrangler serve")) {}

bool ServerLoop::wait_idle(std::chrono::steady_clock::time_point deadline) {
  while (in_flight_->load() > 0) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace pw::server
