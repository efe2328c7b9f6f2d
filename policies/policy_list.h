// [lists] of a policy: entries (CIDR, address, domain, =domain) and matching.
//
// Entry kinds are inferred from each entry's text (docs/policy-language.md):
//   192.0.2.0/24, 2001:db8::/32, 192.0.2.7, ::1   a network (a bare address is a /32 or /128)
//   user@example.org                            an address
//   example.org                                 a domain: itself and every subdomain
//   =example.org                                only that domain
// Matching is ASCII case-insensitive. A list is immutable once built and shared by the rules
// that name it (and by every session using the policy).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ip_address.h"

namespace portcullis::policy {

struct ListEntry {
  enum class Kind { network, address, domain, exact_domain };
  Kind kind = Kind::domain;
  // As written in the policy (trimmed), for traces.
  std::string text;
  // Lower-cased value: the address or the domain (without '=' and a trailing dot).
  std::string value;
  std::optional<IpNetwork> network;
  // Where it was written: "file:line".
  std::string location;
};

// Parses one entry. On failure returns nullopt and a message ("'x' is not ...").
std::optional<ListEntry> parse_list_entry(std::string_view text, std::string* error);

// The longest entry accepted (a domain is at most 253 bytes, an address 254 as in RFC 5321's
// path limit; a little room for "=" and a prefix).
inline constexpr std::size_t max_list_entry_length = 320;

// An entry as error messages show it: in single quotes, its first quoted_entry_length bytes
// at most (then "..."), anything but printable ASCII (and ' and \) as \xNN.
inline constexpr std::size_t quoted_entry_length = 24;
std::string quoted_entry(std::string_view text);

class NamedList {
 public:
  NamedList(std::string name, std::string location, std::vector<ListEntry> entries);

  const std::string& name() const { return name_; }
  // Where the list is defined: "file:line".
  const std::string& location() const { return location_; }
  const std::vector<ListEntry>& entries() const { return entries_; }

  bool empty() const { return entries_.empty(); }
  bool has_networks() const { return network_count_ > 0; }
  bool has_names() const { return entries_.size() > network_count_; }

  // The most specific network entry containing the address, or nullptr.
  const ListEntry* match_ip(const IpAddress& address) const;
  // For a value with '@': an address entry equal to it, else a domain entry matching the part
  // after the last '@'. Without '@': a domain entry matching the value. nullptr when none.
  const ListEntry* match_string(std::string_view value) const;

 private:
  const ListEntry* match_domain(std::string_view domain) const;

  std::string name_;
  std::string location_;
  std::vector<ListEntry> entries_;
  std::size_t network_count_ = 0;
  // Keys: lower-cased values; values: index into entries_ (the first entry wins).
  std::unordered_map<std::string, std::size_t> addresses_;
  std::unordered_map<std::string, std::size_t> domains_;
  std::unordered_map<std::string, std::size_t> exact_domains_;
  // Network key: family byte, prefix length, masked address bytes.
  std::unordered_map<std::string, std::size_t> networks_;
  // Prefix lengths present, per family (index 0: IPv4, 1: IPv6), longest first.
  std::set<unsigned, std::greater<>> prefix_lengths_[2];
};

}  // namespace portcullis::policy
