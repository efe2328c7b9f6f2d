// SECURITY: the records come from the store, which other nodes (or an administrator with
// `redis-cli`) also write: a record that does not parse, or holds a value out of range, is
// counted as empty and reported, never trusted into an overflow.
#include "ratelimit/rate_transforms.h"

#include <algorithm>
#include <charconv>
#include <chrono>

#include <fmt/format.h>

namespace portcullis {

namespace {

// Times are nanoseconds since the epoch; the products of a cost and an interval need more
// than 64 bits (10^12 bytes × 30 days in ns), so the arithmetic is done in 128.
using Wide = __int128;
constexpr std::int64_t nanoseconds_per_second = 1'000'000'000;

constexpr std::string_view gcra_tag = "gcra1 ";
constexpr std::string_view concurrent_tag = "conc1 ";

std::int64_t to_ns(StoreClock::time_point time) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
}

StoreClock::time_point from_ns(std::int64_t ns) {
  return StoreClock::time_point(
      std::chrono::duration_cast<StoreClock::duration>(std::chrono::nanoseconds(ns)));
}

std::optional<std::int64_t> parse_number(std::string_view text) {
  std::int64_t number = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (error != std::errc() || end != text.data() + text.size() || number < 0) return std::nullopt;
  return number;
}

// The record's number after `tag`; nullopt when absent, expired or unreadable (`unreadable`
// says which).
std::optional<std::int64_t> read_record(const std::optional<StoreRecord>& current,
                                        StoreClock::time_point now, std::string_view tag,
                                        bool& unreadable) {
  if (!current || current->expires <= now) return std::nullopt;
  const std::string_view value = current->value;
  if (!value.starts_with(tag)) {
    unreadable = true;
    return std::nullopt;
  }
  auto number = parse_number(value.substr(tag.size()));
  if (!number) unreadable = true;
  return number;
}

std::int64_t ceil_div(Wide numerator, Wide denominator) {
  if (numerator <= 0) return 0;
  return static_cast<std::int64_t>((numerator + denominator - 1) / denominator);
}

struct Gcra {
  std::int64_t now_ns;
  std::int64_t per_ns;
  std::int64_t limit;

  // The interval that `cost` events take: floor(cost·per/limit), so that `limit` events of
  // cost 1 always fit in `per` whatever the rounding.
  Wide interval(std::int64_t cost) const { return Wide{cost} * per_ns / limit; }
  std::int64_t count(Wide tat) const { return ceil_div((tat - now_ns) * limit, per_ns); }
};

// The TAT to start from: the stored one, or now when there is none (or it lies in the past,
// or so far ahead that no valid write could have put it there).
Wide start_tat(const Gcra& gcra, std::optional<std::int64_t> stored) {
  if (!stored || *stored < gcra.now_ns) return gcra.now_ns;
  if (Wide{*stored} - gcra.now_ns > Wide{gcra.per_ns} * 2) return gcra.now_ns;
  return *stored;
}

StoreRecord gcra_record(Wide tat) {
  const auto ns = static_cast<std::int64_t>(tat);
  return StoreRecord{fmt::format("{}{}", gcra_tag, ns), from_ns(ns)};
}

}  // namespace

std::string encode_rate_decision(const RateDecision& decision) {
  return fmt::format("{} {} {} {}", decision.count, decision.exceeded ? 1 : 0, decision.retry_after,
                     decision.unreadable_record ? 1 : 0);
}

std::optional<RateDecision> decode_rate_decision(std::string_view text) {
  std::int64_t fields[4] = {};
  for (std::size_t index = 0; index < 4; ++index) {
    const std::size_t space = text.find(' ');
    if ((space == std::string_view::npos) != (index == 3)) return std::nullopt;
    auto number = parse_number(text.substr(0, space));
    if (!number) return std::nullopt;
    fields[index] = *number;
    text = space == std::string_view::npos ? std::string_view() : text.substr(space + 1);
  }
  if (fields[1] > 1 || fields[3] > 1) return std::nullopt;
  return RateDecision{fields[0], fields[1] == 1, fields[2], fields[3] == 1};
}

StoreChange gcra_admit(const std::optional<StoreRecord>& current, StoreClock::time_point now,
                       GcraLimit limit, std::int64_t cost) {
  const Gcra gcra{to_ns(now), limit.per_seconds * nanoseconds_per_second, limit.limit};
  RateDecision decision;
  const auto stored = read_record(current, now, gcra_tag, decision.unreadable_record);
  const Wide tat = start_tat(gcra, stored);
  const Wide next = tat + gcra.interval(std::max<std::int64_t>(cost, 0));
  StoreChange change;
  if (next - gcra.now_ns <= gcra.per_ns) {
    decision.count = gcra.count(next);
    if (next > gcra.now_ns) change.record = gcra_record(next);
  } else {
    decision.exceeded = true;
    decision.count = gcra.count(tat);
    const bool ever = cost <= limit.limit;
    decision.retry_after = ceil_div(ever ? next - gcra.per_ns - gcra.now_ns : tat - gcra.now_ns,
                                    nanoseconds_per_second);
    // Left as it was: a refused event is not counted. (No readable record: none is kept.)
    if (stored) change.record = current;
  }
  change.result = encode_rate_decision(decision);
  return change;
}

RateDecision gcra_peek(const std::optional<StoreRecord>& current, StoreClock::time_point now,
                       GcraLimit limit) {
  auto decision = decode_rate_decision(gcra_admit(current, now, limit, 1).result);
  return decision.value_or(RateDecision{});
}

StoreChange gcra_charge(const std::optional<StoreRecord>& current, StoreClock::time_point now,
                        GcraLimit limit, std::int64_t cost) {
  const Gcra gcra{to_ns(now), limit.per_seconds * nanoseconds_per_second, limit.limit};
  RateDecision decision;
  const auto stored = read_record(current, now, gcra_tag, decision.unreadable_record);
  const Wide tat = start_tat(gcra, stored);
  const Wide next = std::min(tat + gcra.interval(std::max<std::int64_t>(cost, 0)),
                             Wide{gcra.now_ns} + gcra.per_ns);
  decision.count = gcra.count(next);
  StoreChange change;
  if (next > gcra.now_ns) change.record = gcra_record(next);
  change.result = encode_rate_decision(decision);
  return change;
}

StoreChange concurrent_enter(const std::optional<StoreRecord>& current, StoreClock::time_point now,
                             std::int64_t limit, std::int64_t lifetime_seconds) {
  RateDecision decision;
  const std::int64_t open =
      read_record(current, now, concurrent_tag, decision.unreadable_record).value_or(0);
  StoreChange change;
  if (open >= limit) {
    decision.exceeded = true;
    decision.count = open;
    change.record = current;
  } else {
    decision.count = open + 1;
    change.record = StoreRecord{fmt::format("{}{}", concurrent_tag, open + 1),
                                now + std::chrono::seconds(lifetime_seconds)};
  }
  change.result = encode_rate_decision(decision);
  return change;
}

StoreChange concurrent_leave(const std::optional<StoreRecord>& current, StoreClock::time_point now,
                             std::int64_t lifetime_seconds) {
  RateDecision decision;
  const std::int64_t open =
      read_record(current, now, concurrent_tag, decision.unreadable_record).value_or(0);
  decision.count = std::max<std::int64_t>(open - 1, 0);
  StoreChange change;
  if (decision.count > 0) {
    change.record = StoreRecord{fmt::format("{}{}", concurrent_tag, decision.count),
                                now + std::chrono::seconds(lifetime_seconds)};
  }
  change.result = encode_rate_decision(decision);
  return change;
}

}  // namespace portcullis
