// The spf filter's hook through a fake HookContext and FilterServices on a ZoneResolver: the
// parked check and its facts, the HELO identity for the null sender, the missing resolver
// (an error, so failure_mode applies), cancellation, and the phases it ignores.
#define BOOST_TEST_MODULE spf_filter
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "filter_harness.h"
#include "spf_filter.h"
#include "zone_resolver.h"

using namespace portcullis;

namespace {

// A harness for `sender` and `helo` at `phase`, asking `resolver` (none when null).
std::shared_ptr<test::FilterHarness> mail_harness(DnsResolver* resolver, const std::string& sender,
                                                  const std::string& helo = "mail.example.org",
                                                  Phase phase = Phase::mail) {
  auto harness = test::make_harness("192.0.2.9", resolver != nullptr);
  harness->use_resolver(resolver);
  harness->hook_phase = phase;
  harness->view().hostname = "proxy.example.net";
  harness->facts.set("sender", sender);
  harness->facts.set("helo", helo);
  return harness;
}

std::unique_ptr<SessionFilter> make_filter() {
  std::vector<SettingError> errors;
  auto factory = build_spf_filter({}, errors);
  BOOST_REQUIRE(factory != nullptr);
  BOOST_REQUIRE(errors.empty());
  return factory->create();
}

ZoneResolver example_zone() {
  ZoneResolver zone;
  zone.add_txt("example.com", {"v=spf1 ip4:192.0.2.0/24 -all"});
  zone.add_txt("mail.example.org", {"v=spf1 -all"});
  return zone;
}

}  // namespace

BOOST_AUTO_TEST_CASE(parks_at_mail_and_finishes_with_the_facts) {
  ZoneResolver zone = example_zone();
  auto harness = mail_harness(&zone, "alice@example.com");
  auto filter = make_filter();
  BOOST_TEST((filter->on_phase(*harness) == HookStatus::stop_iteration));
  BOOST_TEST(harness->parks == 1);
  BOOST_TEST(harness->results.empty());
  zone.run();
  BOOST_REQUIRE_EQUAL(harness->results.size(), 1u);
  const Facts& facts = harness->results[0].facts;
  BOOST_TEST(*facts.string("spf") == "pass");
  BOOST_TEST(*facts.string("spf.domain") == "example.com");
  BOOST_TEST(!harness->results[0].error.has_value());
}

BOOST_AUTO_TEST_CASE(null_sender_checks_the_helo_identity) {
  ZoneResolver zone = example_zone();
  auto harness = mail_harness(&zone, "");
  auto filter = make_filter();
  BOOST_TEST((filter->on_phase(*harness) == HookStatus::stop_iteration));
  zone.run();
  BOOST_REQUIRE_EQUAL(harness->results.size(), 1u);
  BOOST_TEST(*harness->results[0].facts.string("spf") == "fail");
  BOOST_TEST(*harness->results[0].facts.string("spf.domain") == "mail.example.org");
  BOOST_TEST(zone.asked().front() == "mail.example.org TXT");
}

BOOST_AUTO_TEST_CASE(no_resolver_is_an_error) {
  auto harness = mail_harness(nullptr, "alice@example.com");
  auto filter = make_filter();
  BOOST_TEST((filter->on_phase(*harness) == HookStatus::continue_chain));
  BOOST_TEST(harness->failure.value() == "no resolver");
  BOOST_TEST(harness->recorded.empty());
  BOOST_TEST(harness->parks == 0);
}

BOOST_AUTO_TEST_CASE(an_identity_without_a_domain_is_recorded_at_once) {
  ZoneResolver zone = example_zone();
  auto harness = mail_harness(&zone, "", "localhost");
  auto filter = make_filter();
  BOOST_TEST((filter->on_phase(*harness) == HookStatus::continue_chain));
  BOOST_TEST(harness->parks == 0);
  BOOST_TEST(*harness->recorded.string("spf") == "none");
  BOOST_TEST(*harness->recorded.string("spf.domain") == "localhost");
  BOOST_TEST(zone.queries() == 0u);
}

BOOST_AUTO_TEST_CASE(cancel_drops_the_queries) {
  ZoneResolver zone = example_zone();
  auto harness = mail_harness(&zone, "alice@example.com");
  auto filter = make_filter();
  BOOST_TEST((filter->on_phase(*harness) == HookStatus::stop_iteration));
  BOOST_TEST(zone.pending() == 1u);
  filter->cancel();
  BOOST_TEST(zone.pending() == 0u);
  zone.run();
  BOOST_TEST(harness->results.empty());
}

BOOST_AUTO_TEST_CASE(other_phases_are_ignored) {
  ZoneResolver zone = example_zone();
  auto harness = mail_harness(&zone, "alice@example.com", "mail.example.org", Phase::rcpt);
  auto filter = make_filter();
  BOOST_TEST((filter->on_phase(*harness) == HookStatus::continue_chain));
  BOOST_TEST(harness->recorded.empty());
  BOOST_TEST(zone.queries() == 0u);
}
