#define BOOST_TEST_MODULE xclient
#include <boost/test/unit_test.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "xclient.h"
#include "xtext.h"

using portcullis::build_xclient_commands;
using portcullis::ClientIdentity;
using portcullis::xtext_encode;

namespace {

// Postfix 3.7's list (STACK-NOTES §5), in the order it advertises them.
const std::set<std::string> postfix_attributes = {
    "NAME", "ADDR", "PROTO", "HELO", "REVERSE_NAME", "PORT", "LOGIN", "DESTADDR", "DESTPORT"};

ClientIdentity sample_client() {
  ClientIdentity client;
  client.addr = "198.51.100.7";
  client.port = 4242;
  client.name = "name.example";
  client.reverse_name = "ptr.example";
  client.helo = "client.example";
  client.proto = "ESMTP";
  client.dest_addr = "192.0.2.1";
  client.dest_port = 25;
  return client;
}

// Reverses RFC 3461 xtext, written independently of the encoder for the checks below.
std::string xtext_decode(const std::string& text) {
  std::string decoded;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      BOOST_REQUIRE(i + 2 < text.size());
      decoded.push_back(static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      decoded.push_back(text[i]);
    }
  }
  return decoded;
}

struct ParsedLine {
  std::vector<std::string> names;
  std::map<std::string, std::string> values;
};

ParsedLine parse_line(const std::string& line) {
  ParsedLine parsed;
  BOOST_REQUIRE(line.rfind("XCLIENT ", 0) == 0);
  size_t position = 8;
  while (position <= line.size()) {
    size_t end = line.find(' ', position);
    if (end == std::string::npos) end = line.size();
    const std::string attribute = line.substr(position, end - position);
    const size_t equals = attribute.find('=');
    BOOST_REQUIRE(equals != std::string::npos);
    const std::string name = attribute.substr(0, equals);
    BOOST_TEST(parsed.values.count(name) == 0u);
    parsed.names.push_back(name);
    parsed.values[name] = attribute.substr(equals + 1);
    position = end + 1;
  }
  return parsed;
}

}  // namespace

BOOST_AUTO_TEST_CASE(xtext_leaves_plain_characters) {
  BOOST_TEST(xtext_encode("") == "");
  BOOST_TEST(xtext_encode("mail.example.org") == "mail.example.org");
  BOOST_TEST(xtext_encode("!\"#$%&'()*,-./09:;<>?@AZ[\\]^_`az{|}~") ==
             "!\"#$%&'()*,-./09:;<>?@AZ[\\]^_`az{|}~");
}

BOOST_AUTO_TEST_CASE(xtext_encodes_plus_equals_space_controls_and_high_bytes) {
  BOOST_TEST(xtext_encode("a+b=c") == "a+2Bb+3Dc");
  BOOST_TEST(xtext_encode("two words") == "two+20words");
  BOOST_TEST(xtext_encode("\r\n") == "+0D+0A");
  BOOST_TEST(xtext_encode(std::string("\0x", 2)) == "+00x");
  BOOST_TEST(xtext_encode("\x7F") == "+7F");
  BOOST_TEST(xtext_encode("\xC3\xA9\xFF") == "+C3+A9+FF");
}

BOOST_AUTO_TEST_CASE(everything_fits_on_one_line_in_the_documented_order) {
  const auto lines = build_xclient_commands(sample_client(), postfix_attributes);
  const std::vector<std::string> expected = {
      "XCLIENT PROTO=ESMTP HELO=client.example PORT=4242 DESTADDR=192.0.2.1 DESTPORT=25 "
      "REVERSE_NAME=ptr.example NAME=name.example ADDR=198.51.100.7"};
  BOOST_TEST(lines == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(unavailable_markers_are_sent_literally) {
  ClientIdentity client = sample_client();
  client.name = "[TEMPUNAVAIL]";
  client.reverse_name = "[UNAVAILABLE]";
  client.helo.clear();
  client.proto.clear();
  const auto lines = build_xclient_commands(client, postfix_attributes);
  const std::vector<std::string> expected = {
      "XCLIENT PORT=4242 DESTADDR=192.0.2.1 DESTPORT=25 REVERSE_NAME=[UNAVAILABLE] "
      "NAME=[TEMPUNAVAIL] ADDR=198.51.100.7"};
  BOOST_TEST(lines == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(long_helo_splits_and_keeps_name_with_addr) {
  ClientIdentity client = sample_client();
  client.helo = std::string(400, 'h');
  const auto lines = build_xclient_commands(client, postfix_attributes);
  // Line 1 is 491 octets; NAME would still fit (509) but not NAME and ADDR (527), so both move.
  const std::vector<std::string> expected = {
      "XCLIENT PROTO=ESMTP HELO=" + std::string(400, 'h') +
          " PORT=4242 DESTADDR=192.0.2.1 DESTPORT=25 REVERSE_NAME=ptr.example",
      "XCLIENT NAME=name.example ADDR=198.51.100.7"};
  BOOST_TEST(lines == expected, boost::test_tools::per_element());
  BOOST_TEST(lines[0].size() + 2 == 493u);
}

BOOST_AUTO_TEST_CASE(helo_too_long_for_any_line_is_left_out) {
  ClientIdentity client = sample_client();
  // "XCLIENT HELO=" + 498 + CRLF = 513 > 512.
  client.helo = std::string(498, 'h');
  auto lines = build_xclient_commands(client, postfix_attributes);
  for (const auto& line : lines)
    BOOST_TEST(line.find("HELO=") == std::string::npos);
  // One octet less fits exactly, alone on its line.
  client.helo = std::string(497, 'h');
  lines = build_xclient_commands(client, postfix_attributes);
  BOOST_REQUIRE(lines.size() == 3u);
  BOOST_TEST(lines[0] == "XCLIENT PROTO=ESMTP");
  BOOST_TEST(lines[1] == "XCLIENT HELO=" + std::string(497, 'h'));
  BOOST_TEST(lines[1].size() + 2 == 512u);
  BOOST_TEST(lines[2] ==
             "XCLIENT PORT=4242 DESTADDR=192.0.2.1 DESTPORT=25 REVERSE_NAME=ptr.example "
             "NAME=name.example ADDR=198.51.100.7");
}

BOOST_AUTO_TEST_CASE(helo_with_special_characters_is_xtext_encoded) {
  ClientIdentity client = sample_client();
  client.helo = "my host+x=y\xC3\xA9";
  const auto lines = build_xclient_commands(client, {"HELO"});
  const std::vector<std::string> expected = {"XCLIENT HELO=my+20host+2Bx+3Dy+C3+A9"};
  BOOST_TEST(lines == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(helo_cannot_inject_a_command) {
  ClientIdentity client = sample_client();
  client.helo = "x\r\nMAIL FROM:<a@b>";
  const auto lines = build_xclient_commands(client, {"HELO"});
  BOOST_REQUIRE(lines.size() == 1u);
  BOOST_TEST(lines[0] == "XCLIENT HELO=x+0D+0AMAIL+20FROM:<a@b>");
}

BOOST_AUTO_TEST_CASE(ipv6_addresses_carry_the_prefix) {
  ClientIdentity client = sample_client();
  client.addr = "2001:db8::7";
  client.addr_is_ipv6 = true;
  client.dest_addr = "2001:db8::25";
  client.dest_is_ipv6 = true;
  const auto lines = build_xclient_commands(client, {"ADDR", "DESTADDR"});
  const std::vector<std::string> expected = {
      "XCLIENT DESTADDR=IPV6:2001:db8::25 ADDR=IPV6:2001:db8::7"};
  BOOST_TEST(lines == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(only_advertised_attributes_are_sent) {
  // smtp-sink advertises "XCLIENT NAME HELO".
  const auto lines = build_xclient_commands(sample_client(), {"NAME", "HELO"});
  const std::vector<std::string> expected = {"XCLIENT HELO=client.example NAME=name.example"};
  BOOST_TEST(lines == expected, boost::test_tools::per_element());

  BOOST_TEST(build_xclient_commands(sample_client(), {}).empty());
  BOOST_TEST(build_xclient_commands(sample_client(), {"LOGIN", "FOO"}).empty());
  // Lower-case names are not what the upstream listed (capabilities upper-cases them).
  BOOST_TEST(build_xclient_commands(sample_client(), {"addr", "name"}).empty());
}

BOOST_AUTO_TEST_CASE(unknown_values_are_not_sent) {
  ClientIdentity client;
  client.addr = "198.51.100.7";
  const auto lines = build_xclient_commands(client, postfix_attributes);
  // port 0, no HELO, no PROTO, no destination: only the two name markers and ADDR remain.
  const std::vector<std::string> expected = {
      "XCLIENT REVERSE_NAME=[UNAVAILABLE] NAME=[UNAVAILABLE] ADDR=198.51.100.7"};
  BOOST_TEST(lines == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(never_sends_login) {
  for (const auto& line : build_xclient_commands(sample_client(), postfix_attributes)) {
    BOOST_TEST(line.find("LOGIN") == std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(long_names_that_cannot_share_a_line_keep_addr_last) {
  ClientIdentity client = sample_client();
  client.name = std::string(300, 'n');
  client.addr = "2001:db8:1234:5678:9abc:def0:1234:5678";
  client.addr_is_ipv6 = true;
  client.helo.clear();
  const auto lines = build_xclient_commands(client, postfix_attributes, 320);
  BOOST_REQUIRE(!lines.empty());
  BOOST_TEST(lines.back() == "XCLIENT ADDR=IPV6:2001:db8:1234:5678:9abc:def0:1234:5678");
  bool name_seen = false;
  for (const auto& line : lines) {
    BOOST_TEST(line.size() + 2 <= 320u);
    if (line.find("NAME=" + std::string(300, 'n')) != std::string::npos) name_seen = true;
  }
  BOOST_TEST(name_seen);
}

BOOST_AUTO_TEST_CASE(every_line_fits_and_round_trips_for_many_helo_lengths) {
  for (size_t helo_length = 0; helo_length <= 600; helo_length += 7) {
    for (size_t max_line : {size_t{512}, size_t{200}}) {
      BOOST_TEST_CONTEXT("HELO length " << helo_length << ", max_line " << max_line) {
        ClientIdentity client = sample_client();
        // Every third character needs encoding, so the encoded form is longer than the HELO.
        client.helo.clear();
        for (size_t i = 0; i < helo_length; ++i)
          client.helo.push_back(i % 3 == 0 ? ' ' : 'a');
        const auto lines = build_xclient_commands(client, postfix_attributes, max_line);
        BOOST_REQUIRE(!lines.empty());

        std::map<std::string, std::string> seen;
        std::vector<std::string> order;
        for (const auto& line : lines) {
          BOOST_TEST(line.size() + 2 <= max_line);
          const ParsedLine parsed = parse_line(line);
          for (const auto& name : parsed.names) {
            BOOST_TEST(seen.count(name) == 0u);
            seen[name] = parsed.values.at(name);
            order.push_back(name);
          }
        }
        const ParsedLine last = parse_line(lines.back());
        BOOST_TEST(last.values.count("NAME") == 1u);
        BOOST_TEST(last.values.count("ADDR") == 1u);
        BOOST_TEST(seen.count("LOGIN") == 0u);

        const std::string encoded_helo = xtext_encode(client.helo);
        const bool helo_fits = !client.helo.empty() && 8 + 5 + encoded_helo.size() + 2 <= max_line;
        BOOST_TEST(seen.count("HELO") == (helo_fits ? 1u : 0u));
        if (helo_fits) BOOST_TEST(xtext_decode(seen["HELO"]) == client.helo);

        std::vector<std::string> expected_order = {"PROTO",    "HELO",         "PORT", "DESTADDR",
                                                   "DESTPORT", "REVERSE_NAME", "NAME", "ADDR"};
        if (!helo_fits) expected_order.erase(expected_order.begin() + 1);
        BOOST_TEST(order == expected_order, boost::test_tools::per_element());
        BOOST_TEST(seen["ADDR"] == "198.51.100.7");
        BOOST_TEST(seen["PORT"] == "4242");
      }
    }
  }
}
