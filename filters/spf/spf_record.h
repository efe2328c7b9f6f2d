// An SPF record (RFC 7208 §4.5, §5, §6), parsed; no DNS.
//
// SECURITY: the text comes from DNS an attacker controls. It is refused before parsing when
// longer than max_record_octets or with more than max_record_terms terms; every byte outside
// the ABNF (non-ASCII, control characters, any whitespace but SP) is a syntax error, so the
// evaluator never sees it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ip_address.h"

namespace portcullis {

inline constexpr std::size_t max_record_octets = 4096;
inline constexpr std::size_t max_record_terms = 128;

enum class SpfQualifier { pass, fail, softfail, neutral };

enum class SpfMechanismKind { all, include, a, mx, ptr, ip4, ip6, exists };

struct SpfMechanism {
  SpfQualifier qualifier = SpfQualifier::pass;
  SpfMechanismKind kind = SpfMechanismKind::all;
  // The macro-string of include/a/mx/ptr/exists; empty for a/mx/ptr means <domain>.
  std::string domain_spec;
  // a, mx: the dual CIDR lengths; ip4/ip6: the network's prefix length in the one that applies.
  unsigned cidr4 = 32;
  unsigned cidr6 = 128;
  // ip4, ip6: the network address (host bits kept as written; matching masks both sides).
  std::optional<IpAddress> network;
};

struct SpfRecord {
  std::vector<SpfMechanism> mechanisms;
  std::optional<std::string> redirect;  // domain-spec
  std::optional<std::string> exp;       // domain-spec
};

struct SpfParseResult {
  std::optional<SpfRecord> record;
  std::string error;  // when record is empty: why (a permerror)
};

// True when `text` is an SPF version 1 record: "v=spf1" followed by SP or the end (RFC 7208
// §4.5; anything else, e.g. "v=spf10", is not an SPF record and is ignored).
bool is_spf1_record(std::string_view text);

// Parses a record that is_spf1_record accepted.
SpfParseResult parse_spf_record(std::string_view text);

// RFC 7208 §7.1 domain-spec: a valid macro-string ending in "." toplabel ["."] or a macro.
std::optional<std::string> spf_domain_spec_error(std::string_view text);

}  // namespace portcullis
