// Counts the resolver's queries in the process metrics (portcullis_dns_*).
#pragma once

#include "dns_query_observer.h"

namespace portcullis {

class MetricsDnsObserver final : public DnsQueryObserver {
 public:
  void query_ended(DnsType type, DnsOutcome outcome, std::chrono::nanoseconds duration,
                   bool from_cache) noexcept override;

  // One instance serves every worker (it holds no state).
  static MetricsDnsObserver& instance();
};

}  // namespace portcullis
