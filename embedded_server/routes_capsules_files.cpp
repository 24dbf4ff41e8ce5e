// Files inside capsules: PUT …/{id}/files?path=P (the raw body, streamed in: never held
// whole; a tar archive with Content-Type application/x-tar fills the directory P), GET
// …/{id}/files?path=P (streamed out; a directory as a tar archive), GET …/files/stat, GET
// …/files/list, POST …/files/mkdir, DELETE …/{id}/files?path=P[&recursive=true]. Optional
// query parameters are read before the required `path`, so each error names its own one.
#include "embedded_server/capsule_archive.hpp"
#include "embedded_server/http_server.hpp"
#include "embedded_server/http_util.hpp"
#include "embedded_server/routes.hpp"
#include "embedded_server/routes_capsules_common.hpp"
#include "embedded_server/server_loop.hpp"

#include <podwrangler/errors.hpp>
#include <podwrangler/redact.hpp>

#include <httplib.h>

#include <iostream>

namespace pw::server {
namespace {

std::string required_path_param(const httplib::Request& req) {
  auto p = query_param(req, "path");
  if (!p) throw validation_error("path", "is required (an absolute path inside the capsule)");
  return check_capsule_path(*p, "path");
}

bool bool_param(const httplib::Request& req, const char* name, bool fallback) {
  auto v = query_param(req, name);
  if (!v) return fallback;
  if (*v == "true") return true;
  if (*v == "false") return false;
  throw validation_error(name, "must be true or false");
}

// "644", "0755": permission bits in octal.
std::uint32_t mode_param(const httplib::Request& req) {
  auto v = query_param(req, "mode");
  if (!v) return 0644;
  if (v->empty() || v->size() > 5) throw validation_error("mode", "must be octal permission bits (644, 0755)");
  std::uint32_t m = 0;
  for (char c : *v) {
    if (c < '0' || c > '7') throw validation_error("mode", "must be octal permission bits (644, 0755)");
    m = m * 8 + static_cast<std::uint32_t>(c - '0');
  }
  if (m > 07777) throw validation_error("mode", "must be at most 7777");
  return m;
}

// The request body as the manager's byte source.
class BodySource final : public capsules::ByteSource {
 public:
  explicit BodySource(BodyReader& body) : body_(body) {}
  std::size_t read(char* buf, std::size_t n) override { return body_.read(buf, n); }

 private:
  BodyReader& body_;
};

// The response as the manager's byte sink; a client that went away stops the download.
struct ClientGone {};
class ResponseSink final : public capsules::ByteSink {
 public:
  explicit ResponseSink(httplib::DataSink& sink) : sink_(sink) {}
  void write(std::string_view bytes) override {
    if (bytes.empty()) return;
    if (!sink_.write(bytes.data(), bytes.size())) throw ClientGone{};
  }

 private:
  httplib::DataSink& sink_;
};

void upload(ServerState& ctx, const httplib::Request& req, httplib::Response& res, BodyReader& body) {
  reject_unknown_params(req, {"path", "mode"});
  std::uint32_t mode = mode_param(req);
  std::string path = required_path_param(req);
  std::string id = path_capsule_id(req);
  auto& m = capsule_manager(ctx);
  // Refused before a byte of the body is read (a client waiting on 100-continue sends none).
  (void)m.get(id);
  std::optional<ServerLoop::InFlight> guard;
  if (ctx.runtime) guard.emplace(*ctx.runtime);
  BodySource src(body);
  std::string ctype = req.get_header_value("Content-Type");
  ctype = ctype.substr(0, ctype.find(';'));
  if (ctype == "application/x-tar")
    (void)read_capsule_tar(m, id, path, src);
  else
    m.upload(id, path, src, mode);
  send_json(res, 201, m.stat(id, path));
}

void download(ServerState& ctx, const httplib::Request& req, httplib::Response& res) {
  reject_unknown_params(req, {"path"});
  std::string path = required_path_param(req);
  std::string id = path_capsule_id(req);
  auto m = shared_capsule_manager(ctx);
  capsules::FileStat st = m->stat(id, path);  // 404 before the answer starts
  res.status = 200;
  if (st.type == "dir") {
    // A directory: a tar of what is below it, each file streamed into the archive.
    res.set_chunked_content_provider("application/x-tar", [m, id, path](size_t, httplib::DataSink& sink) {
      try {
        if (!write_capsule_tar(*m, id, path, [&sink](std::string_view d) { return sink.write(d.data(), d.size()); }))
          return false;  // the client left
      } catch (const std::exception& e) {
        std::cerr << "podwrangler serve: download of the directory " << redact_text(path) << " from " << id
                  << " failed: " << redact_text(e.what()) << "\n";
        return false;
      }
      sink.done();
      return true;
    });
    return;
  }
  res.set_header("X-Capsule-File-Size", std::to_string(st.size));
  res.set_chunked_content_provider("application/octet-stream", [m, id, path](size_t, httplib::DataSink& sink) {
    ResponseSink out(sink);
    try {
      m->download(id, path, out);
    } catch (const ClientGone&) {
      return false;
    } catch (const std::exception& e) {
      // The answer has started: the stream ends without its last chunk, which the client
      // sees as a broken transfer.
      std::cerr << "podwrangler serve: download of " << redact_text(path) << " from " << id
                << " failed: " << redact_text(e.what()) << "\n";
      return false;
    }
    sink.done();
    return true;
  });
}

}  // namespace

void add_capsule_file_routes(Router& http, ServerState& ctx) {
  http.PutStream("/api/v1/capsules/([^/]+)/files/?", [&ctx](const httplib::Request& req, httplib::Response& res,
                                                            BodyReader& body) { upload(ctx, req, res, body); });
  http.Get("/api/v1/capsules/([^/]+)/files/?",
           [&ctx](const httplib::Request& req, httplib::Response& res) { download(ctx, req, res); });
  http.Delete("/api/v1/capsules/([^/]+)/files/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    reject_unknown_params(req, {"path", "recursive"});
    bool recursive = bool_param(req, "recursive", false);
    std::string path = required_path_param(req);
    std::string id = path_capsule_id(req);
    capsule_manager(ctx).remove(id, path, recursive);
    res.status = 204;
  });
  http.Get("/api/v1/capsules/([^/]+)/files/stat/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    reject_unknown_params(req, {"path"});
    std::string path = required_path_param(req);
    std::string id = path_capsule_id(req);
    send_json(res, 200, capsule_manager(ctx).stat(id, path));
  });
  http.Get("/api/v1/capsules/([^/]+)/files/list/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    reject_unknown_params(req, {"path", "depth"});
    int depth = 1;
    if (auto d = query_param(req, "depth")) depth = static_cast<int>(parse_integer(*d, "depth", 1, 16));
    std::string path = required_path_param(req);
    std::string id = path_capsule_id(req);
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& f : capsule_manager(ctx).list_files(id, path, depth)) arr.push_back(f);
    send_json(res, 200, arr);
  });
  http.Post("/api/v1/capsules/([^/]+)/files/mkdir/?", [&ctx](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_object_body(req);
    reject_unknown_fields(body, {"path", "parents"});
    std::string path = check_capsule_path(required_string(body, "path", 4096), "path");
    bool parents = optional_bool(body, "parents").value_or(true);
    std::string id = path_capsule_id(req);
    auto& m = capsule_manager(ctx);
    m.mkdir(id, path, parents);
    send_json(res, 201, m.stat(id, path));
  });
}

}  // namespace pw::server
