// The fcrdns filter against an in-memory resolver whose answers arrive after resolve()
// returns: confirmed, mismatching, missing and temporarily failing PTR data, the bound on
// forward lookups, IPv6 and IPv4-mapped clients, malformed names, and cancellation.
#define BOOST_TEST_MODULE fcrdns_filter
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "fcrdns_filter.h"
#include "filter_harness.h"

using namespace portcullis;
using namespace portcullis::test;

namespace {

constexpr const char* client = "192.0.2.10";
constexpr const char* client_reverse = "10.2.0.192.in-addr.arpa";

std::unique_ptr<SessionFilter> make_filter() {
  std::vector<SettingError> errors;
  auto factory = build_fcrdns_filter({}, errors);
  BOOST_REQUIRE(factory != nullptr);
  BOOST_REQUIRE(errors.empty());
  return factory->create();
}

// Runs the connect hook and every answer; the filter's single result.
FilterResult run(FilterHarness& harness, SessionFilter& filter) {
  BOOST_REQUIRE((filter.on_phase(harness) == HookStatus::stop_iteration));
  BOOST_REQUIRE(harness.parks == 1);
  // Nothing is answered before resolve() returns.
  BOOST_REQUIRE(harness.results.empty());
  harness.dns.deliver_all();
  BOOST_REQUIRE(harness.results.size() == 1u);
  BOOST_TEST(!harness.results[0].error.has_value());
  return harness.results[0];
}

std::string text_fact(const FilterResult& result, const char* name) {
  const std::string* value = result.facts.string(name);
  return value != nullptr ? *value : "(absent)";
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_confirmed_name_gives_ptr_name_and_pass) {
  auto harness = make_harness(client);
  harness->dns.set_names(client_reverse, {"mail.example.net"});
  harness->dns.set_addresses("mail.example.net", DnsType::a, {"192.0.2.99", "192.0.2.10"});
  auto filter = make_filter();
  const FilterResult result = run(*harness, *filter);
  BOOST_TEST(text_fact(result, "client.ptr") == "mail.example.net");
  BOOST_TEST(text_fact(result, "client.name") == "mail.example.net");
  BOOST_TEST(text_fact(result, "fcrdns") == "pass");
  BOOST_TEST(result.warnings.empty());
  BOOST_REQUIRE(harness->dns.asked.size() == 2u);
  BOOST_TEST(harness->dns.asked[0].name == client_reverse);
  BOOST_TEST((harness->dns.asked[0].type == DnsType::ptr));
  BOOST_TEST(harness->dns.asked[1].name == "mail.example.net");
  BOOST_TEST((harness->dns.asked[1].type == DnsType::a));
}

BOOST_AUTO_TEST_CASE(a_mismatching_name_is_only_the_ptr) {
  auto harness = make_harness(client);
  harness->dns.set_names(client_reverse, {"Dyn-10.Example.NET"});
  harness->dns.set_addresses("dyn-10.example.net", DnsType::a, {"192.0.2.11"});
  auto filter = make_filter();
  const FilterResult result = run(*harness, *filter);
  BOOST_TEST(text_fact(result, "client.ptr") == "dyn-10.example.net");  // folded to lower case
  BOOST_TEST(!result.facts.has("client.name"));
  BOOST_TEST(text_fact(result, "fcrdns") == "fail");
}

BOOST_AUTO_TEST_CASE(a_ptr_name_without_addresses_is_not_confirmed) {
  auto harness = make_harness(client);
  harness->dns.set_names(client_reverse, {"gone.example.net"});  // its A query: NXDOMAIN
  auto filter = make_filter();
  const FilterResult result = run(*harness, *filter);
  BOOST_TEST(text_fact(result, "client.ptr") == "gone.example.net");
  BOOST_TEST(!result.facts.has("client.name"));
  BOOST_TEST(text_fact(result, "fcrdns") == "fail");
}

BOOST_AUTO_TEST_CASE(a_missing_ptr_gives_none_and_no_names) {
  for (DnsOutcome outcome : {DnsOutcome::nxdomain, DnsOutcome::no_data}) {
    auto harness = make_harness(client);
    harness->dns.set_outcome(client_reverse, DnsType::ptr, outcome);
    auto filter = make_filter();
    const FilterResult result = run(*harness, *filter);
    BOOST_TEST(!result.facts.has("client.ptr"));
    BOOST_TEST(!result.facts.has("client.name"));
    BOOST_TEST(text_fact(result, "fcrdns") == "none");
    BOOST_TEST(harness->dns.asked.size() == 1u);
  }
}

BOOST_AUTO_TEST_CASE(a_temporary_ptr_failure_gives_temperror_and_no_names) {
  for (DnsOutcome outcome : {DnsOutcome::temporary_failure, DnsOutcome::failure}) {
    auto harness = make_harness(client);
    harness->dns.set_outcome(client_reverse, DnsType::ptr, outcome, "SERVFAIL");
    auto filter = make_filter();
    const FilterResult result = run(*harness, *filter);
    BOOST_TEST(!result.facts.has("client.ptr"));
    BOOST_TEST(!result.facts.has("client.name"));
    BOOST_TEST(text_fact(result, "fcrdns") == "temperror");
  }
}

BOOST_AUTO_TEST_CASE(a_temporary_forward_failure_gives_temperror_with_the_ptr) {
  auto harness = make_harness(client);
  harness->dns.set_names(client_reverse, {"a.example.net", "b.example.net"});
  harness->dns.set_addresses("a.example.net", DnsType::a, {"192.0.2.1"});
  harness->dns.set_outcome("b.example.net", DnsType::a, DnsOutcome::temporary_failure, "timeout");
  auto filter = make_filter();
  const FilterResult result = run(*harness, *filter);
  BOOST_TEST(text_fact(result, "client.ptr") == "a.example.net");
  BOOST_TEST(!result.facts.has("client.name"));
  BOOST_TEST(text_fact(result, "fcrdns") == "temperror");
}

BOOST_AUTO_TEST_CASE(the_first_confirmed_name_in_ptr_order_wins) {
  auto harness = make_harness(client);
  harness->dns.set_names(client_reverse,
                         {"one.example.net", "two.example.net", "three.example.net"});
  harness->dns.set_addresses("one.example.net", DnsType::a, {"192.0.2.1"});
  harness->dns.set_addresses("two.example.net", DnsType::a, {"192.0.2.10"});
  harness->dns.set_addresses("three.example.net", DnsType::a, {"192.0.2.10"});
  auto filter = make_filter();
  const FilterResult result = run(*harness, *filter);
  BOOST_TEST(text_fact(result, "client.ptr") == "one.example.net");
  BOOST_TEST(text_fact(result, "client.name") == "two.example.net");
  BOOST_TEST(text_fact(result, "fcrdns") == "pass");
  BOOST_TEST(harness->dns.asked.size() == 4u);  // the forward lookups ran in parallel
}

BOOST_AUTO_TEST_CASE(at_most_ten_names_are_looked_up) {
  auto harness = make_harness(client);
  std::vector<std::string> names;
  for (int index = 0; index < 25; ++index)
    names.push_back("n" + std::to_string(index) + ".example.net");
  harness->dns.set_names(client_reverse, names);
  harness->dns.set_addresses("n10.example.net", DnsType::a, {"192.0.2.10"});  // the 11th
  auto filter = make_filter();
  const FilterResult result = run(*harness, *filter);
  BOOST_TEST(harness->dns.asked.size() == 1u + fcrdns_max_names);
  BOOST_TEST(harness->dns.asked.back().name == "n9.example.net");
  BOOST_TEST(!result.facts.has("client.name"));
  BOOST_TEST(text_fact(result, "fcrdns") == "fail");
}

BOOST_AUTO_TEST_CASE(malformed_ptr_names_are_ignored) {
  auto harness = make_harness(client);
  harness->dns.set_names(client_reverse, {"bad name.example.net", "192.0.2.10", "evil\r\nX: y",
                                          std::string(300, 'a'), "..", "ok.example.net."});
  harness->dns.set_addresses("ok.example.net", DnsType::a, {"192.0.2.10"});
  harness->dns.set_addresses("192.0.2.10", DnsType::a, {"192.0.2.10"});
  auto filter = make_filter();
  const FilterResult result = run(*harness, *filter);
  BOOST_TEST(text_fact(result, "client.ptr") == "ok.example.net");
  BOOST_TEST(text_fact(result, "client.name") == "ok.example.net");
  BOOST_TEST(harness->dns.asked.size() == 2u);  // only the valid name was looked up

  auto only_bad = make_harness(client);
  only_bad->dns.set_names(client_reverse, {"-x-.example.net\x01"});
  auto second = make_filter();
  const FilterResult bad_result = run(*only_bad, *second);
  BOOST_TEST(!bad_result.facts.has("client.ptr"));
  BOOST_TEST(text_fact(bad_result, "fcrdns") == "fail");
}

BOOST_AUTO_TEST_CASE(plain_host_names) {
  BOOST_TEST(is_plain_host_name("mail.example.net"));
  BOOST_TEST(is_plain_host_name("a"));
  BOOST_TEST(is_plain_host_name("_dmarc.x-y.example"));
  BOOST_TEST(!is_plain_host_name(""));
  BOOST_TEST(!is_plain_host_name("a..b"));
  BOOST_TEST(!is_plain_host_name("a.b."));
  BOOST_TEST(!is_plain_host_name("10.0.0.1"));
  BOOST_TEST(!is_plain_host_name("[192.0.2.1]"));
  BOOST_TEST(!is_plain_host_name(std::string(64, 'a') + ".example"));
  BOOST_TEST(is_plain_host_name(std::string(63, 'a') + ".example"));
}

BOOST_AUTO_TEST_CASE(an_ipv6_client_is_checked_with_aaaa) {
  auto harness = make_harness("2001:db8::25");
  const std::string reverse = reverse_name(*IpAddress::parse("2001:db8::25"));
  BOOST_TEST(reverse.ends_with(".ip6.arpa"));
  harness->dns.set_names(reverse, {"v6.example.net"});
  harness->dns.set_addresses("v6.example.net", DnsType::aaaa, {"2001:db8::25"});
  harness->dns.set_addresses("v6.example.net", DnsType::a, {"192.0.2.10"});
  auto filter = make_filter();
  const FilterResult result = run(*harness, *filter);
  BOOST_TEST(text_fact(result, "client.name") == "v6.example.net");
  BOOST_REQUIRE(harness->dns.asked.size() == 2u);
  BOOST_TEST(harness->dns.asked[0].name == reverse);
  BOOST_TEST((harness->dns.asked[1].type == DnsType::aaaa));
}

BOOST_AUTO_TEST_CASE(an_ipv4_mapped_client_is_checked_as_ipv4) {
  auto harness = make_harness("::ffff:192.0.2.10");
  harness->dns.set_names(client_reverse, {"mail.example.net"});
  harness->dns.set_addresses("mail.example.net", DnsType::a, {"192.0.2.10"});
  auto filter = make_filter();
  const FilterResult result = run(*harness, *filter);
  BOOST_TEST(text_fact(result, "client.name") == "mail.example.net");
  BOOST_REQUIRE(harness->dns.asked.size() == 2u);
  BOOST_TEST(harness->dns.asked[0].name == client_reverse);
  BOOST_TEST((harness->dns.asked[1].type == DnsType::a));
}

BOOST_AUTO_TEST_CASE(no_resolver_is_a_failure) {
  auto harness = make_harness(client, false);
  auto filter = make_filter();
  BOOST_TEST((filter->on_phase(*harness) == HookStatus::continue_chain));
  BOOST_TEST(harness->failure.value_or("") == "no resolver");
  BOOST_TEST(harness->parks == 0);
}

BOOST_AUTO_TEST_CASE(cancel_drops_the_queries) {
  auto harness = make_harness(client);
  harness->dns.set_names(client_reverse, {"a.example.net", "b.example.net"});
  harness->dns.withhold("b.example.net");
  auto filter = make_filter();
  BOOST_REQUIRE((filter->on_phase(*harness) == HookStatus::stop_iteration));
  harness->dns.deliver_all();  // the PTR and a.example.net; b.example.net stays pending
  BOOST_TEST(harness->results.empty());
  BOOST_TEST(harness->dns.in_flight() == 1u);
  filter->cancel();
  BOOST_TEST(harness->dns.in_flight() == 0u);
  BOOST_TEST(*harness->dns.cancelled == 1);
  BOOST_TEST(harness->results.empty());

  // Destroying the filter mid-lookup cancels too.
  auto second = make_harness(client);
  second->dns.withhold(client_reverse);
  auto other = make_filter();
  other->on_phase(*second);
  BOOST_TEST(second->dns.in_flight() == 1u);
  other.reset();
  BOOST_TEST(second->dns.in_flight() == 0u);
}

BOOST_AUTO_TEST_CASE(the_block_takes_no_keys) {
  std::vector<SettingError> errors;
  BOOST_TEST(build_fcrdns_filter({{"names", SettingValue{std::int64_t{3}}}}, errors) == nullptr);
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].key == "names");
}

BOOST_AUTO_TEST_CASE(an_earlier_name_is_waited_for_before_a_later_confirmed_one) {
  auto harness = make_harness(client);
  harness->dns.set_names(client_reverse, {"slow.example.net", "a.example.net"});
  harness->dns.set_addresses("a.example.net", DnsType::a, {"192.0.2.10"});
  harness->dns.withhold("slow.example.net");
  auto filter = make_filter();
  BOOST_REQUIRE((filter->on_phase(*harness) == HookStatus::stop_iteration));
  harness->dns.deliver_all();
  BOOST_TEST(harness->results.empty());
  BOOST_TEST(harness->dns.in_flight() == 1u);
}

BOOST_AUTO_TEST_CASE(a_confirmed_first_name_finishes_and_the_session_may_destroy_the_filter) {
  // Finishing ends the phase; a session that ends then destroys the filter (and with it the
  // pending query) inside the answer's callback.
  auto harness = make_harness(client);
  harness->dns.set_names(client_reverse, {"a.example.net", "b.example.net"});
  harness->dns.set_addresses("a.example.net", DnsType::a, {"192.0.2.10"});
  harness->dns.withhold("b.example.net");
  auto filter = make_filter();
  harness->on_deliver = [&filter] { filter.reset(); };
  BOOST_REQUIRE((filter->on_phase(*harness) == HookStatus::stop_iteration));
  harness->dns.deliver_all();
  BOOST_REQUIRE(harness->results.size() == 1u);
  BOOST_TEST(text_fact(harness->results[0], "client.name") == "a.example.net");
  BOOST_TEST(filter == nullptr);
  BOOST_TEST(harness->dns.in_flight() == 0u);  // b.example.net's query went with the filter
}
