#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "net_address.h"

namespace portcullis {

// An address prefix ("192.0.2.0/24", "2001:db8::/32", or a bare address = a host prefix).
// IPv4-mapped IPv6 addresses match IPv4 prefixes.
class NetPrefix {
 public:
  static std::optional<NetPrefix> parse(std::string_view text);
  bool contains(const NetAddress& address) const;
  std::string to_string() const;

 private:
  bool ipv6_ = false;
  unsigned char bytes_[16]{};
  unsigned bits_ = 0;
};

}  // namespace portcullis
