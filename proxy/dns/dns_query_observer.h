// What the resolver tells about each query it ends, for the metrics (the session wires it to
// observe/metrics; proxy/dns itself does not see the metrics).
#pragma once

#include <chrono>

#include "dns_resolver.h"

namespace portcullis {

class DnsQueryObserver {
 public:
  virtual ~DnsQueryObserver() = default;
  // Once per query that ends with a callback (not for cancelled ones). `from_cache`: the
  // answer was there when the query was asked (libunbound's cache or a local zone).
  virtual void query_ended(DnsType type, DnsOutcome outcome, std::chrono::nanoseconds duration,
                           bool from_cache) noexcept = 0;
};

}  // namespace portcullis
