// The proxy's FilterObserver: filter outcomes go to portcullis_filter_results_total and
// portcullis_filter_duration_seconds, failures, dropped facts and warnings to the main log
// (warnings are also counted in portcullis_filter_warnings_total).
#pragma once

#include "filter_runner.h"

namespace portcullis {

class MetricsFilterObserver final : public FilterObserver {
 public:
  void filter_result(const std::string& filter, std::string_view result,
                     std::chrono::nanoseconds duration) override;
  void filter_problem(std::uint64_t session_id, const std::string& filter, Phase phase,
                      std::string_view what, const std::string& detail) override;

  // One instance serves every worker (it holds no state).
  static MetricsFilterObserver& instance();
};

}  // namespace portcullis
