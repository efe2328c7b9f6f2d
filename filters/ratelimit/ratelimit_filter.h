// The ratelimit filter (DESIGN §4, §5, §9): named limits over a key and a counter, counted in
// the state store (state_store.h) with GCRA (rate_transforms.h), so that several workers and
// nodes share one count.
//
// At each phase, every limit whose counter counts there asks the store, all in parallel, and
// the phase waits for every answer; each limit then records rate.NAME, rate.NAME.exceeded and
// rate.NAME.retry_after. The counters:
//   connections  one per session, at connect
//   messages     one per MAIL FROM, at mail
//   recipients   one per RCPT TO, at rcpt
//   bytes        the message size, at data
//   concurrent   +1 at connect, −1 when the session ends (on_session_end); the release is
//                asked and its handle dropped at once, which the store contract allows (the
//                update is still applied). A session that ends while its +1 is still in flight
//                cannot know whether it was counted; the count ages out after `per`.
//   errors       a session's SMTP errors (SessionView::errors) are known only when it ends, so
//                they are counted then (gcra_charge) and checked at the next connect of the
//                same key (a read, nothing counted): a client that made too many errors in
//                its last sessions is recognised when it comes back.
//
// Keys: store_key({"rl", NAME, VALUE}); VALUE is the client address masked to the limit's
// prefix with the prefix written ("192.0.2.0/24", "2001:db8::/64"; IPv4-mapped addresses as
// IPv4), or the helo/sender/recipient/domain lowercased ("<>" for the null sender). A value
// whose key would pass max_store_key_bytes is replaced by its FNV-1a hash, stable across
// nodes and builds.
//
// No store → fail("no store"); a store answer other than ok → fail(its reason): the runner's
// failure_mode applies (default tempfail). A limit whose key is absent in this session (no
// client address) is not counted and gives a warning; its facts stay absent.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fact_catalog.h"
#include "filter.h"
#include "filter_settings.h"
#include "rate_transforms.h"
#include "ratelimit_settings.h"
#include "state_store.h"

namespace portcullis {

// The factory for a valid [filter.ratelimit] block; nullptr with `errors` appended otherwise.
std::shared_ptr<const FilterFactory> build_ratelimit_filter(const SettingTable& table,
                                                            std::vector<SettingError>& errors);

// The configured limits' facts, from a factory that build_ratelimit_filter made (empty for
// any other factory).
std::vector<RateLimitFacts> rate_limit_facts_of(const FilterFactory& factory);

// The store key of a limit for a session, or nullopt when the session has no such value yet.
std::optional<std::string> rate_limit_store_key(const RateLimit& limit, const SessionView& view);

class RatelimitFilter : public SessionFilter {
 public:
  explicit RatelimitFilter(std::shared_ptr<const RatelimitSettings> settings);

  HookStatus on_phase(HookContext& context) override;
  // Drops the calls in flight: their callbacks never run (updates asked are still applied).
  void cancel() override;
  // Gives back the `concurrent` counts this session holds and counts its errors.
  void on_session_end(const SessionView& view) override;

 private:
  struct Call {
    std::size_t limit = 0;  // index in settings_->limits
    std::unique_ptr<StoreCall> handle;
    std::optional<RateDecision> decision;
    std::string error;
  };

  void on_reply(std::size_t index, StoreReply reply, StoreClock::time_point asked_at);
  void finish();

  std::shared_ptr<const RatelimitSettings> settings_;
  // The worker's store, which outlives its sessions; kept from the first hook for
  // on_session_end, which has no services.
  StateStore* store_ = nullptr;
  // Per limit: its key once known, and whether this session holds a `concurrent` count.
  std::vector<std::optional<std::string>> keys_;
  std::vector<bool> holds_concurrent_;
  Completion completion_;
  std::vector<Call> calls_;
  std::vector<std::string> warnings_;
  std::size_t answered_ = 0;
  bool finished_ = true;
};

}  // namespace portcullis
