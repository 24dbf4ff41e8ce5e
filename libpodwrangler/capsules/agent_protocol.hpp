#pragma once
// The wire format between the in-capsule agent (apps/pw-agent) and its host-side client
// (agent_client.hpp). Standard library only and header-only: the agent is a static
// executable that links nothing else.
//
// One unix-socket connection carries many concurrent operations. Every frame is
//
//   [u32 payload length][u8 type][u32 channel][payload]        (big-endian, 9-byte header)
//
// with the payload at most kMaxPayload bytes (a larger length is a protocol error and the
// connection is closed). The client picks the channel of each operation (a fresh one per
// operation, never reused on a connection); every frame of that operation carries it.
// Payloads are TLV lists, [u16 tag][u32 length][value] repeated: integers are 8-byte
// big-endian, booleans one byte (0/1), strings raw bytes; a list is its tag repeated;
// a nested record (a file entry, a process) is a TLV list inside one value. Unknown tags
// are skipped (a newer peer may add fields), malformed lists are errors. Data frames
// (stdout, stderr, stdin, file bytes) carry raw bytes as their whole payload, no TLV.
//
// The operations (client → agent request, then what the agent answers on that channel):
//   hello       {version}                 → hello {version, pid, capability*}
//   ping        {}                        → pong
//   exec        {arg*, env*, cwd, timeout_ms, stdin, max_output, want_started}
//               → [started {pid}], stdout/stderr (raw)*, exit {code, signal, timed_out, duration_us, truncated}
//               (or error); with stdin: the client then sends stdin (raw)* and stdin_eof.
//               signal {signal} delivers a signal to the process group; cancel kills it.
//   start_background {arg*, env*, cwd, timeout_ms} → ok {pid}   (output: /tmp/.podwrangler/<pid>.log)
//   processes   {}                        → process_list {process*}
//   kill        {pid, signal}             → ok
//   read        {path}                    → data (raw)*, end
//   write       {path, mode}, then data (raw)* and end from the client → ok (temp file + rename)
//   stat        {path}                    → stat_reply {entry}
//   list        {path, depth}             → list_entries {entry*}*, end
//   mkdir       {path, parents}           → ok
//   remove      {path, recursive}         → ok
//   activity    {}                        → activity_reply {running_processes, open_streams, idle_ms}
//   cancel      {}                        abandons the channel's operation (no answer)
// Any request may be answered by error {errno, path, message} instead, which ends it.
// Frames on a channel the receiver does not know are ignored.
#include <utility>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pw::capsules::agent {

inline constexpr std::uint32_t kProtocolVersion = 1;
inline constexpr std::size_t kHeaderSize = 9;
// Hard limit of one frame's payload: a larger announced length closes the connection.
inline constexpr std::size_t kMaxPayload = std::size_t{1024} * 1024;
// Size of the data frames both sides send (file bytes, stdin, pipe reads).
inline constexpr std::size_t kDataChunk = std::size_t{256} * 1024;

enum class MsgType : std::uint8_t {
  hello = 1,
  ok = 2,
  error = 3,
  ping = 4,
  pong = 5,
  cancel = 6,
  exec = 10,
  started = 11,
  stdin_data = 12,
  stdin_eof = 13,
  stdout_data = 14,
  stderr_data = 15,
  exit = 16,
  signal = 17,
  start_background = 20,
  processes = 21,
  process_list = 22,
  kill = 23,
  read = 30,
  write = 31,
  data = 32,
  end = 33,
  stat = 34,
  stat_reply = 35,
  list = 36,
  list_entries = 37,
  mkdir = 38,
  remove = 39,
  activity = 40,
  activity_reply = 41,
};

// Names for messages and logs ("?" for a type this version does not know).
inline const char* type_name(MsgType t) noexcept {
  switch (t) {
    case MsgType::hello: return "hello";
    case MsgType::ok: return "ok";
    case MsgType::error: return "error";
    case MsgType::ping: return "ping";
    case MsgType::pong: return "pong";
    case MsgType::cancel: return "cancel";
    case MsgType::exec: return "exec";
    case MsgType::started: return "started";
    case MsgType::stdin_data: return "stdin";
    case MsgType::stdin_eof: return "stdin_eof";
    case MsgType::stdout_data: return "stdout";
    case MsgType::stderr_data: return "stderr";
    case MsgType::exit: return "exit";
    case MsgType::signal: return "signal";
    case MsgType::start_background: return "start_background";
    case MsgType::processes: return "processes";
    case MsgType::process_list: return "process_list";
    case MsgType::kill: return "kill";
    case MsgType::read: return "read";
    case MsgType::write: return "write";
    case MsgType::data: return "data";
    case MsgType::end: return "end";
    case MsgType::stat: return "stat";
    case MsgType::stat_reply: return "stat_reply";
    case MsgType::list: return "list";
    case MsgType::list_entries: return "list_entries";
    case MsgType::mkdir: return "mkdir";
    case MsgType::remove: return "remove";
    case MsgType::activity: return "activity";
    case MsgType::activity_reply: return "activity_reply";
  }
  return "?";
}

enum class Tag : std::uint16_t {
  version = 1,
  pid = 2,
  capability = 3,
  arg = 4,
  env = 5,  // "KEY=VALUE"
  cwd = 6,
  timeout_ms = 7,
  has_stdin = 8,
  max_output = 9,
  code = 10,
  signal = 11,
  timed_out = 12,
  duration_us = 13,
  truncated = 14,
  path = 15,
  mode = 16,
  depth = 17,
  parents = 18,
  recursive = 19,
  err_no = 20,
  message = 21,
  entry = 22,  // nested: a file entry
  name = 23,
  type = 24,  // "file", "dir", "symlink", "other"
  size = 25,
  mtime_s = 26,
  link_target = 27,
  running_us = 28,
  background = 29,
  process = 30,  // nested: a process
  running_processes = 31,
  open_streams = 32,
  idle_ms = 33,
  want_started = 34,
};

class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ---- big-endian integers ------------------------------------------------------------------
inline void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}
inline void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}
inline void put_u64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}
inline std::uint64_t get_be(const char* p, std::size_t n) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// ---- frames ---------------------------------------------------------------------------------
struct Frame {
  MsgType type = MsgType::ping;
  std::uint32_t channel = 0;
  std::string payload;
};

// The 9-byte header of a frame whose payload has `payload_size` bytes.
inline void put_header(std::string& out, MsgType type, std::uint32_t channel, std::size_t payload_size) {
  if (payload_size > kMaxPayload)
    throw ProtocolError("frame payload of " + std::to_string(payload_size) + " bytes exceeds the limit");
  put_u32(out, static_cast<std::uint32_t>(payload_size));
  out.push_back(static_cast<char>(type));
  put_u32(out, channel);
}
// Appends a whole frame to `out`.
inline void append_frame(std::string& out, MsgType type, std::uint32_t channel, std::string_view payload) {
  put_header(out, type, channel, payload.size());
  out.append(payload);
}
inline std::string encode_frame(MsgType type, std::uint32_t channel, std::string_view payload) {
  std::string out;
  out.reserve(kHeaderSize + payload.size());
  append_frame(out, type, channel, payload);
  return out;
}

// Reassembles frames from a byte stream fed in arbitrary pieces. The buffer never holds
// more than one frame plus one read: feed() only what you read, then drain next().
class FrameDecoder {
 public:
  explicit FrameDecoder(std::size_t max_payload = kMaxPayload) : max_payload_(max_payload) {}
  void feed(const char* data, std::size_t n) {
    if (pos_ > 0 && pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    }
    buf_.append(data, n);
  }
  void feed(std::string_view s) { feed(s.data(), s.size()); }
  // The next whole frame, or false when more bytes are needed. Throws ProtocolError on an
  // announced length beyond the limit (the stream cannot be resynchronised after that).
  bool next(Frame& f) {
    const std::size_t avail = buf_.size() - pos_;
    if (avail < kHeaderSize) {
      compact();
      return false;
    }
    const char* p = buf_.data() + pos_;
    const std::uint64_t len = get_be(p, 4);
    if (len > max_payload_)
      throw ProtocolError("frame of " + std::to_string(len) + " bytes exceeds the limit of " +
                          std::to_string(max_payload_));
    if (avail < kHeaderSize + len) {
      compact();
      return false;
    }
    f.type = static_cast<MsgType>(static_cast<unsigned char>(p[4]));
    f.channel = static_cast<std::uint32_t>(get_be(p + 5, 4));
    f.payload.assign(p + kHeaderSize, static_cast<std::size_t>(len));
    pos_ += kHeaderSize + static_cast<std::size_t>(len);
    return true;
  }
  // Bytes received but not yet returned as frames.
  std::size_t buffered() const noexcept { return buf_.size() - pos_; }
  // Gives back the memory of a large buffer once it is empty (an idle agent stays small).
  void shrink() {
    if (pos_ == buf_.size() && buf_.capacity() > std::size_t{64} * 1024) {
      std::string().swap(buf_);
      pos_ = 0;
    }
  }

 private:
  void compact() {
    if (pos_ > 0) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
  }
  std::size_t max_payload_;
  std::string buf_;
  std::size_t pos_ = 0;
};

// ---- TLV ------------------------------------------------------------------------------------
class TlvWriter {
 public:
  TlvWriter& str(Tag t, std::string_view v) {
    if (v.size() > kMaxPayload) throw ProtocolError("field too large");
    put_u16(buf_, static_cast<std::uint16_t>(t));
    put_u32(buf_, static_cast<std::uint32_t>(v.size()));
    buf_.append(v);
    return *this;
  }
  TlvWriter& u64(Tag t, std::uint64_t v) {
    put_u16(buf_, static_cast<std::uint16_t>(t));
    put_u32(buf_, 8);
    put_u64(buf_, v);
    return *this;
  }
  TlvWriter& i64(Tag t, std::int64_t v) { return u64(t, static_cast<std::uint64_t>(v)); }
  TlvWriter& boolean(Tag t, bool v) {
    put_u16(buf_, static_cast<std::uint16_t>(t));
    put_u32(buf_, 1);
    buf_.push_back(v ? 1 : 0);
    return *this;
  }
  const std::string& bytes() const noexcept { return buf_; }
  std::string take() { return std::move(buf_); }
  std::size_t size() const noexcept { return buf_.size(); }

 private:
  std::string buf_;
};

struct TlvField {
  Tag tag = Tag::version;
  std::string_view value;

  std::uint64_t u64() const {
    if (value.size() != 8) throw ProtocolError("integer field of " + std::to_string(value.size()) + " bytes");
    return get_be(value.data(), 8);
  }
  std::int64_t i64() const { return static_cast<std::int64_t>(u64()); }
  bool boolean() const {
    if (value.size() != 1 || static_cast<unsigned char>(value[0]) > 1) throw ProtocolError("malformed boolean field");
    return value[0] != 0;
  }
  std::string str() const { return std::string(value); }
};

// Walks a TLV list; next() throws ProtocolError when a field runs past the end.
class TlvReader {
 public:
  explicit TlvReader(std::string_view data) : data_(data) {}
  bool next(TlvField& f) {
    if (pos_ == data_.size()) return false;
    if (data_.size() - pos_ < 6) throw ProtocolError("truncated field header");
    const auto tag = static_cast<std::uint16_t>(get_be(data_.data() + pos_, 2));
    const std::uint64_t len = get_be(data_.data() + pos_ + 2, 4);
    if (len > data_.size() - pos_ - 6) throw ProtocolError("field length runs past the end of the message");
    f.tag = static_cast<Tag>(tag);
    f.value = data_.substr(pos_ + 6, static_cast<std::size_t>(len));
    pos_ += 6 + static_cast<std::size_t>(len);
    return true;
  }

 private:
  std::string_view data_;
  std::size_t pos_ = 0;
};

// ---- messages -------------------------------------------------------------------------------
// Each message is a plain struct with encode() → TLV bytes and a static decode(bytes) that
// throws ProtocolError on malformed input. Missing fields keep their defaults.

struct Hello {
  std::uint32_t version = kProtocolVersion;
  std::int64_t pid = 0;
  std::vector<std::string> capabilities;

  std::string encode() const {
    TlvWriter w;
    w.u64(Tag::version, version).i64(Tag::pid, pid);
    for (const auto& c : capabilities) w.str(Tag::capability, c);
    return w.take();
  }
  static Hello decode(std::string_view b) {
    Hello m;
    m.version = 0;
    TlvReader r(b);
    TlvField f;
    while (r.next(f)) {
      if (f.tag == Tag::version) m.version = static_cast<std::uint32_t>(f.u64());
      if (f.tag == Tag::pid) m.pid = f.i64();
      if (f.tag == Tag::capability) m.capabilities.push_back(f.str());
    }
    return m;
  }
};

struct ExecMsg {
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  std::string cwd;
  std::uint64_t timeout_ms = 0;  // 0 = none
  bool has_stdin = false;
  std::uint64_t max_output = 0;  // per stream; 0 = unlimited
  bool want_started = false;     // send `started` (a streamed exec); a plain one needs only the end

  std::string encode() const {
    TlvWriter w;
    if (want_started) w.boolean(Tag::want_started, true);
    for (const auto& a : argv) w.str(Tag::arg, a);
    for (const auto& [k, v] : env) w.str(Tag::env, k + "=" + v);
    if (!cwd.empty()) w.str(Tag::cwd, cwd);
    w.u64(Tag::timeout_ms, timeout_ms).boolean(Tag::has_stdin, has_stdin).u64(Tag::max_output, max_output);
    return w.take();
  }
  static ExecMsg decode(std::string_view b) {
    ExecMsg m;
    TlvReader r(b);
    TlvField f;
    while (r.next(f)) {
      switch (f.tag) {
        case Tag::arg: m.argv.push_back(f.str()); break;
        case Tag::env: {
          const auto eq = f.value.find('=');
          if (eq == std::string_view::npos || eq == 0) throw ProtocolError("malformed environment entry");
          m.env.emplace_back(std::string(f.value.substr(0, eq)), std::string(f.value.substr(eq + 1)));
          break;
        }
        case Tag::cwd: m.cwd = f.str(); break;
        case Tag::timeout_ms: m.timeout_ms = f.u64(); break;
        case Tag::has_stdin: m.has_stdin = f.boolean(); break;
        case Tag::max_output: m.max_output = f.u64(); break;
        case Tag::want_started: m.want_started = f.boolean(); break;
        default: break;
      }
    }
    return m;
  }
};

struct ExitMsg {
  std::int64_t code = 0;    // exit status, or 128+signal
  std::int64_t signal = 0;  // the signal that ended it, 0 if it exited
  bool timed_out = false;
  std::uint64_t duration_us = 0;
  bool truncated = false;

  std::string encode() const {
    TlvWriter w;
    w.i64(Tag::code, code).i64(Tag::signal, signal).boolean(Tag::timed_out, timed_out);
    w.u64(Tag::duration_us, duration_us).boolean(Tag::truncated, truncated);
    return w.take();
  }
  static ExitMsg decode(std::string_view b) {
    ExitMsg m;
    TlvReader r(b);
    TlvField f;
    while (r.next(f)) {
      switch (f.tag) {
        case Tag::code: m.code = f.i64(); break;
        case Tag::signal: m.signal = f.i64(); break;
        case Tag::timed_out: m.timed_out = f.boolean(); break;
        case Tag::duration_us: m.duration_us = f.u64(); break;
        case Tag::truncated: m.truncated = f.boolean(); break;
        default: break;
      }
    }
    return m;
  }
};

// error: errno (Linux numbering), the path it concerns ("" if none) and a message.
struct ErrorMsg {
  std::int64_t err_no = 0;
  std::string path;
  std::string message;

  std::string encode() const {
    TlvWriter w;
    w.i64(Tag::err_no, err_no).str(Tag::path, path).str(Tag::message, message);
    return w.take();
  }
  static ErrorMsg decode(std::string_view b) {
    ErrorMsg m;
    TlvReader r(b);
    TlvField f;
    while (r.next(f)) {
      if (f.tag == Tag::err_no) m.err_no = f.i64();
      if (f.tag == Tag::path) m.path = f.str();
      if (f.tag == Tag::message) m.message = f.str();
    }
    return m;
  }
};

// The arguments of the single-path operations and of kill / signal / started / ok.
struct Args {
  std::string path;
  std::uint32_t mode = 0644;
  std::int64_t depth = 1;
  bool parents = false;
  bool recursive = false;
  std::int64_t pid = 0;
  std::int64_t signal = 0;

  std::string encode() const {
    TlvWriter w;
    if (!path.empty()) w.str(Tag::path, path);
    w.u64(Tag::mode, mode).i64(Tag::depth, depth).boolean(Tag::parents, parents);
    w.boolean(Tag::recursive, recursive).i64(Tag::pid, pid).i64(Tag::signal, signal);
    return w.take();
  }
  static Args decode(std::string_view b) {
    Args m;
    TlvReader r(b);
    TlvField f;
    while (r.next(f)) {
      switch (f.tag) {
        case Tag::path: m.path = f.str(); break;
        case Tag::mode: m.mode = static_cast<std::uint32_t>(f.u64() & 07777); break;
        case Tag::depth: m.depth = f.i64(); break;
        case Tag::parents: m.parents = f.boolean(); break;
        case Tag::recursive: m.recursive = f.boolean(); break;
        case Tag::pid: m.pid = f.i64(); break;
        case Tag::signal: m.signal = f.i64(); break;
        default: break;
      }
    }
    return m;
  }
};

struct Entry {
  std::string path;
  std::string name;
  std::string type;  // "file", "dir", "symlink", "other"
  std::uint64_t size = 0;
  std::uint32_t mode = 0;
  std::int64_t mtime_s = 0;
  std::string link_target;

  void encode_into(TlvWriter& w) const {
    TlvWriter e;
    e.str(Tag::path, path).str(Tag::name, name).str(Tag::type, type).u64(Tag::size, size);
    e.u64(Tag::mode, mode).i64(Tag::mtime_s, mtime_s);
    if (!link_target.empty()) e.str(Tag::link_target, link_target);
    w.str(Tag::entry, e.bytes());
  }
  static Entry decode(std::string_view b) {
    Entry m;
    TlvReader r(b);
    TlvField f;
    while (r.next(f)) {
      switch (f.tag) {
        case Tag::path: m.path = f.str(); break;
        case Tag::name: m.name = f.str(); break;
        case Tag::type: m.type = f.str(); break;
        case Tag::size: m.size = f.u64(); break;
        case Tag::mode: m.mode = static_cast<std::uint32_t>(f.u64() & 07777); break;
        case Tag::mtime_s: m.mtime_s = f.i64(); break;
        case Tag::link_target: m.link_target = f.str(); break;
        default: break;
      }
    }
    return m;
  }
};
// stat_reply and list_entries: entry records.
inline std::vector<Entry> decode_entries(std::string_view b) {
  std::vector<Entry> out;
  TlvReader r(b);
  TlvField f;
  while (r.next(f))
    if (f.tag == Tag::entry) out.push_back(Entry::decode(f.value));
  return out;
}

struct Process {
  std::int64_t pid = 0;
  std::vector<std::string> argv;
  std::uint64_t running_us = 0;
  bool background = false;

  void encode_into(TlvWriter& w) const {
    TlvWriter e;
    e.i64(Tag::pid, pid);
    for (const auto& a : argv) e.str(Tag::arg, a);
    e.u64(Tag::running_us, running_us).boolean(Tag::background, background);
    w.str(Tag::process, e.bytes());
  }
  static Process decode(std::string_view b) {
    Process m;
    TlvReader r(b);
    TlvField f;
    while (r.next(f)) {
      switch (f.tag) {
        case Tag::pid: m.pid = f.i64(); break;
        case Tag::arg: m.argv.push_back(f.str()); break;
        case Tag::running_us: m.running_us = f.u64(); break;
        case Tag::background: m.background = f.boolean(); break;
        default: break;
      }
    }
    return m;
  }
};
inline std::vector<Process> decode_processes(std::string_view b) {
  std::vector<Process> out;
  TlvReader r(b);
  TlvField f;
  while (r.next(f))
    if (f.tag == Tag::process) out.push_back(Process::decode(f.value));
  return out;
}

struct Activity {
  std::int64_t running_processes = 0;
  std::int64_t open_streams = 0;
  std::int64_t idle_ms = 0;

  std::string encode() const {
    TlvWriter w;
    w.i64(Tag::running_processes, running_processes).i64(Tag::open_streams, open_streams).i64(Tag::idle_ms, idle_ms);
    return w.take();
  }
  static Activity decode(std::string_view b) {
    Activity m;
    TlvReader r(b);
    TlvField f;
    while (r.next(f)) {
      if (f.tag == Tag::running_processes) m.running_processes = f.i64();
      if (f.tag == Tag::open_streams) m.open_streams = f.i64();
      if (f.tag == Tag::idle_ms) m.idle_ms = f.i64();
    }
    return m;
  }
};

}  // namespace pw::capsules::agent
