// The greylist triplet's step with a fake clock: new, early, passed at the delay's end, the
// retry window, renewal by deliveries, and the auto-allow count.
#define BOOST_TEST_MODULE greylist_state
#include <boost/test/unit_test.hpp>

#include "greylist_state.h"

using namespace portcullis;
using namespace std::chrono_literals;

namespace {

const StoreClock::time_point t0 = StoreClock::time_point(std::chrono::seconds(1'800'000'000));

GreylistTimes times() {
  return GreylistTimes{300s, 3600s, 86400s};
}

// One attempt at `now` on `record`, which it updates as the store would.
GreylistDecision attempt(std::optional<StoreRecord>& record, StoreClock::time_point now) {
  const StoreChange change = greylist_attempt(times(), record, now);
  record = change.record;
  const auto decision = decode_greylist_decision(change.result);
  BOOST_REQUIRE(decision.has_value());
  return *decision;
}

}  // namespace

BOOST_AUTO_TEST_CASE(first_attempt_is_new_and_an_early_retry_waits_for_the_rest) {
  std::optional<StoreRecord> record;
  GreylistDecision first = attempt(record, t0);
  BOOST_TEST((first.state == GreylistState::new_triplet));
  BOOST_TEST(first.retry_after.count() == 300);
  BOOST_REQUIRE(record.has_value());
  BOOST_TEST((record->expires == t0 + 300s + 3600s));

  GreylistDecision early = attempt(record, t0 + 100s);
  BOOST_TEST((early.state == GreylistState::early));
  BOOST_TEST(early.retry_after.count() == 200);
  // An early retry does not restart the delay.
  GreylistDecision still_early = attempt(record, t0 + 299s + 500ms);
  BOOST_TEST((still_early.state == GreylistState::early));
  BOOST_TEST(still_early.retry_after.count() == 1);  // rounded up, never "retry in 0 s"
}

BOOST_AUTO_TEST_CASE(a_retry_after_the_delay_passes_and_is_remembered_for_the_lifetime) {
  std::optional<StoreRecord> record;
  attempt(record, t0);
  GreylistDecision passed = attempt(record, t0 + 300s);
  BOOST_TEST((passed.state == GreylistState::passed));
  BOOST_TEST(passed.first_pass);
  // The lifetime and a tenth of it (the renewal slack).
  BOOST_TEST((record->expires == t0 + 300s + 86400s + 8640s));

  GreylistDecision again = attempt(record, t0 + 86400s);  // within the lifetime
  BOOST_TEST((again.state == GreylistState::passed));
  BOOST_TEST(!again.first_pass);
  BOOST_TEST((record->expires == t0 + 86400s + 86400s + 8640s));  // a delivery renews it
}

// A delivery within a tenth of the lifetime of the last renewal leaves the record exactly as
// it was (the store writes nothing); the triplet still lives a lifetime after that delivery.
BOOST_AUTO_TEST_CASE(a_passed_triplet_renewed_recently_is_left_as_it_is) {
  std::optional<StoreRecord> record;
  attempt(record, t0);
  attempt(record, t0 + 300s);
  const StoreRecord renewed = *record;
  for (const auto later : {t0 + 301s, t0 + 300s + 4000s, t0 + 300s + 8640s}) {
    const StoreChange change = greylist_attempt(times(), record, later);
    BOOST_REQUIRE(change.record.has_value());
    BOOST_TEST(change.record->value == renewed.value);
    BOOST_TEST((change.record->expires == renewed.expires));
    BOOST_TEST((change.record->expires >= later + 86400s));
    BOOST_TEST((decode_greylist_decision(change.result)->state == GreylistState::passed));
  }
  // Past a tenth of the lifetime: written again, a lifetime and its slack from then.
  const StoreChange change = greylist_attempt(times(), record, t0 + 300s + 8641s);
  BOOST_TEST((change.record->expires == t0 + 300s + 8641s + 86400s + 8640s));
}

BOOST_AUTO_TEST_CASE(a_retry_after_the_window_starts_over_and_an_expired_record_is_absent) {
  std::optional<StoreRecord> record;
  attempt(record, t0);
  GreylistDecision late = attempt(record, t0 + 300s + 3600s + 1s);
  BOOST_TEST((late.state == GreylistState::new_triplet));
  BOOST_TEST(late.retry_after.count() == 300);

  std::optional<StoreRecord> passed;
  attempt(passed, t0);
  attempt(passed, t0 + 301s);
  // Not delivered again within its lifetime (and its slack): gone, greylisted once more.
  GreylistDecision forgotten = attempt(passed, t0 + 301s + 86400s + 8640s);
  BOOST_TEST((forgotten.state == GreylistState::new_triplet));
}

BOOST_AUTO_TEST_CASE(peek_tells_the_decision_without_a_write) {
  std::optional<StoreRecord> record;
  BOOST_TEST((peek_greylist(times(), record, t0).state == GreylistState::new_triplet));
  attempt(record, t0);
  const std::optional<StoreRecord> before = record;
  const GreylistDecision seen = peek_greylist(times(), record, t0 + 60s);
  BOOST_TEST((seen.state == GreylistState::early));
  BOOST_TEST(seen.retry_after.count() == 240);
  BOOST_TEST(record->value == before->value);
}

BOOST_AUTO_TEST_CASE(an_unreadable_record_is_a_new_triplet) {
  for (const char* value : {"", "v1", "v1 x 0", "v1 100 2", "v2 100 0", "v1 100 0 extra"}) {
    std::optional<StoreRecord> record = StoreRecord{value, t0 + 3600s};
    BOOST_TEST((attempt(record, t0).state == GreylistState::new_triplet), value);
  }
  BOOST_TEST(!decode_greylist_decision("late 3").has_value());
  BOOST_TEST(!decode_greylist_decision("early -1").has_value());
  BOOST_TEST(!decode_greylist_decision("passed 0 second").has_value());
}

BOOST_AUTO_TEST_CASE(the_auto_allow_count_adds_up_and_ages_out) {
  std::optional<StoreRecord> count;
  for (int i = 1; i <= 3; ++i) {
    const StoreChange change = count_passed_triplet(86400s, count, t0 + std::chrono::seconds(i));
    count = change.record;
    BOOST_TEST(change.result == std::to_string(i));
  }
  BOOST_TEST(passed_triplet_count(count) == 3);
  const StoreChange after_expiry = count_passed_triplet(86400s, count, t0 + 3s + 86400s);
  BOOST_TEST(after_expiry.result == "1");
  BOOST_TEST(passed_triplet_count(StoreRecord{"junk", t0}) == 0);
  BOOST_TEST(passed_triplet_count(std::nullopt) == 0);
}
