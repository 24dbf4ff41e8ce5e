#pragma once
// The host side of the in-capsule agent (apps/pw-agent): an ExecChannel over one unix-socket
// connection that carries every call concurrently (agent_protocol.hpp). One reader thread
// per connection hands each frame to the call waiting on its channel; the calls run on
// their callers' threads, so a sink or source is always called on the thread that made
// the call, in order. A warm `exec true` costs the agent's fork+exec plus one round trip.
//
// Flow control: a channel holds at most a few MiB of frames its caller has not consumed;
// past that the reader waits for it (and the agent, finding the socket full, stops reading
// the pipe or file), so a 1 GiB download never sits in memory. A sink or source must not
// call the same channel (its own call holds the reader back while it is slow).
//
// Errors: ENOENT from the agent → CapsuleNotFoundError(path, "file") (ESRCH: "process");
// EINVAL, ENOTDIR, EISDIR, EEXIST, ENOTEMPTY, E2BIG, ENAMETOOLONG → CapsuleValidationError;
// anything else, a broken connection or a protocol error → AgentError. After close() (or
// once the agent is gone) every call, including the ones still running, fails with
// AgentError.
#include <podwrangler/capsules/channel.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace pw::capsules {

// Connects to the agent listening on `socket_path` (its path on this host; a path longer
// than a unix socket address allows is reached through an O_PATH descriptor of its
// directory) and says hello. Retries while the socket does not exist or refuses (the agent
// is starting) until `timeout`, which also bounds the hello and every later alive().
// expected_peer_pid: the pid, as this host sees it, of the process that must be listening
// (the container's init as the engine reports it); a socket held by any other process is
// refused with AgentError ("… is not the capsule's agent"), so a process inside the capsule
// cannot put its own socket in the agent's place. 0 disables the check (tests, tools).
std::unique_ptr<ExecChannel> connect_agent(const std::string& socket_path, int expected_peer_pid,
                                           std::chrono::milliseconds timeout);

}  // namespace pw::capsules
