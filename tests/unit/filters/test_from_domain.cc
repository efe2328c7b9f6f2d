// The RFC5322.From domain: one From field with one mailbox gives its domain; the shapes that
// give none (CVE-2019-16378: several authors, so DMARC must not pick one) give an error.
#define BOOST_TEST_MODULE from_domain
#include <boost/test/unit_test.hpp>

#include <string>

#include "from_domain.h"

using namespace portcullis;

namespace {

std::string domain_of(const std::string& header) {
  FromDomain from = extract_from_domain(header);
  return from.ok() ? from.domain : "error: " + from.error;
}

std::string from_field(const std::string& value) {
  return "Received: from a by b\r\nFrom:" + value + "\r\nSubject: s\r\n";
}

}  // namespace

BOOST_AUTO_TEST_CASE(one_mailbox_gives_its_domain_lower_cased) {
  BOOST_TEST(domain_of(from_field(" user@Example.ORG")) == "example.org");
  BOOST_TEST(domain_of(from_field(" Jane Doe <jane@mail.example.org>")) == "mail.example.org");
  BOOST_TEST(domain_of(from_field(" \"Doe, Jane\" <jane@example.org>")) == "example.org");
  BOOST_TEST(domain_of(from_field(" \"a@evil.example\"@example.org")) == "example.org");
  BOOST_TEST(domain_of(from_field(" \"jane@evil.example\" <jane@example.org>")) == "example.org");
  BOOST_TEST(domain_of(from_field(" jane@example.org (Jane, at evil.example)")) == "example.org");
  BOOST_TEST(domain_of(from_field(" (x (nested) y) <jane@example.org.>")) == "example.org");
  BOOST_TEST(domain_of(from_field(" <@relay.example:jane@example.org>")) == "example.org");
  BOOST_TEST(domain_of(from_field(" =?utf-8?q?J=C3=A9r=C3=B4me?= <j@example.org>")) ==
             "example.org");
  BOOST_TEST(domain_of(from_field(" jane@example.org, ,")) == "example.org");  // obs-mbox-list
  BOOST_TEST(domain_of(from_field(" jane@b\xc3\xbc"
                                  "cher.example")) ==
             "b\xc3\xbc"
             "cher.example");  // RFC 6532
}

BOOST_AUTO_TEST_CASE(field_name_case_folding_and_line_ends) {
  BOOST_TEST(domain_of("FROM: a@example.org\r\n") == "example.org");
  BOOST_TEST(domain_of("from : a@example.org\n") == "example.org");  // obs WSP before ':'
  BOOST_TEST(domain_of("Subject: x\r\nFrom: Jane\r\n <jane@\r\n\texample.org>\r\n") ==
             "example.org");
  BOOST_TEST(domain_of("From: a@example.org") == "example.org");  // no final line end
  // Names that only start like From are other fields.
  BOOST_TEST(domain_of("From-X: a@evil.example\r\nFrom: a@example.org\r\n") == "example.org");
  BOOST_TEST(domain_of("Resent-From: a@evil.example\r\nFrom: a@example.org\r\n") == "example.org");
}

BOOST_AUTO_TEST_CASE(no_from_or_several_from_fields_is_an_error) {
  BOOST_TEST(domain_of("Subject: x\r\n") == "error: no From field");
  BOOST_TEST(domain_of("") == "error: no From field");
  BOOST_TEST(domain_of("From: a@example.org\r\nFrom: b@evil.example\r\n") ==
             "error: several From fields");
  BOOST_TEST(domain_of("From: a@example.org\r\nfrom: a@example.org\r\n") ==
             "error: several From fields");
  // A folded line that starts the header belongs to no field.
  BOOST_TEST(domain_of(" From: a@example.org\r\n") == "error: no From field");
}

BOOST_AUTO_TEST_CASE(several_mailboxes_or_a_group_is_an_error) {
  BOOST_TEST(domain_of(from_field(" a@example.org, b@evil.example")) ==
             "error: From holds several mailboxes");
  BOOST_TEST(domain_of(from_field(" A <a@example.org>,\r\n B <b@evil.example>")) ==
             "error: From holds several mailboxes");
  BOOST_TEST(domain_of(from_field(" authors: a@example.org;")) == "error: From holds a group");
  BOOST_TEST(domain_of(from_field(" undisclosed:;")) == "error: From holds a group");
  // An unquoted comma in a display name makes two mailboxes, the first without an address.
  BOOST_TEST(domain_of(from_field(" Doe, Jane <jane@example.org>")) ==
             "error: From holds several mailboxes");
}

BOOST_AUTO_TEST_CASE(addresses_without_a_usable_domain_are_errors) {
  BOOST_TEST(domain_of(from_field("")) == "error: From holds no mailbox");
  BOOST_TEST(domain_of(from_field(" (only a comment)")) == "error: From holds no mailbox");
  BOOST_TEST(domain_of(from_field(" jane")) == "error: From address without a domain");
  BOOST_TEST(domain_of(from_field(" <jane@>")) == "error: From address without a domain");
  BOOST_TEST(domain_of(from_field(" <@example.org>")) ==
             "error: From address without a local part");
  BOOST_TEST(domain_of(from_field(" <jane@[192.0.2.1]>")) ==
             "error: From address with a domain literal");
  BOOST_TEST(domain_of(from_field(" <jane@exa\"mple\".org>")) ==
             "error: From domain with an invalid character");
  BOOST_TEST(domain_of(from_field(" <jane@example..org>")) ==
             "error: From domain with an empty label");
  const std::string long_domain = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                                  std::string(63, 'c') + "." + std::string(61, 'd');
  BOOST_TEST(domain_of(from_field(" j@" + long_domain)) == long_domain);  // 253 bytes
  BOOST_TEST(domain_of(from_field(" j@" + long_domain + "e")) ==
             "error: From domain longer than 253 bytes");
  BOOST_TEST(domain_of(from_field(" Jane Doe jane@example.org")) ==
             "error: From address with spaces in its local part");
}

BOOST_AUTO_TEST_CASE(unbalanced_syntax_is_an_error) {
  BOOST_TEST(domain_of(from_field(" \"jane@example.org")) ==
             "error: From with an unterminated quoted string");
  BOOST_TEST(domain_of(from_field(" (jane@example.org")) ==
             "error: From with an unterminated comment");
  BOOST_TEST(domain_of(from_field(" <jane@example.org")) ==
             "error: From with an unterminated bracket");
  BOOST_TEST(domain_of(from_field(" jane@example.org>")) ==
             "error: From mailbox with an unmatched '>'");
  BOOST_TEST(domain_of(from_field(" <a@example.org> <b@evil.example>")) ==
             "error: From mailbox with several '<'");
  BOOST_TEST(domain_of(from_field(" <a@example.org, b@evil.example>")) ==
             "error: From mailbox with ',' inside '<>'");
}

BOOST_AUTO_TEST_CASE(a_large_header_is_read_in_one_pass) {
  // Deep comments and many commas: linear work, one answer.
  std::string value = " " + std::string(100000, '(') + std::string(100000, ')') + " a@example.org";
  BOOST_TEST(domain_of(from_field(value)) == "example.org");
  std::string many;
  for (int i = 0; i < 20000; ++i)
    many += " a@example.org,";
  BOOST_TEST(domain_of(from_field(many)) == "error: From holds several mailboxes");
}
