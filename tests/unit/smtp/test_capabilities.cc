#define BOOST_TEST_MODULE capabilities
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "capabilities.h"
#include "smtp_reply.h"

using portcullis::build_ehlo_reply;
using portcullis::ClientOffer;
using portcullis::compute_client_offer;
using portcullis::parse_ehlo_reply;
using portcullis::SmtpReply;
using portcullis::UpstreamCapabilities;

namespace {

// Built field by field, not through SmtpReplyParser, so these tests depend only on this module.
SmtpReply reply_of(int code, std::vector<std::string> lines) {
  SmtpReply reply;
  reply.code = code;
  for (size_t i = 0; i < lines.size(); ++i) {
    reply.wire += std::to_string(code) + (i + 1 < lines.size() ? "-" : " ") + lines[i] + "\r\n";
  }
  reply.lines = std::move(lines);
  return reply;
}

// What smtp-sink (Postfix 3.7) answered to EHLO on this machine, empty last line included:
// 250-smtp-sink / PIPELINING / 8BITMIME / AUTH PLAIN LOGIN / XCLIENT NAME HELO /
// XFORWARD NAME ADDR PROTO HELO / ENHANCEDSTATUSCODES / DSN / "250 ".
SmtpReply smtp_sink_reply() {
  return reply_of(250,
                  {"smtp-sink", "PIPELINING", "8BITMIME", "AUTH PLAIN LOGIN", "XCLIENT NAME HELO",
                   "XFORWARD NAME ADDR PROTO HELO", "ENHANCEDSTATUSCODES", "DSN", ""});
}

// A real Postfix 3.7 with XCLIENT allowed (STACK-NOTES §5).
SmtpReply postfix_reply() {
  return reply_of(250,
                  {"mx.example.test", "PIPELINING", "SIZE 52428800", "VRFY", "ETRN", "STARTTLS",
                   "XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN "
                   "DESTADDR DESTPORT",
                   "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"});
}

}  // namespace

BOOST_AUTO_TEST_CASE(parses_smtp_sink_with_empty_last_line) {
  const UpstreamCapabilities caps = parse_ehlo_reply(smtp_sink_reply());
  BOOST_TEST(caps.pipelining);
  BOOST_TEST(caps.eightbitmime);
  BOOST_TEST(caps.dsn);
  BOOST_TEST(caps.enhancedstatuscodes);
  BOOST_TEST(!caps.smtputf8);
  BOOST_TEST(!caps.starttls);
  BOOST_TEST(!caps.chunking);
  BOOST_TEST(!caps.size.has_value());
  BOOST_TEST(caps.xclient);
  const std::set<std::string> expected_attrs = {"NAME", "HELO"};
  BOOST_TEST(caps.xclient_attrs == expected_attrs);
  const std::vector<std::string> expected_keywords = {"PIPELINING",
                                                      "8BITMIME",
                                                      "AUTH PLAIN LOGIN",
                                                      "XCLIENT NAME HELO",
                                                      "XFORWARD NAME ADDR PROTO HELO",
                                                      "ENHANCEDSTATUSCODES",
                                                      "DSN"};
  BOOST_TEST(caps.keywords == expected_keywords, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(parses_postfix) {
  const UpstreamCapabilities caps = parse_ehlo_reply(postfix_reply());
  BOOST_TEST(caps.pipelining);
  BOOST_TEST(caps.eightbitmime);
  BOOST_TEST(caps.smtputf8);
  BOOST_TEST(caps.dsn);
  BOOST_TEST(caps.starttls);
  BOOST_TEST(caps.chunking);
  BOOST_TEST(caps.enhancedstatuscodes);
  BOOST_REQUIRE(caps.size.has_value());
  BOOST_TEST(*caps.size == 52428800u);
  BOOST_TEST(caps.xclient);
  const std::set<std::string> expected_attrs = {
      "NAME", "ADDR", "PROTO", "HELO", "REVERSE_NAME", "PORT", "LOGIN", "DESTADDR", "DESTPORT"};
  BOOST_TEST(caps.xclient_attrs == expected_attrs);
  BOOST_TEST(caps.keywords.size() == 11u);
  BOOST_TEST(caps.keywords[1] == "SIZE 52428800");
}

BOOST_AUTO_TEST_CASE(greeting_line_is_not_a_keyword) {
  // A host name that happens to look like a keyword must not count.
  const auto caps = parse_ehlo_reply(reply_of(250, {"PIPELINING", "DSN"}));
  BOOST_TEST(!caps.pipelining);
  BOOST_TEST(caps.dsn);
  BOOST_TEST(caps.keywords == std::vector<std::string>{"DSN"}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(keywords_are_case_insensitive_and_attrs_upper_cased) {
  const auto caps = parse_ehlo_reply(
      reply_of(250, {"mx", "pipelining", "8bitMime", "SmtpUtf8", "dsn", "StartTLS", "chunking",
                     "enhancedStatusCodes", "size 1000", "xclient name Addr  helo\tproto"}));
  BOOST_TEST(caps.pipelining);
  BOOST_TEST(caps.eightbitmime);
  BOOST_TEST(caps.smtputf8);
  BOOST_TEST(caps.dsn);
  BOOST_TEST(caps.starttls);
  BOOST_TEST(caps.chunking);
  BOOST_TEST(caps.enhancedstatuscodes);
  BOOST_REQUIRE(caps.size.has_value());
  BOOST_TEST(*caps.size == 1000u);
  const std::set<std::string> expected_attrs = {"NAME", "ADDR", "HELO", "PROTO"};
  BOOST_TEST(caps.xclient_attrs == expected_attrs);
  // Kept as sent.
  BOOST_TEST(caps.keywords[1] == "8bitMime");
}

BOOST_AUTO_TEST_CASE(size_forms) {
  const auto size_of = [](const std::string& line) {
    return parse_ehlo_reply(reply_of(250, {"mx", line})).size;
  };
  BOOST_TEST(size_of("SIZE").value() == 0u);  // no fixed limit
  BOOST_TEST(size_of("SIZE 0").value() == 0u);
  BOOST_TEST(size_of("SIZE 10240000").value() == 10240000u);
  BOOST_TEST(size_of("SIZE abc").value() == 0u);
  BOOST_TEST(size_of("SIZE 99999999999999999999999").value() == 0u);
  BOOST_TEST(!size_of("SIZEX 5").has_value());
  BOOST_TEST(!size_of("PIPELINING").has_value());
}

BOOST_AUTO_TEST_CASE(a_refusal_offers_nothing) {
  const auto caps = parse_ehlo_reply(reply_of(502, {"5.5.1 EHLO not supported"}));
  BOOST_TEST(!caps.pipelining);
  BOOST_TEST(!caps.xclient);
  BOOST_TEST(caps.keywords.empty());
}

BOOST_AUTO_TEST_CASE(offer_takes_smaller_size_and_only_upstream_extensions) {
  const auto postfix = parse_ehlo_reply(postfix_reply());
  ClientOffer offer = compute_client_offer(postfix, 104857600, false);
  BOOST_TEST(offer.size_limit == 52428800u);
  BOOST_TEST(offer.eightbitmime);
  BOOST_TEST(offer.smtputf8);
  BOOST_TEST(offer.dsn);
  BOOST_TEST(!offer.starttls);  // the upstream's STARTTLS is not ours to offer

  offer = compute_client_offer(postfix, 1048576, true);
  BOOST_TEST(offer.size_limit == 1048576u);
  BOOST_TEST(offer.starttls);

  const auto sink = parse_ehlo_reply(smtp_sink_reply());
  offer = compute_client_offer(sink, 52428800, false);
  BOOST_TEST(offer.size_limit == 52428800u);  // no SIZE upstream
  BOOST_TEST(offer.eightbitmime);
  BOOST_TEST(!offer.smtputf8);
  BOOST_TEST(offer.dsn);

  const auto unlimited = parse_ehlo_reply(reply_of(250, {"mx", "SIZE"}));
  offer = compute_client_offer(unlimited, 2048, false);
  BOOST_TEST(offer.size_limit == 2048u);
  BOOST_TEST(!offer.eightbitmime);
  BOOST_TEST(!offer.dsn);
}

BOOST_AUTO_TEST_CASE(ehlo_reply_minimal) {
  ClientOffer offer;
  offer.size_limit = 10485760;
  const SmtpReply reply = build_ehlo_reply("mx.example.org", offer);
  BOOST_TEST(reply.code == 250);
  const std::vector<std::string> expected = {"mx.example.org", "PIPELINING", "SIZE 10485760",
                                             "ENHANCEDSTATUSCODES"};
  BOOST_TEST(reply.lines == expected, boost::test_tools::per_element());
  BOOST_TEST(reply.wire ==
             "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10485760\r\n"
             "250 ENHANCEDSTATUSCODES\r\n");
}

BOOST_AUTO_TEST_CASE(ehlo_reply_full_in_order_never_upstream_only_keywords) {
  const auto postfix = parse_ehlo_reply(postfix_reply());
  const ClientOffer offer = compute_client_offer(postfix, 104857600, true);
  const SmtpReply reply = build_ehlo_reply("mx.example.org", offer);
  const std::vector<std::string> expected = {
      "mx.example.org", "PIPELINING", "SIZE 52428800", "ENHANCEDSTATUSCODES",
      "8BITMIME",       "SMTPUTF8",   "DSN",           "STARTTLS"};
  BOOST_TEST(reply.lines == expected, boost::test_tools::per_element());
  for (const auto& line : reply.lines) {
    BOOST_TEST(line.find("CHUNKING") == std::string::npos);
    BOOST_TEST(line.find("XCLIENT") == std::string::npos);
    BOOST_TEST(line.find("AUTH") == std::string::npos);
    BOOST_TEST(line.find("XFORWARD") == std::string::npos);
  }
}
