#define BOOST_TEST_MODULE net_prefix
#include <boost/test/unit_test.hpp>

#include "net_address.h"
#include "net_prefix.h"

using portcullis::NetAddress;
using portcullis::NetPrefix;

namespace {
NetAddress ip(const char* text) {
  auto address = NetAddress::parse_ip(text);
  BOOST_REQUIRE_MESSAGE(address, text);
  return *address;
}
}  // namespace

BOOST_AUTO_TEST_CASE(ipv4_prefixes_match_by_bits) {
  auto net = NetPrefix::parse("192.0.2.0/24");
  BOOST_REQUIRE(net);
  BOOST_TEST(net->contains(ip("192.0.2.0")));
  BOOST_TEST(net->contains(ip("192.0.2.255")));
  BOOST_TEST(!net->contains(ip("192.0.3.0")));
  auto odd = NetPrefix::parse("10.0.0.128/25");
  BOOST_REQUIRE(odd);
  BOOST_TEST(odd->contains(ip("10.0.0.200")));
  BOOST_TEST(!odd->contains(ip("10.0.0.127")));
  BOOST_TEST(NetPrefix::parse("0.0.0.0/0")->contains(ip("203.0.113.9")));
}

BOOST_AUTO_TEST_CASE(a_bare_address_is_a_host_prefix) {
  auto host = NetPrefix::parse("127.0.0.1");
  BOOST_REQUIRE(host);
  BOOST_TEST(host->contains(ip("127.0.0.1")));
  BOOST_TEST(!host->contains(ip("127.0.0.2")));
  BOOST_TEST(host->to_string() == "127.0.0.1/32");
}

BOOST_AUTO_TEST_CASE(ipv6_prefixes_and_mapped_addresses) {
  auto net = NetPrefix::parse("2001:db8::/32");
  BOOST_REQUIRE(net);
  BOOST_TEST(net->contains(ip("2001:db8:ffff::1")));
  BOOST_TEST(!net->contains(ip("2001:db9::1")));
  BOOST_TEST(!net->contains(ip("192.0.2.1")));
  // An IPv4-mapped IPv6 peer is the IPv4 address it carries.
  BOOST_TEST(NetPrefix::parse("192.0.2.0/24")->contains(ip("::ffff:192.0.2.7")));
  BOOST_TEST(!NetPrefix::parse("::ffff:0:0/96")->contains(ip("192.0.2.7")));
}

BOOST_AUTO_TEST_CASE(bad_prefixes_are_refused) {
  for (const char* text : {"", "192.0.2.0/33", "2001:db8::/129", "192.0.2.0/", "192.0.2.0/x",
                           "192.0.2/24", "host.example/24", "192.0.2.0/24/1", "/24"}) {
    BOOST_TEST_CONTEXT(text) {
      BOOST_TEST(!NetPrefix::parse(text));
    }
  }
}
