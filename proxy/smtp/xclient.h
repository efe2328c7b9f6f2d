#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace portcullis {

// What Portcullis knows of the real client, for XCLIENT (Postfix XCLIENT_README).
struct ClientIdentity {
  std::string addr;  // "192.0.2.5" or "2001:db8::1" (sent as "IPV6:2001:db8::1")
  bool addr_is_ipv6 = false;
  uint16_t port = 0;
  std::string name = "[UNAVAILABLE]";          // verified name, or [UNAVAILABLE]/[TEMPUNAVAIL]
  std::string reverse_name = "[UNAVAILABLE]";  // PTR name, or [UNAVAILABLE]/[TEMPUNAVAIL]
  std::string helo;                            // empty: not sent
  std::string proto;                           // "SMTP" or "ESMTP"; empty: not sent
  std::string dest_addr;                       // the address the client connected to
  bool dest_is_ipv6 = false;
  uint16_t dest_port = 0;
};

// XCLIENT command lines (without CRLF) carrying every attribute in `advertised` (upper-case
// names from the upstream's EHLO XCLIENT keyword), values xtext-encoded, each line at most
// `max_line` octets including CRLF. NAME and ADDR go in the last line, because once the
// upstream sees them the session is no longer the proxy's and may not send XCLIENT again.
// An attribute whose value alone cannot fit is left out.
std::vector<std::string> build_xclient_commands(const ClientIdentity& client,
                                                const std::set<std::string>& advertised,
                                                size_t max_line = 512);

}  // namespace portcullis
