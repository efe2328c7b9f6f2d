#include "net_prefix.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <fmt/format.h>
#include <charconv>
#include <cstring>

namespace portcullis {

namespace {

// The address as 4 or 16 bytes, IPv4-mapped IPv6 folded to IPv4.
bool address_bytes(const NetAddress& address, unsigned char out[16], bool* ipv6) {
  if (address.storage.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address.storage);
    std::memcpy(out, &v4->sin_addr, 4);
    *ipv6 = false;
    return true;
  }
  if (address.storage.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address.storage);
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
      std::memcpy(out, v6->sin6_addr.s6_addr + 12, 4);
      *ipv6 = false;
    } else {
      std::memcpy(out, v6->sin6_addr.s6_addr, 16);
      *ipv6 = true;
    }
    return true;
  }
  return false;
}

}  // namespace

std::optional<NetPrefix> NetPrefix::parse(std::string_view text) {
  std::string_view address_text = text;
  std::optional<unsigned> bits;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    address_text = text.substr(0, slash);
    std::string_view bits_text = text.substr(slash + 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(bits_text.data(), bits_text.data() + bits_text.size(), value);
    if (bits_text.empty() || ec != std::errc() || end != bits_text.data() + bits_text.size()) {
      return std::nullopt;
    }
    bits = value;
  }
  NetPrefix prefix;
  std::string address(address_text);
  if (inet_pton(AF_INET, address.c_str(), prefix.bytes_) == 1) {
    prefix.ipv6_ = false;
    prefix.bits_ = bits.value_or(32);
    if (prefix.bits_ > 32) return std::nullopt;
  } else if (inet_pton(AF_INET6, address.c_str(), prefix.bytes_) == 1) {
    prefix.ipv6_ = true;
    prefix.bits_ = bits.value_or(128);
    if (prefix.bits_ > 128) return std::nullopt;
  } else {
    return std::nullopt;
  }
  return prefix;
}

bool NetPrefix::contains(const NetAddress& address) const {
  unsigned char candidate[16]{};
  bool ipv6 = false;
  if (!address_bytes(address, candidate, &ipv6) || ipv6 != ipv6_) return false;
  unsigned full_bytes = bits_ / 8;
  if (std::memcmp(candidate, bytes_, full_bytes) != 0) return false;
  unsigned rest = bits_ % 8;
  if (rest == 0) return true;
  auto mask = static_cast<unsigned char>(0xFF << (8 - rest));
  return (candidate[full_bytes] & mask) == (bytes_[full_bytes] & mask);
}

std::string NetPrefix::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(ipv6_ ? AF_INET6 : AF_INET, bytes_, text, sizeof text);
  return fmt::format("{}/{}", text, bits_);
}

}  // namespace portcullis
