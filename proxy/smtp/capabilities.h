#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "smtp_reply.h"

namespace portcullis {

// What the upstream said in reply to EHLO.
struct UpstreamCapabilities {
  bool pipelining = false;
  bool eightbitmime = false;
  bool smtputf8 = false;
  bool dsn = false;
  bool starttls = false;
  bool chunking = false;
  bool enhancedstatuscodes = false;
  std::optional<uint64_t> size;  // SIZE n; nullopt when absent; 0 means "no limit"
  bool xclient = false;
  std::set<std::string> xclient_attrs;  // upper-case attribute names after XCLIENT
  std::vector<std::string> keywords;    // every line after the first, as sent
};

UpstreamCapabilities parse_ehlo_reply(const SmtpReply& reply);

// What Portcullis offers its own clients (DESIGN §2 Capabilities).
struct ClientOffer {
  uint64_t size_limit = 0;  // the smaller of max_message_size and the upstream's SIZE (when >0)
  bool eightbitmime = false;
  bool smtputf8 = false;
  bool dsn = false;
  bool starttls = false;
};

ClientOffer compute_client_offer(const UpstreamCapabilities& upstream, uint64_t max_message_size,
                                 bool starttls_available);

// The 250 reply to a client's EHLO: "250-<hostname>", then PIPELINING, SIZE n,
// ENHANCEDSTATUSCODES, 8BITMIME/SMTPUTF8/DSN when offered, STARTTLS when offered.
SmtpReply build_ehlo_reply(std::string_view hostname, const ClientOffer& offer);

}  // namespace portcullis
