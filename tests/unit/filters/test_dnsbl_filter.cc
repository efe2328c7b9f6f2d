// The dnsbl filter against an in-memory resolver whose answers arrive after resolve() returns:
// listed, not listed, the lists' error codes and answers outside 127/8 (not listed, a
// warning), timeouts, IPv6 nibble names, weights added over lists, and the settings' errors.
#define BOOST_TEST_MODULE dnsbl_filter
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "dnsbl_filter.h"
#include "filter_harness.h"

using namespace portcullis;
using namespace portcullis::test;

namespace {

constexpr const char* client = "192.0.2.10";

SettingValue text(std::string value, unsigned line = 0) {
  SettingValue setting{std::move(value)};
  setting.line = line;
  return setting;
}
SettingValue integer(std::int64_t value) {
  return SettingValue{value};
}
SettingValue texts(std::vector<std::string> values) {
  SettingArray array;
  for (auto& value : values)
    array.push_back(text(std::move(value)));
  return SettingValue{std::move(array)};
}
SettingValue list_entry(std::string zone, std::int64_t weight,
                        std::vector<std::string> answers = {}) {
  SettingTable table{{"zone", text(std::move(zone))}, {"weight", integer(weight)}};
  if (!answers.empty()) table.emplace_back("answers", texts(std::move(answers)));
  return SettingValue{std::move(table)};
}
SettingTable block(std::vector<SettingValue> lists) {
  return SettingTable{{"list", SettingValue{SettingArray(std::move(lists))}}};
}

std::unique_ptr<SessionFilter> make_filter(const SettingTable& settings) {
  std::vector<SettingError> errors;
  auto factory = build_dnsbl_filter(settings, errors);
  for (const auto& error : errors)
    BOOST_TEST_MESSAGE(error.key << ": " << error.message);
  BOOST_REQUIRE(factory != nullptr);
  BOOST_REQUIRE(errors.empty());
  return factory->create();
}

std::unique_ptr<SessionFilter> one_list() {
  return make_filter(block({list_entry("zen.example.net", 3, {"127.0.0.2-127.0.0.11"})}));
}

FilterResult run(FilterHarness& harness, SessionFilter& filter) {
  BOOST_REQUIRE((filter.on_phase(harness) == HookStatus::stop_iteration));
  BOOST_REQUIRE(harness.results.empty());  // nothing before resolve() returns
  harness.dns.deliver_all();
  BOOST_REQUIRE(harness.results.size() == 1u);
  BOOST_TEST(!harness.results[0].error.has_value());
  return harness.results[0];
}

std::int64_t score(const FilterResult& result) {
  return result.facts.integer("dnsbl.score").value_or(-999);
}
FactList lists(const FilterResult& result) {
  const FactList* hits = result.facts.list("dnsbl.lists");
  return hits != nullptr ? *hits : FactList{"(absent)"};
}

std::vector<std::string> errors_of(const SettingTable& settings) {
  std::vector<SettingError> errors;
  BOOST_TEST(build_dnsbl_filter(settings, errors) == nullptr);
  std::vector<std::string> keys;
  for (const auto& error : errors) {
    BOOST_TEST_MESSAGE(error.key << ": " << error.message);
    keys.push_back(error.key);
  }
  return keys;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_listed_client_scores_the_weight) {
  auto harness = make_harness(client);
  harness->dns.set_addresses("10.2.0.192.zen.example.net", DnsType::a, {"127.0.0.4"});
  auto filter = one_list();
  const FilterResult result = run(*harness, *filter);
  BOOST_TEST(score(result) == 3);
  BOOST_TEST((lists(result) == FactList{"zen.example.net"}));
  BOOST_TEST(result.warnings.empty());
  BOOST_REQUIRE(harness->dns.asked.size() == 1u);
  BOOST_TEST((harness->dns.asked[0].type == DnsType::a));
}

BOOST_AUTO_TEST_CASE(a_client_not_listed_scores_zero) {
  for (DnsOutcome outcome : {DnsOutcome::nxdomain, DnsOutcome::no_data}) {
    auto harness = make_harness(client);
    harness->dns.set_outcome("10.2.0.192.zen.example.net", DnsType::a, outcome);
    auto filter = one_list();
    const FilterResult result = run(*harness, *filter);
    BOOST_TEST(score(result) == 0);
    BOOST_TEST(lists(result).empty());
    BOOST_TEST(result.warnings.empty());
  }
}

BOOST_AUTO_TEST_CASE(an_answer_outside_the_counted_codes_but_in_127_is_not_listed) {
  auto harness = make_harness(client);
  harness->dns.set_addresses("10.2.0.192.zen.example.net", DnsType::a, {"127.0.0.12"});
  auto filter = one_list();
  const FilterResult result = run(*harness, *filter);
  BOOST_TEST(score(result) == 0);
  BOOST_TEST(result.warnings.empty());
}

BOOST_AUTO_TEST_CASE(an_error_code_is_not_listed_and_warns) {
  auto harness = make_harness(client);
  // 127.255.255.254: "queries through a public resolver are refused" (Spamhaus).
  harness->dns.set_addresses("10.2.0.192.zen.example.net", DnsType::a,
                             {"127.0.0.2", "127.255.255.254"});
  auto filter = make_filter(block({list_entry("zen.example.net", 5)}));  // default answers
  const FilterResult result = run(*harness, *filter);
  BOOST_TEST(score(result) == 0);
  BOOST_TEST(lists(result).empty());
  BOOST_REQUIRE(result.warnings.size() == 1u);
  BOOST_TEST(result.warnings[0].find("zen.example.net") != std::string::npos);
  BOOST_TEST(result.warnings[0].find("127.255.255.254") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_answer_outside_127_is_not_listed_and_warns) {
  for (std::string answer : {"192.0.2.1", "2001:db8::1", "128.0.0.2"}) {
    auto harness = make_harness(client);
    harness->dns.set_addresses("10.2.0.192.zen.example.net", DnsType::a, {answer});
    auto filter = make_filter(block({list_entry("zen.example.net", 5)}));
    const FilterResult result = run(*harness, *filter);
    BOOST_TEST(score(result) == 0);
    BOOST_REQUIRE(result.warnings.size() == 1u);
    BOOST_TEST(result.warnings[0].find("outside 127.0.0.0/8") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(a_timeout_or_servfail_is_not_listed_and_warns) {
  for (DnsOutcome outcome : {DnsOutcome::temporary_failure, DnsOutcome::failure}) {
    auto harness = make_harness(client);
    harness->dns.set_outcome("10.2.0.192.zen.example.net", DnsType::a, outcome, "timeout");
    harness->dns.set_addresses("10.2.0.192.bl.example.org", DnsType::a, {"127.0.0.2"});
    auto filter =
        make_filter(block({list_entry("zen.example.net", 3), list_entry("bl.example.org", 1)}));
    const FilterResult result = run(*harness, *filter);
    BOOST_TEST(score(result) == 1);
    BOOST_TEST((lists(result) == FactList{"bl.example.org"}));
    BOOST_REQUIRE(result.warnings.size() == 1u);
    BOOST_TEST(result.warnings[0].find("zen.example.net") != std::string::npos);
    BOOST_TEST(result.warnings[0].find("timeout") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(an_ipv6_client_is_asked_in_nibble_form) {
  auto harness = make_harness("2001:db8::1");
  const std::string name =
      "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.example.net";
  harness->dns.set_addresses(name, DnsType::a, {"127.0.0.3"});
  auto filter = one_list();
  const FilterResult result = run(*harness, *filter);
  BOOST_REQUIRE(harness->dns.asked.size() == 1u);
  BOOST_TEST(harness->dns.asked[0].name == name);
  BOOST_TEST(score(result) == 3);
}

BOOST_AUTO_TEST_CASE(an_ipv4_mapped_client_is_asked_as_ipv4) {
  auto harness = make_harness("::ffff:192.0.2.10");
  auto filter = one_list();
  run(*harness, *filter);
  BOOST_REQUIRE(harness->dns.asked.size() == 1u);
  BOOST_TEST(harness->dns.asked[0].name == "10.2.0.192.zen.example.net");
}

BOOST_AUTO_TEST_CASE(two_lists_are_asked_in_parallel_and_add_their_weights) {
  auto harness = make_harness(client);
  harness->dns.set_addresses("10.2.0.192.zen.example.net", DnsType::a, {"127.0.0.2"});
  harness->dns.set_addresses("10.2.0.192.bl.example.org", DnsType::a, {"127.0.0.2"});
  harness->dns.set_addresses("10.2.0.192.wl.example.com", DnsType::a, {"127.0.0.5"});
  auto filter =
      make_filter(block({list_entry("zen.example.net", 3), list_entry("BL.example.org.", 2),
                         list_entry("wl.example.com", -4), list_entry("other.example", 9)}));
  BOOST_REQUIRE((filter->on_phase(*harness) == HookStatus::stop_iteration));
  BOOST_TEST(harness->dns.asked.size() == 4u);  // all sent before any answer
  BOOST_TEST(harness->dns.asked[1].name == "10.2.0.192.bl.example.org");
  harness->dns.deliver_all();
  BOOST_REQUIRE(harness->results.size() == 1u);
  const FilterResult& result = harness->results[0];
  BOOST_TEST(score(result) == 1);
  BOOST_TEST((lists(result) == FactList{"zen.example.net", "bl.example.org", "wl.example.com"}));
}

BOOST_AUTO_TEST_CASE(no_resolver_is_a_failure) {
  auto harness = make_harness(client, false);
  auto filter = one_list();
  BOOST_TEST((filter->on_phase(*harness) == HookStatus::continue_chain));
  BOOST_TEST(harness->failure.value_or("") == "no resolver");
  BOOST_TEST(harness->parks == 0);
}

BOOST_AUTO_TEST_CASE(cancel_drops_the_queries) {
  auto harness = make_harness(client);
  harness->dns.withhold("10.2.0.192.zen.example.net");
  auto filter = make_filter(block({list_entry("zen.example.net", 3), list_entry("b.example", 1)}));
  filter->on_phase(*harness);
  harness->dns.deliver_all();
  BOOST_TEST(harness->results.empty());
  BOOST_TEST(harness->dns.in_flight() == 1u);
  filter->cancel();
  BOOST_TEST(harness->dns.in_flight() == 0u);
  BOOST_TEST(harness->results.empty());
}

BOOST_AUTO_TEST_CASE(settings_are_validated_with_the_key_named) {
  BOOST_TEST((errors_of({}) == std::vector<std::string>{"list"}));
  BOOST_TEST((errors_of(block({})) == std::vector<std::string>{"list"}));
  BOOST_TEST((errors_of(block({SettingValue{SettingTable{{"weight", integer(2)}}}})) ==
              std::vector<std::string>{"list[0].zone"}));
  BOOST_TEST((errors_of(block({list_entry("not a zone", 1)})) ==
              std::vector<std::string>{"list[0].zone"}));
  BOOST_TEST((errors_of(block({list_entry("zen.example.net", 101)})) ==
              std::vector<std::string>{"list[0].weight"}));
  BOOST_TEST((errors_of(block({list_entry("a.example", 1),
                               list_entry("b.example", 1, {"127.0.0.2", "127.255.255.254"})})) ==
              std::vector<std::string>{"list[1].answers[1]"}));
  BOOST_TEST((errors_of(block({list_entry("a.example", 1, {"127.0.0.2-127.255.255.255"})})) ==
              std::vector<std::string>{"list[0].answers[0]"}));
  BOOST_TEST((errors_of(block({list_entry("a.example", 1, {"10.0.0.2"})})) ==
              std::vector<std::string>{"list[0].answers[0]"}));
  BOOST_TEST((errors_of(block({list_entry("a.example", 1, {"127.0.0.9-127.0.0.2"})})) ==
              std::vector<std::string>{"list[0].answers[0]"}));
  BOOST_TEST((errors_of(block({list_entry("a.example", 1, {"127.0.0"})})) ==
              std::vector<std::string>{"list[0].answers[0]"}));
  BOOST_TEST((errors_of(block({list_entry("a.example", 1), list_entry("A.example.", 2)})) ==
              std::vector<std::string>{"list[1].zone"}));
  SettingTable unknown_key = block({list_entry("a.example", 1)});
  std::get<SettingTable>(std::get<SettingArray>(unknown_key[0].second.value)[0].value)
      .emplace_back("wieght", integer(1));
  unknown_key.emplace_back("zone", text("top.example"));
  BOOST_TEST((errors_of(unknown_key) == std::vector<std::string>{"list[0].wieght", "zone"}));
  SettingTable empty_answers{
      {"list", SettingValue{SettingArray{SettingValue{SettingTable{
                   {"zone", text("a.example")}, {"answers", SettingValue{SettingArray{}}}}}}}}};
  BOOST_TEST((errors_of(empty_answers) == std::vector<std::string>{"list[0].answers"}));
}

BOOST_AUTO_TEST_CASE(answers_accept_addresses_and_ranges) {
  std::vector<SettingError> errors;
  const DnsblSettings settings = read_dnsbl_settings(
      block({list_entry("a.example", 2, {"127.0.0.2", "127.0.1.0-127.0.1.255"})}), errors);
  BOOST_TEST(errors.empty());
  BOOST_REQUIRE(settings.lists.size() == 1u);
  const DnsblList& list = settings.lists[0];
  BOOST_TEST(list.zone == "a.example");
  BOOST_TEST(list.weight == 2);
  std::string why;
  auto answer = [](std::string address) {
    return DnsAnswer{DnsOutcome::answer, {DnsRecord{IpAddress::parse(address), "", 0, {}}}, 60, ""};
  };
  BOOST_TEST((classify_dnsbl_answer(list, answer("127.0.0.2"), why) == DnsblVerdict::listed));
  BOOST_TEST((classify_dnsbl_answer(list, answer("127.0.0.3"), why) == DnsblVerdict::not_listed));
  BOOST_TEST((classify_dnsbl_answer(list, answer("127.0.1.77"), why) == DnsblVerdict::listed));
  BOOST_TEST((classify_dnsbl_answer(list, answer("127.255.255.252"), why) == DnsblVerdict::error));

  const DnsblSettings defaults = read_dnsbl_settings(block({list_entry("b.example", 1)}), errors);
  BOOST_TEST(errors.empty());
  BOOST_TEST((classify_dnsbl_answer(defaults.lists[0], answer("127.0.0.255"), why) ==
              DnsblVerdict::listed));
  BOOST_TEST((classify_dnsbl_answer(defaults.lists[0], answer("127.0.0.1"), why) ==
              DnsblVerdict::not_listed));
}

BOOST_AUTO_TEST_CASE(the_session_may_destroy_the_filter_when_it_finishes) {
  auto harness = make_harness(client);
  harness->dns.set_addresses("10.2.0.192.zen.example.net", DnsType::a, {"127.0.0.2"});
  auto filter = make_filter(block({list_entry("zen.example.net", 3), list_entry("b.example", 1)}));
  harness->on_deliver = [&filter] { filter.reset(); };
  BOOST_REQUIRE((filter->on_phase(*harness) == HookStatus::stop_iteration));
  harness->dns.deliver_all();
  BOOST_REQUIRE(harness->results.size() == 1u);
  BOOST_TEST(score(harness->results[0]) == 3);
  BOOST_TEST(filter == nullptr);
}
