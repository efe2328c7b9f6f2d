#define BOOST_TEST_MODULE smtp_path
#include <boost/test/unit_test.hpp>

#include <string>
#include <string_view>

#include "smtp_path.h"

using portcullis::parse_path;
using portcullis::ParsedPath;
using portcullis::PathKind;

namespace {

struct ValidCase {
  std::string_view text;
  std::string_view mailbox;
  std::string_view domain;
};

void check_valid(const ValidCase& expected, PathKind kind) {
  BOOST_TEST_CONTEXT("path " << expected.text) {
    ParsedPath path = parse_path(expected.text, kind);
    BOOST_TEST(path.ok);
    BOOST_TEST(path.mailbox == expected.mailbox);
    BOOST_TEST(path.domain == expected.domain);
  }
}

void check_invalid(std::string_view text, PathKind kind) {
  BOOST_TEST_CONTEXT("path " << text) {
    ParsedPath path = parse_path(text, kind);
    BOOST_TEST(!path.ok);
  }
}

std::string repeat(char c, size_t count) {
  return std::string(count, c);
}

}  // namespace

BOOST_AUTO_TEST_CASE(ordinary_mailboxes_in_both_kinds) {
  const ValidCase cases[] = {
      {"<user@example.org>", "user@example.org", "example.org"},
      {"<User.Name+tag@Example.ORG>", "User.Name+tag@Example.ORG", "example.org"},
      {"<a@b>", "a@b", "b"},
      {"<x!#$%&'*+-/=?^_`{|}~y@mail-1.example>", "x!#$%&'*+-/=?^_`{|}~y@mail-1.example",
       "mail-1.example"},
      {"<u@1a.example>", "u@1a.example", "1a.example"},
  };
  for (const ValidCase& c : cases) {
    check_valid(c, PathKind::mail_from);
    check_valid(c, PathKind::rcpt_to);
  }
}

BOOST_AUTO_TEST_CASE(null_path_only_for_mail_from) {
  check_valid({"<>", "", ""}, PathKind::mail_from);
  check_invalid("<>", PathKind::rcpt_to);
}

BOOST_AUTO_TEST_CASE(postmaster_only_for_rcpt_to) {
  check_valid({"<Postmaster>", "Postmaster", ""}, PathKind::rcpt_to);
  check_valid({"<postmaster>", "postmaster", ""}, PathKind::rcpt_to);
  check_valid({"<POSTMASTER>", "POSTMASTER", ""}, PathKind::rcpt_to);
  check_invalid("<Postmaster>", PathKind::mail_from);
  check_invalid("<Postmasters>", PathKind::rcpt_to);
  // With a domain it is an ordinary mailbox.
  check_valid({"<Postmaster@Example.org>", "Postmaster@Example.org", "example.org"},
              PathKind::rcpt_to);
}

BOOST_AUTO_TEST_CASE(source_routes_are_accepted_and_dropped) {
  check_valid({"<@relay.example:user@example.org>", "user@example.org", "example.org"},
              PathKind::rcpt_to);
  check_valid({"<@a.example,@b.example:user@example.org>", "user@example.org", "example.org"},
              PathKind::mail_from);
  check_invalid("<@:user@example.org>", PathKind::rcpt_to);
  check_invalid("<@a.example user@example.org>", PathKind::rcpt_to);
  check_invalid("<@a.example,user@example.org>", PathKind::rcpt_to);
  check_invalid("<@-a.example:user@example.org>", PathKind::rcpt_to);
  check_invalid("<@[192.0.2.1]:user@example.org>", PathKind::rcpt_to);
  check_invalid("<@a.example,:user@example.org>", PathKind::rcpt_to);
}

BOOST_AUTO_TEST_CASE(quoted_local_parts) {
  check_valid({"<\"john doe\"@example.org>", "\"john doe\"@example.org", "example.org"},
              PathKind::mail_from);
  check_valid({"<\"a@b>c\"@example.org>", "\"a@b>c\"@example.org", "example.org"},
              PathKind::rcpt_to);
  check_valid({"<\"q\\\"x\\\\\"@example.org>", "\"q\\\"x\\\\\"@example.org", "example.org"},
              PathKind::rcpt_to);
  check_valid({"<\"\"@example.org>", "\"\"@example.org", "example.org"}, PathKind::rcpt_to);
  check_invalid("<\"unterminated@example.org>", PathKind::rcpt_to);
  check_invalid("<\"a\"b@example.org>", PathKind::rcpt_to);
  check_invalid("<\"tab\there\"@example.org>", PathKind::rcpt_to);
  check_invalid("<\"esc\\\x01\"@example.org>", PathKind::rcpt_to);
}

BOOST_AUTO_TEST_CASE(dot_string_rules) {
  check_invalid("<.user@example.org>", PathKind::rcpt_to);
  check_invalid("<user.@example.org>", PathKind::rcpt_to);
  check_invalid("<us..er@example.org>", PathKind::rcpt_to);
  check_invalid("<@example.org>", PathKind::rcpt_to);
  check_invalid("<us er@example.org>", PathKind::rcpt_to);
  check_invalid("<us(er@example.org>", PathKind::rcpt_to);
  check_invalid("<us\"er@example.org>", PathKind::rcpt_to);
  check_invalid("<a@b@example.org>", PathKind::rcpt_to);
  check_invalid(std::string_view("<us\0er@example.org>", 19), PathKind::rcpt_to);
}

BOOST_AUTO_TEST_CASE(domain_rules) {
  check_invalid("<user>", PathKind::rcpt_to);
  check_invalid("<user@>", PathKind::rcpt_to);
  check_invalid("<user@-example.org>", PathKind::rcpt_to);
  check_invalid("<user@example-.org>", PathKind::rcpt_to);
  check_invalid("<user@example..org>", PathKind::rcpt_to);
  check_invalid("<user@example.org.>", PathKind::rcpt_to);
  check_invalid("<user@.example.org>", PathKind::rcpt_to);
  check_invalid("<user@exa_mple.org>", PathKind::rcpt_to);
  check_invalid("<user@exa mple.org>", PathKind::rcpt_to);
  check_valid({"<user@a-b.example>", "user@a-b.example", "a-b.example"}, PathKind::rcpt_to);
  check_valid({"<user@localhost>", "user@localhost", "localhost"}, PathKind::rcpt_to);
}

BOOST_AUTO_TEST_CASE(address_literals) {
  check_valid({"<user@[192.0.2.1]>", "user@[192.0.2.1]", "[192.0.2.1]"}, PathKind::rcpt_to);
  check_valid({"<user@[IPv6:2001:db8::1]>", "user@[IPv6:2001:db8::1]", "[ipv6:2001:db8::1]"},
              PathKind::rcpt_to);
  check_valid({"<user@[ipv6:::1]>", "user@[ipv6:::1]", "[ipv6:::1]"}, PathKind::mail_from);
  check_valid(
      {"<user@[IPv6:::ffff:192.0.2.1]>", "user@[IPv6:::ffff:192.0.2.1]", "[ipv6:::ffff:192.0.2.1]"},
      PathKind::rcpt_to);
  check_valid({"<user@[x-tag:some@content]>", "user@[x-tag:some@content]", "[x-tag:some@content]"},
              PathKind::rcpt_to);
  check_invalid("<user@[192.0.2.256]>", PathKind::rcpt_to);
  check_invalid("<user@[192.0.2]>", PathKind::rcpt_to);
  check_invalid("<user@[192.0.2.1.5]>", PathKind::rcpt_to);
  check_invalid("<user@[IPv6:2001:db8::g]>", PathKind::rcpt_to);
  check_invalid("<user@[IPv6:192.0.2.1]>", PathKind::rcpt_to);
  check_invalid("<user@[]>", PathKind::rcpt_to);
  check_invalid("<user@[192.0.2.1>", PathKind::rcpt_to);
  check_invalid("<user@[-tag:x]>", PathKind::rcpt_to);
  check_invalid("<user@[tag:]>", PathKind::rcpt_to);
  check_invalid("<user@[tag:a[b]>", PathKind::rcpt_to);
  check_invalid("<user@[192.0.2.1]x>", PathKind::rcpt_to);
}

BOOST_AUTO_TEST_CASE(utf8_local_part_and_domain) {
  // "jörg@bücher.example" in UTF-8 (RFC 6531); only ASCII is lower-cased.
  check_valid({"<j\xc3\xb6rg@B\xc3\xbc"
               "cher.Example>",
               "j\xc3\xb6rg@B\xc3\xbc"
               "cher.Example",
               "b\xc3\xbc"
               "cher.example"},
              PathKind::rcpt_to);
  check_valid({"<\"\xe2\x9c\x89 x\"@example.org>", "\"\xe2\x9c\x89 x\"@example.org", "example.org"},
              PathKind::mail_from);
}

BOOST_AUTO_TEST_CASE(brackets_are_required) {
  check_invalid("user@example.org", PathKind::rcpt_to);
  check_invalid("<user@example.org", PathKind::rcpt_to);
  check_invalid("user@example.org>", PathKind::rcpt_to);
  check_invalid("", PathKind::mail_from);
  check_invalid("<", PathKind::mail_from);
  check_invalid(" <user@example.org>", PathKind::rcpt_to);
  check_invalid("<user@example.org> ", PathKind::rcpt_to);
  check_invalid("<<user@example.org>>", PathKind::rcpt_to);
}

BOOST_AUTO_TEST_CASE(local_part_limit_is_64_octets) {
  const std::string domain = "@example.org";
  check_valid({"<" + repeat('l', 64) + domain + ">", repeat('l', 64) + domain, "example.org"},
              PathKind::rcpt_to);
  check_invalid("<" + repeat('l', 65) + domain + ">", PathKind::rcpt_to);
  // A quoted local part counts with its quotes.
  const std::string quoted_64 = "\"" + repeat('q', 62) + "\"";
  const std::string quoted_65 = "\"" + repeat('q', 63) + "\"";
  check_valid({"<" + quoted_64 + domain + ">", quoted_64 + domain, "example.org"},
              PathKind::rcpt_to);
  check_invalid("<" + quoted_65 + domain + ">", PathKind::rcpt_to);
}

BOOST_AUTO_TEST_CASE(label_limit_is_63_octets) {
  const std::string label_63 = repeat('d', 63);
  check_valid({"<u@" + label_63 + ".example>", "u@" + label_63 + ".example", label_63 + ".example"},
              PathKind::rcpt_to);
  check_invalid("<u@" + repeat('d', 64) + ".example>", PathKind::rcpt_to);
}

BOOST_AUTO_TEST_CASE(long_domains_are_refused) {
  // Inside a 256-octet path a domain has at most 252 octets, so the path limit is what binds
  // before the 255-octet domain limit; both a 255- and a 256-octet domain must fail.
  const std::string label = repeat('d', 63);
  const std::string domain_255 = label + "." + label + "." + label + "." + label;
  BOOST_REQUIRE_EQUAL(domain_255.size(), 255U);
  check_invalid("<u@" + domain_255 + ">", PathKind::rcpt_to);
  check_invalid("<u@" + domain_255 + "d>", PathKind::rcpt_to);
}

BOOST_AUTO_TEST_CASE(path_limit_is_256_octets_including_brackets) {
  // "<" + 64 local + "@" + domain + ">" = 256 when the domain has 189 octets.
  const std::string local = repeat('l', 64);
  const std::string domain_189 = repeat('a', 63) + "." + repeat('b', 63) + "." + repeat('c', 61);
  BOOST_REQUIRE_EQUAL(domain_189.size(), 189U);
  const std::string path_256 = "<" + local + "@" + domain_189 + ">";
  BOOST_REQUIRE_EQUAL(path_256.size(), 256U);
  check_valid({path_256, local + "@" + domain_189, domain_189}, PathKind::rcpt_to);
  const std::string path_257 = "<" + local + "@" + domain_189 + "c>";
  check_invalid(path_257, PathKind::rcpt_to);
  // A source route counts towards the limit as well.
  const std::string routed = "<@" + repeat('r', 40) + ".example:" + path_256.substr(1);
  check_invalid(routed, PathKind::rcpt_to);
}
