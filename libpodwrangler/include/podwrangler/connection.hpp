#pragma once
// A Connection is the byte stream to one pod's shell: a WebSocket (PlainTTY,
// Kubernetes, custom providers) or a local PTY. Sessions read it from a single
// reader coroutine and write to it one payload at a time.
#include <podwrangler/asio_fwd.hpp>
#include <podwrangler/model.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace pw {

class Connection {
 public:
  virtual ~Connection() = default;
  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Opens the stream; throws PodConnectionError (with a reason and no secret).
  virtual Task<void> connect(std::chrono::milliseconds timeout) = 0;
  // Sends one payload (a line-framed transport sends it as one frame).
  virtual Task<void> write(std::string_view data) = 0;
  // Appends the next chunk of bytes to `out`; returns false at end of stream. A
  // WebSocket connection appends exactly one message per call (channel protocols rely on it).
  // Throws PodConnectionError on a broken stream.
  virtual Task<bool> read(std::string& out) = 0;
  // Ends the stream now (pending reads complete with end of stream or error).
  virtual void close() noexcept = 0;
  // The peer is a terminal (echo, CRLF, Ctrl-C interrupts the foreground job).
  virtual bool is_tty() const noexcept = 0;
  // Interrupts the command running in the shell without ending the shell (after a
  // timeout): hard=false asks (SIGINT), hard=true insists (SIGKILL). Returns false when
  // this transport cannot reach the command that way; the default cannot (a terminal
  // peer is then sent Ctrl-C by ProviderInterface::interrupt()).
  virtual Task<bool> interrupt(bool hard);
  // The shell's exit status once the transport knows that it has ended (a local PTY
  // reaps its child), else nullopt (the default).
  virtual std::optional<int> exit_status() { return std::nullopt; }
  // The WebSocket subprotocol the server chose ("" when none or not a WebSocket).
  virtual std::string subprotocol() const { return {}; }
  // A short description for messages, free of credentials ("wss://host/exec/1/?token=***").
  virtual std::string describe() const = 0;
};

// WebSocket transport (ws:// or wss://) described by a ConnectionSpec. TLS certificates
// and host names are verified unless schema.tls.insecure_skip_verify is set.
std::unique_ptr<Connection> make_websocket_connection(Executor ex, ConnectionSpec schema);

}  // namespace pw
