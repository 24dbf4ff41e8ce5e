#pragma once
// PlainTTYProvider: a raw TTY over WebSocket,
//   wss://host/exec/<service_id>/?token=<JWT>&cols=220&pod=<pod>   (ws:// too)
#include <podwrangler/provider.hpp>

namespace pw {

class PlainTTYProvider : public ProviderInterface {
 public:
  explicit PlainTTYProvider(int cols = DEFAULT_TERMINAL_COLS, TlsOptions tls = {});

  std::string name() const override { return "plaintty"; }
  ConnectionSpec build_connection_spec(const PodIdentity& identity, const SecretString& token) const override;
  std::pair<PodIdentity, SecretString> parse_url(std::string_view url) const override;

  int cols() const noexcept { return cols_; }
  const TlsOptions& tls() const noexcept { return tls_; }

 private:
  int cols_;
  TlsOptions tls_;
};

}  // namespace pw
