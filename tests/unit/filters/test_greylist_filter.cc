// The greylist filter on the fake store with a fake clock: a first attempt is new, a retry
// before the delay early, after it passed (and counted for the client's network); the triplet
// is the network, the normalised sender and the recipient; auto-allow, skip_spf_pass, a store
// that fails, no store, and the settings' validation.
#define BOOST_TEST_MODULE greylist_filter
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "filter_harness.h"
#include "greylist_filter.h"

using namespace portcullis;
using namespace portcullis::test;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<SessionFilter> make_filter(const SettingTable& settings = {}) {
  std::vector<SettingError> errors;
  auto factory = build_greylist_filter(settings, errors);
  BOOST_REQUIRE(errors.empty());
  BOOST_REQUIRE(factory != nullptr);
  return factory->create();
}

SettingTable short_times(std::int64_t auto_allow_after = 0) {
  return {{"delay", SettingValue{std::int64_t{60}}},
          {"retry_window", SettingValue{std::int64_t{3600}}},
          {"lifetime", SettingValue{std::int64_t{86400}}},
          {"auto_allow_after", SettingValue{auto_allow_after}}};
}

struct Attempt {
  std::string greylist;
  std::int64_t retry_after = -1;
  std::optional<std::string> error;
};

// One RCPT from `client` for sender → rcpt, run until the filter answered.
Attempt attempt(const std::shared_ptr<FakeStateStore>& store, const SettingTable& settings,
                const std::string& client, const std::string& sender, const std::string& rcpt,
                const std::string& spf = "none") {
  auto harness = make_store_harness(store, client);
  harness->hook_phase = Phase::rcpt;
  harness->facts.set("sender", sender);
  harness->facts.set("rcpt", rcpt);
  harness->facts.set("spf", spf);
  auto filter = make_filter(settings);
  Attempt out;
  if (filter->on_phase(*harness) == HookStatus::continue_chain) {
    out.error = harness->failure;
    if (const std::string* state = harness->recorded.string("greylist")) out.greylist = *state;
    if (const auto retry = harness->recorded.integer("greylist.retry_after")) {
      out.retry_after = *retry;
    }
    return out;
  }
  for (int turns = 0; harness->results.empty() && turns < 10; ++turns)
    store->turn();
  BOOST_REQUIRE_EQUAL(harness->results.size(), 1u);
  const FilterResult& result = harness->results.front();
  out.error = result.error;
  if (const std::string* state = result.facts.string("greylist")) out.greylist = *state;
  if (const auto retry = result.facts.integer("greylist.retry_after")) out.retry_after = *retry;
  store->turn();  // the network's count, after a first pass
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(new_then_early_then_passed_after_the_delay) {
  auto store = std::make_shared<FakeStateStore>();
  const Attempt first =
      attempt(store, short_times(), "192.0.2.10", "alice@example.org", "bob@example.net");
  BOOST_TEST(first.greylist == "new");
  BOOST_TEST(first.retry_after == 60);
  store->now += 20s;
  const Attempt early =
      attempt(store, short_times(), "192.0.2.10", "alice@example.org", "bob@example.net");
  BOOST_TEST(early.greylist == "early");
  BOOST_TEST(early.retry_after == 40);
  store->now += 40s;
  const Attempt passed =
      attempt(store, short_times(), "192.0.2.10", "alice@example.org", "bob@example.net");
  BOOST_TEST(passed.greylist == "passed");
  BOOST_TEST(passed.retry_after == 0);
  BOOST_TEST(!passed.error.has_value());
}

BOOST_AUTO_TEST_CASE(the_triplet_is_the_network_the_normalised_sender_and_the_recipient) {
  auto store = std::make_shared<FakeStateStore>();
  attempt(store, short_times(), "192.0.2.10", "prvs=1234abcdef=Alice@Example.org",
          "Bob@Example.net");
  BOOST_REQUIRE_EQUAL(store->updated_keys.size(), 1u);
  BOOST_TEST(store->updated_keys[0] == "gl:192.0.2.0/24:alice@example.org:bob@example.net");
  store->now += 61s;
  // Another host of the same /24, the BATV tag of another day: the same triplet, passed.
  BOOST_TEST(attempt(store, short_times(), "192.0.2.77", "prvs=9999abcdef=alice@example.org",
                     "bob@example.net")
                 .greylist == "passed");
  // Another recipient, or another /24, is a triplet of its own.
  BOOST_TEST(attempt(store, short_times(), "192.0.2.77", "alice@example.org", "carol@example.net")
                 .greylist == "new");
  BOOST_TEST(attempt(store, short_times(), "198.51.100.7", "alice@example.org", "bob@example.net")
                 .greylist == "new");
  // IPv6 by its /64 (the ':' of the address escaped in the key), the null sender as empty.
  attempt(store, short_times(), "2001:db8:1:2:3::9", "", "bob@example.net");
  BOOST_TEST(store->updated_keys.back() == "gl:2001%3Adb8%3A1%3A2%3A%3A/64::bob@example.net");
}

BOOST_AUTO_TEST_CASE(a_network_with_enough_passed_triplets_is_allowed) {
  auto store = std::make_shared<FakeStateStore>();
  const SettingTable settings = short_times(2);
  for (const std::string rcpt : {"a@example.net", "b@example.net"}) {
    BOOST_TEST(attempt(store, settings, "192.0.2.10", "alice@example.org", rcpt).greylist == "new");
  }
  store->now += 61s;
  for (const std::string rcpt : {"a@example.net", "b@example.net"}) {
    BOOST_TEST(attempt(store, settings, "192.0.2.10", "alice@example.org", rcpt).greylist ==
               "passed");
  }
  BOOST_TEST(store->live("gla:192.0.2.0/24").value().value == "2");
  // A triplet never seen before, from the same network: not delayed.
  const Attempt allowed =
      attempt(store, settings, "192.0.2.99", "zed@example.com", "c@example.net");
  BOOST_TEST(allowed.greylist == "allowed");
  BOOST_TEST(allowed.retry_after == 0);
}

BOOST_AUTO_TEST_CASE(skip_spf_pass_skips_without_asking_the_store) {
  auto store = std::make_shared<FakeStateStore>();
  SettingTable settings = short_times();
  settings.push_back({"skip_spf_pass", SettingValue{true}});
  const Attempt skipped =
      attempt(store, settings, "192.0.2.10", "alice@example.org", "bob@example.net", "pass");
  BOOST_TEST(skipped.greylist == "skipped");
  BOOST_TEST(store->updates == 0);
  BOOST_TEST(store->gets == 0);
  BOOST_TEST(
      attempt(store, settings, "192.0.2.10", "alice@example.org", "bob@example.net", "softfail")
          .greylist == "new");
}

BOOST_AUTO_TEST_CASE(a_failing_store_or_none_is_the_filters_failure) {
  auto store = std::make_shared<FakeStateStore>();
  store->failing = StoreStatus::unavailable;
  const Attempt down =
      attempt(store, short_times(5), "192.0.2.10", "alice@example.org", "bob@example.net");
  BOOST_TEST(down.greylist.empty());
  BOOST_TEST(down.error.value_or("").find("store unavailable") == 0u, down.error.value_or(""));

  const Attempt none =
      attempt(nullptr, short_times(), "192.0.2.10", "alice@example.org", "bob@example.net");
  BOOST_TEST(none.error.value_or("") == "no store");
}

BOOST_AUTO_TEST_CASE(only_rcpt_is_hooked_and_cancel_drops_the_answer) {
  auto store = std::make_shared<FakeStateStore>();
  auto harness = make_store_harness(store);
  harness->hook_phase = Phase::mail;
  auto filter = make_filter(short_times());
  BOOST_TEST((filter->on_phase(*harness) == HookStatus::continue_chain));
  BOOST_TEST(harness->recorded.empty());

  harness->hook_phase = Phase::rcpt;
  harness->facts.set("sender", std::string("alice@example.org"));
  harness->facts.set("rcpt", std::string("bob@example.net"));
  BOOST_TEST((filter->on_phase(*harness) == HookStatus::stop_iteration));
  filter->cancel();
  store->turn();
  BOOST_TEST(harness->results.empty());
  BOOST_TEST(store->updates == 1);  // the attempt itself was still recorded
}

BOOST_AUTO_TEST_CASE(settings_are_validated) {
  std::vector<SettingError> errors;
  BOOST_TEST(build_greylist_filter({{"delay", SettingValue{std::int64_t{0}}},
                                    {"ipv4_prefix", SettingValue{std::int64_t{33}}},
                                    {"colour", SettingValue{std::string("grey")}}},
                                   errors) == nullptr);
  BOOST_REQUIRE_EQUAL(errors.size(), 3u);
  BOOST_TEST(errors[0].key == "delay");
  BOOST_TEST(errors[1].key == "ipv4_prefix");
  BOOST_TEST(errors[2].key == "colour");
}
