// The PROXY protocol v2 header Portcullis writes to an upstream (pass_client = "proxy-v2").
#define BOOST_TEST_MODULE proxy_v2_writer
#include <boost/test/unit_test.hpp>

#include <initializer_list>
#include <string>

#include "net_address.h"
#include "proxy_v2_writer.h"

using portcullis::build_proxy_v2_header;
using portcullis::NetAddress;

// PROXY protocol v2 (haproxy proxy-protocol.txt section 2.2); expected bytes written by hand.

namespace {
std::string bytes(std::initializer_list<unsigned> values) {
  std::string out;
  for (unsigned v : values)
    out.push_back(static_cast<char>(v));
  return out;
}
const std::string v2_signature =
    bytes({0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A});
}  // namespace

BOOST_AUTO_TEST_CASE(proxy_v2_tcp4) {
  const auto header = build_proxy_v2_header(*NetAddress::parse_host_port("192.0.2.5:4242"),
                                            *NetAddress::parse_host_port("198.51.100.1:25"));
  const std::string expected = v2_signature + bytes({0x21, 0x11, 0x00, 0x0C,  //
                                                     0xC0, 0x00, 0x02, 0x05,  //
                                                     0xC6, 0x33, 0x64, 0x01,  //
                                                     0x10, 0x92, 0x00, 0x19});
  BOOST_TEST(header == expected);
  BOOST_TEST(header.size() == 28u);
}

BOOST_AUTO_TEST_CASE(proxy_v2_tcp6) {
  const auto header = build_proxy_v2_header(*NetAddress::parse_host_port("[2001:db8::5]:65535"),
                                            *NetAddress::parse_host_port("[2001:db8:ffff::1]:587"));
  const std::string expected =
      v2_signature + bytes({0x21, 0x21, 0x00, 0x24,  //
                            0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00, 0x00,
                            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,  //
                            0x20, 0x01, 0x0D, 0xB8, 0xFF, 0xFF, 0x00, 0x00,
                            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,  //
                            0xFF, 0xFF, 0x02, 0x4B});
  BOOST_TEST(header == expected);
  BOOST_TEST(header.size() == 52u);
}

BOOST_AUTO_TEST_CASE(proxy_v2_mixed_families_use_mapped_ipv6) {
  const auto header = build_proxy_v2_header(*NetAddress::parse_host_port("192.0.2.5:1"),
                                            *NetAddress::parse_host_port("[::1]:25"));
  const std::string expected =
      v2_signature + bytes({0x21, 0x21, 0x00, 0x24,  //
                            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                            0x00, 0x00, 0xFF, 0xFF, 0xC0, 0x00, 0x02, 0x05,  //
                            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,  //
                            0x00, 0x01, 0x00, 0x19});
  BOOST_TEST(header == expected);
}

BOOST_AUTO_TEST_CASE(proxy_v2_mapped_on_both_sides_is_tcp4) {
  // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; they are IPv4 clients.
  const auto header =
      build_proxy_v2_header(*NetAddress::parse_host_port("[::ffff:192.0.2.5]:4242"),
                            *NetAddress::parse_host_port("[::ffff:198.51.100.1]:25"));
  const std::string expected = v2_signature + bytes({0x21, 0x11, 0x00, 0x0C,  //
                                                     0xC0, 0x00, 0x02, 0x05,  //
                                                     0xC6, 0x33, 0x64, 0x01,  //
                                                     0x10, 0x92, 0x00, 0x19});
  BOOST_TEST(header == expected);
}

BOOST_AUTO_TEST_CASE(proxy_v2_unknown_family_is_unspec) {
  const auto header =
      build_proxy_v2_header(NetAddress{}, *NetAddress::parse_host_port("192.0.2.1:25"));
  BOOST_TEST(header == v2_signature + bytes({0x21, 0x00, 0x00, 0x00}));
}

BOOST_AUTO_TEST_CASE(proxy_v2_local_header_bytes) {
  // Signature, version 2 + LOCAL (0x20), UNSPEC (0x00), length 0: written out by hand.
  const std::string expected("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A\x20\x00\x00\x00",
                             16);
  BOOST_TEST(portcullis::build_proxy_v2_local_header() == expected);
}
