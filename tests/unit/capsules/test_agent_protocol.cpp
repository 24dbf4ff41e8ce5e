// Unit tests for libpodwrangler/capsules/agent_protocol.hpp: frames and TLV messages round
// trip byte for byte, arrive whole however the stream is cut, and malformed or oversized
// input is refused instead of being misread.
#include <doctest/doctest.h>
#include <podwrangler/capsules/agent_protocol.hpp>

#include <string>
#include <vector>

namespace proto = pw::capsules::agent;
using proto::MsgType;
using proto::Tag;

namespace {

std::vector<proto::Frame> decode_all(proto::FrameDecoder& d) {
  std::vector<proto::Frame> out;
  proto::Frame f;
  while (d.next(f)) out.push_back(f);
  return out;
}

std::string tlv_raw(std::uint16_t tag, const std::string& value) {
  std::string s;
  proto::put_u16(s, tag);
  proto::put_u32(s, static_cast<std::uint32_t>(value.size()));
  return s + value;
}

}  // namespace

TEST_CASE("a frame is a big-endian 9-byte header and the payload") {
  const std::string f = proto::encode_frame(MsgType::stdout_data, 0x01020304, "hey");
  REQUIRE(f.size() == 12);
  CHECK(f.substr(0, 4) == std::string("\0\0\0\3", 4));
  CHECK(static_cast<unsigned char>(f[4]) == 14);
  CHECK(f.substr(5, 4) == "\x01\x02\x03\x04");
  CHECK(f.substr(9) == "hey");
}

TEST_CASE("frames survive any cut of the byte stream, binary payloads included") {
  std::string stream;
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
  proto::append_frame(stream, MsgType::exec, 7, "first");
  proto::append_frame(stream, MsgType::stdout_data, 0xffffffffU, binary);
  proto::append_frame(stream, MsgType::ping, 0, "");
  for (std::size_t piece :
       {std::size_t{1}, std::size_t{2}, std::size_t{5}, std::size_t{9}, std::size_t{100}, stream.size()}) {
    CAPTURE(piece);
    proto::FrameDecoder d;
    std::vector<proto::Frame> got;
    for (std::size_t off = 0; off < stream.size(); off += piece) {
      d.feed(std::string_view(stream).substr(off, piece));
      for (auto& f : decode_all(d)) got.push_back(f);
    }
    REQUIRE(got.size() == 3);
    CHECK(got[0].type == MsgType::exec);
    CHECK(got[0].channel == 7);
    CHECK(got[0].payload == "first");
    CHECK(got[1].channel == 0xffffffffU);
    CHECK(got[1].payload == binary);
    CHECK(got[2].type == MsgType::ping);
    CHECK(got[2].payload.empty());
    CHECK(d.buffered() == 0);
  }
}

TEST_CASE("an oversized frame is refused on its header, before its bytes arrive") {
  proto::FrameDecoder d;
  std::string header;
  proto::put_u32(header, static_cast<std::uint32_t>(proto::kMaxPayload + 1));
  header.push_back(static_cast<char>(MsgType::data));
  proto::put_u32(header, 1);
  d.feed(header);
  proto::Frame f;
  CHECK_THROWS_AS(d.next(f), proto::ProtocolError);

  // The largest allowed frame passes; a smaller limit is honoured too.
  proto::FrameDecoder ok;
  ok.feed(proto::encode_frame(MsgType::data, 1, std::string(proto::kMaxPayload, 'x')));
  REQUIRE(ok.next(f));
  CHECK(f.payload.size() == proto::kMaxPayload);
  proto::FrameDecoder small(16);
  small.feed(proto::encode_frame(MsgType::data, 1, std::string(17, 'x')));
  CHECK_THROWS_AS(small.next(f), proto::ProtocolError);
  // and nothing larger can be encoded
  std::string out;
  CHECK_THROWS_AS(proto::append_frame(out, MsgType::data, 1, std::string(proto::kMaxPayload + 1, 'x')),
                  proto::ProtocolError);
}

TEST_CASE("exec round trip keeps argv, env, cwd and limits") {
  proto::ExecMsg m;
  m.argv = {"sh", "-c", "echo 'a b'; printf '\\0'", ""};
  m.env = {{"A", "1"}, {"WITH_EQ", "x=y=z"}, {"EMPTY", ""}};
  m.cwd = "/work dir";
  m.timeout_ms = 1500;
  m.has_stdin = true;
  m.max_output = 1ULL << 40;
  m.want_started = true;
  const auto back = proto::ExecMsg::decode(m.encode());
  CHECK(back.argv == m.argv);
  CHECK(back.env == m.env);
  CHECK(back.cwd == m.cwd);
  CHECK(back.timeout_ms == 1500);
  CHECK(back.has_stdin);
  CHECK(back.max_output == (1ULL << 40));
  CHECK(back.want_started);
  CHECK_FALSE(proto::ExecMsg::decode(proto::ExecMsg{}.encode()).want_started);
}

TEST_CASE("exit, error, args, activity, hello round trip") {
  proto::ExitMsg x;
  x.code = 137;
  x.signal = 9;
  x.timed_out = true;
  x.duration_us = 123456789;
  x.truncated = true;
  const auto xb = proto::ExitMsg::decode(x.encode());
  CHECK(xb.code == 137);
  CHECK(xb.signal == 9);
  CHECK(xb.timed_out);
  CHECK(xb.duration_us == 123456789);
  CHECK(xb.truncated);

  proto::ErrorMsg e;
  e.err_no = 2;
  e.path = "/nope";
  e.message = "cannot open /nope: No such file or directory";
  const auto eb = proto::ErrorMsg::decode(e.encode());
  CHECK(eb.err_no == 2);
  CHECK(eb.path == "/nope");
  CHECK(eb.message == e.message);

  proto::Args a;
  a.path = "/x/y";
  a.mode = 0755;
  a.depth = 3;
  a.parents = true;
  a.recursive = true;
  a.pid = -42;  // negative values survive (two's complement in 8 bytes)
  a.signal = 15;
  const auto ab = proto::Args::decode(a.encode());
  CHECK(ab.path == "/x/y");
  CHECK(ab.mode == 0755);
  CHECK(ab.depth == 3);
  CHECK(ab.parents);
  CHECK(ab.recursive);
  CHECK(ab.pid == -42);
  CHECK(ab.signal == 15);

  proto::Activity act;
  act.running_processes = 3;
  act.open_streams = 2;
  act.idle_ms = 99;
  const auto actb = proto::Activity::decode(act.encode());
  CHECK(actb.running_processes == 3);
  CHECK(actb.open_streams == 2);
  CHECK(actb.idle_ms == 99);

  proto::Hello h;
  h.pid = 1;
  h.capabilities = {"exec", "files"};
  const auto hb = proto::Hello::decode(h.encode());
  CHECK(hb.version == proto::kProtocolVersion);
  CHECK(hb.pid == 1);
  CHECK(hb.capabilities == h.capabilities);
}

TEST_CASE("entries and processes are nested records") {
  proto::TlvWriter w;
  proto::Entry a;
  a.path = "/a/link";
  a.name = "link";
  a.type = "symlink";
  a.size = 7;
  a.mode = 0777;
  a.mtime_s = 1700000000;
  a.link_target = "/target";
  a.encode_into(w);
  proto::Entry b;
  b.path = "/a/dir";
  b.name = "dir";
  b.type = "dir";
  b.encode_into(w);
  const auto es = proto::decode_entries(w.bytes());
  REQUIRE(es.size() == 2);
  CHECK(es[0].path == "/a/link");
  CHECK(es[0].type == "symlink");
  CHECK(es[0].size == 7);
  CHECK(es[0].mode == 0777);
  CHECK(es[0].mtime_s == 1700000000);
  CHECK(es[0].link_target == "/target");
  CHECK(es[1].name == "dir");
  CHECK(es[1].link_target.empty());

  proto::TlvWriter pw;
  proto::Process p;
  p.pid = 77;
  p.argv = {"sleep", "30"};
  p.running_us = 5000000;
  p.background = true;
  p.encode_into(pw);
  const auto ps = proto::decode_processes(pw.bytes());
  REQUIRE(ps.size() == 1);
  CHECK(ps[0].pid == 77);
  CHECK(ps[0].argv == p.argv);
  CHECK(ps[0].running_us == 5000000);
  CHECK(ps[0].background);
}

TEST_CASE("unknown tags are skipped, so a newer peer can add fields") {
  proto::ExitMsg x;
  x.code = 3;
  const std::string payload = tlv_raw(999, "future") + x.encode() + tlv_raw(1000, "");
  CHECK(proto::ExitMsg::decode(payload).code == 3);
}

TEST_CASE("malformed TLV lists are refused") {
  // a field header cut short
  CHECK_THROWS_AS(proto::ExitMsg::decode(std::string("\0\x0a\0\0", 4)), proto::ProtocolError);
  // a length running past the end
  std::string over;
  proto::put_u16(over, static_cast<std::uint16_t>(Tag::code));
  proto::put_u32(over, 100);
  over += "12345678";
  CHECK_THROWS_AS(proto::ExitMsg::decode(over), proto::ProtocolError);
  // a length near 2^32 must not wrap around the bounds check
  std::string huge;
  proto::put_u16(huge, static_cast<std::uint16_t>(Tag::path));
  proto::put_u32(huge, 0xffffffffU);
  CHECK_THROWS_AS(proto::Args::decode(huge), proto::ProtocolError);
  // an integer that is not 8 bytes, a boolean that is not 0/1
  CHECK_THROWS_AS(proto::ExitMsg::decode(tlv_raw(static_cast<std::uint16_t>(Tag::code), "1234")), proto::ProtocolError);
  CHECK_THROWS_AS(proto::ExitMsg::decode(tlv_raw(static_cast<std::uint16_t>(Tag::timed_out), "\x02")),
                  proto::ProtocolError);
  // an environment entry without a name
  CHECK_THROWS_AS(proto::ExecMsg::decode(tlv_raw(static_cast<std::uint16_t>(Tag::env), "=value")),
                  proto::ProtocolError);
  CHECK_THROWS_AS(proto::ExecMsg::decode(tlv_raw(static_cast<std::uint16_t>(Tag::env), "NOVALUE")),
                  proto::ProtocolError);
  // a nested record that is itself malformed
  CHECK_THROWS_AS(proto::decode_entries(tlv_raw(static_cast<std::uint16_t>(Tag::entry), std::string("\0\x01\0", 3))),
                  proto::ProtocolError);
}

TEST_CASE("type names cover the protocol, unknown types are named as such") {
  CHECK(std::string(proto::type_name(MsgType::exec)) == "exec");
  CHECK(std::string(proto::type_name(MsgType::activity_reply)) == "activity_reply");
  CHECK(std::string(proto::type_name(static_cast<MsgType>(200))) == "?");
}
