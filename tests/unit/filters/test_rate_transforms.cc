// The ratelimit filter's GCRA and concurrent transforms as pure functions, on a fake clock:
// a burst of `limit`, the exceeded event's retry_after, one more after per/limit seconds, no
// second burst at a window edge, refused events not counted, costs (bytes), the errors
// charge's cap, expiry, unreadable records and the result encoding.
#define BOOST_TEST_MODULE rate_transforms
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <optional>

#include "rate_transforms.h"

using namespace portcullis;
using std::chrono::seconds;

namespace {

const StoreClock::time_point epoch = StoreClock::time_point(seconds(1'800'000'000));

// A key's record and a clock, as a store would keep them.
struct Key {
  std::optional<StoreRecord> record;
  StoreClock::time_point now = epoch;

  RateDecision admit(GcraLimit limit, std::int64_t cost = 1) {
    return apply(gcra_admit(live(), now, limit, cost));
  }
  RateDecision charge(GcraLimit limit, std::int64_t cost) {
    return apply(gcra_charge(live(), now, limit, cost));
  }
  RateDecision enter(std::int64_t limit, std::int64_t lifetime = 600) {
    return apply(concurrent_enter(live(), now, limit, lifetime));
  }
  RateDecision leave(std::int64_t lifetime = 600) {
    return apply(concurrent_leave(live(), now, lifetime));
  }
  std::optional<StoreRecord> live() const {
    if (record && record->expires <= now) return std::nullopt;
    return record;
  }
  RateDecision apply(StoreChange change) {
    record = change.record;
    auto decision = decode_rate_decision(change.result);
    BOOST_REQUIRE(decision.has_value());
    return *decision;
  }
};

RateDecision passed(std::int64_t count) {
  return RateDecision{count, false, 0, false};
}
RateDecision refused(std::int64_t count, std::int64_t retry_after) {
  return RateDecision{count, true, retry_after, false};
}

}  // namespace

namespace portcullis {
std::ostream& operator<<(std::ostream& out, const RateDecision& decision) {
  return out << encode_rate_decision(decision);
}
}  // namespace portcullis

BOOST_AUTO_TEST_CASE(three_per_minute_admits_three_then_one_every_twenty_seconds) {
  const GcraLimit limit{3, 60};
  Key key;
  BOOST_TEST(key.admit(limit) == passed(1));
  BOOST_TEST(key.admit(limit) == passed(2));
  BOOST_TEST(key.admit(limit) == passed(3));
  BOOST_TEST(key.admit(limit) == refused(3, 20));
  key.now += seconds(19);
  BOOST_TEST(key.admit(limit) == refused(3, 1));
  key.now += seconds(1);  // per / limit after the burst
  BOOST_TEST(key.admit(limit) == passed(3));
  BOOST_TEST(key.admit(limit) == refused(3, 20));
  // The record expires with its TAT: a key left alone is empty again.
  BOOST_REQUIRE(key.record.has_value());
  BOOST_TEST((key.record->expires == epoch + seconds(80)));
  key.now = epoch + seconds(80);
  BOOST_TEST(!key.live().has_value());
  BOOST_TEST(key.admit(limit) == passed(1));
}

BOOST_AUTO_TEST_CASE(no_second_burst_at_a_window_edge) {
  const GcraLimit limit{3, 60};
  Key key;
  key.now = epoch + seconds(59);  // the end of a fixed window [0, 60)
  for (int event = 1; event <= 3; ++event)
    BOOST_TEST(key.admit(limit) == passed(event));
  key.now = epoch + seconds(61);  // a fixed window would start afresh here
  BOOST_TEST(key.admit(limit) == refused(3, 18));
  key.now = epoch + seconds(79);
  BOOST_TEST(key.admit(limit) == passed(3));
  BOOST_TEST(key.admit(limit) == refused(3, 20));
}

BOOST_AUTO_TEST_CASE(refused_events_do_not_count_against_the_client) {
  const GcraLimit limit{2, 10};
  Key key;
  BOOST_TEST(key.admit(limit) == passed(1));
  BOOST_TEST(key.admit(limit) == passed(2));
  const auto before = key.record;
  for (int attempt = 0; attempt < 50; ++attempt)
    BOOST_TEST(key.admit(limit).exceeded);
  BOOST_REQUIRE(key.record.has_value());
  BOOST_TEST(key.record->value == before->value);
  key.now += seconds(5);
  BOOST_TEST(key.admit(limit) == passed(2));
}

BOOST_AUTO_TEST_CASE(an_uneven_interval_still_admits_the_whole_limit) {
  const GcraLimit limit{7, 60};  // 8.571... s per event
  Key key;
  for (int event = 1; event <= 7; ++event)
    BOOST_TEST(key.admit(limit) == passed(event));
  BOOST_TEST(key.admit(limit) == refused(7, 9));
}

BOOST_AUTO_TEST_CASE(bytes_cost_their_size) {
  const GcraLimit limit{1000, 60};
  Key key;
  BOOST_TEST(key.admit(limit, 600) == passed(600));
  // 1200 > 1000: 200 bytes too many, 200 × 60 / 1000 = 12 s.
  BOOST_TEST(key.admit(limit, 600) == refused(600, 12));
  BOOST_TEST(key.admit(limit, 400) == passed(1000));
  // Larger than the whole limit: never admitted; retry_after says when the window is empty.
  key.now += seconds(30);
  BOOST_TEST(key.admit(limit, 1001) == refused(500, 30));
  Key empty;
  BOOST_TEST(empty.admit(limit, 5000) == refused(0, 0));
  BOOST_TEST(!empty.record.has_value());
  // Far apart from overflow: 10^12 bytes in 30 days at the largest cost.
  Key large;
  BOOST_TEST(large.admit(GcraLimit{1'000'000'000'000, 30 * 24 * 3600}, 1'000'000'000'000) ==
             passed(1'000'000'000'000));
}

BOOST_AUTO_TEST_CASE(errors_are_charged_up_to_one_window_and_peeked_without_a_change) {
  const GcraLimit limit{3, 60};
  Key key;
  BOOST_TEST(!gcra_peek(key.live(), key.now, limit).exceeded);
  BOOST_TEST(key.charge(limit, 2).count == 2);
  BOOST_TEST((gcra_peek(key.live(), key.now, limit) == passed(3)));
  const auto before = key.record;
  BOOST_TEST(key.charge(limit, 20).count == 3);  // capped at now + per
  BOOST_REQUIRE(key.record.has_value());
  BOOST_TEST((key.record->expires == epoch + seconds(60)));
  BOOST_TEST((gcra_peek(key.live(), key.now, limit) == refused(3, 20)));
  key.now += seconds(20);
  BOOST_TEST((gcra_peek(key.live(), key.now, limit) == passed(3)));
}

BOOST_AUTO_TEST_CASE(concurrent_counts_up_and_down_and_ages_out) {
  Key key;
  BOOST_TEST(key.enter(2) == passed(1));
  BOOST_TEST(key.enter(2) == passed(2));
  BOOST_TEST(key.enter(2) == refused(2, 0));
  BOOST_TEST(key.leave() == passed(1));
  BOOST_TEST(key.enter(2) == passed(2));
  BOOST_TEST(key.leave() == passed(1));
  BOOST_TEST(key.leave() == passed(0));
  BOOST_TEST(!key.record.has_value());   // nothing kept for a key with no session
  BOOST_TEST(key.leave() == passed(0));  // never below zero
  // A node that died holding counts: they are gone once `lifetime` passes without a change.
  BOOST_TEST(key.enter(1, 600) == passed(1));
  key.now += seconds(599);
  BOOST_TEST(key.enter(1, 600) == refused(1, 0));
  key.now += seconds(1);
  BOOST_TEST(key.enter(1, 600) == passed(1));
}

BOOST_AUTO_TEST_CASE(an_unreadable_record_counts_as_empty_and_says_so) {
  const GcraLimit limit{3, 60};
  Key key;
  key.record = StoreRecord{"gcra1 not-a-number", epoch + seconds(30)};
  const RateDecision decision = key.admit(limit);
  BOOST_TEST(decision.count == 1);
  BOOST_TEST(!decision.exceeded);
  BOOST_TEST(decision.unreadable_record);
  BOOST_TEST(key.record->value.starts_with("gcra1 "));
  key.record = StoreRecord{"conc1 5", epoch + seconds(30)};  // another counter's record
  BOOST_TEST(key.admit(limit).unreadable_record);
  // A TAT further ahead than any valid write could put it is not believed.
  key.record = StoreRecord{"gcra1 9000000000000000000", epoch + seconds(30)};
  BOOST_TEST(!key.admit(limit).exceeded);
}

BOOST_AUTO_TEST_CASE(decisions_round_trip_and_foreign_results_are_refused) {
  const RateDecision decision{17, true, 42, false};
  BOOST_TEST((decode_rate_decision(encode_rate_decision(decision)) == decision));
  BOOST_TEST(!decode_rate_decision("").has_value());
  BOOST_TEST(!decode_rate_decision("1 0 0").has_value());
  BOOST_TEST(!decode_rate_decision("1 2 0 0").has_value());
  BOOST_TEST(!decode_rate_decision("1 0 0 0 ").has_value());
  BOOST_TEST(!decode_rate_decision("-1 0 0 0").has_value());
  BOOST_TEST(!decode_rate_decision("early, retry in 240 s").has_value());
}
