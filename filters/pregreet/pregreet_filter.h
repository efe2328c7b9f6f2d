// The pregreet filter (DESIGN §2, §4; postscreen's pregreet test): at connect it may send a
// "220-" teaser line and hold the banner for `wait_ms`, so that bots that talk before the
// greeting show themselves; at helo it records the fact `pregreet` (bool) from what the core
// saw (SessionView::client_spoke_before_banner). The core watches the socket and sends the real
// "220 hostname ESMTP Portcullis" line after the connect phase, which completes the teaser into
// a valid multi-line greeting.
//
// Pass cache (postscreen's postscreen_greet_ttl): with `pass_ttl` seconds, a client address that
// did not speak before the banner is remembered in the state store ("pass:pregreet:ADDR") for
// that long, and its next sessions skip the teaser and the wait. The fact is still recorded
// from what the core saw. A store that fails or is absent costs only the cache: the test runs.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "filter.h"
#include "filter_settings.h"

namespace portcullis {

struct PregreetSettings {
  std::chrono::milliseconds wait{6000};  // wait_ms, 0..60000; 0: no wait
  bool teaser = true;                    // teaser
  std::chrono::seconds pass_ttl{0};      // pass_ttl, 0..2592000; 0: no pass cache
};

// Reads a [filter.pregreet] block; unknown keys and bad values are appended to `errors`.
PregreetSettings read_pregreet_settings(const SettingTable& table,
                                        std::vector<SettingError>& errors);

// The factory for a valid block; nullptr (with `errors` appended) for an invalid one.
std::shared_ptr<const FilterFactory> build_pregreet_filter(const SettingTable& table,
                                                           std::vector<SettingError>& errors);

// One session's pregreet state: the pending wait, if any.
class PregreetFilter : public SessionFilter {
 public:
  explicit PregreetFilter(PregreetSettings settings) : settings_(settings) {}

  HookStatus on_phase(HookContext& context) override;
  void cancel() override {
    wait_timer_.reset();
    cache_call_.reset();
  }

 private:
  HookStatus on_connect(HookContext& context);
  HookStatus on_helo(HookContext& context);
  void send_teaser(FilterServices& services, const SessionView& view);
  // The wait; `completion` ends the connect phase when it is over.
  void start_wait(FilterServices& services, const Completion& completion);

  PregreetSettings settings_;
  std::unique_ptr<TimerHandle> wait_timer_;
  std::unique_ptr<StoreCall> cache_call_;
  bool tested_ = false;  // this session waited (and so may be remembered at helo)
};

}  // namespace portcullis
