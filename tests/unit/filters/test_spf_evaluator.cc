// The SPF evaluator's behaviour beyond the conformance suites: asynchrony (no callback from
// start(), one callback after the answers), cancellation by destruction, a callback that
// destroys the evaluator, IPv4-mapped clients, temperror on SERVFAIL, the bounds on queries in
// flight and in total, and the checks on explanation text.
#define BOOST_TEST_MODULE spf_evaluator
#include <boost/test/unit_test.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "spf_evaluator.h"
#include "zone_resolver.h"

using namespace portcullis;

namespace {

SpfRequest request_from(const char* client, std::string sender,
                        std::string helo = "mx.example.org") {
  SpfRequest request;
  auto address = IpAddress::parse(client);
  BOOST_REQUIRE(address.has_value());
  request.client = *address;
  request.sender = std::move(sender);
  request.helo = std::move(helo);
  request.receiver = "proxy.example.net";
  return request;
}

struct Run {
  std::vector<SpfResult> results;
  std::optional<SpfResult> immediate;
};

Run evaluate(ZoneResolver& zone, const SpfRequest& request, SpfLimits limits = {}) {
  Run run;
  SpfEvaluator evaluator(zone, limits);
  run.immediate = evaluator.start(request, [&](SpfResult r) { run.results.push_back(r); });
  BOOST_TEST(run.results.empty());
  zone.run();
  return run;
}

SpfResult single(ZoneResolver& zone, const SpfRequest& request, SpfLimits limits = {}) {
  Run run = evaluate(zone, request, limits);
  BOOST_REQUIRE(!run.immediate.has_value());
  BOOST_REQUIRE_EQUAL(run.results.size(), 1u);
  return run.results.front();
}

}  // namespace

BOOST_AUTO_TEST_CASE(pass_and_fail_only_after_the_answers_arrive) {
  ZoneResolver zone;
  zone.add_txt("example.com", {"v=spf1 ip4:192.0.2.0/24 -all"});
  std::vector<SpfResult> results;
  SpfEvaluator evaluator(zone);
  BOOST_TEST(!evaluator.start(request_from("192.0.2.9", "a@example.com"),
                              [&](SpfResult r) { results.push_back(r); }));
  BOOST_TEST(results.empty());
  BOOST_TEST(zone.pending() == 1u);
  zone.run();
  BOOST_REQUIRE_EQUAL(results.size(), 1u);
  BOOST_TEST(spf_verdict_name(results[0].verdict) == "pass");
  BOOST_TEST(results[0].domain == "example.com");
  BOOST_TEST(spf_verdict_name(
                 single(zone, request_from("198.51.100.1", "a@example.com")).verdict) == "fail");
}

BOOST_AUTO_TEST_CASE(destroying_the_evaluator_cancels_its_queries) {
  ZoneResolver zone;
  zone.add_txt("example.com", {"v=spf1 a mx -all"});
  bool called = false;
  auto evaluator = std::make_unique<SpfEvaluator>(zone);
  evaluator->start(request_from("192.0.2.9", "a@example.com"), [&](SpfResult) { called = true; });
  BOOST_TEST(zone.pending() == 1u);
  zone.deliver_one();  // the TXT answer: the a lookup is now in flight
  BOOST_TEST(zone.pending() == 1u);
  evaluator.reset();
  BOOST_TEST(zone.pending() == 0u);
  zone.run();
  BOOST_TEST(!called);
}

BOOST_AUTO_TEST_CASE(the_callback_may_destroy_the_evaluator) {
  ZoneResolver zone;
  zone.add_txt("example.com", {"v=spf1 mx -all"});
  zone.add_mx("example.com", 10, "mx1.example.com");
  zone.add_mx("example.com", 20, "mx2.example.com");
  zone.add_a("mx1.example.com", "192.0.2.9");
  zone.add_a("mx2.example.com", "192.0.2.10");
  std::vector<std::string> verdicts;
  auto evaluator = std::make_unique<SpfEvaluator>(zone);
  evaluator->start(request_from("192.0.2.9", "a@example.com"), [&](SpfResult r) {
    verdicts.emplace_back(spf_verdict_name(r.verdict));
    evaluator.reset();
  });
  zone.run();
  BOOST_TEST(!evaluator);
  BOOST_TEST((verdicts == std::vector<std::string>{"pass"}));
}

BOOST_AUTO_TEST_CASE(an_identity_that_is_not_a_domain_is_none_at_once) {
  ZoneResolver zone;
  SpfEvaluator evaluator(zone);
  bool called = false;
  auto result = evaluator.start(request_from("192.0.2.9", "", "localhost"),
                                [&](SpfResult) { called = true; });
  BOOST_REQUIRE(result.has_value());
  BOOST_TEST(spf_verdict_name(result->verdict) == "none");
  BOOST_TEST(result->domain == "localhost");
  BOOST_TEST(zone.queries() == 0u);
  zone.run();
  BOOST_TEST(!called);
}

BOOST_AUTO_TEST_CASE(null_sender_checks_postmaster_at_helo) {
  ZoneResolver zone;
  zone.add_txt("mx.example.org", {"v=spf1 exists:%{l}.%{d} -all"});
  zone.add_a("postmaster.mx.example.org", "127.0.0.2");
  const SpfResult result = single(zone, request_from("192.0.2.9", ""));
  BOOST_TEST(spf_verdict_name(result.verdict) == "pass");
  BOOST_TEST(result.domain == "mx.example.org");
}

BOOST_AUTO_TEST_CASE(ipv4_mapped_client_is_evaluated_as_ipv4) {
  ZoneResolver zone;
  zone.add_txt("example.com", {"v=spf1 a ip6:::ffff:0:0/96 -all"});
  zone.add_a("example.com", "192.0.2.9");
  BOOST_TEST(
      spf_verdict_name(single(zone, request_from("::ffff:192.0.2.9", "a@example.com")).verdict) ==
      "pass");
  BOOST_TEST(zone.asked().back() == "example.com A");
}

BOOST_AUTO_TEST_CASE(servfail_and_timeouts_are_temperror) {
  ZoneResolver zone;
  zone.serve_failure("broken.example");
  zone.add_txt("example.com", {"v=spf1 include:broken.example -all"});
  BOOST_TEST(spf_verdict_name(single(zone, request_from("192.0.2.9", "a@example.com")).verdict) ==
             "temperror");
  BOOST_TEST(
      spf_verdict_name(single(zone, request_from("192.0.2.9", "a@broken.example")).verdict) ==
      "temperror");
  zone.add_txt("slow.example", {"v=spf1 a -all"});
  zone.time_out("slow.example", DnsType::a);
  BOOST_TEST(spf_verdict_name(single(zone, request_from("192.0.2.9", "a@slow.example")).verdict) ==
             "temperror");
}

BOOST_AUTO_TEST_CASE(mx_names_are_looked_up_in_parallel_within_the_limit) {
  ZoneResolver zone;
  zone.add_txt("example.com", {"v=spf1 mx -all"});
  for (int i = 0; i < 10; ++i) {
    const std::string name = "mx" + std::to_string(i) + ".example.com";
    zone.add_mx("example.com", static_cast<std::uint16_t>(i), name);
    zone.add_a(name, "198.51.100." + std::to_string(i + 1));
  }
  BOOST_TEST(spf_verdict_name(
                 single(zone, request_from("198.51.100.10", "a@example.com")).verdict) == "pass");
  BOOST_TEST(zone.most_in_flight() == 10u);
  zone.add_mx("example.com", 99, "mx10.example.com");
  BOOST_TEST(
      spf_verdict_name(single(zone, request_from("198.51.100.10", "a@example.com")).verdict) ==
      "permerror");
}

BOOST_AUTO_TEST_CASE(total_queries_are_bounded_whatever_the_record_says) {
  // Ten terms, each needing %{p} (a PTR query and ten address queries) before its own query.
  ZoneResolver zone;
  std::string record = "v=spf1";
  for (int i = 0; i < 10; ++i)
    record += " a:%{p}.t" + std::to_string(i) + ".example.com";
  zone.add_txt("example.com", {record + " -all"});
  for (int i = 0; i < 10; ++i) {
    zone.add_ptr("9.2.0.192.in-addr.arpa", "h" + std::to_string(i) + ".example.com");
    zone.add_a("unknown.t" + std::to_string(i) + ".example.com", "198.51.100.1");
  }
  SpfLimits limits;
  limits.max_queries = 50;
  const SpfResult result = single(zone, request_from("192.0.2.9", "a@example.com"), limits);
  BOOST_TEST(spf_verdict_name(result.verdict) == "permerror");
  BOOST_TEST(result.reason == "too many DNS queries");
  BOOST_TEST(zone.queries() <= 50u);
  BOOST_TEST(zone.pending() == 0u);
}

BOOST_AUTO_TEST_CASE(explanation_is_expanded_and_checked) {
  ZoneResolver zone;
  zone.add_txt("example.com", {"v=spf1 -all exp=why.example.com"});
  zone.add_txt("why.example.com", {"%{i} is not one of %{d}'s senders"});
  SpfResult result = single(zone, request_from("192.0.2.9", "a@example.com"));
  BOOST_TEST(spf_verdict_name(result.verdict) == "fail");
  BOOST_TEST(result.explanation == "192.0.2.9 is not one of example.com's senders");

  // Control characters, non-ASCII bytes or an oversized text: no explanation at all.
  for (const std::string& text :
       {std::string("evil\r\n250 ok"), std::string("caf\xc3\xa9"), std::string(600, 'x')}) {
    ZoneResolver bad;
    bad.add_txt("example.com", {"v=spf1 -all exp=why.example.com"});
    bad.add_txt("why.example.com", {text});
    result = single(bad, request_from("192.0.2.9", "a@example.com"));
    BOOST_TEST(spf_verdict_name(result.verdict) == "fail");
    BOOST_TEST(result.explanation.empty());
  }
}

BOOST_AUTO_TEST_CASE(void_lookup_and_term_limits) {
  ZoneResolver zone;
  zone.add_txt("example.com", {"v=spf1 a:n1.example.com a:n2.example.com a:n3.example.com -all"});
  SpfResult result = single(zone, request_from("192.0.2.9", "a@example.com"));
  BOOST_TEST(spf_verdict_name(result.verdict) == "permerror");
  BOOST_TEST(result.reason == "more than 2 void lookups");

  ZoneResolver terms;
  std::string record = "v=spf1";
  for (int i = 0; i < 11; ++i) {
    const std::string name = "h" + std::to_string(i) + ".example.com";
    record += " a:" + name;
    terms.add_a(name, "198.51.100.1");
  }
  terms.add_txt("example.com", {record + " -all"});
  result = single(terms, request_from("192.0.2.9", "a@example.com"));
  BOOST_TEST(spf_verdict_name(result.verdict) == "permerror");
  BOOST_TEST(result.reason == "more than 10 DNS-querying terms");
}

BOOST_AUTO_TEST_CASE(names_that_cannot_be_asked_match_nothing) {
  // An SMTPUTF8 local part holds bytes outside ASCII; the expanded name is never asked.
  ZoneResolver zone;
  zone.add_txt("example.com", {"v=spf1 exists:%{l}.x.example.com -all"});
  const SpfResult result = single(zone, request_from("192.0.2.9", "j\xc3\xbcrg@example.com"));
  BOOST_TEST(spf_verdict_name(result.verdict) == "fail");
  BOOST_TEST(zone.queries() == 1u);  // the TXT record only
}
