#include "tls_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <fmt/format.h>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>

#include "callback_guard.h"

namespace portcullis {

namespace {

constexpr int kExpiryWarningDays = 14;

std::string openssl_errors() {
  std::string text;
  while (unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

int protocol_version(const std::string& name) {
  if (name == "TLSv1") return TLS1_VERSION;
  if (name == "TLSv1.1") return TLS1_1_VERSION;
  if (name == "TLSv1.2") return TLS1_2_VERSION;
  if (name == "TLSv1.3") return TLS1_3_VERSION;
  return 0;
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// "*.example.org" matches exactly one label in front of example.org.
bool sni_matches(const std::string& pattern, const std::string& name) {
  if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
    auto dot = name.find('.');
    return dot != std::string::npos && dot > 0 && name.substr(dot + 1) == pattern.substr(2);
  }
  return pattern == name;
}

// Requested, never required: whatever the client shows (or not) is accepted.
int accept_any_client_certificate(int, X509_STORE_CTX*) {
  return 1;
}

void check_expiry(const std::string& where, const std::string& path,
                  std::vector<std::string>* errors, std::vector<std::string>* warnings) {
  FILE* file = std::fopen(path.c_str(), "r");
  if (!file) return;  // the load itself reports it
  X509Ptr leaf(PEM_read_X509(file, nullptr, nullptr, nullptr));
  std::fclose(file);
  if (!leaf) return;
  const ASN1_TIME* not_after = X509_get0_notAfter(leaf.get());
  int days = 0;
  int seconds = 0;
  if (!ASN1_TIME_diff(&days, &seconds, nullptr, not_after)) return;
  if (days < 0 || (days == 0 && seconds < 0)) {
    warnings->push_back(fmt::format("{}: certificate {} has expired", where, path));
  } else if (days < kExpiryWarningDays) {
    warnings->push_back(fmt::format("{}: certificate {} expires in {} day(s)", where, path, days));
  }
  (void)errors;
}

}  // namespace

TlsServerContexts::LoadResult TlsServerContexts::load(const Config& config,
                                                      TlsTicketKeys* ticket_keys) {
  LoadResult result;
  auto contexts = std::make_shared<TlsServerContexts>();
  for (const TlsBlockConfig& block : config.tls) {
    const std::string where = "tls." + block.name;
    ERR_clear_error();
    SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) {
      result.errors.push_back(fmt::format("{}: {}", where, openssl_errors()));
      continue;
    }
    bool ok = true;
    auto fail = [&](const std::string& what) {
      result.errors.push_back(fmt::format("{}: {}: {}", where, what, openssl_errors()));
      ok = false;
    };
    const int min_version = protocol_version(block.min_version);
    if (min_version == 0 || !SSL_CTX_set_min_proto_version(ctx.get(), min_version)) {
      fail("min_version " + block.min_version);
    }
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                       SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    // Idle sessions give their read/write buffers back (issue: small idle TLS sessions).
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
    if (!block.ciphers.empty() && !SSL_CTX_set_cipher_list(ctx.get(), block.ciphers.c_str())) {
      fail("ciphers");
    }
    if (!block.ciphersuites.empty() &&
        !SSL_CTX_set_ciphersuites(ctx.get(), block.ciphersuites.c_str())) {
      fail("ciphersuites");
    }
    if (!block.groups.empty() && !SSL_CTX_set1_groups_list(ctx.get(), block.groups.c_str())) {
      fail("groups");
    }
    if (block.certificates.empty()) {
      result.errors.push_back(fmt::format("{}: no certificate", where));
      ok = false;
    }
    for (const TlsCertificateKey& pair : block.certificates) {
      if (SSL_CTX_use_certificate_chain_file(ctx.get(), pair.certificate.c_str()) != 1) {
        fail("certificate " + pair.certificate);
        continue;
      }
      if (SSL_CTX_use_PrivateKey_file(ctx.get(), pair.key.c_str(), SSL_FILETYPE_PEM) != 1) {
        fail("key " + pair.key);
        continue;
      }
      if (SSL_CTX_check_private_key(ctx.get()) != 1) {
        fail(fmt::format("key {} does not match certificate {}", pair.key, pair.certificate));
        continue;
      }
      check_expiry(where, pair.certificate, &result.errors, &result.warnings);
    }
    static const unsigned char session_context[] = "portcullis";
    SSL_CTX_set_session_id_context(ctx.get(), session_context, sizeof session_context - 1);
    if (block.request_client_certificate) {
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, &accept_any_client_certificate);
    }
    if (ticket_keys) ticket_keys->attach(ctx.get());
    SSL_CTX_set_tlsext_servername_callback(ctx.get(), &TlsServerContexts::on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx.get(), contexts.get());
    if (!ok) continue;
    std::vector<std::string> sni;
    for (const auto& name : block.sni)
      sni.push_back(lower(name));
    contexts->blocks_.push_back(Block{block.name, std::move(ctx), std::move(sni), block.ciphers,
                                      block.ciphersuites, block.groups});
  }
  if (result.errors.empty()) result.contexts = std::move(contexts);
  return result;
}

SslPtr TlsServerContexts::new_ssl(const std::string& block_name) const {
  for (const Block& block : blocks_) {
    if (block.name == block_name) return SslPtr(SSL_new(block.ctx.get()));
  }
  return nullptr;
}

const TlsServerContexts::Block* TlsServerContexts::block_for_name(
    const std::string& server_name) const {
  const std::string name = lower(server_name);
  for (const Block& block : blocks_) {
    for (const auto& pattern : block.sni) {
      if (sni_matches(pattern, name)) return &block;
    }
  }
  return nullptr;
}

int TlsServerContexts::on_servername(SSL* ssl, int* alert, void* self) {
  int result = SSL_TLSEXT_ERR_ALERT_FATAL;
  guard_callback("tls_servername", [&] { result = select_block(ssl, alert, self); });
  return result;
}

int TlsServerContexts::select_block(SSL* ssl, int*, void* self) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_NOACK;
  const Block* block = static_cast<const TlsServerContexts*>(self)->block_for_name(name);
  // No match: the listener's own block answers.
  if (!block || block->ctx.get() == SSL_get_SSL_CTX(ssl)) return SSL_TLSEXT_ERR_OK;
  SSL_CTX* ctx = block->ctx.get();
  SSL_set_SSL_CTX(ssl, ctx);
  // SSL_set_SSL_CTX swaps the certificates only; the block's verify mode, options and cipher
  // settings follow the name too. (The protocol version is already chosen: min_version is the
  // listener's block's.)
  SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx), SSL_CTX_get_verify_callback(ctx));
  SSL_clear_options(ssl, SSL_get_options(ssl) & ~SSL_CTX_get_options(ctx));
  SSL_set_options(ssl, SSL_CTX_get_options(ctx));
  SSL_set_cipher_list(ssl, block->ciphers.empty() ? "DEFAULT" : block->ciphers.c_str());
  SSL_set_ciphersuites(
      ssl, block->ciphersuites.empty() ? TLS_DEFAULT_CIPHERSUITES : block->ciphersuites.c_str());
  if (!block->groups.empty()) SSL_set1_groups_list(ssl, block->groups.c_str());
  return SSL_TLSEXT_ERR_OK;
}

SslCtxPtr make_upstream_tls_context(const UpstreamConfig& upstream, std::string* error) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) {
    *error = openssl_errors();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  const bool loaded =
      upstream.ca_file.empty()
          ? SSL_CTX_set_default_verify_paths(ctx.get()) == 1
          : SSL_CTX_load_verify_locations(ctx.get(), upstream.ca_file.c_str(), nullptr) == 1;
  if (!loaded) {
    *error = fmt::format("upstream.ca_file {}: {}", upstream.ca_file, openssl_errors());
    return nullptr;
  }
  SSL_CTX_set_verify(ctx.get(),
                     upstream.tls == UpstreamTls::required ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                     nullptr);
  return ctx;
}

std::string tls_description(SSL* ssl) {
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl);
  int algorithm_bits = 0;
  const int bits = cipher ? SSL_CIPHER_get_bits(cipher, &algorithm_bits) : 0;
  return fmt::format("{} with cipher {} ({}/{} bits)", SSL_get_version(ssl),
                     cipher ? SSL_CIPHER_get_name(cipher) : "unknown", bits, algorithm_bits);
}

}  // namespace portcullis
