// The floor for the session layer: a minimal synchronous Beast client over TLS that
// sends `true; echo <marker>` to a persistent sh behind websocketd and reads frames until
// the marker line comes back. No framing, timeouts or reconnect logic.
//   pw_bench_floor [--runs N]
#include "fixtures.hpp"

#include <utility>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

int main(int argc, char** argv) {
  int runs = 2000;
  bool framed = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--runs" && i + 1 < argc) runs = std::stoi(argv[i + 1]);
    if (std::string(argv[i]) == "--framed") framed = true;  // send podwrangler's framing
  }
  pw::testing::TempDir dir;
  auto pki = pw::testing::make_test_pki(dir);
  pw::testing::Websocketd w(dir, pw::testing::pipe_shell_program(), &pki);
  net::io_context io;
  net::ssl::context ctx(net::ssl::context::tls_client);
  ctx.load_verify_file(pki.ca_cert);
  ctx.set_verify_mode(net::ssl::verify_peer);
  websocket::stream<beast::ssl_stream<tcp::socket>> ws(io, ctx);
  tcp::resolver r(io);
  net::connect(beast::get_lowest_layer(ws), r.resolve("127.0.0.1", std::to_string(w.port())));
  beast::get_lowest_layer(ws).set_option(tcp::no_delay(true));
  ws.next_layer().handshake(net::ssl::stream_base::client);
  ws.handshake("127.0.0.1", "/");
  ws.text(true);
  beast::flat_buffer buf;
  std::vector<double> ms;
  const std::string cmd = framed ? "__pw_n=0123456789abcdef; { command eval 'true'; } </dev/null 2>&1; "
                                   "printf '\\036PW%s:%d\\036\\n' \"$__pw_n\" \"$?\""
                                 : "true; echo MARK";
  for (int i = 0; i < runs + 100; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    ws.write(net::buffer(cmd));
    while (true) {
      buf.clear();
      ws.read(buf);
      std::string f = beast::buffers_to_string(buf.data());
      if (f == "MARK" || (!f.empty() && f[0] == '\x1e')) break;
    }
    if (i >= 100)
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("%-44s n=%-5zu p50=%8.3f ms  p99=%8.3f ms\n",
              framed ? "floor + podwrangler framing" : "floor: minimal sync Beast client, TLS, pipe sh", ms.size(),
              ms[ms.size() / 2], ms[ms.size() * 99 / 100]);
  std::printf("json: {\"bench\":\"floor minimal beast tls\",\"p50_ms\":%f,\"p99_ms\":%f}\n", ms[ms.size() / 2],
              ms[ms.size() * 99 / 100]);
  beast::error_code ec;
  ws.close(websocket::close_code::normal, ec);
  return 0;
}
