// XCLIENT NAME / REVERSE_NAME, the Received name and Authentication-Results iprev from the
// fcrdns filter's facts: confirmed, mismatching, missing and temporarily failing reverse DNS,
// and a chain without the filter. The values in the comments are what a Postfix behind us logs
// (smtpd: "client=NAME[ADDR]", NAME "unknown" for [UNAVAILABLE]/[TEMPUNAVAIL]).
#define BOOST_TEST_MODULE client_names
#include <boost/test/unit_test.hpp>

#include <set>
#include <string>
#include <vector>

#include "client_names.h"
#include "xclient.h"

using namespace portcullis;

namespace {

Facts fcrdns_facts(const char* result, const char* ptr = nullptr, const char* name = nullptr) {
  Facts facts;
  facts.set("fcrdns", std::string(result));
  if (ptr != nullptr) facts.set("client.ptr", std::string(ptr));
  if (name != nullptr) facts.set("client.name", std::string(name));
  return facts;
}

std::string xclient_line(const Facts& facts) {
  ClientIdentity identity;
  identity.addr = "192.0.2.10";
  identity.port = 4321;
  const XclientNames names = xclient_names(facts);
  identity.name = names.name;
  identity.reverse_name = names.reverse_name;
  const auto lines = build_xclient_commands(identity, {"NAME", "REVERSE_NAME", "ADDR"});
  BOOST_REQUIRE(lines.size() == 1u);
  return lines[0];
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_confirmed_client_sends_its_name) {
  // Postfix: client=mail.example.net[192.0.2.10]
  const Facts facts = fcrdns_facts("pass", "mail.example.net", "mail.example.net");
  const XclientNames names = xclient_names(facts);
  BOOST_TEST(names.name == "mail.example.net");
  BOOST_TEST(names.reverse_name == "mail.example.net");
  const std::string line = xclient_line(facts);
  BOOST_TEST(line.find("NAME=mail.example.net") != std::string::npos, line);
  BOOST_TEST(line.find("REVERSE_NAME=mail.example.net") != std::string::npos, line);
  BOOST_TEST(received_client_name(facts) == "mail.example.net");
  const auto iprev = iprev_result(facts, "192.0.2.10");
  BOOST_REQUIRE(iprev.has_value());
  BOOST_TEST(iprev->result == "pass");
  BOOST_TEST(iprev->reason == "mail.example.net");
  BOOST_TEST(authentication_results_header("mx.example.org", {*iprev}) ==
             "Authentication-Results: mx.example.org;\r\n\tiprev=pass "
             "reason=\"mail.example.net\" policy.iprev=192.0.2.10\r\n");
}

BOOST_AUTO_TEST_CASE(a_mismatching_client_sends_only_the_reverse_name) {
  // Postfix: client=unknown[192.0.2.10]; reject_unknown_reverse_client_hostname passes,
  // reject_unknown_client_hostname refuses.
  const Facts facts = fcrdns_facts("fail", "dyn.example.net");
  const XclientNames names = xclient_names(facts);
  BOOST_TEST(names.name == "[UNAVAILABLE]");
  BOOST_TEST(names.reverse_name == "dyn.example.net");
  const std::string line = xclient_line(facts);
  BOOST_TEST(line.find(" NAME=[UNAVAILABLE]") != std::string::npos, line);
  BOOST_TEST(received_client_name(facts) == "unknown");
  const auto iprev = iprev_result(facts, "192.0.2.10");
  BOOST_REQUIRE(iprev.has_value());
  BOOST_TEST(iprev->result == "fail");
  BOOST_TEST(iprev->reason.find("dyn.example.net") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_client_without_ptr_is_unavailable) {
  const Facts facts = fcrdns_facts("none");
  const XclientNames names = xclient_names(facts);
  BOOST_TEST(names.name == "[UNAVAILABLE]");
  BOOST_TEST(names.reverse_name == "[UNAVAILABLE]");
  BOOST_TEST(iprev_result(facts, "192.0.2.10")->result == "permerror");
  BOOST_TEST(received_client_name(facts) == "unknown");
}

BOOST_AUTO_TEST_CASE(a_temporary_failure_is_tempunavail) {
  // Postfix: client=unknown[192.0.2.10]; reject_unknown_client_hostname answers 450, not 550.
  const Facts no_ptr = fcrdns_facts("temperror");
  XclientNames names = xclient_names(no_ptr);
  BOOST_TEST(names.name == "[TEMPUNAVAIL]");
  BOOST_TEST(names.reverse_name == "[TEMPUNAVAIL]");
  BOOST_TEST(xclient_line(no_ptr).find("REVERSE_NAME=[TEMPUNAVAIL]") != std::string::npos);
  BOOST_TEST(iprev_result(no_ptr, "192.0.2.10")->result == "temperror");

  const Facts forward_failed = fcrdns_facts("temperror", "slow.example.net");
  names = xclient_names(forward_failed);
  BOOST_TEST(names.name == "[TEMPUNAVAIL]");
  BOOST_TEST(names.reverse_name == "slow.example.net");
}

BOOST_AUTO_TEST_CASE(without_the_filter_nothing_is_claimed) {
  const Facts facts;
  const XclientNames names = xclient_names(facts);
  BOOST_TEST(names.name == "[UNAVAILABLE]");
  BOOST_TEST(names.reverse_name == "[UNAVAILABLE]");
  BOOST_TEST(!iprev_result(facts, "192.0.2.10").has_value());
  BOOST_TEST(received_client_name(facts) == "unknown");
}
