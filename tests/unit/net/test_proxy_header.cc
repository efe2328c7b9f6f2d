#define BOOST_TEST_MODULE proxy_header
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "proxy_header.h"

using portcullis::NetAddress;
using portcullis::ProxyHeaderParser;
using Status = ProxyHeaderParser::Status;
using Result = ProxyHeaderParser::Result;

namespace {

using namespace std::string_literals;

// The v2 signature, written out byte by byte from the spec (section 2.2).
const std::string kSignature = "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"s;

// Signature, version/command byte, family byte, the 16-bit big-endian length of `rest`, `rest`.
std::string v2_header(unsigned char version_command, unsigned char family,
                      const std::string& rest) {
  std::string header = kSignature;
  header += static_cast<char>(version_command);
  header += static_cast<char>(family);
  header += static_cast<char>((rest.size() >> 8) & 0xFF);
  header += static_cast<char>(rest.size() & 0xFF);
  return header + rest;
}

// "ip port" of an address, read straight from the sockaddr with inet_ntop (independent of
// NetAddress's own text functions).
std::string endpoint_text(const NetAddress& address) {
  std::array<char, INET6_ADDRSTRLEN> text{};
  if (address.storage.ss_family == AF_INET) {
    BOOST_TEST(address.length == sizeof(sockaddr_in));
    sockaddr_in sin{};
    std::memcpy(&sin, &address.storage, sizeof sin);
    inet_ntop(AF_INET, &sin.sin_addr, text.data(), text.size());
    return std::string("4 ") + text.data() + " " + std::to_string(ntohs(sin.sin_port));
  }
  if (address.storage.ss_family == AF_INET6) {
    BOOST_TEST(address.length == sizeof(sockaddr_in6));
    sockaddr_in6 sin6{};
    std::memcpy(&sin6, &address.storage, sizeof sin6);
    inet_ntop(AF_INET6, &sin6.sin6_addr, text.data(), text.size());
    return std::string("6 ") + text.data() + " " + std::to_string(ntohs(sin6.sin6_port));
  }
  return "family " + std::to_string(address.storage.ss_family);
}

Result feed(std::string_view bytes) {
  return ProxyHeaderParser{}.feed(bytes);
}

// Checks the invariants every result must keep, whatever the input.
void check_shape(const Result& result, std::string_view input) {
  switch (result.status) {
    case Status::need_more:
      BOOST_TEST(result.consumed == 0u);
      BOOST_TEST(result.error.empty());
      BOOST_TEST(input.size() < ProxyHeaderParser::kMaxHeaderSize);
      break;
    case Status::error:
      BOOST_TEST(result.consumed == 0u);
      BOOST_TEST(!result.error.empty());
      break;
    case Status::done:
      BOOST_TEST(result.consumed > 0u);
      BOOST_TEST(result.consumed <= input.size());
      BOOST_TEST(result.error.empty());
      BOOST_TEST(result.source.has_value() == !result.local);
      BOOST_TEST(result.destination.has_value() == !result.local);
      break;
  }
}

// Feeds growing prefixes, as a listener receiving one byte per read would, and returns the first
// answer that is not need_more (or need_more if none is).
Result feed_byte_by_byte(std::string_view input) {
  for (size_t length = 0; length <= input.size(); ++length) {
    Result result = feed(input.substr(0, length));
    check_shape(result, input.substr(0, length));
    if (result.status != Status::need_more) return result;
  }
  return feed(input);
}

Result expect_done(std::string_view input) {
  Result result = feed(input);
  check_shape(result, input);
  BOOST_TEST((result.status == Status::done), "not done: " << result.error);
  return result;
}

std::string expect_error(std::string_view input) {
  Result result = feed(input);
  check_shape(result, input);
  BOOST_TEST((result.status == Status::error), "no error for input of " << input.size());
  return result.error;
}

void expect_need_more(std::string_view input) {
  Result result = feed(input);
  check_shape(result, input);
  BOOST_TEST((result.status == Status::need_more), "decided early: " << result.error);
}

// The IPv4 v2 header of the spec's layout, every byte written by hand:
// PROXY TCP/IPv4 from 192.0.2.1:56324 (0xDC04) to 198.51.100.2:25 (0x0019), length 12.
const std::string kV2Ipv4 = kSignature + "\x21\x11\x00\x0C"s + "\xC0\x00\x02\x01"s  // 192.0.2.1
                            + "\xC6\x33\x64\x02"s                                   // 198.51.100.2
                            + "\xDC\x04\x00\x19"s;  // ports 56324, 25

// PROXY TCP/IPv6 from [2001:db8::1]:50000 (0xC350) to [2001:db8::25]:587 (0x024B), length 36.
const std::string kV2Ipv6 = kSignature + "\x21\x21\x00\x24"s +
                            "\x20\x01\x0D\xB8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"s +
                            "\x20\x01\x0D\xB8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x25"s +
                            "\xC3\x50\x02\x4B"s;

// Three TLVs, 15 bytes: ALPN "h2" (type 1, length 2), an empty NOOP (type 4), UNIQUE_ID
// DE AD BE EF (type 5, length 4).
const std::string kTlvs = "\x01\x00\x02h2"s + "\x04\x00\x00"s + "\x05\x00\x04\xDE\xAD\xBE\xEF"s;

const std::string kV1Tcp4 = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n";

}  // namespace

// ---- v1 ----------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(v1_tcp4) {
  Result result = expect_done(kV1Tcp4);
  BOOST_TEST(result.consumed == 44u);  // 5+1+4+1+9+1+12+1+5+1+2+2
  BOOST_TEST(!result.local);
  BOOST_REQUIRE(result.source && result.destination);
  BOOST_TEST(endpoint_text(*result.source) == "4 192.0.2.1 56324");
  BOOST_TEST(endpoint_text(*result.destination) == "4 198.51.100.2 25");
}

BOOST_AUTO_TEST_CASE(v1_tcp4_extremes) {
  Result result = expect_done("PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n");
  BOOST_REQUIRE(result.source && result.destination);
  BOOST_TEST(endpoint_text(*result.source) == "4 255.255.255.255 65535");
  BOOST_TEST(endpoint_text(*result.destination) == "4 0.0.0.0 0");
}

BOOST_AUTO_TEST_CASE(v1_tcp6) {
  Result result = expect_done("PROXY TCP6 2001:db8::1 2001:DB8::25 50000 587\r\n");
  BOOST_TEST(result.consumed == 47u);  // 5+1+4+1+11+1+12+1+5+1+3+2
  BOOST_TEST(!result.local);
  BOOST_REQUIRE(result.source && result.destination);
  BOOST_TEST(endpoint_text(*result.source) == "6 2001:db8::1 50000");
  BOOST_TEST(endpoint_text(*result.destination) == "6 2001:db8::25 587");
}

BOOST_AUTO_TEST_CASE(v1_tcp6_longest_line_and_mapped_ipv4) {
  // The spec's longest TCP6 line: 104 octets.
  const std::string longest =
      "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  BOOST_TEST(longest.size() == 104u);
  BOOST_TEST(expect_done(longest).consumed == 104u);

  Result mapped = expect_done("PROXY TCP6 ::ffff:192.0.2.7 ::1 1 2\r\n");
  BOOST_REQUIRE(mapped.source && mapped.destination);
  // What a dual-stack load balancer sends for an IPv4 client: taken as the IPv4 client it is,
  // so XCLIENT says ADDR=192.0.2.7 (Postfix refuses ADDR=IPV6:192.0.2.7).
  BOOST_TEST(endpoint_text(*mapped.source) == "4 192.0.2.7 1");
  BOOST_TEST(endpoint_text(*mapped.destination) == "6 ::1 2");
}

BOOST_AUTO_TEST_CASE(v1_unknown) {
  Result short_form = expect_done("PROXY UNKNOWN\r\n");
  BOOST_TEST(short_form.consumed == 15u);
  BOOST_TEST(short_form.local);
  BOOST_TEST(!short_form.source.has_value());

  // The spec's worst case: 107 octets, the longest line a receiver must take.
  const std::string worst =
      "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  BOOST_TEST(worst.size() == 107u);
  Result long_form = expect_done(worst);
  BOOST_TEST(long_form.consumed == 107u);
  BOOST_TEST(long_form.local);

  // Whatever follows UNKNOWN up to the CRLF is ignored, even text that is not an address.
  Result junk = expect_done("PROXY UNKNOWN whatever \x01 1.2.3.999 x\r\nEHLO a\r\n");
  BOOST_TEST(junk.local);
  BOOST_TEST(junk.consumed == 38u);  // 13 + 23 + 2
}

BOOST_AUTO_TEST_CASE(v1_crlf_must_come_within_107_octets) {
  const std::string filler_91(91, 'x');
  // 6 + 7 + 1 + 91 + 2 = 107: the last octet that may hold the LF.
  BOOST_TEST(expect_done("PROXY UNKNOWN " + filler_91 + "\r\n").consumed == 107u);
  // One more octet: the LF would be the 108th.
  BOOST_TEST(!expect_error("PROXY UNKNOWN " + filler_91 + "x\r\n").empty());
  BOOST_TEST(!expect_error("PROXY UNKNOWN " + filler_91 + "x\r").empty());

  // A line without any line end: undecided up to 106 octets, an error at the 107th.
  const std::string endless = "PROXY UNKNOWN " + std::string(200, 'y');
  expect_need_more(std::string_view(endless).substr(0, 106));
  BOOST_TEST(!expect_error(std::string_view(endless).substr(0, 107)).empty());
  BOOST_TEST(!expect_error(endless).empty());
}

BOOST_AUTO_TEST_CASE(v1_line_ends) {
  // A lone LF, or a CR followed by anything but LF, never ends the line.
  BOOST_TEST(!expect_error("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\n").empty());
  BOOST_TEST(!expect_error("PROXY UNKNOWN\n").empty());
  BOOST_TEST(!expect_error("PROXY UNKNOWN abc\ndef\r\n").empty());
  BOOST_TEST(!expect_error("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\rX").empty());
  BOOST_TEST(!expect_error("PROXY UNKNOWN\r\r\n").empty());
  BOOST_TEST(!expect_error("PROXY UNKNOWN\r\0"s).empty());
  // A CR as the last byte received: the LF may still come.
  expect_need_more("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r");
  expect_need_more("PROXY UNKNOWN\r");
}

BOOST_AUTO_TEST_CASE(v1_bad_addresses) {
  const char* const lines[] = {
      "PROXY TCP4 192.0.2.256 198.51.100.2 56324 25\r\n",  // octet over 255
      "PROXY TCP4 192.0.2 198.51.100.2 56324 25\r\n",      // three octets
      "PROXY TCP4 192.0.2.1.5 198.51.100.2 56324 25\r\n",  // five octets
      "PROXY TCP4 192.0.02.1 198.51.100.2 56324 25\r\n",   // leading zero (octal confusion)
      "PROXY TCP4 192.0.2.1 198.51.100.2. 56324 25\r\n",   // trailing dot
      "PROXY TCP4 0x7f.0.0.1 198.51.100.2 56324 25\r\n",   // hex
      "PROXY TCP4 localhost 198.51.100.2 56324 25\r\n",    // a name
      "PROXY TCP4 192.0.2.1 1234567890123456 56324 25\r\n",
      "PROXY TCP6 2001:db8:::1 2001:db8::25 1 2\r\n",
      "PROXY TCP6 2001:db8::1::2 2001:db8::25 1 2\r\n",
      "PROXY TCP6 2001:db8::g 2001:db8::25 1 2\r\n",
      "PROXY TCP6 fe80::1%eth0 2001:db8::25 1 2\r\n",  // zone index
      "PROXY TCP6 [2001:db8::1] 2001:db8::25 1 2\r\n",
      "PROXY TCP6 1:2:3:4:5:6:7:8:9 2001:db8::25 1 2\r\n",
  };
  for (const char* line : lines) {
    BOOST_TEST_CONTEXT(line) {
      BOOST_TEST(!expect_error(line).empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(v1_family_mismatch) {
  BOOST_TEST(!expect_error("PROXY TCP4 2001:db8::1 2001:db8::25 1 2\r\n").empty());
  BOOST_TEST(!expect_error("PROXY TCP4 192.0.2.1 2001:db8::25 1 2\r\n").empty());
  BOOST_TEST(expect_error("PROXY TCP6 192.0.2.1 2001:db8::25 1 2\r\n") ==
             "v1 TCP6 source address is IPv4 text (family mismatch)");
  BOOST_TEST(!expect_error("PROXY TCP6 2001:db8::1 198.51.100.2 1 2\r\n").empty());
}

BOOST_AUTO_TEST_CASE(v1_bad_ports) {
  const char* const lines[] = {
      "PROXY TCP4 192.0.2.1 198.51.100.2 65536 25\r\n",  // one over the top
      "PROXY TCP4 192.0.2.1 198.51.100.2 99999 25\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 100000 25\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 056324 25\r\n",  // leading zero
      "PROXY TCP4 192.0.2.1 198.51.100.2 00 25\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 56324 025\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 +56324 25\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 -1 25\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 56324 0x19\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25a\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 56324 \r\n",  // empty destination port
  };
  for (const char* line : lines) {
    BOOST_TEST_CONTEXT(line) {
      BOOST_TEST(!expect_error(line).empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(v1_exact_syntax) {
  const char* const lines[] = {
      "PROXY  TCP4 192.0.2.1 198.51.100.2 56324 25\r\n",  // two spaces
      "PROXY TCP4  192.0.2.1 198.51.100.2 56324 25\r\n",
      "PROXY TCP4 192.0.2.1  198.51.100.2 56324 25\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2  56324 25\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 56324  25\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25 \r\n",    // trailing space
      "PROXY TCP4 192.0.2.1\t198.51.100.2 56324 25\r\n",    // tab
      "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25 26\r\n",  // a fifth field
      "PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",        // a field missing
      "PROXY TCP4 192.0.2.1\r\n",
      "PROXY TCP4\r\n",
      "PROXY TCP4 \r\n",
      "PROXY \r\n",
      "PROXY\r\n",
      "proxy TCP4 192.0.2.1 198.51.100.2 56324 25\r\n",  // lower case
      "Proxy TCP4 192.0.2.1 198.51.100.2 56324 25\r\n",
      "PROXY tcp4 192.0.2.1 198.51.100.2 56324 25\r\n",
      "PROXY unknown\r\n",
      "PROXY UNKNOWNX\r\n",
      "PROXY UDP4 192.0.2.1 198.51.100.2 56324 25\r\n",
      "PROXY TCP 192.0.2.1 198.51.100.2 56324 25\r\n",
      " PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n",
  };
  for (const char* line : lines) {
    BOOST_TEST_CONTEXT(line) {
      BOOST_TEST(!expect_error(line).empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(v1_errors_are_found_before_the_line_ends) {
  // Each of these can no longer become a valid line, so the parser says so without waiting for
  // a CRLF (or a timeout).
  const char* const doomed[] = {
      "PROXY X",
      "PROXY TCP44",
      "PROXY UNKNOWNX",
      "PROXY  ",
      "PROXY TCP4 :",
      "PROXY TCP4 1.2.3.999",  // no digit or dot added later makes 999 an octet
      "PROXY TCP4 1.2.3.256",
      "PROXY TCP4 1.2.3.4.",
      "PROXY TCP4 1..",
      "PROXY TCP4 01",
      "PROXY TCP4 2001",  // IPv6 text after TCP4: the fourth digit already makes it wrong
      "PROXY TCP6 2001:db8:::",
      "PROXY TCP6 1::2::",
      "PROXY TCP6 12345",
      "PROXY TCP6 ::1.2.3.4:",
      "PROXY TCP4 1.2.3.4 1.2.3.4 01",
      "PROXY TCP4 1.2.3.4 1.2.3.4 65536",
      "PROXY TCP4 1.2.3.4 1.2.3.4 1 2 ",
      "PROXY TCP4 1.2.3.999 ",
  };
  for (const char* prefix : doomed) {
    BOOST_TEST_CONTEXT(prefix) {
      BOOST_TEST(!expect_error(prefix).empty());
    }
  }
  // ...but what may still become valid waits.
  const char* const hopeful[] = {
      "PROXY TCP",
      "PROXY UNKNOW",
      "PROXY UNKNOWN",
      "PROXY UNKNOWN ",
      "PROXY TCP4 1.2.3.25",
      "PROXY TCP4 255.255.255.255",
      "PROXY TCP4 1.2.3.4 1.2.3.4 0",
      "PROXY TCP4 1.2.3.4 1.2.3.4 6553",
      "PROXY TCP4 1.2.3.4 1.2.3.4 1 ",
      "PROXY TCP6 ::ffff:1.2",
      "PROXY TCP6 2001:db8::",
  };
  for (const char* prefix : hopeful) {
    BOOST_TEST_CONTEXT(prefix) {
      expect_need_more(prefix);
    }
  }
}

// ---- v2 ----------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(v2_ipv4) {
  BOOST_TEST(kV2Ipv4.size() == 28u);
  Result result = expect_done(kV2Ipv4);
  BOOST_TEST(result.consumed == 28u);
  BOOST_TEST(!result.local);
  BOOST_REQUIRE(result.source && result.destination);
  BOOST_TEST(endpoint_text(*result.source) == "4 192.0.2.1 56324");
  BOOST_TEST(endpoint_text(*result.destination) == "4 198.51.100.2 25");
}

BOOST_AUTO_TEST_CASE(v2_ipv4_with_tlvs) {
  // Length 12 + 15 = 27 (0x1B).
  const std::string header = kSignature + "\x21\x11\x00\x1B"s + "\xC0\x00\x02\x01"s +
                             "\xC6\x33\x64\x02"s + "\xDC\x04\x00\x19"s + kTlvs;
  Result result = expect_done(header + "EHLO x\r\n");
  BOOST_TEST(result.consumed == 43u);
  BOOST_REQUIRE(result.source && result.destination);
  BOOST_TEST(endpoint_text(*result.source) == "4 192.0.2.1 56324");
  BOOST_TEST(endpoint_text(*result.destination) == "4 198.51.100.2 25");
}

BOOST_AUTO_TEST_CASE(v2_ipv6) {
  BOOST_TEST(kV2Ipv6.size() == 52u);
  Result result = expect_done(kV2Ipv6);
  BOOST_TEST(result.consumed == 52u);
  BOOST_TEST(!result.local);
  BOOST_REQUIRE(result.source && result.destination);
  BOOST_TEST(endpoint_text(*result.source) == "6 2001:db8::1 50000");
  BOOST_TEST(endpoint_text(*result.destination) == "6 2001:db8::25 587");
}

BOOST_AUTO_TEST_CASE(v2_ipv6_with_tlvs) {
  // AUTHORITY "mx.example" (type 2, length 10) then the three TLVs: 13 + 15 = 28 after the
  // 36-byte block, length 64 (0x40).
  const std::string header =
      kSignature + "\x21\x21\x00\x40"s + kV2Ipv6.substr(16) + "\x02\x00\x0Amx.example"s + kTlvs;
  BOOST_TEST(header.size() == 80u);
  Result result = expect_done(header + "\r\n\r\n");
  BOOST_TEST(result.consumed == 80u);
  BOOST_REQUIRE(result.source);
  BOOST_TEST(endpoint_text(*result.source) == "6 2001:db8::1 50000");
}

BOOST_AUTO_TEST_CASE(v2_local) {
  Result bare = expect_done(kSignature + "\x20\x00\x00\x00"s + "EHLO x\r\n");
  BOOST_TEST(bare.consumed == 16u);
  BOOST_TEST(bare.local);
  BOOST_TEST(!bare.source.has_value());
  BOOST_TEST(!bare.destination.has_value());

  // A health check may carry addresses anyway; LOCAL discards them, family included.
  Result with_addresses = expect_done(kSignature + "\x20\x11"s + kV2Ipv4.substr(14));
  BOOST_TEST(with_addresses.consumed == 28u);
  BOOST_TEST(with_addresses.local);
  Result odd_family = expect_done(kSignature + "\x20\x99\x00\x03xyz"s);
  BOOST_TEST(odd_family.consumed == 19u);
  BOOST_TEST(odd_family.local);
  Result with_tlvs = expect_done(v2_header(0x20, 0x00, kTlvs));
  BOOST_TEST(with_tlvs.consumed == 31u);
  BOOST_TEST(with_tlvs.local);
}

BOOST_AUTO_TEST_CASE(v2_unspec) {
  Result bare = expect_done(kSignature + "\x21\x00\x00\x00"s);
  BOOST_TEST(bare.consumed == 16u);
  BOOST_TEST(bare.local);
  BOOST_TEST(!bare.source.has_value());
  Result with_bytes = expect_done(kSignature + "\x21\x00\x00\x05"s + "abcde" + "QUIT\r\n");
  BOOST_TEST(with_bytes.consumed == 21u);
  BOOST_TEST(with_bytes.local);
}

BOOST_AUTO_TEST_CASE(v2_unix) {
  const std::string paths = std::string("/run/haproxy.sock") + std::string(91, '\0') +
                            std::string("/run/portcullis.sock") + std::string(88, '\0');
  BOOST_TEST(paths.size() == 216u);
  Result stream = expect_done(kSignature + "\x21\x31\x00\xD8"s + paths);  // 216 = 0xD8
  BOOST_TEST(stream.consumed == 232u);
  BOOST_TEST(stream.local);
  BOOST_TEST(!stream.source.has_value());
  Result datagram = expect_done(v2_header(0x21, 0x32, paths + kTlvs) + "EHLO x\r\n");
  BOOST_TEST(datagram.consumed == 247u);
  BOOST_TEST(datagram.local);
  // The UNIX block is 216 bytes; less is malformed.
  BOOST_TEST(!expect_error(kSignature + "\x21\x31\x00\x00"s).empty());
  BOOST_TEST(!expect_error(v2_header(0x21, 0x31, paths.substr(0, 215))).empty());
}

BOOST_AUTO_TEST_CASE(v2_bad_signature) {
  BOOST_TEST(!expect_error("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x58\x0A\x21\x11\x00\x0C"s)
                  .empty());  // QUIX
  BOOST_TEST(!expect_error("\r\n\r\nQUIT\r\n").empty());
  BOOST_TEST(!expect_error("\r\nQUIT\r\n").empty());
  BOOST_TEST(!expect_error("\n").empty());
  BOOST_TEST(!expect_error("\r\r").empty());
  // The signature decides at its first wrong byte: here the 11th.
  expect_need_more(kSignature.substr(0, 10));
  BOOST_TEST(!expect_error(kSignature.substr(0, 10) + "X").empty());
}

BOOST_AUTO_TEST_CASE(v2_version_must_be_2) {
  for (unsigned char version_command : {0x01, 0x11, 0x31, 0xF1, 0x10, 0x30}) {
    BOOST_TEST_CONTEXT("ver/cmd " << int(version_command)) {
      std::string header = kV2Ipv4;
      header[12] = static_cast<char>(version_command);
      BOOST_TEST(!expect_error(header).empty());
      // Decided on the 13th byte alone.
      BOOST_TEST(!expect_error(header.substr(0, 13)).empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(v2_command_must_be_local_or_proxy) {
  for (unsigned char version_command : {0x22, 0x23, 0x2F}) {
    BOOST_TEST_CONTEXT("ver/cmd " << int(version_command)) {
      std::string header = kV2Ipv4;
      header[12] = static_cast<char>(version_command);
      BOOST_TEST(!expect_error(header).empty());
      BOOST_TEST(!expect_error(header.substr(0, 13)).empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(v2_families) {
  // UDP is refused: we relay TCP only.
  BOOST_TEST(!expect_error(kSignature + "\x21\x12\x00\x0C"s + kV2Ipv4.substr(16)).empty());
  BOOST_TEST(!expect_error(kSignature + "\x21\x22\x00\x24"s + kV2Ipv6.substr(16)).empty());
  // Values the spec leaves undefined are refused, decided on the 14th byte.
  for (unsigned char family : {0x01, 0x02, 0x10, 0x13, 0x20, 0x30, 0x33, 0x41, 0xFF}) {
    BOOST_TEST_CONTEXT("family " << int(family)) {
      BOOST_TEST(!expect_error(kSignature + "\x21"s + static_cast<char>(family)).empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(v2_length_must_cover_the_addresses) {
  // IPv4 with 11 bytes, IPv6 with 35 or with the IPv4 block's 12: decided on the 16th byte.
  BOOST_TEST(!expect_error(kSignature + "\x21\x11\x00\x0B"s).empty());
  BOOST_TEST(!expect_error(kSignature + "\x21\x21\x00\x23"s).empty());
  BOOST_TEST(!expect_error(kSignature + "\x21\x21\x00\x0C"s + kV2Ipv4.substr(16)).empty());
  BOOST_TEST(!expect_error(kSignature + "\x21\x11\x00\x00"s).empty());
}

BOOST_AUTO_TEST_CASE(v2_length_cap) {
  // 1240 (0x04D8) is the most we take: 12 address bytes and a NOOP TLV of 1225 bytes.
  const std::string at_cap = kSignature + "\x21\x11\x04\xD8"s + kV2Ipv4.substr(16) +
                             "\x04\x04\xC9"s + std::string(1225, '\0');
  BOOST_TEST(at_cap.size() == 16u + 1240u);
  BOOST_TEST(expect_done(at_cap).consumed == 1256u);
  // 1241 is refused as soon as the length field is complete, without waiting for the body.
  BOOST_TEST(!expect_error(kSignature + "\x21\x11\x04\xD9"s).empty());
  BOOST_TEST(!expect_error(kSignature + "\x21\x11\xFF\xFF"s).empty());
  BOOST_TEST(!expect_error(kSignature + "\x20\x00\xFF\xFF"s).empty());
}

BOOST_AUTO_TEST_CASE(v2_tlv_framing) {
  // A TLV claiming 5 bytes with 2 left, and 1 or 2 bytes too few for a TLV header.
  BOOST_TEST(
      !expect_error(v2_header(0x21, 0x11, kV2Ipv4.substr(16) + "\x01\x00\x05"s + "ab")).empty());
  BOOST_TEST(!expect_error(v2_header(0x21, 0x11, kV2Ipv4.substr(16) + "\x01"s)).empty());
  BOOST_TEST(
      !expect_error(v2_header(0x21, 0x21, kV2Ipv6.substr(16) + kTlvs + "\x04\x00"s)).empty());
  // A TLV that ends exactly at the declared length is fine, its length high byte included.
  const std::string long_tlv = "\xE0\x01\x00"s + std::string(256, 'z');
  BOOST_TEST(expect_done(v2_header(0x21, 0x11, kV2Ipv4.substr(16) + long_tlv)).consumed ==
             16u + 12u + 259u);
}

BOOST_AUTO_TEST_CASE(v2_truncated_waits) {
  // A cut header is not an error by itself (the caller's timeout or EOF ends it), but it is
  // never taken as done.
  for (size_t length = 0; length < kV2Ipv4.size(); ++length) {
    BOOST_TEST_CONTEXT("length " << length) {
      expect_need_more(kV2Ipv4.substr(0, length));
    }
  }
  for (size_t length = 0; length < kV2Ipv6.size(); ++length) {
    BOOST_TEST_CONTEXT("length " << length) {
      expect_need_more(kV2Ipv6.substr(0, length));
    }
  }
}

// ---- both --------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(not_a_header_is_an_error_at_once) {
  Result smtp = feed("EHLO x\r\n");
  BOOST_TEST((smtp.status == Status::error));
  BOOST_TEST(!smtp.error.empty());
  // One byte is enough: "E" cannot start either header.
  BOOST_TEST((feed("E").status == Status::error));
  BOOST_TEST((feed("\x16\x03\x01").status == Status::error));  // a TLS ClientHello
  BOOST_TEST((feed("GET / HTTP/1.1\r\n").status == Status::error));
  BOOST_TEST((feed("PROXZ").status == Status::error));
  BOOST_TEST((feed(std::string_view("\0", 1)).status == Status::error));
  // Nothing yet, or the start of either header: undecided.
  expect_need_more("");
  expect_need_more("P");
  expect_need_more("PROXY");
  expect_need_more("PROXY ");
  expect_need_more("\r");
  expect_need_more("\r\n\r\n\0"s);
}

BOOST_AUTO_TEST_CASE(bytes_after_the_header_are_left) {
  const std::string smtp = "EHLO client.example\r\nMAIL FROM:<a@b.example>\r\n";
  for (const std::string& header : {kV1Tcp4, "PROXY UNKNOWN\r\n"s, kV2Ipv4, kV2Ipv6}) {
    BOOST_TEST_CONTEXT("header of " << header.size()) {
      const std::string stream = header + smtp;
      Result result = expect_done(stream);
      BOOST_TEST(result.consumed == header.size());
      BOOST_TEST(stream.substr(result.consumed) == smtp);
      // Even when what follows is itself a header.
      BOOST_TEST(expect_done(header + header).consumed == header.size());
    }
  }
}

BOOST_AUTO_TEST_CASE(byte_by_byte_gives_the_same_result) {
  const std::string paths(216, '\0');
  const std::vector<std::string> inputs = {
      kV1Tcp4,
      kV1Tcp4 + "EHLO x\r\n",
      "PROXY TCP6 2001:db8::1 2001:db8::25 50000 587\r\nQUIT\r\n",
      "PROXY UNKNOWN\r\n",
      "PROXY UNKNOWN what ever\r\nEHLO x\r\n",
      "PROXY UNKNOWN " + std::string(200, 'y'),
      "PROXY UNKNOWN " + std::string(92, 'y') + "\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\rX",
      "PROXY TCP4 192.0.2.256 198.51.100.2 56324 25\r\n",
      "PROXY TCP4 192.0.2.1 2001:db8::1 56324 25\r\n",
      "PROXY TCP6 192.0.2.1 2001:db8::1 56324 25\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 056324 25\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 65536 25\r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25 \r\n",
      "PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",
      "PROXY TCP4 192.0.2.1.x 198.51.100.2 56324 25\n",
      "PROXY  TCP4\r\n",
      "proxy TCP4 192.0.2.1 198.51.100.2 56324 25\r\n",
      "EHLO x\r\n",
      kV2Ipv4,
      kV2Ipv4 + "EHLO x\r\n",
      kV2Ipv6,
      v2_header(0x21, 0x11, kV2Ipv4.substr(16) + kTlvs) + "EHLO x\r\n",
      v2_header(0x20, 0x00, ""),
      v2_header(0x21, 0x31, paths),
      v2_header(0x21, 0x11, kV2Ipv4.substr(16) + "\x01\x00\x05"s + "ab"),
      kSignature + "\x11\x11\x00\x0C"s,
      kSignature + "\x2F\x11\x00\x0C"s,
      kSignature + "\x21\x12\x00\x0C"s + kV2Ipv4.substr(16),
      kSignature + "\x21\x11\x04\xD9"s,
      kSignature + "\x21\x11\x00\x0B"s,
      kV2Ipv4.substr(0, 20),
  };
  for (size_t index = 0; index < inputs.size(); ++index) {
    const std::string& input = inputs[index];
    BOOST_TEST_CONTEXT("input #" << index) {
      const Result whole = feed(input);
      check_shape(whole, input);
      const Result piecemeal = feed_byte_by_byte(input);
      BOOST_TEST((piecemeal.status == whole.status));
      BOOST_TEST(piecemeal.consumed == whole.consumed);
      BOOST_TEST(piecemeal.local == whole.local);
      BOOST_TEST(piecemeal.error == whole.error);
      BOOST_TEST(piecemeal.source.has_value() == whole.source.has_value());
      if (piecemeal.source && whole.source) {
        BOOST_TEST(endpoint_text(*piecemeal.source) == endpoint_text(*whole.source));
        BOOST_TEST(endpoint_text(*piecemeal.destination) == endpoint_text(*whole.destination));
      }
    }
  }
}
