// The spf filter (DESIGN §4, §5): at MAIL, an RFC 7208 check of the MAIL FROM identity (the
// HELO identity, postmaster@helo, for the null sender) against the session's resolver, parked
// while DNS runs. Records `spf` (pass fail softfail neutral none temperror permerror) and
// `spf.domain`. Without a resolver it reports an error, so its failure_mode applies.
#pragma once

#include <memory>
#include <vector>

#include "filter.h"
#include "filter_settings.h"
#include "spf_evaluator.h"

namespace portcullis {

// The factory for a valid [filter.spf] block (it takes no keys of its own); nullptr with
// `errors` appended otherwise.
std::shared_ptr<const FilterFactory> build_spf_filter(const SettingTable& table,
                                                      std::vector<SettingError>& errors);

class SpfFilter : public SessionFilter {
 public:
  HookStatus on_phase(HookContext& context) override;
  // Drops the evaluator, which cancels its queries.
  void cancel() override;
  void on_session_end(const SessionView&) override;

 private:
  std::unique_ptr<SpfEvaluator> evaluator_;
};

}  // namespace portcullis
