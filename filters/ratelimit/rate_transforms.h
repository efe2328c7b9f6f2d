// The ratelimit filter's store transforms: pure functions of a key's record and the store's
// `now` (state_store.h), so that every backend can run them atomically, more than once, on
// any thread.
//
// Rates use GCRA, the generic cell rate algorithm (ATM's policer, also known as a virtual
// scheduling token bucket): one number per key, the theoretical arrival time (TAT). With the
// emission interval T = per / limit, an event of cost n (1, or the size for bytes) is admitted
// when max(TAT, now) + n·T − now ≤ per, and then moves the TAT there. Why GCRA rather than
// fixed windows or a log of events:
//   - no bursts at window edges: a client that used its `limit` just before an edge is not
//     given a fresh `limit` just after it; after a burst of `limit` it gets one event per T;
//   - one small record per key, updated in place, that expires by itself at the TAT (the
//     state is "empty" again then), so nothing needs sweeping;
//   - exact for any cost, so `bytes` is the same algorithm with cost = message size.
// The price: over any `per` seconds at most 2·limit − 1 events pass (a full burst, then the
// steady rate), never `limit` at once twice.
//
// Facts from the same read as the write (StoreChange::result):
//   rate.NAME              ceil((TAT − now) / T): the count in the window as GCRA sees it,
//                          this event included when admitted
//   rate.NAME.exceeded     this event would pass the limit; the TAT is then NOT advanced, so
//                          refused events do not count against the client
//   rate.NAME.retry_after  seconds until one more event of the same cost is admitted (0 when
//                          admitted; for a cost above the whole limit, which never passes,
//                          the seconds until the window is empty)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "state_store.h"

namespace portcullis {

struct RateDecision {
  std::int64_t count = 0;
  bool exceeded = false;
  std::int64_t retry_after = 0;  // seconds
  // The stored record could not be read (another version, damage) and was counted as empty.
  bool unreadable_record = false;

  friend bool operator==(const RateDecision&, const RateDecision&) = default;
};

// The decision as StoreChange::result carries it, and back (nullopt: not one of ours).
std::string encode_rate_decision(const RateDecision& decision);
std::optional<RateDecision> decode_rate_decision(std::string_view text);

struct GcraLimit {
  std::int64_t limit = 1;
  std::int64_t per_seconds = 60;
};

// One event of `cost` (≥ 0): admitted and counted, or exceeded and the record left as it was.
StoreChange gcra_admit(const std::optional<StoreRecord>& current, StoreClock::time_point now,
                       GcraLimit limit, std::int64_t cost);

// What one more event would get, changing nothing (errors are checked at connect this way).
RateDecision gcra_peek(const std::optional<StoreRecord>& current, StoreClock::time_point now,
                       GcraLimit limit);

// Counts `cost` events that happened already (a session's errors, at its end), whatever the
// limit: the TAT moves on by cost·T but never past now + per, so a burst of errors blocks the
// key for one window at most, not for cost·T.
StoreChange gcra_charge(const std::optional<StoreRecord>& current, StoreClock::time_point now,
                        GcraLimit limit, std::int64_t cost);

// `concurrent`: the number of open sessions, not a rate. A session entering is counted unless
// that would pass the limit (exceeded: not counted, and so not given back at its end); each
// change keeps the record for `lifetime_seconds` more, so the counts of a node that died
// without giving them back age out. retry_after is 0: when a session ends cannot be foreseen.
StoreChange concurrent_enter(const std::optional<StoreRecord>& current, StoreClock::time_point now,
                             std::int64_t limit, std::int64_t lifetime_seconds);
StoreChange concurrent_leave(const std::optional<StoreRecord>& current, StoreClock::time_point now,
                             std::int64_t lifetime_seconds);

}  // namespace portcullis
