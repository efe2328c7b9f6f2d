#include "descriptor_budget.h"

#include <fmt/format.h>

namespace portcullis {

namespace {

constexpr std::uint64_t kStandardStreams = 3;
// An event loop: its epoll descriptor and the eventfd other threads wake it with
// (evthread_use_pthreads makes every base notifiable).
constexpr std::uint64_t kPerEventLoop = 2;
// libevent's signal handling in the main loop: a socketpair.
constexpr std::uint64_t kSignalPipe = 2;
// Descriptors open for a moment (see the header); generous, as it is cheap.
constexpr std::uint64_t kMargin = 32;
// Prometheus scrapes one request at a time; a few at once cover a second scraper or a curl.
constexpr std::uint64_t kMetricsScrapes = 4;
// mdb_env_open: the data file, the lock file and the O_DSYNC descriptor for meta pages.
constexpr std::uint64_t kLmdbDescriptors = 3;
constexpr std::uint64_t kUpstreamProbe = 1;

}  // namespace

std::uint64_t DescriptorBudget::total() const {
  return client_sockets + spill_files + upstream_connections + dns_sockets + listeners + files +
         process;
}

std::string DescriptorBudget::breakdown() const {
  return fmt::format(
      "client sockets {}, spill files {}, upstream {}, DNS {}, listeners {}, logs and store {}, "
      "process {}",
      client_sockets, spill_files, upstream_connections, dns_sockets, listeners, files, process);
}

DescriptorBudget descriptor_budget(const Config& config) {
  const std::uint64_t workers = config.server.workers;
  DescriptorBudget budget;
  budget.client_sockets = config.limits.max_sessions;
  budget.spill_files = config.limits.max_sessions;
  budget.upstream_connections = std::uint64_t{config.upstream.max_connections} + kUpstreamProbe;
  budget.dns_sockets = workers * (unbound_outgoing_range + unbound_outgoing_num_tcp);
  budget.listeners = config.listeners.size() + (config.metrics.address ? 1 + kMetricsScrapes : 0);
  // stderr is one of the standard streams; syslog is a socket, a path a file.
  budget.files = (config.log.main == "stderr" ? 0 : 1) + (config.log.rejections.empty() ? 0 : 1) +
                 (config.store.backend == StoreBackend::redis ? workers : kLmdbDescriptors);
  budget.process = kStandardStreams + (workers + 1) * kPerEventLoop + kSignalPipe + kMargin;
  return budget;
}

}  // namespace portcullis
