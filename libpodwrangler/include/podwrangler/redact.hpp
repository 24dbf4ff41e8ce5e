#pragma once
// The one redactor: every piece of text that leaves the process (HTTP responses, error
// messages, logs, history rows, CLI output) and may hold a URL or a credential goes through
// redact_text() or redact_url(). Both apply the same rules (they are one scanner):
//
//  1. userinfo of a URL, whole: `scheme://user:pw@host` and `scheme://TOKEN@host` become
//     `scheme://***@host` (a token may sit in the user part: `https://TOKEN:x-oauth-basic@…`).
//     Exception: `k8s://CONTEXT@ns/pod` keeps a userinfo without ':' (a kubeconfig context
//     name). A password holding an unescaped '/', '?', '#' or '&' (the authority then looks
//     like host:junk-port) is hidden up to the '@' that ends it.
//     Without a scheme, `user:pw@host` (a ':' before the '@') becomes `***@host`
//     (`mailto:`, `sip:`, `xmpp:` excepted); `name@example.com` is left alone.
//  2. the value of a sensitive `key=value` pair: in a query string, a fragment, a ';'-matrix
//     parameter, or anywhere in free text; also JSON `"key": "value"`. The value runs to the
//     next '&' or '#' (a ';' does not end it), or to the closing quote of a quoted value.
//     Left alone: empty values and placeholders (`token=<jwt>`, `${TOKEN}`, `token=…`, and
//     capitals after a key in capitals: `KEY=VALUE`; `token=SECRET` is hidden).
//  3. percent-encoded text (`https%3A%2F%2Fu%3Apw%40x`, also double-encoded): decoded, the
//     rules applied, and, when something was hidden, encoded again (`https%3A%2F%2F***%40x`).
//  4. free text only: the credential after `Bearer`/`Basic` when it looks like one (not a
//     plain word: "bearer tokens" stays), and the value of an `Authorization:`,
//     `Proxy-Authorization:` or `X-…-Key:`/`X-…-Token:` header.
// Everything else is copied unchanged: ordinary words are never touched, only URL-shaped and
// key=value-shaped tokens. The result is idempotent (redacting twice changes nothing).
//
// Sensitive keys (is_sensitive_key, case-insensitive, after percent-decoding): the name
// contains token, passw (password, passwd), passphrase, secret, signature, credential,
// apikey/api_key/api-key, authorization, cookie, jwt, session/sessid, privatekey,
// accesskey or bearer; or one of its words (split at non-alphanumerics and camelCase) is
// key, auth, sig or pass, or ends in "key" or "auth". So: token, access_token, refresh_token,
// password, client_secret, api_key, apiKey, X-API-Key, auth, sig (Azure SAS), Signature,
// X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token, Key-Pair-Id, sessionid, Cookie.
//
// Not covered (documented limits): secrets in URL paths (`/bot<token>/`), bare words with
// no key, quoted values containing the quote character, and a lowercase-letters-only
// credential of under 20 characters after "Bearer" in prose.
#include <string>
#include <string_view>

namespace pw {

// A URL (or URL-ish text: no scheme, a nested URL, a database URL) as it may be shown.
std::string redact_url(std::string_view url);

// Free text that may contain URLs, key=value pairs, JSON or HTTP headers.
std::string redact_text(std::string_view text);

// Replaces every occurrence of `secret` in `text` with "***" (no-op for short secrets
// of under 4 bytes, which would mangle ordinary text).
std::string redact_value(std::string_view text, std::string_view secret);

// True for names of query parameters and headers that carry credentials (list above).
bool is_sensitive_key(std::string_view key) noexcept;

// A command as error messages show it: redacted, then cut to 200 bytes with its length
// noted (the full text stays in the error's command() field).
std::string shown_command(std::string_view command);

// A URL as error messages show it, however hostile: control bytes as '?', redacted, cut
// to 512 bytes.
std::string shown_url(std::string_view url);

}  // namespace pw
