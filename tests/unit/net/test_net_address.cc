#define BOOST_TEST_MODULE net_address
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <string>

#include "net_address.h"

using portcullis::NetAddress;

BOOST_AUTO_TEST_CASE(parses_ipv4_host_port) {
  const auto address = NetAddress::parse_host_port("192.0.2.1:25");
  BOOST_REQUIRE(address);
  BOOST_TEST(!address->is_ipv6());
  BOOST_TEST(address->sa()->sa_family == AF_INET);
  BOOST_TEST(address->length == sizeof(sockaddr_in));
  BOOST_TEST(address->ip() == "192.0.2.1");
  BOOST_TEST(address->port() == 25);
  const auto* raw = reinterpret_cast<const sockaddr_in*>(address->sa());
  BOOST_TEST(ntohl(raw->sin_addr.s_addr) == 0xC0000201u);
  BOOST_TEST(ntohs(raw->sin_port) == 25);
}

BOOST_AUTO_TEST_CASE(parses_ipv6_host_port) {
  const auto address = NetAddress::parse_host_port("[2001:db8::1]:10025");
  BOOST_REQUIRE(address);
  BOOST_TEST(address->is_ipv6());
  BOOST_TEST(address->length == sizeof(sockaddr_in6));
  BOOST_TEST(address->ip() == "2001:db8::1");
  BOOST_TEST(address->port() == 10025);
  const auto* raw = reinterpret_cast<const sockaddr_in6*>(address->sa());
  BOOST_TEST(raw->sin6_addr.s6_addr[0] == 0x20);
  BOOST_TEST(raw->sin6_addr.s6_addr[1] == 0x01);
  BOOST_TEST(raw->sin6_addr.s6_addr[15] == 0x01);
}

BOOST_AUTO_TEST_CASE(parses_edge_ports_and_wildcards) {
  const auto low = NetAddress::parse_host_port("0.0.0.0:0");
  BOOST_REQUIRE(low);
  BOOST_TEST(low->port() == 0);
  const auto high = NetAddress::parse_host_port("[::]:65535");
  BOOST_REQUIRE(high);
  BOOST_TEST(high->port() == 65535);
  BOOST_TEST(high->ip() == "::");
}

BOOST_AUTO_TEST_CASE(refuses_bad_forms) {
  for (const char* text : {"1.2.3.4",
                           "1.2.3.4:99999",
                           "[::1]",
                           "host:25",
                           "::1:25",
                           "",
                           ":25",
                           "1.2.3.4:",
                           "1.2.3.4:-1",
                           "1.2.3.4:+25",
                           "1.2.3.4: 25",
                           " 1.2.3.4:25",
                           "1.2.3.4:25 ",
                           "1.2.3:25",
                           "1.2.3.4.5:25",
                           "256.1.1.1:25",
                           "[::1]25",
                           "[::1]:",
                           "[::1:25",
                           "[1.2.3.4]:25",
                           "[fe80::1%eth0]:25",
                           "localhost:25",
                           "1.2.3.4:65536",
                           "1.2.3.4:123456",
                           "[2001:db8::1]:25:25"}) {
    BOOST_TEST_CONTEXT("text '" << text << "'") {
      BOOST_TEST(!NetAddress::parse_host_port(text).has_value());
    }
  }
}

BOOST_AUTO_TEST_CASE(host_port_round_trips) {
  for (const char* text : {"192.0.2.1:25", "127.0.0.1:10025", "[2001:db8::1]:25", "[::1]:587",
                           "[2001:db8:0:1:2:3:4:5]:465", "0.0.0.0:0"}) {
    BOOST_TEST_CONTEXT("text '" << text << "'") {
      const auto address = NetAddress::parse_host_port(text);
      BOOST_REQUIRE(address);
      BOOST_TEST(address->host_port() == text);
    }
  }
}

BOOST_AUTO_TEST_CASE(host_port_is_canonical) {
  // inet_ntop's RFC 5952 form: lower case, longest zero run compressed.
  const auto address = NetAddress::parse_host_port("[2001:DB8:0:0:0:0:0:1]:25");
  BOOST_REQUIRE(address);
  BOOST_TEST(address->host_port() == "[2001:db8::1]:25");
}

BOOST_AUTO_TEST_CASE(parse_ip_takes_no_port) {
  const auto ipv4 = NetAddress::parse_ip("198.51.100.7", 4242);
  BOOST_REQUIRE(ipv4);
  BOOST_TEST(ipv4->host_port() == "198.51.100.7:4242");
  const auto ipv6 = NetAddress::parse_ip("2001:db8::7");
  BOOST_REQUIRE(ipv6);
  BOOST_TEST(ipv6->host_port() == "[2001:db8::7]:0");
  BOOST_TEST(!NetAddress::parse_ip("198.51.100.7:25").has_value());
  BOOST_TEST(!NetAddress::parse_ip("[2001:db8::7]").has_value());
  BOOST_TEST(!NetAddress::parse_ip("example.org").has_value());
  BOOST_TEST(!NetAddress::parse_ip("").has_value());
}

BOOST_AUTO_TEST_CASE(ipv4_mapped_ipv6_shows_as_ipv4) {
  const auto address = NetAddress::parse_host_port("[::ffff:192.0.2.9]:2525");
  BOOST_REQUIRE(address);
  BOOST_TEST(address->is_ipv6());
  BOOST_TEST(address->ip() == "192.0.2.9");
  BOOST_TEST(address->host_port() == "192.0.2.9:2525");
  BOOST_TEST(address->client_key() == "192.0.2.9");
}

BOOST_AUTO_TEST_CASE(client_key_is_address_or_slash_64) {
  BOOST_TEST(NetAddress::parse_host_port("203.0.113.77:1")->client_key() == "203.0.113.77");
  BOOST_TEST(NetAddress::parse_host_port("[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:1")->client_key() ==
             "2001:db8:1:2::/64");
  BOOST_TEST(NetAddress::parse_host_port("[2001:db8:1:2::99]:1")->client_key() ==
             "2001:db8:1:2::/64");
  BOOST_TEST(NetAddress::parse_host_port("[::1]:1")->client_key() == "::/64");
  // Two hosts of one /64 share a key; the neighbouring /64 does not.
  BOOST_TEST(NetAddress::parse_ip("2001:db8:5:6::1")->client_key() ==
             NetAddress::parse_ip("2001:db8:5:6:ffff::2")->client_key());
  BOOST_TEST(NetAddress::parse_ip("2001:db8:5:6::1")->client_key() !=
             NetAddress::parse_ip("2001:db8:5:7::1")->client_key());
}

BOOST_AUTO_TEST_CASE(from_sockaddr_copies_and_checks_length) {
  sockaddr_in ipv4{};
  ipv4.sin_family = AF_INET;
  ipv4.sin_port = htons(2525);
  ipv4.sin_addr.s_addr = htonl(0x7F000002u);
  const auto address =
      NetAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&ipv4), sizeof ipv4);
  BOOST_REQUIRE(address);
  BOOST_TEST(address->host_port() == "127.0.0.2:2525");

  BOOST_TEST(!NetAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&ipv4), sizeof ipv4 - 1)
                  .has_value());
  BOOST_TEST(!NetAddress::from_sockaddr(nullptr, 0).has_value());

  sockaddr_in6 ipv6{};
  ipv6.sin6_family = AF_INET6;
  ipv6.sin6_port = htons(25);
  ipv6.sin6_addr.s6_addr[15] = 1;
  const auto loopback6 =
      NetAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&ipv6), sizeof ipv6);
  BOOST_REQUIRE(loopback6);
  BOOST_TEST(loopback6->host_port() == "[::1]:25");

  sockaddr unix_like{};
  unix_like.sa_family = AF_UNIX;
  BOOST_TEST(!NetAddress::from_sockaddr(&unix_like, sizeof unix_like).has_value());
}

BOOST_AUTO_TEST_CASE(empty_address_has_empty_texts) {
  const NetAddress empty;
  BOOST_TEST(empty.ip().empty());
  BOOST_TEST(empty.port() == 0);
  BOOST_TEST(empty.host_port().empty());
  BOOST_TEST(empty.client_key().empty());
}

BOOST_AUTO_TEST_CASE(an_ipv4_mapped_socket_address_enters_as_ipv4) {
  sockaddr_in6 mapped{};
  mapped.sin6_family = AF_INET6;
  mapped.sin6_port = htons(2525);
  BOOST_REQUIRE(inet_pton(AF_INET6, "::ffff:127.0.0.9", &mapped.sin6_addr) == 1);
  const auto address =
      NetAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&mapped), sizeof mapped);
  BOOST_REQUIRE(address);
  BOOST_TEST(!address->is_ipv6());
  BOOST_TEST(address->length == sizeof(sockaddr_in));
  BOOST_TEST(address->ip() == "127.0.0.9");
  BOOST_TEST(address->port() == 2525);
  BOOST_TEST(address->host_port() == "127.0.0.9:2525");
  BOOST_TEST(address->client_key() == NetAddress::parse_ip("127.0.0.9")->client_key());

  sockaddr_in6 plain{};
  plain.sin6_family = AF_INET6;
  BOOST_REQUIRE(inet_pton(AF_INET6, "2001:db8::9", &plain.sin6_addr) == 1);
  const auto ipv6 =
      NetAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&plain), sizeof plain);
  BOOST_REQUIRE(ipv6);
  BOOST_TEST(ipv6->is_ipv6());
  BOOST_TEST(ipv6->ip() == "2001:db8::9");
}
