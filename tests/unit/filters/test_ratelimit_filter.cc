// The ratelimit filter against an in-memory store whose answers come on a later turn, on a
// fake clock: each counter at its phase, the facts, IPv6 prefixes and client.net defaults,
// key escaping, concurrent counts given back at session end (handle dropped), errors counted
// at the end and checked at the next connect, store failures, and the settings' errors.
#define BOOST_TEST_MODULE ratelimit_filter
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "fake_message_view.h"
#include "filter_harness.h"
#include "ratelimit_filter.h"

using namespace portcullis;
using namespace portcullis::test;
using std::chrono::seconds;

namespace {

SettingValue text(std::string value, unsigned line = 0) {
  SettingValue setting{std::move(value)};
  setting.line = line;
  return setting;
}
SettingValue integer(std::int64_t value, unsigned line = 0) {
  SettingValue setting{value};
  setting.line = line;
  return setting;
}

struct LimitSpec {
  std::string name;
  std::string key;
  std::string counter;
  std::int64_t limit = 3;
  std::int64_t per = 60;
};

SettingValue limit_table(const LimitSpec& spec, SettingTable extra = {}) {
  SettingTable table{{"name", text(spec.name)},
                     {"key", text(spec.key)},
                     {"counter", text(spec.counter)},
                     {"limit", integer(spec.limit)},
                     {"per", integer(spec.per)}};
  for (auto& entry : extra)
    table.push_back(std::move(entry));
  return SettingValue{std::move(table)};
}

SettingTable block(std::vector<SettingValue> limits) {
  return SettingTable{{"limit", SettingValue{SettingArray(std::move(limits))}}};
}

std::shared_ptr<const FilterFactory> make_factory(const SettingTable& settings) {
  std::vector<SettingError> errors;
  auto factory = build_ratelimit_filter(settings, errors);
  for (const auto& error : errors)
    BOOST_TEST_MESSAGE(error.key << ": " << error.message);
  BOOST_REQUIRE(factory != nullptr);
  BOOST_REQUIRE(errors.empty());
  return factory;
}

// One hook call that parks, answered on the store's next turn.
FilterResult run(FilterHarness& harness, FakeStateStore& store, SessionFilter& filter,
                 Phase phase) {
  harness.hook_phase = phase;
  harness.results.clear();
  BOOST_REQUIRE((filter.on_phase(harness) == HookStatus::stop_iteration));
  BOOST_REQUIRE(harness.results.empty());  // nothing before the store's turn
  store.turn();
  BOOST_REQUIRE(harness.results.size() == 1u);
  return harness.results[0];
}

std::int64_t count(const FilterResult& result, const std::string& name) {
  return result.facts.integer("rate." + name).value_or(-1);
}
bool exceeded(const FilterResult& result, const std::string& name) {
  return result.facts.boolean("rate." + name + ".exceeded").value_or(false);
}
std::int64_t retry_after(const FilterResult& result, const std::string& name) {
  return result.facts.integer("rate." + name + ".retry_after").value_or(-1);
}

std::vector<std::string> error_keys(const SettingTable& settings,
                                    std::vector<std::string>* messages = nullptr) {
  std::vector<SettingError> errors;
  BOOST_TEST(build_ratelimit_filter(settings, errors) == nullptr);
  std::vector<std::string> keys;
  for (const auto& error : errors) {
    BOOST_TEST_MESSAGE(error.key << ": " << error.message);
    keys.push_back(error.key);
    if (messages) messages->push_back(error.message);
  }
  return keys;
}

}  // namespace

BOOST_AUTO_TEST_CASE(connections_per_ip_three_per_minute) {
  auto store = std::make_shared<FakeStateStore>();
  auto factory = make_factory(block({limit_table({"conn", "client.ip", "connections", 3, 60})}));
  for (int session = 1; session <= 3; ++session) {
    auto harness = make_store_harness(store);
    auto filter = factory->create();
    const FilterResult result = run(*harness, *store, *filter, Phase::connect);
    BOOST_TEST(!result.error.has_value());
    BOOST_TEST(count(result, "conn") == session);
    BOOST_TEST(!exceeded(result, "conn"));
    BOOST_TEST(retry_after(result, "conn") == 0);
  }
  auto harness = make_store_harness(store);
  auto filter = factory->create();
  FilterResult fourth = run(*harness, *store, *filter, Phase::connect);
  BOOST_TEST(count(fourth, "conn") == 3);
  BOOST_TEST(exceeded(fourth, "conn"));
  BOOST_TEST(retry_after(fourth, "conn") == 20);
  BOOST_TEST(store->updated_keys.back() == "rl:conn:192.0.2.10/32");

  store->now += seconds(20);
  filter = factory->create();
  FilterResult later = run(*harness, *store, *filter, Phase::connect);
  BOOST_TEST(!exceeded(later, "conn"));
  // Another address has its own count.
  auto other = make_store_harness(store, "192.0.2.11");
  filter = factory->create();
  BOOST_TEST(count(run(*other, *store, *filter, Phase::connect), "conn") == 1);
}

BOOST_AUTO_TEST_CASE(each_counter_counts_at_its_phase_only) {
  auto store = std::make_shared<FakeStateStore>();
  auto factory = make_factory(block({
      limit_table({"conn", "client.ip", "connections", 10, 60}),
      limit_table({"msgs", "sender", "messages", 10, 60}),
      limit_table({"rcpts", "rcpt.domain", "recipients", 10, 60}),
      limit_table({"volume", "client.net", "bytes", 10000, 60}),
  }));
  auto harness = make_store_harness(store);
  auto filter = factory->create();
  FilterResult connect = run(*harness, *store, *filter, Phase::connect);
  BOOST_TEST(connect.facts.size() == 3u);
  BOOST_TEST(count(connect, "conn") == 1);

  harness->hook_phase = Phase::helo;
  BOOST_TEST((filter->on_phase(*harness) == HookStatus::continue_chain));
  BOOST_TEST(store->updates == 1);

  harness->facts.set("sender", std::string("Alice@Example.ORG"));
  FilterResult mail = run(*harness, *store, *filter, Phase::mail);
  BOOST_TEST(count(mail, "msgs") == 1);
  BOOST_TEST(!mail.facts.has("rate.conn"));
  BOOST_TEST(store->updated_keys.back() == "rl:msgs:alice@example.org");

  harness->facts.set("rcpt.domain", std::string("Example.NET"));
  FilterResult rcpt = run(*harness, *store, *filter, Phase::rcpt);
  BOOST_TEST(count(rcpt, "rcpts") == 1);
  BOOST_TEST(store->updated_keys.back() == "rl:rcpts:example.net");
  BOOST_TEST(count(run(*harness, *store, *filter, Phase::rcpt), "rcpts") == 2);

  StringMessageView message(std::string(6000, 'x'));
  harness->message_view = &message;
  FilterResult data = run(*harness, *store, *filter, Phase::data);
  BOOST_TEST(count(data, "volume") == 6000);
  BOOST_TEST(store->updated_keys.back() == "rl:volume:192.0.2.0/24");
  BOOST_TEST(!exceeded(data, "volume"));
  FilterResult second = run(*harness, *store, *filter, Phase::data);
  BOOST_TEST(exceeded(second, "volume"));
  BOOST_TEST(retry_after(second, "volume") == 12);  // 2000 bytes over, at 10000 per 60 s
  BOOST_TEST(store->updates == 6);
}

BOOST_AUTO_TEST_CASE(ipv6_clients_share_their_prefix) {
  auto store = std::make_shared<FakeStateStore>();
  auto factory = make_factory(block({
      limit_table({"ip", "client.ip", "connections", 2, 60}),
      limit_table({"net", "client.net", "connections", 100, 60}),
      limit_table({"net56", "client.net", "connections", 100, 60},
                  {{"ipv6_prefix", integer(56)}, {"ipv4_prefix", integer(16)}}),
  }));
  auto first = make_store_harness(store, "2001:db8:1:2:3:4:5:6");
  auto filter = factory->create();
  run(*first, *store, *filter, Phase::connect);
  const std::vector<std::string> expected = {"rl:ip:2001%3Adb8%3A1%3A2%3A%3A/64",
                                             "rl:net:2001%3Adb8%3A1%3A%3A/48",
                                             "rl:net56:2001%3Adb8%3A1%3A%3A/56"};
  BOOST_TEST(store->updated_keys == expected, boost::test_tools::per_element());

  auto same_64 = make_store_harness(store, "2001:db8:1:2:ffff::1");
  filter = factory->create();
  FilterResult result = run(*same_64, *store, *filter, Phase::connect);
  BOOST_TEST(count(result, "ip") == 2);
  auto other_64 = make_store_harness(store, "2001:db8:1:3::1");
  filter = factory->create();
  result = run(*other_64, *store, *filter, Phase::connect);
  BOOST_TEST(count(result, "ip") == 1);
  BOOST_TEST(count(result, "net") == 3);  // same /48

  store->updated_keys.clear();
  auto mapped = make_store_harness(store, "::ffff:198.51.100.7");
  filter = factory->create();
  run(*mapped, *store, *filter, Phase::connect);
  const std::vector<std::string> v4 = {"rl:ip:198.51.100.7/32", "rl:net:198.51.100.0/24",
                                       "rl:net56:198.51.0.0/16"};
  BOOST_TEST(store->updated_keys == v4, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(client_values_are_escaped_bounded_and_the_null_sender_named) {
  RateLimit limit;
  limit.name = "snd";
  limit.key = RateLimitKey::sender;
  SessionView view;
  Facts facts;
  view.facts = &facts;
  BOOST_TEST(!rate_limit_store_key(limit, view).has_value());  // no sender yet
  facts.set("sender", std::string("A:b%c d@Example.org"));
  BOOST_TEST(*rate_limit_store_key(limit, view) == "rl:snd:a%3Ab%25c%20d@example.org");
  facts.set("sender", std::string(""));
  BOOST_TEST(*rate_limit_store_key(limit, view) == "rl:snd:<>");
  facts.set("sender", std::string(400, ':'));  // 1200 bytes escaped
  const std::string hashed = *rate_limit_store_key(limit, view);
  BOOST_TEST(hashed.size() <= max_store_key_bytes);
  BOOST_TEST(hashed.starts_with("rl:snd:fnv1a64-"));
  facts.set("sender", std::string(400, ';'));
  BOOST_TEST(*rate_limit_store_key(limit, view) != hashed);
  limit.key = RateLimitKey::helo;
  facts.set("helo", std::string("MX.Example.COM\r\n"));
  BOOST_TEST(*rate_limit_store_key(limit, view) == "rl:snd:mx.example.com%0D%0A");
}

BOOST_AUTO_TEST_CASE(concurrent_sessions_are_given_back_at_session_end) {
  auto store = std::make_shared<FakeStateStore>();
  auto factory = make_factory(block({limit_table({"open", "client.ip", "concurrent", 2, 600})}));
  std::vector<std::unique_ptr<SessionFilter>> sessions;
  auto harness = make_store_harness(store);
  for (int session = 1; session <= 2; ++session) {
    sessions.push_back(factory->create());
    FilterResult result = run(*harness, *store, *sessions.back(), Phase::connect);
    BOOST_TEST(count(result, "open") == session);
    BOOST_TEST(!exceeded(result, "open"));
  }
  auto refused = factory->create();
  FilterResult third = run(*harness, *store, *refused, Phase::connect);
  BOOST_TEST(exceeded(third, "open"));
  BOOST_TEST(count(third, "open") == 2);
  BOOST_TEST(retry_after(third, "open") == 0);
  // The refused session was not counted, so its end gives nothing back.
  refused->on_session_end(harness->view());
  refused.reset();
  BOOST_TEST(store->live("rl:open:192.0.2.10/32")->value == "conc1 2");

  // The release's handle is dropped at once; the update is applied all the same.
  sessions[0]->on_session_end(harness->view());
  sessions[0].reset();
  BOOST_TEST(store->live("rl:open:192.0.2.10/32")->value == "conc1 1");
  BOOST_TEST(store->turn() == 0);  // its callback was cancelled with the handle
  auto next = factory->create();
  BOOST_TEST(!exceeded(run(*harness, *store, *next, Phase::connect), "open"));
  sessions[1]->on_session_end(harness->view());
  next->on_session_end(harness->view());
  BOOST_TEST(!store->live("rl:open:192.0.2.10/32").has_value());
}

BOOST_AUTO_TEST_CASE(errors_are_counted_at_session_end_and_checked_at_connect) {
  auto store = std::make_shared<FakeStateStore>();
  auto factory = make_factory(block({limit_table({"errs", "client.ip", "errors", 3, 60})}));
  auto harness = make_store_harness(store);
  auto filter = factory->create();
  FilterResult first = run(*harness, *store, *filter, Phase::connect);
  BOOST_TEST(count(first, "errs") == 1);  // this session would be the first error
  BOOST_TEST(!exceeded(first, "errs"));
  BOOST_TEST(store->updates == 0);  // checked with a read: nothing counted at connect
  BOOST_TEST(store->gets == 1);
  harness->view().errors = 5;
  filter->on_session_end(harness->view());
  BOOST_TEST(store->updates == 1);

  filter = factory->create();
  FilterResult next = run(*harness, *store, *filter, Phase::connect);
  BOOST_TEST(exceeded(next, "errs"));
  BOOST_TEST(retry_after(next, "errs") == 20);
  // A session without errors charges nothing.
  harness->view().errors = 0;
  filter->on_session_end(harness->view());
  BOOST_TEST(store->updates == 1);
  store->now += seconds(20);
  filter = factory->create();
  BOOST_TEST(!exceeded(run(*harness, *store, *filter, Phase::connect), "errs"));
}

BOOST_AUTO_TEST_CASE(no_store_or_a_failing_store_is_a_failure) {
  auto factory = make_factory(block({limit_table({"conn", "client.ip", "connections"})}));
  auto without = make_store_harness(nullptr);
  auto filter = factory->create();
  BOOST_TEST((filter->on_phase(*without) == HookStatus::continue_chain));
  BOOST_TEST(without->failure.value_or("") == "no store");
  BOOST_TEST(without->recorded.empty());
  filter->on_session_end(without->view());  // nothing to give back, no store to ask

  auto store = std::make_shared<FakeStateStore>();
  for (const StoreStatus status :
       {StoreStatus::unavailable, StoreStatus::full, StoreStatus::error}) {
    store->failing = status;
    auto harness = make_store_harness(store);
    filter = factory->create();
    FilterResult result = run(*harness, *store, *filter, Phase::connect);
    BOOST_REQUIRE(result.error.has_value());
    BOOST_TEST(result.error->find("limit conn: store ") == 0u);
    BOOST_TEST(result.error->find("the test's store is down") != std::string::npos);
    BOOST_TEST(result.facts.empty());
  }
  BOOST_TEST(store->records.empty());
  // Recovery needs nothing but the store answering again.
  store->failing.reset();
  auto harness = make_store_harness(store);
  filter = factory->create();
  BOOST_TEST(!run(*harness, *store, *filter, Phase::connect).error.has_value());
}

BOOST_AUTO_TEST_CASE(a_missing_key_value_is_a_warning_and_cancel_drops_the_answers) {
  auto store = std::make_shared<FakeStateStore>();
  auto factory = make_factory(block({limit_table({"conn", "client.ip", "connections"})}));
  auto harness = make_store_harness(store, "not an address");
  auto filter = factory->create();
  BOOST_TEST((filter->on_phase(*harness) == HookStatus::continue_chain));
  BOOST_REQUIRE(harness->warned.size() == 1u);
  BOOST_TEST(harness->warned[0] == "limit conn: the session has no client.ip; not counted");
  BOOST_TEST(harness->recorded.empty());
  BOOST_TEST(!harness->failure.has_value());

  auto parked = make_store_harness(store);
  filter = factory->create();
  BOOST_TEST((filter->on_phase(*parked) == HookStatus::stop_iteration));
  filter->cancel();
  BOOST_TEST(store->turn() == 0);
  BOOST_TEST(parked->results.empty());
}

BOOST_AUTO_TEST_CASE(an_unreadable_record_gives_a_warning) {
  auto store = std::make_shared<FakeStateStore>();
  store->records["rl:conn:192.0.2.10/32"] =
      StoreRecord{"written by something else", store->now + seconds(30)};
  auto factory = make_factory(block({limit_table({"conn", "client.ip", "connections"})}));
  auto harness = make_store_harness(store);
  auto filter = factory->create();
  FilterResult result = run(*harness, *store, *filter, Phase::connect);
  BOOST_TEST(count(result, "conn") == 1);
  BOOST_REQUIRE(result.warnings.size() == 1u);
  BOOST_TEST(result.warnings[0].find("unreadable") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(settings_defaults_and_facts) {
  std::vector<SettingError> errors;
  const RatelimitSettings settings =
      read_ratelimit_settings(block({limit_table({"a", "client.ip", "connections"}),
                                     limit_table({"b", "client.net", "messages"}),
                                     SettingValue{SettingTable{{"name", text("c")},
                                                               {"key", text("client.ip")},
                                                               {"counter", text("concurrent")},
                                                               {"limit", integer(5)}}}}),
                              errors);
  BOOST_TEST(errors.empty());
  BOOST_REQUIRE(settings.limits.size() == 3u);
  BOOST_TEST(settings.limits[0].ipv4_prefix == 32u);
  BOOST_TEST(settings.limits[0].ipv6_prefix == 64u);
  BOOST_TEST(settings.limits[1].ipv4_prefix == 24u);
  BOOST_TEST(settings.limits[1].ipv6_prefix == 48u);
  BOOST_TEST(settings.limits[2].per_seconds == ratelimit_concurrent_default_per);
  const auto facts = rate_limit_facts(settings);
  BOOST_REQUIRE(facts.size() == 3u);
  BOOST_TEST((facts[1].name == "b" && facts[1].phase == Phase::mail));
  auto factory = make_factory(block({limit_table({"x", "rcpt", "recipients"})}));
  const auto of_factory = rate_limit_facts_of(*factory);
  BOOST_REQUIRE(of_factory.size() == 1u);
  BOOST_TEST((of_factory[0].phase == Phase::rcpt));
}

BOOST_AUTO_TEST_CASE(settings_errors_name_their_key) {
  BOOST_TEST((error_keys({}) == std::vector<std::string>{"limit"}));
  BOOST_TEST((error_keys(block({})) == std::vector<std::string>{"limit"}));
  BOOST_TEST((error_keys({{"limit", text("x")}}) == std::vector<std::string>{"limit"}));

  std::vector<std::string> messages;
  BOOST_TEST((error_keys(block({limit_table({"a", "client.address", "connection"})}), &messages) ==
              std::vector<std::string>{"limit[0].key", "limit[0].counter"}));
  BOOST_TEST(messages[0] ==
             "expected one of client.ip, client.net, helo, sender, sender.domain, rcpt, "
             "rcpt.domain, got 'client.address'");
  BOOST_TEST(messages[1] ==
             "expected one of connections, concurrent, errors, messages, recipients, bytes, got "
             "'connection'");

  // A key that its counter's phase does not know yet, or no longer.
  messages.clear();
  BOOST_TEST((error_keys(block({limit_table({"a", "rcpt", "connections"}),
                                limit_table({"b", "helo", "concurrent"}),
                                limit_table({"c", "rcpt.domain", "bytes"}),
                                limit_table({"d", "sender", "errors"})}),
                         &messages) == std::vector<std::string>{"limit[0].key", "limit[1].key",
                                                                "limit[2].key", "limit[3].key"}));
  BOOST_TEST(messages[0] ==
             "rcpt is known only from the rcpt phase, but connections are counted at connect: "
             "choose a key known by then (client.ip, client.net)");
  BOOST_TEST(messages[2] ==
             "rcpt.domain is known only at each RCPT, but bytes are counted at data: use "
             "counter recipients, or a key known for the whole transaction");

  // Duplicate names, bad names, ranges, prefixes on other keys, missing and unknown fields.
  BOOST_TEST((error_keys(block({limit_table({"a", "client.ip", "connections"}),
                                limit_table({"a", "client.ip", "messages"})})) ==
              std::vector<std::string>{"limit[1].name"}));
  BOOST_TEST((error_keys(block({limit_table({"Conn.IP", "client.ip", "connections"}),
                                limit_table({"", "client.ip", "connections"}),
                                limit_table({"10min", "client.ip", "connections"})})) ==
              std::vector<std::string>{"limit[0].name", "limit[1].name", "limit[2].name"}));
  BOOST_TEST((error_keys(block({limit_table({"a", "client.ip", "connections", 0, 60}),
                                limit_table({"b", "client.ip", "connections", 1, 0}),
                                limit_table({"c", "client.ip", "connections", 1, 2592001})})) ==
              std::vector<std::string>{"limit[0].limit", "limit[1].per", "limit[2].per"}));
  BOOST_TEST((error_keys(block(
                  {limit_table({"a", "sender", "messages"}, {{"ipv4_prefix", integer(24)}}),
                   limit_table({"b", "client.ip", "connections"},
                               {{"ipv6_prefix", integer(129)}, {"ipv4_prefix", integer(0)}})})) ==
              std::vector<std::string>{"limit[0].ipv4_prefix", "limit[1].ipv4_prefix",
                                       "limit[1].ipv6_prefix"}));
  BOOST_TEST(
      (error_keys(block({SettingValue{SettingTable{{"name", text("a")}}},
                         limit_table({"b", "client.ip", "connections"}, {{"window", integer(5)}}),
                         text("not a table")})) ==
       std::vector<std::string>{"limit[0].key", "limit[0].counter", "limit[0].limit",
                                "limit[0].per", "limit[1].window", "limit[2]"}));
}
