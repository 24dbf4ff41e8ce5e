#include "tls_context.hpp"

#include <podwrangler/errors.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <iostream>
#include <map>
#include <tuple>
#include <mutex>

namespace pw::transport {

namespace ssl = boost::asio::ssl;

std::shared_ptr<ssl::context> client_tls_context(const TlsOptions& tls) {
  static std::mutex mu;
  static std::map<std::tuple<std::string, std::string, bool>, std::shared_ptr<ssl::context>> cache;
  std::lock_guard lock(mu);
  auto key = std::make_tuple(tls.ca_file, tls.ca_pem, tls.insecure_skip_verify);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  // Idle sessions should not hold 2×17 KiB record buffers each.
  SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  if (tls.insecure_skip_verify) {
    ctx->set_verify_mode(ssl::verify_none);
  } else {
    boost::system::error_code ec;
    if (!tls.ca_file.empty()) {
      ctx->load_verify_file(tls.ca_file, ec);
      if (ec)
        throw PodConfigValidationError("ca_file", "cannot load CA file '" + tls.ca_file +
                                                      "': " + ec.message());
    } else if (!tls.ca_pem.empty()) {
      ctx->add_certificate_authority(boost::asio::buffer(tls.ca_pem), ec);
      if (ec) throw PodConfigValidationError("certificate-authority-data", "not a PEM certificate: " + ec.message());
    } else {
      ctx->set_default_verify_paths(ec);
    }
    ctx->set_verify_mode(ssl::verify_peer);
  }
  cache.emplace(key, ctx);
  return ctx;
}

void prepare_client_ssl(SSL* ssl, const std::string& host, const TlsOptions& tls) {
  bool is_ip = host.find_first_not_of("0123456789.") == std::string::npos ||
               host.find(':') != std::string::npos;
  if (!is_ip) SSL_set_tlsext_host_name(ssl, host.c_str());
  if (tls.insecure_skip_verify) {
    std::cerr << "podwrangler: WARNING: TLS certificate verification is DISABLED for " << host
              << " (insecure_skip_verify)\n";
    return;
  }
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (is_ip)
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  else
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
}

std::string describe_tls_failure(SSL* ssl, const std::string& what) {
  long vr = SSL_get_verify_result(ssl);
  if (vr != X509_V_OK)
    return what + ": certificate verification failed (" + X509_verify_cert_error_string(vr) + ")";
  return what;
}

}  // namespace pw::transport
