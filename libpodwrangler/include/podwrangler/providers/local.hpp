#pragma once
// LocalProvider: a real PTY shell on this machine (forkpty), the embedded default.
//   local://            → /bin/sh, pod name "local"
//   local://<name>      → pod name <name>
//   local://<name>?shell=/bin/bash&cwd=/tmp
#include <podwrangler/provider.hpp>

namespace pw {

class LocalProvider : public ProviderSpec {
 public:
  std::string name() const override { return "local"; }
  WssSchema build_wss_schema(const PodIdentity& identity, const SecretString& token) const override;
  std::pair<PodIdentity, SecretString> parse_url(std::string_view url) const override;
  Task<std::vector<PodIdentity>> list_pods(const SecretString& token,
                                           ListPodsOptions options) const override;
  std::unique_ptr<Connection> open(Executor ex, const WssSchema& schema) const override;
};

// A PTY running `shell` (argv[0]) in `cwd` with TERM=dumb; exposed for custom providers.
std::unique_ptr<Connection> make_pty_connection(Executor ex, std::string shell, std::string cwd,
                                                int cols);

}  // namespace pw
