#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "ssl_handles.h"
#include "tls_ticket_keys.h"

namespace portcullis {

// The server-side TLS contexts of every [tls.NAME] block, loaded together. Immutable once
// loaded: a reload builds a new set and swaps it in; a session keeps the set it started with.
class TlsServerContexts {
 public:
  struct LoadResult {
    std::shared_ptr<const TlsServerContexts> contexts;  // null when there are errors
    std::vector<std::string> errors;
    std::vector<std::string> warnings;  // e.g. a certificate expiring within 14 days
  };

  static LoadResult load(const Config& config, TlsTicketKeys* ticket_keys);

  // A new server-side SSL for a listener whose block is `block_name`; SNI may switch it to
  // another block during the handshake. Null when the block does not exist.
  SslPtr new_ssl(const std::string& block_name) const;
  bool empty() const { return blocks_.empty(); }

 private:
  struct Block {
    std::string name;
    SslCtxPtr ctx;
    std::vector<std::string> sni;
    std::string ciphers;
    std::string ciphersuites;
    std::string groups;
  };

  static int on_servername(SSL* ssl, int* alert, void* self);
  static int select_block(SSL* ssl, int* alert, void* self);
  const Block* block_for_name(const std::string& server_name) const;

  std::vector<Block> blocks_;
};

// The client-side context for STARTTLS to the upstream ([upstream] tls, ca_file).
SslCtxPtr make_upstream_tls_context(const UpstreamConfig& upstream, std::string* error);

// Held as a snapshot (absent with [upstream] tls = none); a reload replaces it.
struct UpstreamTlsContext {
  SslCtxPtr ctx;
};

// "TLSv1.3" etc. for the negotiated protocol of `ssl`, and its cipher with key bits.
std::string tls_description(SSL* ssl);

}  // namespace portcullis
