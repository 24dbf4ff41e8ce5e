#pragma once
// Shared, cached OpenSSL client contexts (one per TlsOptions): loading a CA store per
// connection would cost milliseconds and hundreds of KiB each.
#include <podwrangler/model.hpp>

#include <utility>
#include <boost/asio/ssl/context.hpp>
#include <memory>

namespace pw::transport {

std::shared_ptr<boost::asio::ssl::context> client_tls_context(const TlsOptions& tls);

// Configures `ssl` for SNI and host name / IP verification of `host`.
void prepare_client_ssl(SSL* ssl, const std::string& host, const TlsOptions& tls);

// A readable reason for a failed TLS handshake, including the verify result.
std::string describe_tls_failure(SSL* ssl, const std::string& what);

}  // namespace pw::transport
