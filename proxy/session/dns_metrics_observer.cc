#include "dns_metrics_observer.h"

#include <string>

#include "callback_guard.h"
#include "metrics.h"

namespace portcullis {

void MetricsDnsObserver::query_ended(DnsType type, DnsOutcome outcome,
                                     std::chrono::nanoseconds duration, bool from_cache) noexcept {
  // A label set is allocated on first use; a failure there costs a count, not the query.
  guard_callback("dns_metrics", [&] {
    metrics()
        .dns_queries_total
        .with({std::string(dns_type_name(type)), std::string(dns_outcome_name(outcome))})
        .increment();
    metrics().dns_query_duration_seconds.with({}).observe(duration);
    if (from_cache) metrics().dns_cache_hits_total.increment();
  });
}

MetricsDnsObserver& MetricsDnsObserver::instance() {
  static MetricsDnsObserver observer;
  return observer;
}

}  // namespace portcullis
