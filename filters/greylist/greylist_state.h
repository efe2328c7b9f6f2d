// What the store keeps of one greylist triplet, and the atomic step that decides a delivery
// attempt (a pure StoreTransform, filters/api/state_store.h), so that two nodes seeing the same
// triplet at once cannot both count as its first attempt.
//
//   no record, or one whose retry window has passed → "new": first seen now; the record lives
//     for delay + retry_window;
//   seen, delay not over → "early", retry after the rest of the delay (the first-seen time is
//     kept: retrying early does not restart the delay);
//   seen, delay over, within the retry window, or passed before → "passed": remembered for
//     at least `lifetime` after its last delivery. The first pass is marked, for the client
//     net's auto-allow count.
//
// Renewal without a write per message: a passed record is written to expire `lifetime` plus
// a tenth of it (renewal_slack) from now, and a delivery rewrites it only when less than
// `lifetime` is left, i.e. at most once per tenth of `lifetime`; otherwise the step gives the
// record back as it was, which the store does not write (state_store.h). So a passed triplet
// still lives at least `lifetime` after each delivery (and at most 1.1 × `lifetime`), while a
// busy triplet costs a store write once every lifetime / 10 (3.5 days by default), not per
// message.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "state_store.h"

namespace portcullis {

struct GreylistTimes {
  std::chrono::seconds delay{300};
  std::chrono::seconds retry_window{172800};
  std::chrono::seconds lifetime{3024000};
};

enum class GreylistState { new_triplet, early, passed };

struct GreylistDecision {
  GreylistState state = GreylistState::new_triplet;
  std::chrono::seconds retry_after{0};  // new, early: until the delay is over
  bool first_pass = false;              // passed for the first time by this attempt
};

// What a passed record gets beyond `lifetime` when it is written (see above).
std::chrono::seconds greylist_renewal_slack(const GreylistTimes& times);

// The fact value: "new", "early" or "passed".
const char* greylist_state_name(GreylistState state);

// The update of a triplet's record for one attempt; StoreChange::result is the decision,
// encoded for decode_greylist_decision.
StoreChange greylist_attempt(const GreylistTimes& times, const std::optional<StoreRecord>& current,
                             StoreClock::time_point now);

// The decision that greylist_attempt returned; nullopt for text it did not write.
std::optional<GreylistDecision> decode_greylist_decision(const std::string& result);

// What a triplet's record says without changing it (explain reads the store read-only): the
// decision an attempt at `now` would get, without its write.
GreylistDecision peek_greylist(const GreylistTimes& times,
                               const std::optional<StoreRecord>& current,
                               StoreClock::time_point now);

// The client net's count of triplets that passed (auto_allow_after): +1, remembered for
// `lifetime`; StoreChange::result is the new count.
StoreChange count_passed_triplet(std::chrono::seconds lifetime,
                                 const std::optional<StoreRecord>& current,
                                 StoreClock::time_point now);

// The count in such a record (0 when absent or unreadable).
long passed_triplet_count(const std::optional<StoreRecord>& record);

}  // namespace portcullis
