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

// The pass cache, on the shared harness's fake store: a client no list lists is remembered for
// pass_ttl as "pass:dnsbl:ADDR" (the key style of pregreet's, which `portcullis store list`
// shows as a pass-cache entry), and its next sessions ask no list.
namespace {

SettingTable cached_lists(std::int64_t pass_ttl) {
  SettingTable settings =
      block({list_entry("zen.example.net", 3), list_entry("wl.example.com", -4)});
  settings.emplace_back("pass_ttl", integer(pass_ttl));
  return settings;
}

std::shared_ptr<FilterHarness> cached_harness(std::shared_ptr<FakeStateStore> store,
                                              std::string address = client) {
  auto harness = make_harness(std::move(address));
  harness->use_store(std::move(store));
  return harness;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_passing_client_is_remembered_and_not_asked_again) {
  auto store = std::make_shared<FakeStateStore>();
  auto first = cached_harness(store);
  auto filter = make_filter(cached_lists(3600));
  BOOST_REQUIRE((filter->on_phase(*first) == HookStatus::stop_iteration));
  BOOST_TEST(first->dns.asked.empty());  // the cache is asked before the lists
  BOOST_TEST(store->turn() == 1);        // absent: the lists are asked
  BOOST_TEST(first->dns.asked.size() == 2u);
  BOOST_TEST(first->results.empty());
  first->dns.deliver_all();  // no record: NXDOMAIN from both
  BOOST_REQUIRE_EQUAL(first->results.size(), 1u);
  BOOST_TEST(score(first->results[0]) == 0);
  const auto remembered = store->live("pass:dnsbl:192.0.2.10");
  BOOST_REQUIRE(remembered.has_value());
  BOOST_TEST(remembered->value == "1");
  BOOST_TEST((remembered->expires == store->now + std::chrono::seconds(3600)));

  // The next session: one store read, no query, the facts of a clean lookup.
  auto second = cached_harness(store);
  auto next = make_filter(cached_lists(3600));
  BOOST_REQUIRE((next->on_phase(*second) == HookStatus::stop_iteration));
  BOOST_TEST(second->results.empty());  // not before the store answers
  store->turn();
  BOOST_REQUIRE_EQUAL(second->results.size(), 1u);
  BOOST_TEST(second->dns.asked.empty());
  BOOST_TEST(score(second->results[0]) == 0);
  BOOST_TEST(lists(second->results[0]).empty());
  BOOST_TEST(second->results[0].warnings.empty());
  BOOST_TEST(!second->results[0].error.has_value());
  BOOST_TEST(store->updates == 1);  // a cached pass is not written again (no extension)

  // Another client is not served by this one's pass.
  auto other = cached_harness(store, "192.0.2.11");
  auto third = make_filter(cached_lists(3600));
  third->on_phase(*other);
  store->turn();
  BOOST_TEST(other->dns.asked.size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_pass_expires_after_pass_ttl) {
  auto store = std::make_shared<FakeStateStore>();
  store->records["pass:dnsbl:192.0.2.10"] = StoreRecord{"1", store->now + std::chrono::seconds(60)};
  store->now += std::chrono::seconds(61);
  auto harness = cached_harness(store);
  harness->dns.set_addresses("10.2.0.192.zen.example.net", DnsType::a, {"127.0.0.2"});
  auto filter = make_filter(cached_lists(60));
  filter->on_phase(*harness);
  store->turn();
  BOOST_TEST(harness->dns.asked.size() == 2u);  // tested again
  harness->dns.deliver_all();
  BOOST_REQUIRE_EQUAL(harness->results.size(), 1u);
  BOOST_TEST(score(harness->results[0]) == 3);  // and now listed
}

BOOST_AUTO_TEST_CASE(a_listed_client_an_allow_listed_one_or_a_list_error_is_not_remembered) {
  struct Case {
    const char* zone;
    std::string answer;  // "timeout": the list times out
    std::int64_t expected_score;
  };
  for (const Case& example :
       {Case{"zen.example.net", "127.0.0.2", 3}, Case{"wl.example.com", "127.0.0.2", -4},
        Case{"zen.example.net", "127.255.255.254", 0}, Case{"zen.example.net", "timeout", 0}}) {
    BOOST_TEST_CONTEXT(example.zone << " " << example.answer) {
      auto store = std::make_shared<FakeStateStore>();
      auto harness = cached_harness(store);
      const std::string name = std::string("10.2.0.192.") + example.zone;
      if (example.answer == "timeout") {
        harness->dns.set_outcome(name, DnsType::a, DnsOutcome::temporary_failure, "timeout");
      } else {
        harness->dns.set_addresses(name, DnsType::a, {example.answer});
      }
      auto filter = make_filter(cached_lists(3600));
      filter->on_phase(*harness);
      store->turn();
      harness->dns.deliver_all();
      BOOST_REQUIRE_EQUAL(harness->results.size(), 1u);
      BOOST_TEST(score(harness->results[0]) == example.expected_score);
      BOOST_TEST(store->updates == 0);
      BOOST_TEST(store->records.empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(a_failing_store_costs_only_the_cache) {
  for (StoreStatus status : {StoreStatus::unavailable, StoreStatus::full, StoreStatus::error}) {
    auto store = std::make_shared<FakeStateStore>();
    store->records["pass:dnsbl:192.0.2.10"] = StoreRecord{"1", store->now + std::chrono::hours(1)};
    store->failing = status;
    auto harness = cached_harness(store);
    harness->dns.set_addresses("10.2.0.192.zen.example.net", DnsType::a, {"127.0.0.2"});
    auto filter = make_filter(cached_lists(3600));
    BOOST_REQUIRE((filter->on_phase(*harness) == HookStatus::stop_iteration));
    store->turn();
    BOOST_TEST(harness->dns.asked.size() == 2u);  // the lookups run as without a cache
    harness->dns.deliver_all();
    BOOST_REQUIRE_EQUAL(harness->results.size(), 1u);
    BOOST_TEST(score(harness->results[0]) == 3);
    BOOST_TEST(!harness->results[0].error.has_value());
    BOOST_TEST(!harness->failure.has_value());
  }
  // A clean lookup whose write fails: the facts stand, nothing is remembered.
  auto store = std::make_shared<FakeStateStore>();
  store->failing = StoreStatus::unavailable;
  auto harness = cached_harness(store);
  auto filter = make_filter(cached_lists(3600));
  filter->on_phase(*harness);
  store->turn();
  harness->dns.deliver_all();
  BOOST_REQUIRE_EQUAL(harness->results.size(), 1u);
  BOOST_TEST(score(harness->results[0]) == 0);
  BOOST_TEST(store->updates == 1);
  BOOST_TEST(store->records.empty());
}

BOOST_AUTO_TEST_CASE(without_pass_ttl_or_a_store_nothing_is_cached) {
  auto store = std::make_shared<FakeStateStore>();
  auto harness = cached_harness(store);
  auto filter = make_filter(cached_lists(0));
  BOOST_REQUIRE((filter->on_phase(*harness) == HookStatus::stop_iteration));
  BOOST_TEST(harness->dns.asked.size() == 2u);  // at once, no store read
  harness->dns.deliver_all();
  BOOST_REQUIRE_EQUAL(harness->results.size(), 1u);
  BOOST_TEST(store->gets == 0);
  BOOST_TEST(store->updates == 0);

  auto storeless = make_harness(client);  // pass_ttl set, but no [store] offered
  auto uncached = make_filter(cached_lists(3600));
  BOOST_REQUIRE((uncached->on_phase(*storeless) == HookStatus::stop_iteration));
  BOOST_TEST(storeless->dns.asked.size() == 2u);
  storeless->dns.deliver_all();
  BOOST_REQUIRE_EQUAL(storeless->results.size(), 1u);
  BOOST_TEST(score(storeless->results[0]) == 0);
}

BOOST_AUTO_TEST_CASE(cancel_while_the_store_is_asked_drops_the_lookup) {
  auto store = std::make_shared<FakeStateStore>();
  auto harness = cached_harness(store);
  auto filter = make_filter(cached_lists(3600));
  filter->on_phase(*harness);
  filter->cancel();
  BOOST_TEST(store->turn() == 0);
  BOOST_TEST(harness->dns.asked.empty());
  BOOST_TEST(harness->results.empty());
}

BOOST_AUTO_TEST_CASE(pass_ttl_is_read_with_its_bounds) {
  std::vector<SettingError> errors;
  BOOST_TEST(read_dnsbl_settings(cached_lists(2592000), errors).pass_ttl.count() == 2592000);
  BOOST_TEST(read_dnsbl_settings(block({list_entry("a.example", 1)}), errors).pass_ttl.count() ==
             0);
  BOOST_TEST(errors.empty());
  BOOST_TEST((errors_of(cached_lists(2592001)) == std::vector<std::string>{"pass_ttl"}));
  BOOST_TEST((errors_of(cached_lists(-1)) == std::vector<std::string>{"pass_ttl"}));
}
