#include "greylist_state.h"

#include <charconv>
#include <cstdint>

namespace portcullis {

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;

// The record's value: "v1 FIRST_SEEN_MS PASSED" (PASSED 0 or 1).
struct TripletRecord {
  std::int64_t first_seen_ms = 0;
  bool passed = false;
};

std::int64_t to_ms(StoreClock::time_point when) {
  return duration_cast<milliseconds>(when.time_since_epoch()).count();
}

StoreClock::time_point from_ms(std::int64_t ms) {
  return StoreClock::time_point(duration_cast<StoreClock::duration>(milliseconds(ms)));
}

std::optional<std::int64_t> parse_integer(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<TripletRecord> decode(const std::optional<StoreRecord>& record,
                                    StoreClock::time_point now) {
  if (!record || record->expires <= now) return std::nullopt;
  const std::string& value = record->value;
  if (value.rfind("v1 ", 0) != 0) return std::nullopt;
  const auto space = value.find(' ', 3);
  if (space == std::string::npos) return std::nullopt;
  const auto first_seen = parse_integer(std::string_view(value).substr(3, space - 3));
  const std::string_view passed = std::string_view(value).substr(space + 1);
  if (!first_seen || (passed != "0" && passed != "1")) return std::nullopt;
  return TripletRecord{*first_seen, passed == "1"};
}

std::string encode(const TripletRecord& record) {
  return "v1 " + std::to_string(record.first_seen_ms) + (record.passed ? " 1" : " 0");
}

std::string encode_decision(const GreylistDecision& decision) {
  return std::string(greylist_state_name(decision.state)) + " " +
         std::to_string(decision.retry_after.count()) + (decision.first_pass ? " first" : "");
}

seconds seconds_until(StoreClock::time_point when, StoreClock::time_point now) {
  if (when <= now) return seconds(0);
  // Rounded up: "retry in 0 s" while the delay is not over would invite an early retry.
  return duration_cast<seconds>(when - now + seconds(1) - milliseconds(1));
}

// The decision and the record it leaves.
std::pair<GreylistDecision, TripletRecord> step(const GreylistTimes& times,
                                                const std::optional<StoreRecord>& current,
                                                StoreClock::time_point now) {
  const auto seen = decode(current, now);
  if (seen) {
    const auto delay_over = from_ms(seen->first_seen_ms) + times.delay;
    if (seen->passed) return {{GreylistState::passed, seconds(0), false}, *seen};
    if (now < delay_over) {
      return {{GreylistState::early, seconds_until(delay_over, now), false}, *seen};
    }
    if (now <= delay_over + times.retry_window) {
      return {{GreylistState::passed, seconds(0), true}, {seen->first_seen_ms, true}};
    }
  }
  return {{GreylistState::new_triplet, times.delay, false}, {to_ms(now), false}};
}

}  // namespace

const char* greylist_state_name(GreylistState state) {
  switch (state) {
    case GreylistState::new_triplet:
      return "new";
    case GreylistState::early:
      return "early";
    case GreylistState::passed:
      return "passed";
  }
  return "new";
}

std::chrono::seconds greylist_renewal_slack(const GreylistTimes& times) {
  return times.lifetime / 10;
}

StoreChange greylist_attempt(const GreylistTimes& times, const std::optional<StoreRecord>& current,
                             StoreClock::time_point now) {
  const auto [decision, record] = step(times, current, now);
  if (decision.state == GreylistState::passed && !decision.first_pass && current &&
      current->expires >= now + times.lifetime) {
    // Renewed recently: still `lifetime` to live, so left as it is (no write).
    return {*current, encode_decision(decision)};
  }
  const StoreClock::time_point expires =
      record.passed ? now + times.lifetime + greylist_renewal_slack(times)
                    : from_ms(record.first_seen_ms) + times.delay + times.retry_window;
  return {StoreRecord{encode(record), expires}, encode_decision(decision)};
}

std::optional<GreylistDecision> decode_greylist_decision(const std::string& result) {
  const auto space = result.find(' ');
  if (space == std::string::npos) return std::nullopt;
  const std::string_view name = std::string_view(result).substr(0, space);
  std::string_view rest = std::string_view(result).substr(space + 1);
  GreylistDecision decision;
  if (name == "new") {
    decision.state = GreylistState::new_triplet;
  } else if (name == "early") {
    decision.state = GreylistState::early;
  } else if (name == "passed") {
    decision.state = GreylistState::passed;
  } else {
    return std::nullopt;
  }
  const auto end = rest.find(' ');
  const auto retry = parse_integer(rest.substr(0, end));
  if (!retry || *retry < 0) return std::nullopt;
  decision.retry_after = seconds(*retry);
  if (end != std::string_view::npos) {
    if (rest.substr(end + 1) != "first") return std::nullopt;
    decision.first_pass = true;
  }
  return decision;
}

GreylistDecision peek_greylist(const GreylistTimes& times,
                               const std::optional<StoreRecord>& current,
                               StoreClock::time_point now) {
  return step(times, current, now).first;
}

StoreChange count_passed_triplet(std::chrono::seconds lifetime,
                                 const std::optional<StoreRecord>& current,
                                 StoreClock::time_point now) {
  const long count =
      passed_triplet_count(current && current->expires > now ? current : std::nullopt) + 1;
  return {StoreRecord{std::to_string(count), now + lifetime}, std::to_string(count)};
}

long passed_triplet_count(const std::optional<StoreRecord>& record) {
  if (!record) return 0;
  const auto count = parse_integer(record->value);
  return count && *count > 0 ? static_cast<long>(*count) : 0;
}

}  // namespace portcullis
