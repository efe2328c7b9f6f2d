#include "filter_observer.h"

#include "log_sink.h"
#include "metrics.h"

namespace portcullis {

void MetricsFilterObserver::filter_result(const std::string& filter, std::string_view result,
                                          std::chrono::nanoseconds duration) {
  Metrics& all = metrics();
  all.filter_results_total.with({filter, std::string(result)}).increment();
  // Dropped results (late, duplicate, gone) have no meaningful duration.
  if (result == "ok" || result == "error" || result == "exception" || result == "timeout") {
    all.filter_duration_seconds.with({filter}).observe(duration);
  }
}

void MetricsFilterObserver::filter_problem(std::uint64_t session_id, const std::string& filter,
                                           Phase phase, std::string_view what,
                                           const std::string& detail) {
  if (what == "warning") metrics().filter_warnings_total.with({filter}).increment();
  log_warning("filter_problem", {{"session", std::to_string(session_id)},
                                 {"filter", filter},
                                 {"phase", std::string(phase_name(phase))},
                                 {"what", std::string(what)},
                                 {"detail", detail, true}});
}

MetricsFilterObserver& MetricsFilterObserver::instance() {
  static MetricsFilterObserver observer;
  return observer;
}

}  // namespace portcullis
