#pragma once
// pw-agent: the init (PID 1) of every capsule. One thread, one epoll loop: a unix socket
// (0600) that the host connects to, a signalfd for SIGCHLD/SIGTERM/SIGINT, the pipes of the
// running execs. The protocol is libpodwrangler/capsules/agent_protocol.hpp.
#include <cstdint>
#include <string>

namespace pwagent {

struct Options {
  std::string socket_path;      // where to listen (the capsule's /.podwrangler/run/agent.sock)
  std::int64_t lifetime_s = 0;  // exit (terminating children) after this much running time; 0 = never
};

// Runs until SIGTERM/SIGINT or the end of the lifetime; returns the exit status.
int run_agent(const Options& options);

}  // namespace pwagent
