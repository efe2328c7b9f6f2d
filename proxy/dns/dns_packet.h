// Reading a DNS answer packet (RFC 1035 wire form) into a DnsAnswer: the RCODE and TC bit from
// the header, the records of the asked type for the asked name or along its CNAME chain.
// The packet is attacker-controlled (whoever answers the resolver): every length is checked,
// and a packet that does not parse is a DnsOutcome::failure, never a crash or a partial answer.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "dns_resolver.h"

namespace portcullis {

// CNAME hops followed from the asked name before the answer is a failure ("CNAME chain too
// long"); also what ends a CNAME loop.
inline constexpr int max_cname_hops = 8;

// `name` as asked (with or without the trailing dot, any case).
DnsAnswer parse_dns_answer(const unsigned char* packet, std::size_t size, std::string_view name,
                           DnsType type);

// Lower case, without the trailing dot ("." stays "").
std::string normalized_dns_name(std::string_view name);

}  // namespace portcullis
