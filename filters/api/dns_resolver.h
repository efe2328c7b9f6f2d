// The DNS lookups filters may make (SPF, FCrDNS, DNSBL), as the session's loop offers them
// through FilterServices::resolver(). The proxy implements it with libunbound on the worker's
// event_base (proxy/dns/); tests implement it with in-memory zones.
//
// Contract, for every implementation:
//   - resolve() never calls back before it returns, and calls back at most once, on the
//     loop thread that called resolve();
//   - destroying the returned handle cancels the query: the callback is then never called
//     (a late answer for a gone session is dropped by the implementation, not the filter);
//   - every query ends: an answer, or DnsOutcome::temporary_failure when the server stays
//     silent past [dns] timeout;
//   - the answer is parsed from the packet (RCODE read there, CNAME chains followed and
//     bounded), and only records of the asked type for the asked name (or its CNAME targets)
//     are returned.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ip_address.h"

namespace portcullis {

enum class DnsType : std::uint16_t {
  a = 1,
  ptr = 12,
  mx = 15,
  txt = 16,
  aaaa = 28,
};

// "A", "PTR", "MX", "TXT", "AAAA".
std::string_view dns_type_name(DnsType type);

enum class DnsOutcome {
  answer,             // NOERROR with at least one record of the type
  no_data,            // NOERROR, no record of the type (RFC 2308 NODATA)
  nxdomain,           // RCODE 3: the name does not exist
  temporary_failure,  // timeout, SERVFAIL, truncated without fallback, network error
  failure,            // REFUSED, FORMERR, a malformed packet, a name that cannot be asked
};

// "answer", "no_data", "nxdomain", "temporary_failure", "failure" (log fields, metrics labels).
std::string_view dns_outcome_name(DnsOutcome outcome);

struct DnsRecord {
  // A / AAAA: the address.
  std::optional<IpAddress> address;
  // PTR: the target; MX: the exchange (lower case, no trailing dot).
  std::string name;
  // MX preference.
  std::uint16_t preference = 0;
  // TXT: the character-strings of one record, in order (SPF joins them without a space).
  std::vector<std::string> strings;
};

struct DnsAnswer {
  DnsOutcome outcome = DnsOutcome::failure;
  std::vector<DnsRecord> records;
  // The smallest TTL of the records returned (0 when none).
  std::uint32_t ttl = 0;
  // Why, for temporary_failure and failure ("timeout", "SERVFAIL", "REFUSED", …): for the
  // policy trace and the log, never sent to a client.
  std::string reason;
};

// A query in flight: destroying it cancels the query.
class DnsQuery {
 public:
  virtual ~DnsQuery() = default;
};

class DnsResolver {
 public:
  virtual ~DnsResolver() = default;
  // `name` is a domain name in presentation form, with or without the trailing dot.
  virtual std::unique_ptr<DnsQuery> resolve(std::string_view name, DnsType type,
                                            std::function<void(DnsAnswer)> callback) = 0;
};

// "2.0.0.192.in-addr.arpa" / nibble form under "ip6.arpa" (no trailing dot); the base of
// PTR lookups and (with a zone in place of the suffix) DNSBL queries.
std::string reverse_name(const IpAddress& address);
// The reversed labels alone: "2.0.0.192" or the 32 nibbles "b.a.9.8…" (DNSBL: + "." + zone).
std::string reversed_labels(const IpAddress& address);

}  // namespace portcullis
