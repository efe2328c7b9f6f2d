#include "proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

namespace portcullis {
namespace {

using Result = ProxyHeaderParser::Result;
using Status = ProxyHeaderParser::Status;

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::string_view kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);  // has a NUL: sized view

constexpr size_t kIpv4AddressBlock = 2 * 4 + 2 * 2;
constexpr size_t kIpv6AddressBlock = 2 * 16 + 2 * 2;
constexpr size_t kUnixAddressBlock = 2 * 108;
constexpr size_t kTlvHeaderLength = 3;  // type, 16-bit length

// The longest text inet_pton accepts for each family ("255.255.255.255",
// "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255").
constexpr size_t kMaxIpv4TextLength = 15;
constexpr size_t kMaxIpv6TextLength = 45;
static_assert(std::string_view("255.255.255.255").size() == kMaxIpv4TextLength);
static_assert(std::string_view("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255").size() ==
              kMaxIpv6TextLength);

Result need_more() {
  return {};
}

Result fail(std::string why) {
  Result result;
  result.status = Status::error;
  result.error = std::move(why);
  return result;
}

Result keep_real_endpoints(size_t consumed) {
  Result result;
  result.status = Status::done;
  result.consumed = consumed;
  result.local = true;
  return result;
}

Result announced_endpoints(size_t consumed, NetAddress source, NetAddress destination) {
  Result result;
  result.status = Status::done;
  result.consumed = consumed;
  result.source = source;
  result.destination = destination;
  return result;
}

// True while `bytes` can still be (or already is) the start of something beginning with
// `expected`.
bool may_start_with(std::string_view bytes, std::string_view expected) {
  const size_t common = std::min(bytes.size(), expected.size());
  return bytes.substr(0, common) == expected.substr(0, common);
}

unsigned byte_at(std::string_view bytes, size_t index) {
  return static_cast<unsigned char>(bytes[index]);
}

uint16_t big_endian_16(std::string_view bytes, size_t index) {
  return static_cast<uint16_t>(byte_at(bytes, index) << 8 | byte_at(bytes, index + 1));
}

std::string hex_byte(unsigned value) {
  constexpr std::string_view kDigits = "0123456789abcdef";
  return std::string("0x") + kDigits[(value >> 4) & 0x0F] + kDigits[value & 0x0F];
}

// `ip` holds 4 (AF_INET) or 16 (AF_INET6) bytes in network order, as both inet_pton and the v2
// address block give them.
NetAddress make_address(int family, const unsigned char* ip, uint16_t port) {
  NetAddress address;
  if (family == AF_INET) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    std::memcpy(&sin.sin_addr, ip, 4);
    sin.sin_port = htons(port);
    std::memcpy(&address.storage, &sin, sizeof sin);
    address.length = sizeof sin;
  } else {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    std::memcpy(&sin6.sin6_addr, ip, 16);
    sin6.sin6_port = htons(port);
    std::memcpy(&address.storage, &sin6, sizeof sin6);
    address.length = sizeof sin6;
  }
  return address.without_ipv4_mapping();
}

// ---- v1 --------------------------------------------------------------------------------------

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_hex_digit(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

struct V1Endpoint {
  std::array<unsigned char, 16> ip{};
  uint16_t port = 0;
};

// What the text of a v1 line says so far. Every check runs left to right and reports the first
// position that makes the line invalid, so a prefix of a line fails with the same words as the
// whole line does: feeding byte by byte and all at once agree.
struct V1Check {
  std::string error;  // empty: nothing wrong (yet)
  bool local = false;
  std::optional<NetAddress> source, destination;
};

// The first problem, left to right, after which `text` can no longer grow into a dotted quad
// inet_pton takes (four decimal octets 0-255, no leading zeros); "" if there is none.
std::string_view ipv4_prefix_problem(std::string_view text) {
  size_t dots = 0;
  size_t digits = 0;
  unsigned octet = 0;
  for (const char c : text) {
    if (c == '.') {
      if (digits == 0) return "an empty octet";
      if (++dots > 3) return "more than four octets";
      digits = 0;
      octet = 0;
    } else if (is_digit(c)) {
      if (digits == 1 && octet == 0) return "a leading zero";
      // SECURITY: stops at the first octet over 255, so at most 3 digits per octet and at most
      // kMaxIpv4TextLength characters get past this loop.
      octet = octet * 10 + static_cast<unsigned>(c - '0');
      ++digits;
      if (octet > 255) return "an octet over 255";
    } else {
      return "a character that is not a digit or a dot";
    }
  }
  return {};
}

// The same for IPv6 text, less completely: characters, group length, one "::", the dotted IPv4
// tail last and the length. What else is wrong is found by inet_pton once the field ends.
std::string_view ipv6_prefix_problem(std::string_view text) {
  size_t hex_run = 0;
  bool seen_double_colon = false;
  bool in_ipv4_tail = false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i >= kMaxIpv6TextLength) return "too many characters";
    const char c = text[i];
    if (in_ipv4_tail && !is_digit(c) && c != '.') return "text after its dotted IPv4 part";
    if (c == ':') {
      if (i > 0 && text[i - 1] == ':') {
        if (seen_double_colon) return "more than one \"::\"";
        seen_double_colon = true;
      }
      hex_run = 0;
    } else if (c == '.') {
      in_ipv4_tail = true;
      hex_run = 0;
    } else if (is_hex_digit(c)) {
      if (++hex_run > 4) return "a group of more than four digits";
    } else {
      return "a character that is not a hex digit, colon or dot";
    }
  }
  return {};
}

// `whole`: a space or the line end follows, so the field is finished; otherwise it may grow and
// only what cannot become valid is an error.
std::string check_v1_address(std::string_view field, int family, bool whole, std::string_view role,
                             V1Endpoint& endpoint) {
  const bool ipv4 = family == AF_INET;
  const auto complaint = [&](std::string_view what) {
    return std::string("v1 ") + (ipv4 ? "TCP4 " : "TCP6 ") + std::string(role) + " address " +
           std::string(what);
  };
  const std::string_view problem = ipv4 ? ipv4_prefix_problem(field) : ipv6_prefix_problem(field);
  if (!problem.empty()) return complaint("has " + std::string(problem));
  if (!whole) return {};
  if (field.empty()) return complaint("is empty (extra space?)");
  // SECURITY: the prefix checks above bound field.size() by kMaxIpv4TextLength or
  // kMaxIpv6TextLength, so it fits with its NUL.
  std::array<char, kMaxIpv6TextLength + 1> text{};
  std::memcpy(text.data(), field.data(), field.size());
  if (inet_pton(family, text.data(), endpoint.ip.data()) == 1) return {};
  std::array<unsigned char, 16> ignored{};
  if (inet_pton(ipv4 ? AF_INET6 : AF_INET, text.data(), ignored.data()) == 1) {
    return complaint(ipv4 ? "is IPv6 text (family mismatch)" : "is IPv4 text (family mismatch)");
  }
  return complaint(ipv4 ? "is not valid IPv4 text" : "is not valid IPv6 text");
}

std::string check_v1_port(std::string_view field, bool whole, std::string_view role,
                          V1Endpoint& endpoint) {
  uint32_t value = 0;
  for (size_t i = 0; i < field.size(); ++i) {
    if (!is_digit(field[i])) return "v1 " + std::string(role) + " port is not a decimal number";
    if (i == 1 && field[0] == '0') return "v1 " + std::string(role) + " port has a leading zero";
    // SECURITY: stops at the first digit past 65535, so value never exceeds 655359.
    value = value * 10 + static_cast<uint32_t>(field[i] - '0');
    if (value > 65535) return "v1 " + std::string(role) + " port out of range";
  }
  if (whole && field.empty()) return "v1 " + std::string(role) + " port empty (extra space?)";
  endpoint.port = static_cast<uint16_t>(value);
  return {};
}

// `text`: the line after "PROXY " up to (not including) its CR, or all of it received so far when
// `line_complete` is false.
V1Check check_v1(std::string_view text, bool line_complete) {
  V1Check check;
  const size_t keyword_end = text.find(' ');
  const std::string_view keyword = text.substr(0, keyword_end);
  if (keyword_end == std::string_view::npos && !line_complete) {
    for (std::string_view candidate : {"TCP4", "TCP6", "UNKNOWN"}) {
      if (candidate.starts_with(keyword)) return check;
    }
    check.error = "v1 protocol is not TCP4, TCP6 or UNKNOWN";
    return check;
  }
  if (keyword == "UNKNOWN") {
    // Spec 2.1: the receiver must ignore anything between UNKNOWN and the CRLF.
    check.local = true;
    return check;
  }
  int family = 0;
  if (keyword == "TCP4") {
    family = AF_INET;
  } else if (keyword == "TCP6") {
    family = AF_INET6;
  } else {
    check.error = "v1 protocol is not TCP4, TCP6 or UNKNOWN";
    return check;
  }
  if (keyword_end == std::string_view::npos) {
    check.error = "v1 line ends after " + std::string(keyword);
    return check;
  }

  constexpr std::array<std::string_view, 4> kRoles = {"source", "destination", "source",
                                                      "destination"};
  std::array<V1Endpoint, 2> endpoints;
  std::string_view rest = text.substr(keyword_end + 1);
  size_t field_index = 0;  // source address, destination address, source port, destination port
  for (;;) {
    const size_t space = rest.find(' ');
    const std::string_view field = rest.substr(0, space);
    const bool whole = space != std::string_view::npos || line_complete;
    if (field_index >= kRoles.size()) {
      check.error = "v1 line goes on after the destination port";
      return check;
    }
    check.error =
        field_index < 2
            ? check_v1_address(field, family, whole, kRoles[field_index], endpoints[field_index])
            : check_v1_port(field, whole, kRoles[field_index], endpoints[field_index - 2]);
    if (!check.error.empty()) return check;
    if (space == std::string_view::npos) break;
    rest = rest.substr(space + 1);
    ++field_index;
  }
  if (!line_complete) return check;
  if (field_index + 1 < kRoles.size()) {
    check.error = "v1 line ends before the destination port";
    return check;
  }
  check.source = make_address(family, endpoints[0].ip.data(), endpoints[0].port);
  check.destination = make_address(family, endpoints[1].ip.data(), endpoints[1].port);
  return check;
}

Result v1_result(size_t consumed, V1Check check) {
  if (check.local) return keep_real_endpoints(consumed);
  return announced_endpoints(consumed, *check.source, *check.destination);
}

// `bytes` starts with "PROXY ".
// SECURITY: looks at no more than kMaxV1LineLength bytes (a CR whose LF would be the 108th octet
// is an error before the LF is looked at); address text is copied only into a fixed buffer after
// its length is bounded.
Result parse_v1(std::string_view bytes) {
  const size_t start = kV1Prefix.size();
  const size_t scan_end = std::min(bytes.size(), ProxyHeaderParser::kMaxV1LineLength);
  for (size_t i = start; i < scan_end; ++i) {
    const std::string_view text = bytes.substr(start, i - start);
    if (bytes[i] == '\n') {
      V1Check check = check_v1(text, false);
      return fail(check.error.empty() ? "v1 line has a LF without CR" : check.error);
    }
    if (bytes[i] != '\r') continue;
    V1Check check = check_v1(text, true);
    if (!check.error.empty()) return fail(check.error);
    if (i + 2 > ProxyHeaderParser::kMaxV1LineLength)
      return fail("v1 line has no CRLF in 107 octets");
    if (i + 1 == bytes.size()) return need_more();
    if (bytes[i + 1] != '\n') return fail("v1 line has a CR not followed by LF");
    return v1_result(i + 2, std::move(check));
  }
  V1Check check = check_v1(bytes.substr(start, scan_end - start), false);
  if (!check.error.empty()) return fail(check.error);
  if (bytes.size() >= ProxyHeaderParser::kMaxV1LineLength) {
    return fail("v1 line has no CRLF in 107 octets");
  }
  return need_more();
}

// ---- v2 --------------------------------------------------------------------------------------

// Walks the TLVs (type, 16-bit length, value) that follow the address block.
std::string check_tlvs(std::string_view tlvs) {
  while (!tlvs.empty()) {
    if (tlvs.size() < kTlvHeaderLength) return "v2 TLV header cut off by the declared length";
    const size_t value_length = big_endian_16(tlvs, 1);
    if (value_length > tlvs.size() - kTlvHeaderLength) {
      return "v2 TLV longer than the declared length";
    }
    tlvs.remove_prefix(kTlvHeaderLength + value_length);
  }
  return {};
}

// `bytes` starts with the whole 12-byte signature.
// SECURITY: every decision is made from the 16 fixed bytes before the body is looked at; the
// body is read only once all of it is present and its length is at most kMaxV2DeclaredLength.
Result parse_v2(std::string_view bytes) {
  if (bytes.size() < 13) return need_more();
  const unsigned version = byte_at(bytes, 12) >> 4;
  const unsigned command = byte_at(bytes, 12) & 0x0F;
  if (version != 2) return fail("v2 version " + std::to_string(version) + " is not 2");
  if (command > 1) {
    return fail("v2 command " + std::to_string(command) + " is neither LOCAL nor PROXY");
  }
  const bool proxy_command = command == 1;

  if (bytes.size() < 14) return need_more();
  const unsigned family_transport = byte_at(bytes, 13);
  int family = 0;            // AF_INET / AF_INET6 when the addresses are taken
  size_t address_block = 0;  // > 0: the block is parsed and TLVs follow it
  if (proxy_command) {
    switch (family_transport) {
      case 0x11:
        family = AF_INET;
        address_block = kIpv4AddressBlock;
        break;
      case 0x21:
        family = AF_INET6;
        address_block = kIpv6AddressBlock;
        break;
      case 0x31:
      case 0x32:
        address_block = kUnixAddressBlock;
        break;
      case 0x00:
        break;
      case 0x12:
      case 0x22:
        return fail("v2 announces UDP (" + hex_byte(family_transport) + "); only TCP is relayed");
      default:
        return fail("v2 family/transport " + hex_byte(family_transport) + " is not defined");
    }
  }

  if (bytes.size() < ProxyHeaderParser::kV2FixedLength) return need_more();
  const size_t declared = big_endian_16(bytes, 14);
  if (declared > ProxyHeaderParser::kMaxV2DeclaredLength) {
    return fail("v2 declared length " + std::to_string(declared) + " is over our limit of " +
                std::to_string(ProxyHeaderParser::kMaxV2DeclaredLength));
  }
  if (declared < address_block) {
    return fail("v2 declared length " + std::to_string(declared) + " is shorter than the " +
                std::to_string(address_block) + "-byte address block");
  }
  const size_t total = ProxyHeaderParser::kV2FixedLength + declared;
  if (bytes.size() < total) return need_more();

  const std::string_view body = bytes.substr(ProxyHeaderParser::kV2FixedLength, declared);
  if (address_block > 0) {
    if (std::string error = check_tlvs(body.substr(address_block)); !error.empty()) {
      return fail(std::move(error));
    }
  }
  if (family == 0) return keep_real_endpoints(total);

  const size_t ip_length = family == AF_INET ? 4 : 16;
  const auto* ip = reinterpret_cast<const unsigned char*>(body.data());
  const size_t ports = 2 * ip_length;
  return announced_endpoints(total, make_address(family, ip, big_endian_16(body, ports)),
                             make_address(family, ip + ip_length, big_endian_16(body, ports + 2)));
}

}  // namespace

ProxyHeaderParser::Result ProxyHeaderParser::feed(std::string_view bytes_so_far) const {
  if (may_start_with(bytes_so_far, kV1Prefix)) {
    if (bytes_so_far.size() < kV1Prefix.size()) return need_more();
    return parse_v1(bytes_so_far);
  }
  if (may_start_with(bytes_so_far, kV2Signature)) {
    if (bytes_so_far.size() < kV2Signature.size()) return need_more();
    return parse_v2(bytes_so_far);
  }
  return fail("neither a PROXY v1 line nor the v2 signature");
}

}  // namespace portcullis
