#pragma once
// Shared, cached OpenSSL client contexts (one per TlsOptions): loading a CA store per
// connection would cost milliseconds and hundreds of KiB each.
#include <podwrangler/model.hpp>

#include <utility>
#include <boost/asio/ssl/context.hpp>
#include <memory>

namespace pw::transport {

std::shared_ptr<boost::asio::ssl::context> client_tls_context(const TlsOptions& tls);
// The same with a client certificate and its key (PEM files) for servers that verify
// their clients (dockerd --tlsverify). Throws PodConfigValidationError naming the file.
std::shared_ptr<boost::asio::ssl::context> client_tls_context(const TlsOptions& tls, const std::string& cert_file,
                                                              const std::string& key_file);

// OpenSSL failures as error codes whose message() is OpenSSL's own reason ("wrong
// version number", "tlsv1 alert protocol version"), never "Unknown error 267". The value
// is the packed OpenSSL error code (library and reason), which fits an int.
const boost::system::error_category& tls_category() noexcept;

// Configures `ssl` for SNI and host name / IP verification of `host`.
void prepare_client_ssl(SSL* ssl, const std::string& host, const TlsOptions& tls);

// One line that names what went wrong in a failed TLS handshake: "<what>: " and then
// certificate verification failed: certificate not trusted (<verify reason>) /
// host name mismatch (...), wrong protocol (the peer does not speak TLS), the server
// refused the handshake (<alert>), the connection was reset / closed, or OpenSSL's reason.
std::string describe_tls_failure(SSL* ssl, const std::string& what, const boost::system::error_code& ec,
                                 const std::string& host);

}  // namespace pw::transport
