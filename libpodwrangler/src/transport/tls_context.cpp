#include "tls_context.hpp"

#include <podwrangler/errors.hpp>

#include <utility>
#include <boost/asio/error.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <iostream>
#include <map>
#include <mutex>
#include <tuple>

namespace pw::transport {

namespace ssl = boost::asio::ssl;

namespace {
// (boost::system::error_category's destructor is protected and non-virtual by design.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class TlsErrorCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "tls"; }
  std::string message(int ev) const override {
    if (const char* r = ERR_reason_error_string(static_cast<unsigned long>(ev))) return r;
    char buf[256];
    ERR_error_string_n(static_cast<unsigned long>(ev), buf, sizeof buf);
    return buf;
  }
};
#pragma GCC diagnostic pop
}  // namespace

const boost::system::error_category& tls_category() noexcept {
  static const TlsErrorCategory category;
  return category;
}

std::shared_ptr<ssl::context> client_tls_context(const TlsOptions& tls) { return client_tls_context(tls, "", ""); }

std::shared_ptr<ssl::context> client_tls_context(const TlsOptions& tls, const std::string& cert_file,
                                                 const std::string& key_file) {
  static std::mutex mu;
  static std::map<std::tuple<std::string, std::string, bool, std::string, std::string>, std::shared_ptr<ssl::context>>
      cache;
  std::lock_guard lock(mu);
  auto key = std::make_tuple(tls.ca_file, tls.ca_pem, tls.insecure_skip_verify, cert_file, key_file);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  // Idle sessions should not hold 2×17 KiB record buffers each.
  SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  if (tls.insecure_skip_verify) {
    ctx->set_verify_mode(ssl::verify_none);
  } else {
    boost::system::error_code ec;
    if (!tls.ca_file.empty()) {
      ctx->load_verify_file(tls.ca_file, ec);
      if (ec) throw PodConfigValidationError("ca_file", "cannot load CA file '" + tls.ca_file + "': " + ec.message());
    } else if (!tls.ca_pem.empty()) {
      ctx->add_certificate_authority(boost::asio::buffer(tls.ca_pem), ec);
      if (ec) throw PodConfigValidationError("certificate-authority-data", "not a PEM certificate: " + ec.message());
    } else {
      ctx->set_default_verify_paths(ec);
    }
    ctx->set_verify_mode(ssl::verify_peer);
  }
  if (!cert_file.empty() || !key_file.empty()) {
    boost::system::error_code ec;
    ctx->use_certificate_chain_file(cert_file, ec);
    if (ec)
      throw PodConfigValidationError("cert_file",
                                     "cannot load client certificate '" + cert_file + "': " + ec.message());
    ctx->use_private_key_file(key_file, ssl::context::pem, ec);
    if (ec) throw PodConfigValidationError("key_file", "cannot load client key '" + key_file + "': " + ec.message());
  }
  cache.emplace(key, ctx);
  return ctx;
}

void prepare_client_ssl(SSL* ssl, const std::string& host, const TlsOptions& tls) {
  bool is_ip = host.find_first_not_of("0123456789.") == std::string::npos || host.find(':') != std::string::npos;
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

std::string describe_tls_failure(SSL* ssl, const std::string& what, const boost::system::error_code& ec,
                                 const std::string& host) {
  long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
  if (vr != X509_V_OK) {
    std::string reason = X509_verify_cert_error_string(vr);
    switch (vr) {
      case X509_V_ERR_HOSTNAME_MISMATCH:
      case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return what + ": certificate verification failed: host name mismatch (the certificate is not valid for " +
               host + ")";
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      case X509_V_ERR_CERT_UNTRUSTED:
      case X509_V_ERR_CERT_REJECTED:
        return what + ": certificate verification failed: certificate not trusted (" + reason + ")";
      default: return what + ": certificate verification failed: " + reason;
    }
  }
  if (ec == boost::asio::error::connection_reset) return what + ": connection reset by the server";
  if (ec == boost::asio::error::eof) return what + ": the server closed the connection";
  if (&ec.category() == &tls_category()) {
    int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
    std::string text = ec.message();
    switch (reason) {
      case SSL_R_WRONG_VERSION_NUMBER:
      case SSL_R_UNKNOWN_PROTOCOL:
      case SSL_R_HTTP_REQUEST:
      case SSL_R_HTTPS_PROXY_REQUEST:
      case SSL_R_PACKET_LENGTH_TOO_LONG:
      case SSL_R_RECORD_LENGTH_MISMATCH:
      case SSL_R_UNEXPECTED_MESSAGE:
      case SSL_R_UNEXPECTED_RECORD:
#ifdef SSL_R_RECORD_LAYER_FAILURE
      case SSL_R_RECORD_LAYER_FAILURE:
#endif
        return what + ": wrong protocol: the server does not speak TLS on this port (" + text +
               "; a plain ws:// or HTTP port?)";
      case SSL_R_UNEXPECTED_EOF_WHILE_READING: return what + ": the server closed the connection during the handshake";
      default: break;
    }
    if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256)
      return what + ": the server refused the handshake (" + text + ")";
    return what + ": " + text;
  }
  return what + ": " + ec.message();
}

}  // namespace pw::transport
