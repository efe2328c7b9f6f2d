// IP address and network values for facts (client.ip) and policy lists.
//
// Self-contained on purpose: filters/api may not use proxy/ code. Parsing is strict
// (inet_pton: no leading zeros, no short forms such as "10.1", no IPv6 zone ids), so a value
// that parses here means one address only.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portcullis {

class IpAddress {
 public:
  enum class Family { v4, v6 };

  // Parses "192.0.2.1" or "2001:db8::1" (no brackets, no port, no zone id).
  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress v4(std::array<std::uint8_t, 4> bytes);
  static IpAddress v6(std::array<std::uint8_t, 16> bytes);

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::v4; }
  // Number of address bits: 32 or 128.
  unsigned bit_count() const { return is_v4() ? 32 : 128; }
  // Network-order bytes; only the first 4 are used for IPv4.
  const std::array<std::uint8_t, 16>& bytes() const { return bytes_; }

  // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as its IPv4 address; any other address as
  // itself. Matching and equality use this, so a dual-stack listener's mapped client
  // addresses still match IPv4 lists.
  IpAddress unmapped() const;

  // The address with every bit after the first `prefix_length` bits cleared.
  IpAddress masked(unsigned prefix_length) const;

  // Canonical text (inet_ntop): "192.0.2.1", "2001:db8::1".
  std::string to_string() const;

  // Equal after unmapping.
  bool same_address(const IpAddress& other) const;

  friend bool operator==(const IpAddress&, const IpAddress&) = default;

 private:
  IpAddress() = default;
  Family family_ = Family::v4;
  std::array<std::uint8_t, 16> bytes_{};
};

// A CIDR network: an address whose host bits are all zero plus a prefix length.
class IpNetwork {
 public:
  enum class ParseError { none, not_an_address, bad_prefix, host_bits_set };

  // Parses "192.0.2.0/24", "2001:db8::/32" or a bare address (a /32 or /128 network).
  // On failure returns nullopt and sets *error (when given).
  static std::optional<IpNetwork> parse(std::string_view text, ParseError* error = nullptr);
  static IpNetwork host(const IpAddress& address);

  const IpAddress& address() const { return address_; }
  unsigned prefix_length() const { return prefix_length_; }
  bool contains(const IpAddress& candidate) const;
  // "192.0.2.0/24"; a host network prints as its bare address.
  std::string to_string() const;

  friend bool operator==(const IpNetwork&, const IpNetwork&) = default;

 private:
  IpNetwork(IpAddress address, unsigned prefix_length)
      : address_(address), prefix_length_(prefix_length) {}
  IpAddress address_;
  unsigned prefix_length_;
};

}  // namespace portcullis
