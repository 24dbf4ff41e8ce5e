// podwrangler capsule upload|download|ls|mkdir|rm|stat
#include "cli/capsule.hpp"

#include "cli/cli_error.hpp"
#include "cli/commands.hpp"
#include "cli/context.hpp"
#include "cli/exit_codes.hpp"
#include "cli/json_access.hpp"

#include <podwrangler/capsules/archive.hpp>
#include <podwrangler/url.hpp>

#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace pw::cli {

namespace {

std::string files_path(const std::string& id, const std::string& sub, const std::string& remote) {
  return capsule_path(id) + "/files" + sub + "?path=" + pw::percent_encode(remote);
}

void check_remote(const std::string& remote) {
  if (remote.empty() || remote[0] != '/')
    throw CliError(exit_code::usage, "the path inside the capsule must be absolute (got '" + remote + "')");
}

std::string base_name(const std::string& path) {
  auto end = path.find_last_not_of('/');
  if (end == std::string::npos) return "";
  auto slash = path.rfind('/', end);
  return path.substr(slash == std::string::npos ? 0 : slash + 1,
                     end - (slash == std::string::npos ? 0 : slash + 1) + 1);
}

std::string errno_text() { return std::strerror(errno); }

// A descriptor closed on every path out.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

std::string rate_text(std::uint64_t bytes, double seconds) {
  char buf[64];
  double mib = static_cast<double>(bytes) / (1024.0 * 1024.0);
  if (seconds > 0.001)
    std::snprintf(buf, sizeof buf, "%.1f MiB, %.1f MiB/s", mib, mib / seconds);
  else
    std::snprintf(buf, sizeof buf, "%.1f MiB", mib);
  return buf;
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string mode_text(long long mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04llo", mode & 07777);
  return buf;
}

std::string mtime_text(long long s) {
  if (s <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

void print_json_or(CommandContext& ctx, const nlohmann::json& j, const std::string& human) {
  switch (ctx.format()) {
    case Format::json: ctx.out(to_json_text(j)); break;
    case Format::ndjson: ctx.out(to_ndjson_line(j)); break;
    default: ctx.out(human);
  }
}

// --- upload --------------------------------------------------------------------------------------

struct UploadOptions {
  std::string id, local, remote, mode;
};

// A pipe whose two ends are closed on every path out.
struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw CliError(exit_code::software, "pipe: " + errno_text());
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    close_r();
    close_w();
  }
  void close_r() {
    if (r >= 0) ::close(r);
    r = -1;
  }
  void close_w() {
    if (w >= 0) ::close(w);
    w = -1;
  }
};

// The write end of a pipe as the library's byte sink.
class FdSink final : public capsules::ByteSink {
 public:
  explicit FdSink(int fd) : fd_(fd) {}
  void write(std::string_view bytes) override {
    while (!bytes.empty()) {
      ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw CliError(exit_code::unavailable, "archive pipe: " + errno_text());
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_;
};

// A directory: archived by a thread into a pipe (capsules::write_tar_contents: names relative
// to it, links kept and not followed), the request body read from the other end.
int upload_dir(CommandContext& ctx, const UploadOptions& o, const std::string& remote) {
  auto& api = ctx.api({5.0, 300.0});
  Pipe pipe;
  std::exception_ptr failure;  // read after join
  std::atomic<bool> failed{false};
  std::size_t entries = 0;
  std::thread writer([&] {
    // Writing into a pipe whose reader left is EPIPE here, not a signal for the program.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    try {
      FdSink sink(pipe.w);
      entries = capsules::write_tar_contents(o.local, sink);
    } catch (...) {
      failure = std::current_exception();
      failed.store(true);
    }
    pipe.close_w();
  });
  std::uint64_t sent = 0;
  auto t0 = std::chrono::steady_clock::now();
  ApiReply r;
  try {
    auto spin = ctx.spinner("uploading " + o.local + " …");
    r = api.put_stream(
        files_path(o.id, "", remote), ApiClient::kUnknownLength,
        [&](char* buf, std::size_t n) {
          for (;;) {
            ssize_t got = ::read(pipe.r, buf, n);
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) throw CliError(exit_code::unavailable, "archive pipe: " + errno_text());
            if (got == 0 && failed.load())
              throw CliError(exit_code::unavailable, "the archive of " + o.local + " could not be written");
            sent += static_cast<std::uint64_t>(got);
            return static_cast<std::size_t>(got);
          }
        },
        "application/x-tar");
  } catch (...) {
    pipe.close_r();
    writer.join();
    throw;
  }
  pipe.close_r();
  writer.join();
  // The server's refusal first: a writer cut off by it failed only because of it.
  if (r.status != 201 && r.status != 200) raise_capsule_error(api, r);
  if (failure) std::rethrow_exception(failure);
  api.expect("PUT /api/v1/capsules/{id}/files", contract::file_stat(r.body));
  print_json_or(ctx, r.body,
                "Uploaded " + o.local + " to " + o.id + ":" + remote + " (" + std::to_string(entries) + " entries, " +
                    rate_text(sent, since(t0)) + ")\n");
  return exit_code::ok;
}

int capsule_upload(CommandContext& ctx, const UploadOptions& o) {
  check_remote(o.remote);
  const bool from_stdin = o.local == "-";
  std::string remote = o.remote;
  if (remote.back() == '/') {
    if (from_stdin)
      throw CliError(exit_code::usage, "with - (standard input) REMOTE must name a file, not a directory");
    remote += base_name(o.local);
  }
  int fd = STDIN_FILENO;
  std::unique_ptr<Fd> owned;
  std::uint64_t length = ApiClient::kUnknownLength;
  unsigned mode = 0644;
  if (!from_stdin) {
    struct stat lst {};
    if (::stat(o.local.c_str(), &lst) == 0 && S_ISDIR(lst.st_mode)) {
      if (!o.mode.empty()) throw CliError(exit_code::usage, "--mode is for files (a directory keeps its modes)");
      return upload_dir(ctx, o, remote);
    }
    int f = ::open(o.local.c_str(), O_RDONLY | O_CLOEXEC);
    if (f < 0) throw CliError(exit_code::usage, "cannot open " + o.local + ": " + errno_text());
    owned = std::make_unique<Fd>(f);
    fd = f;
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw CliError(exit_code::usage, "cannot stat " + o.local + ": " + errno_text());
    if (!S_ISREG(st.st_mode)) throw CliError(exit_code::usage, o.local + " is not a regular file or a directory");
    length = static_cast<std::uint64_t>(st.st_size);
    mode = st.st_mode & 0777;
  }
  if (!o.mode.empty()) {
    if (o.mode.size() > 4 || o.mode.find_first_not_of("01234567") != std::string::npos)
      throw CliError(exit_code::usage, "--mode wants octal permission bits such as 644 or 0755 (got '" + o.mode + "')");
    mode = static_cast<unsigned>(std::stoul(o.mode, nullptr, 8));
  }
  char mode_arg[8];
  std::snprintf(mode_arg, sizeof mode_arg, "%o", mode);
  auto& api = ctx.api({5.0, 300.0});
  std::uint64_t sent = 0;
  auto t0 = std::chrono::steady_clock::now();
  ApiReply r;
  {
    auto spin = ctx.spinner("uploading " + o.local + " …");
    r = api.put_stream(files_path(o.id, "", remote) + "&mode=" + mode_arg, length, [&](char* buf, std::size_t n) {
      for (;;) {
        ssize_t got = ::read(fd, buf, n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) throw CliError(exit_code::unavailable, "cannot read " + o.local + ": " + errno_text());
        sent += static_cast<std::uint64_t>(got);
        return static_cast<std::size_t>(got);
      }
    });
  }
  if (r.status != 201 && r.status != 200) raise_capsule_error(api, r);
  api.expect("PUT /api/v1/capsules/{id}/files", contract::file_stat(r.body));
  print_json_or(ctx, r.body,
                "Uploaded " + o.local + " to " + o.id + ":" + remote + " (" + rate_text(sent, since(t0)) + ")\n");
  return exit_code::ok;
}

// --- download ------------------------------------------------------------------------------------

struct DownloadOptions {
  std::string id, remote, local;
};

// The read end of a pipe as the library's byte source.
class FdSource final : public capsules::ByteSource {
 public:
  explicit FdSource(int fd) : fd_(fd) {}
  std::size_t read(char* buf, std::size_t n) override {
    for (;;) {
      ssize_t got = ::read(fd_, buf, n);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) throw CliError(exit_code::unavailable, "archive pipe: " + errno_text());
      return static_cast<std::size_t>(got);
    }
  }
  // The rest, dropped: the writer never meets a closed pipe.
  void drain() {
    char buf[65536];
    while (read(buf, sizeof buf) > 0) {
    }
  }

 private:
  int fd_;
};

// A directory comes as a tar archive: to standard output as it is, or extracted by a thread
// from a pipe the download writes into (capsules::extract_tar refuses anything that would
// land outside the destination: exit 65).
int download_dir(CommandContext& ctx, ApiClient& api, const DownloadOptions& o, const nlohmann::json& st) {
  const std::vector<std::string> tar{"application/x-tar"};
  if (o.local == "-") {
    ApiReply r = api.get_stream(
        files_path(o.id, "", o.remote),
        [&](const char* data, std::size_t n) {
          std::fwrite(data, 1, n, stdout);
          return !std::ferror(stdout);
        },
        tar);
    std::fflush(stdout);
    if (r.status != 200) raise_capsule_error(api, r);
    return exit_code::ok;
  }
  std::string dest = o.local;
  struct stat lst {};
  bool exists = ::stat(dest.c_str(), &lst) == 0;
  if (exists && S_ISDIR(lst.st_mode)) {
    std::string name = base_name(o.remote);
    if (!name.empty()) {
      dest += (dest.back() == '/' ? "" : "/") + name;
      exists = ::stat(dest.c_str(), &lst) == 0;
    }
  }
  if (exists && !S_ISDIR(lst.st_mode))
    throw CliError(exit_code::usage, dest + " exists and is not a directory (" + o.remote + " is one)");
  if (!exists && ::mkdir(dest.c_str(), 0700) != 0)
    throw CliError(exit_code::usage, "cannot create " + dest + ": " + errno_text());
  Pipe pipe;
  std::exception_ptr failure;  // read after join
  std::atomic<bool> failed{false};
  std::size_t entries = 0;
  std::thread extractor([&] {
    FdSource src(pipe.r);
    try {
      entries = capsules::extract_tar(src, dest);
    } catch (...) {
      failure = std::current_exception();
      failed.store(true);
      src.drain();
    }
  });
  std::uint64_t got = 0;
  auto t0 = std::chrono::steady_clock::now();
  ApiReply r;
  try {
    auto spin = ctx.spinner("downloading to " + dest + " …");
    r = api.get_stream(
        files_path(o.id, "", o.remote),
        [&](const char* data, std::size_t n) {
          if (failed.load()) return false;  // the extraction refused the archive: stop
          while (n > 0) {
            ssize_t w = ::write(pipe.w, data, n);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) return false;
            data += w;
            n -= static_cast<std::size_t>(w);
            got += static_cast<std::uint64_t>(w);
          }
          return true;
        },
        tar);
  } catch (...) {
    pipe.close_w();
    extractor.join();
    throw;
  }
  pipe.close_w();
  extractor.join();
  if (failure) std::rethrow_exception(failure);
  if (r.status != 200) raise_capsule_error(api, r);
  if (!exists) {
    mode_t mask = ::umask(0);
    ::umask(mask);
    ::chmod(dest.c_str(), static_cast<mode_t>((field::integer(st, "mode").value_or(0755) & 0777 & ~mask) | S_IRWXU));
  }
  print_json_or(ctx, st,
                "Downloaded " + o.id + ":" + o.remote + " to " + dest + " (" + std::to_string(entries) + " entries, " +
                    rate_text(got, since(t0)) + ")\n");
  return exit_code::ok;
}

int capsule_download(CommandContext& ctx, const DownloadOptions& o) {
  check_remote(o.remote);
  auto& api = ctx.api({5.0, 300.0});
  const bool to_stdout = o.local == "-";
  std::string local = o.local;
  struct stat lst {};
  if (!to_stdout && ::stat(local.c_str(), &lst) == 0 && S_ISDIR(lst.st_mode)) {
    std::string name = base_name(o.remote);
    if (name.empty() || name == "." || name == "..")
      throw CliError(exit_code::usage, "name the local file: '" + o.remote + "' has no file name");
    local += (local.back() == '/' ? "" : "/") + name;
  }
  // The remote type and mode before anything is written.
  auto st = capsule_call(api, "GET", files_path(o.id, "/stat", o.remote), nullptr, {200}, contract::file_stat);
  if (field::text(st, "type") == "dir") return download_dir(ctx, api, o, st);

  int fd = STDOUT_FILENO;
  std::unique_ptr<Fd> owned;
  std::string tmp;
  if (!to_stdout) {
    // Written beside the destination under a temporary name and renamed at the end: an
    // interrupted download never leaves a partial file under the name asked for.
    tmp = local + ".pw-download-" + std::to_string(::getpid());
    int f = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (f < 0) throw CliError(exit_code::usage, "cannot create " + tmp + ": " + errno_text());
    owned = std::make_unique<Fd>(f);
    fd = f;
  }
  std::uint64_t got = 0;
  auto t0 = std::chrono::steady_clock::now();
  ApiReply r;
  try {
    auto spin = ctx.spinner(to_stdout ? std::string() : "downloading to " + local + " …");
    if (to_stdout) spin.stop();
    r = api.get_stream(files_path(o.id, "", o.remote), [&](const char* data, std::size_t n) {
      while (n > 0) {
        ssize_t w = ::write(fd, data, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0)
          throw CliError(exit_code::unavailable,
                         "cannot write " + (to_stdout ? "standard output" : tmp) + ": " + errno_text());
        data += w;
        n -= static_cast<std::size_t>(w);
        got += static_cast<std::uint64_t>(w);
      }
      return true;
    });
    if (r.status != 200) raise_capsule_error(api, r);
    if (!to_stdout) {
      mode_t mask = ::umask(0);
      ::umask(mask);
      auto mode = static_cast<mode_t>(field::integer(st, "mode").value_or(0644) & 0777 & ~mask);
      if (::fchmod(fd, mode | S_IRUSR | S_IWUSR) != 0 || ::fsync(fd) != 0)
        throw CliError(exit_code::unavailable, "cannot finish " + tmp + ": " + errno_text());
      owned.reset();
      if (::rename(tmp.c_str(), local.c_str()) != 0)
        throw CliError(exit_code::usage, "cannot rename " + tmp + " to " + local + ": " + errno_text());
      tmp.clear();
    }
  } catch (...) {
    if (!tmp.empty()) ::unlink(tmp.c_str());
    throw;
  }
  if (!to_stdout)
    print_json_or(ctx, st,
                  "Downloaded " + o.id + ":" + o.remote + " to " + local + " (" + rate_text(got, since(t0)) + ")\n");
  return exit_code::ok;
}

// --- ls, mkdir, rm, stat -----------------------------------------------------------------------------

struct PathOptions {
  std::string id, path;
  int depth = 1;
  bool flag = false;  // rm: --recursive; mkdir: --no-parents
};

int capsule_ls(CommandContext& ctx, const PathOptions& o) {
  check_remote(o.path);
  auto& api = ctx.api();
  auto list = capsule_call(api, "GET", files_path(o.id, "/list", o.path) + "&depth=" + std::to_string(o.depth), nullptr,
                           {200}, contract::file_list);
  std::vector<std::vector<std::string>> rows;
  for (const auto& f : list) {
    std::string name = field::text(f, "path");
    if (!field::text(f, "link_target").empty()) name += " -> " + field::text(f, "link_target");
    rows.push_back({field::text(f, "type"), mode_text(field::integer(f, "mode").value_or(0)), field::text(f, "size"),
                    mtime_text(field::integer(f, "mtime").value_or(0)), name});
  }
  switch (ctx.format()) {
    case Format::json: ctx.out(to_json_text(list)); break;
    case Format::ndjson:
      for (const auto& f : list) ctx.out(to_ndjson_line(f));
      break;
    case Format::plain: ctx.out(render_plain(rows)); break;
    case Format::table:
      if (rows.empty()) {
        ctx.info(o.path + " is empty.");
        break;
      }
      ctx.out(render_table({{"TYPE"}, {"MODE"}, {"SIZE", false, true}, {"MODIFIED"}, {"PATH", true}}, rows,
                           ctx.term().width, ctx.term().color_out));
  }
  return exit_code::ok;
}

int capsule_mkdir(CommandContext& ctx, const PathOptions& o) {
  check_remote(o.path);
  nlohmann::json body{{"path", o.path}, {"parents", !o.flag}};
  auto& api = ctx.api();
  auto st = capsule_call(api, "POST", capsule_path(o.id) + "/files/mkdir", &body, {201}, contract::file_stat);
  print_json_or(ctx, st, "Created directory " + o.id + ":" + o.path + "\n");
  return exit_code::ok;
}

int capsule_rm(CommandContext& ctx, const PathOptions& o) {
  check_remote(o.path);
  auto& api = ctx.api();
  capsule_call(api, "DELETE", files_path(o.id, "", o.path) + (o.flag ? "&recursive=true" : ""), nullptr, {204});
  print_json_or(ctx, {{"id", o.id}, {"path", o.path}, {"removed", true}}, "Removed " + o.id + ":" + o.path + "\n");
  return exit_code::ok;
}

int capsule_stat(CommandContext& ctx, const PathOptions& o) {
  check_remote(o.path);
  auto& api = ctx.api();
  auto st = capsule_call(api, "GET", files_path(o.id, "/stat", o.path), nullptr, {200}, contract::file_stat);
  switch (ctx.format()) {
    case Format::json: ctx.out(to_json_text(st)); break;
    case Format::ndjson: ctx.out(to_ndjson_line(st)); break;
    case Format::plain:
      ctx.out(render_plain({{field::text(st, "type"), mode_text(field::integer(st, "mode").value_or(0)),
                             field::text(st, "size"), field::text(st, "mtime"), field::text(st, "path")}}));
      break;
    case Format::table: {
      std::vector<std::pair<std::string, std::string>> kv{
          {"path", field::text(st, "path")},
          {"type", field::text(st, "type")},
          {"size", field::text(st, "size")},
          {"mode", mode_text(field::integer(st, "mode").value_or(0))},
          {"modified", mtime_text(field::integer(st, "mtime").value_or(0))}};
      if (!field::text(st, "link_target").empty()) kv.emplace_back("link", field::text(st, "link_target"));
      ctx.out(render_kv(kv, ctx.term().color_out));
    }
  }
  return exit_code::ok;
}

void add_path_command(CLI::App* g, CommandContext& ctx, const char* name, const char* help, const char* footer,
                      int (*run)(CommandContext&, const PathOptions&), const std::shared_ptr<PathOptions>& o) {
  auto* c = g->add_subcommand(name, help);
  c->add_option("id", o->id, "The capsule's id")->required()->type_name(kCapsuleType);
  c->add_option("path", o->path, "Absolute path inside the capsule")->required()->type_name("PATH");
  c->footer(footer);
  set_action(c, ctx, o, run);
}

}  // namespace

void add_capsule_file_commands(CLI::App* g, CommandContext& ctx) {
  auto up = std::make_shared<UploadOptions>();
  auto* c = g->add_subcommand("upload", "Copy a local file or directory into a capsule (streamed)");
  c->add_option("id", up->id, "The capsule's id")->required()->type_name(kCapsuleType);
  c->add_option("local", up->local, "Local file or directory, or - for standard input")->required()->type_name("LOCAL");
  c->add_option("remote", up->remote, "Absolute path inside the capsule (ending in / : keep the file's name)")
      ->required()
      ->type_name("REMOTE");
  c->add_option("--mode", up->mode, "Permission bits in octal (default: the local file's, 644 for -)")
      ->type_name("MODE");
  c->footer(
      "The file is streamed: its size is not limited by memory (the server's limit is\n"
      "PODWRANGLER_MAX_UPLOAD_BYTES). Parent directories are created. A directory travels as a\n"
      "tar archive (directories and regular files; symbolic links are refused) and fills REMOTE.\n\n"
      "Examples:\n"
      "  podwrangler capsule upload cap-0123456789abcdef ./data.csv /home/user/\n"
      "  podwrangler capsule upload cap-0123456789abcdef ./src /home/user/src\n"
      "  tar cz src | podwrangler capsule upload cap-0123456789abcdef - /tmp/src.tgz");
  set_action(c, ctx, up, capsule_upload);

  auto down = std::make_shared<DownloadOptions>();
  c = g->add_subcommand("download",
                        "Copy a file or directory out of a capsule (streamed; - writes it to standard output)");
  c->add_option("id", down->id, "The capsule's id")->required()->type_name(kCapsuleType);
  c->add_option("remote", down->remote, "Absolute path inside the capsule")->required()->type_name("REMOTE");
  c->add_option("local", down->local, "Local file or directory, or - for standard output")
      ->required()
      ->type_name("LOCAL");
  c->footer(
      "A file is written under a temporary name and renamed when complete, with the capsule\n"
      "file's permission bits (less the umask). A directory comes as a tar archive, extracted\n"
      "into LOCAL (or LOCAL/NAME when LOCAL is a directory); it can never write outside it:\n"
      "absolute names, '..', symbolic links leading out and writes through links are refused\n"
      "(exit 65). With - the archive itself goes to standard output.\n\n"
      "Examples:\n"
      "  podwrangler capsule download cap-0123456789abcdef /home/user/out.csv .\n"
      "  podwrangler capsule download cap-0123456789abcdef /home/user/results ./results\n"
      "  podwrangler capsule download cap-0123456789abcdef /var/log/app.log - | tail");
  set_action(c, ctx, down, capsule_download);

  auto ls = std::make_shared<PathOptions>();
  c = g->add_subcommand("ls", "List a directory inside a capsule");
  c->add_option("id", ls->id, "The capsule's id")->required()->type_name(kCapsuleType);
  c->add_option("path", ls->path, "Absolute path inside the capsule")->required()->type_name("PATH");
  c->add_option("--depth,-d", ls->depth, "Levels to descend (1: the directory's entries)")
      ->check(CLI::Range(1, 16))
      ->type_name("N");
  c->footer(
      "Output: table (TYPE MODE SIZE MODIFIED PATH), plain (tab-separated), json (array of\n"
      "{path, name, type, size, mode, mtime, link_target}), ndjson.\n\n"
      "Example:\n  podwrangler capsule ls --depth 2 cap-0123456789abcdef /work");
  set_action(c, ctx, ls, capsule_ls);

  auto mk = std::make_shared<PathOptions>();
  c = g->add_subcommand("mkdir", "Create a directory inside a capsule (with its parents)");
  c->add_option("id", mk->id, "The capsule's id")->required()->type_name(kCapsuleType);
  c->add_option("path", mk->path, "Absolute path inside the capsule")->required()->type_name("PATH");
  c->add_flag("--no-parents", mk->flag, "Fail when the parent does not exist");
  c->footer("Example:\n  podwrangler capsule mkdir cap-0123456789abcdef /home/user/out");
  set_action(c, ctx, mk, capsule_mkdir);

  auto rm = std::make_shared<PathOptions>();
  c = g->add_subcommand("rm", "Remove a file or directory inside a capsule");
  c->add_option("id", rm->id, "The capsule's id")->required()->type_name(kCapsuleType);
  c->add_option("path", rm->path, "Absolute path inside the capsule")->required()->type_name("PATH");
  c->add_flag("--recursive,-r", rm->flag, "Remove a directory and everything in it");
  c->footer(
      "Examples:\n  podwrangler capsule rm cap-0123456789abcdef /home/user/tmp.txt\n"
      "  podwrangler capsule rm -r cap-0123456789abcdef /home/user/build");
  set_action(c, ctx, rm, capsule_rm);

  add_path_command(g, ctx, "stat", "Show a file's type, size, mode and time inside a capsule",
                   "Example:\n  podwrangler capsule stat cap-0123456789abcdef /etc/passwd", capsule_stat,
                   std::make_shared<PathOptions>());
}

}  // namespace pw::cli
