// SessionLimits: the per-process and per-client admission counts, and where stress mode starts
// and ends (with the gap between the two that keeps a hovering count from flipping it).
#define BOOST_TEST_MODULE session_limits
#include "session_limits.h"

#include <boost/test/unit_test.hpp>
#include <string>
#include <utility>
#include <vector>

using portcullis::SessionLimits;

namespace {

struct StressRecord {
  std::vector<std::pair<bool, unsigned>> changes;
  SessionLimits::StressListener listener() {
    return [this](bool stressed, unsigned active) { changes.emplace_back(stressed, active); };
  }
};

std::string client(unsigned n) {
  return "192.0.2." + std::to_string(n);
}

}  // namespace

BOOST_AUTO_TEST_CASE(stress_start_is_the_threshold_share_rounded_up_and_never_zero) {
  BOOST_TEST(SessionLimits::stress_start_for(10000, 80) == 8000u);
  BOOST_TEST(SessionLimits::stress_start_for(10, 85) == 9u);  // 8.5 → 9
  BOOST_TEST(SessionLimits::stress_start_for(3, 1) == 1u);    // 0.03 → 1
  BOOST_TEST(SessionLimits::stress_start_for(4, 100) == 4u);
  BOOST_TEST(SessionLimits::stress_start_for(1000000, 100) == 1000000u);
  BOOST_TEST(SessionLimits::stress_start_for(10000, 0) == 0u);  // off
}

BOOST_AUTO_TEST_CASE(stress_ends_a_tenth_below_its_start_and_at_least_one_below) {
  BOOST_TEST(SessionLimits(10000, 50, 8000).stress_end() == 7200u);
  BOOST_TEST(SessionLimits(10, 50, 5).stress_end() == 4u);
  BOOST_TEST(SessionLimits(4, 50, 2).stress_end() == 1u);
  BOOST_TEST(SessionLimits(4, 50, 1).stress_end() == 0u);
}

BOOST_AUTO_TEST_CASE(stress_starts_at_its_count_and_ends_only_at_the_end_count) {
  SessionLimits limits(30, 30, 20);  // ends at 18
  StressRecord record;
  limits.set_stress_listener(record.listener());
  for (unsigned i = 0; i < 19; ++i)
    BOOST_TEST((limits.try_admit(client(i)) == SessionLimits::Outcome::admitted));
  BOOST_TEST(!limits.stressed());
  BOOST_TEST(record.changes.empty());

  limits.try_admit(client(19));  // the 20th
  BOOST_TEST(limits.stressed());
  BOOST_REQUIRE(record.changes.size() == 1u);
  BOOST_TEST(record.changes[0].first == true);
  BOOST_TEST(record.changes[0].second == 20u);

  limits.release(client(19));  // 19: above the end count
  BOOST_TEST(limits.stressed());
  limits.try_admit(client(19));  // back to 20: no second start
  BOOST_TEST(record.changes.size() == 1u);

  limits.release(client(19));
  limits.release(client(18));  // 18: ends
  BOOST_TEST(!limits.stressed());
  BOOST_REQUIRE(record.changes.size() == 2u);
  BOOST_TEST(record.changes[1].first == false);
  BOOST_TEST(record.changes[1].second == 18u);

  limits.try_admit(client(18));  // 19: below the start count, stays off
  BOOST_TEST(!limits.stressed());
  BOOST_TEST(record.changes.size() == 2u);
}

BOOST_AUTO_TEST_CASE(refused_sessions_do_not_count_towards_stress) {
  SessionLimits limits(2, 1, 2);
  StressRecord record;
  limits.set_stress_listener(record.listener());
  BOOST_TEST((limits.try_admit("a") == SessionLimits::Outcome::admitted));
  BOOST_TEST((limits.try_admit("a") == SessionLimits::Outcome::too_many_from_client));
  BOOST_TEST(!limits.stressed());
  BOOST_TEST((limits.try_admit("b") == SessionLimits::Outcome::admitted));
  BOOST_TEST(limits.stressed());
  BOOST_TEST((limits.try_admit("c") == SessionLimits::Outcome::too_many_sessions));
  BOOST_TEST(limits.active() == 2u);
  BOOST_TEST(record.changes.size() == 1u);
}

BOOST_AUTO_TEST_CASE(without_a_threshold_there_is_never_stress) {
  SessionLimits limits(3, 3, 0);
  StressRecord record;
  limits.set_stress_listener(record.listener());
  for (unsigned i = 0; i < 3; ++i)
    limits.try_admit(client(i));
  BOOST_TEST(!limits.stressed());
  BOOST_TEST(record.changes.empty());
}

BOOST_AUTO_TEST_CASE(a_throwing_listener_does_not_undo_the_admission) {
  SessionLimits limits(3, 3, 1);
  limits.set_stress_listener([](bool, unsigned) { throw std::runtime_error("log failed"); });
  BOOST_TEST((limits.try_admit("a") == SessionLimits::Outcome::admitted));
  BOOST_TEST(limits.stressed());
  BOOST_TEST(limits.active() == 1u);
  limits.release("a");
  BOOST_TEST(!limits.stressed());
}
