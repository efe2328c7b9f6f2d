// The [filter.dnsbl] settings: one `[[filter.dnsbl.list]]` table per DNS block list.
//
//   zone    the list's zone ("zen.example.net"; a trailing dot is dropped, case is folded)
//   weight  added to dnsbl.score when the client is listed, -100..100 (default 1; negative
//           for allow lists, as postscreen's dnsbl_sites weights)
//   answers the A records that mean "listed": "127.0.0.2" or "127.0.0.2-127.0.0.11"
//           (default ["127.0.0.2-127.0.0.255"]); each inside 127.0.0.0/8 and outside
//           127.255.255.0/24, the range lists use for errors ("you are querying too much")
//
// and, beside the lists, `pass_ttl` (seconds, 0..2592000, default 0 = off): the pass cache.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "filter_settings.h"
#include "ip_address.h"

namespace portcullis {

// An inclusive range of IPv4 addresses, as 32-bit numbers.
struct Ipv4Range {
  std::uint32_t first = 0;
  std::uint32_t last = 0;
  bool contains(std::uint32_t address) const { return address >= first && address <= last; }
};

struct DnsblList {
  std::string zone;
  std::int64_t weight = 1;
  std::vector<Ipv4Range> answers;
};

struct DnsblSettings {
  std::vector<DnsblList> lists;
  std::chrono::seconds pass_ttl{0};  // pass_ttl, 0..2592000 as pregreet's; 0: no pass cache
};

// At most this many lists (each one query per connection).
inline constexpr std::size_t dnsbl_max_lists = 32;

// Reads a [filter.dnsbl] block; every problem is appended to `errors`, naming its key
// ("list[1].answers[0]").
DnsblSettings read_dnsbl_settings(const SettingTable& table, std::vector<SettingError>& errors);

// An IPv4 address as a number (network order folded), for Ipv4Range.
std::uint32_t ipv4_number(const IpAddress& address);

}  // namespace portcullis
