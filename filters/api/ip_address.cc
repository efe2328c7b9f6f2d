#include "ip_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace portcullis {

namespace {

// Longest textual IPv6 address is 45 characters (INET6_ADDRSTRLEN - 1).
constexpr std::size_t max_address_text = 45;

bool is_v4_mapped(const std::array<std::uint8_t, 16>& bytes) {
  for (int i = 0; i < 10; ++i) {
    if (bytes[i] != 0) return false;
  }
  return bytes[10] == 0xff && bytes[11] == 0xff;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  // SECURITY: inet_pton needs a NUL-terminated string; the copy is bounded by the longest
  // valid address, anything longer is refused before it is copied.
  if (text.empty() || text.size() > max_address_text) return std::nullopt;
  char buffer[max_address_text + 1];
  std::copy(text.begin(), text.end(), buffer);
  buffer[text.size()] = '\0';
  IpAddress address;
  if (inet_pton(AF_INET, buffer, address.bytes_.data()) == 1) {
    address.family_ = Family::v4;
    return address;
  }
  if (inet_pton(AF_INET6, buffer, address.bytes_.data()) == 1) {
    address.family_ = Family::v6;
    return address;
  }
  return std::nullopt;
}

IpAddress IpAddress::v4(std::array<std::uint8_t, 4> bytes) {
  IpAddress address;
  address.family_ = Family::v4;
  std::copy(bytes.begin(), bytes.end(), address.bytes_.begin());
  return address;
}

IpAddress IpAddress::v6(std::array<std::uint8_t, 16> bytes) {
  IpAddress address;
  address.family_ = Family::v6;
  address.bytes_ = bytes;
  return address;
}

IpAddress IpAddress::unmapped() const {
  if (is_v4() || !is_v4_mapped(bytes_)) return *this;
  return v4({bytes_[12], bytes_[13], bytes_[14], bytes_[15]});
}

IpAddress IpAddress::masked(unsigned prefix_length) const {
  IpAddress result = *this;
  const unsigned bits = bit_count();
  for (unsigned bit = std::min(prefix_length, bits); bit < bits; ++bit) {
    result.bytes_[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  }
  return result;
}

std::string IpAddress::to_string() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buffer, sizeof buffer);
  return buffer;
}

bool IpAddress::same_address(const IpAddress& other) const {
  return unmapped() == other.unmapped();
}

std::optional<IpNetwork> IpNetwork::parse(std::string_view text, ParseError* error) {
  auto fail = [error](ParseError why) -> std::optional<IpNetwork> {
    if (error != nullptr) *error = why;
    return std::nullopt;
  };
  const auto slash = text.find('/');
  const auto address = IpAddress::parse(text.substr(0, slash));
  if (!address) return fail(ParseError::not_an_address);
  if (slash == std::string_view::npos) {
    if (error != nullptr) *error = ParseError::none;
    return host(*address);
  }
  const std::string_view digits = text.substr(slash + 1);
  unsigned prefix = 0;
  // Digits only (no sign, no spaces) and at most three of them.
  if (digits.empty() || digits.size() > 3 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return fail(ParseError::bad_prefix);
  }
  std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
  if (prefix > address->bit_count()) return fail(ParseError::bad_prefix);
  if (!(address->masked(prefix) == *address)) return fail(ParseError::host_bits_set);
  if (error != nullptr) *error = ParseError::none;
  return IpNetwork(*address, prefix);
}

IpNetwork IpNetwork::host(const IpAddress& address) {
  return IpNetwork(address, address.bit_count());
}

bool IpNetwork::contains(const IpAddress& candidate) const {
  const IpAddress plain = candidate.unmapped();
  IpAddress network = address_.unmapped();
  unsigned prefix = prefix_length_;
  // A network written in IPv4-mapped form (::ffff:192.0.2.0/120) is an IPv4 network.
  if (!address_.is_v4() && network.is_v4()) prefix = prefix >= 96 ? prefix - 96 : 0;
  if (plain.family() != network.family()) return false;
  return plain.masked(prefix) == network;
}

std::string IpNetwork::to_string() const {
  if (prefix_length_ == address_.bit_count()) return address_.to_string();
  return address_.to_string() + "/" + std::to_string(prefix_length_);
}

}  // namespace portcullis
