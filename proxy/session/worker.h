#pragma once

#include <event2/event.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "event_handles.h"
#include "filter.h"
#include "lmdb_store.h"
#include "net_address.h"
#include "redis_store.h"
#include "server_context.h"
#include "thread_scheduling.h"
#include "unbound_resolver.h"
#include "upstream_pool.h"

namespace portcullis {

class Session;

// A connection handed from the acceptor to a worker.
struct AcceptedConnection {
  evutil_socket_t fd = -1;
  NetAddress peer;
  NetAddress local;
  // The [[listen]] block the socket was bound with: a reload does not change it (the session
  // reads mode, tls and proxy_protocol from here, not from the current config).
  std::shared_ptr<const ListenConfig> listener;
  std::string client_key;  // SessionLimits key, released when the session ends
};

// One event-loop thread. It owns its sessions; other threads talk to it only through
// hand_over() and stop().
class Worker {
 public:
  explicit Worker(const ServerContext& context);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the loop thread, named "worker `number`" (from 1), scheduled by `scheduling` and,
  // with `pin`, pinned to a CPU of its own (thread_scheduling.h).
  void start(unsigned number, CpuScheduling scheduling, bool pin);
  // Any thread: give this worker a new connection.
  void hand_over(AcceptedConnection connection);
  // Any thread: finish the sessions in progress (up to `drain_seconds`), then end the loop.
  void stop(unsigned drain_seconds);
  // Any thread: stress mode started or ended; each session re-arms its command timeout.
  void stress_changed();
  void join();

  // Loop thread only.
  event_base* base() const { return base_.get(); }
  const ServerContext& context() const { return context_; }
  // The session is destroyed once the current callback has returned.
  void session_finished(uint64_t session_id);
  size_t session_count() const { return sessions_.size(); }
  // Keeps a closed session's connection until its output (and, under TLS, the socket's own
  // output) is written, at most `linger_seconds`, then frees it.
  void linger(BufferEventPtr connection);
  static constexpr unsigned linger_seconds = 10;
  // Where this worker's filter completions go: found by session id, so a result for a session
  // that has ended is dropped (counted as "gone"), never applied.
  std::weak_ptr<CompletionTarget> filter_router() const;
  // A max_connections slot for one upstream connection (counted in
  // portcullis_upstream_connections_active); false when all are in use.
  bool acquire_upstream_slot(unsigned max_connections);
  void release_upstream_slot();
  // Upstream connections kept between sessions (upstream_pool.h). Each holds a max_connections
  // slot, which the pool releases when it closes one.
  std::unique_ptr<UpstreamConnection> take_upstream(const std::shared_ptr<const Config>& config);
  void keep_upstream(std::unique_ptr<UpstreamConnection> connection,
                     std::shared_ptr<const Config> config);
  // The resolver for these [dns] settings: one libunbound context on this loop, made on first
  // use and made again when a reload changes [dns] (sessions that hold the old one keep it
  // until they end). nullptr when it cannot be made (logged as dns_resolver_failed; the DNS
  // filters then fail and their failure_mode applies).
  std::shared_ptr<DnsResolver> resolver_for(const DnsConfig& dns);
  // This loop's state store: on the process's LMDB environment (ServerContext::store_database),
  // or its own Redis connection (ServerContext::redis_store), made on first use; nullptr when there
  // is none or it cannot be made (logged once as store_failed; the filters' failure_mode then
  // applies).
  StateStore* store();

 private:
  void on_inbox();
  void on_reap();
  void on_stop();
  void on_stress_changed();
  void on_stop_deadline();
  void check_drained();
  void on_linger_tick();

  ServerContext context_;
  EventBasePtr base_;
  EventPtr inbox_event_;
  EventPtr reap_event_;
  EventPtr stop_event_;
  EventPtr stress_event_;
  EventPtr drain_deadline_;
  std::unique_ptr<UpstreamPool> upstream_pool_;  // before base_ goes
  // The newest resolver and the settings it was made for (before base_ goes).
  std::shared_ptr<UnboundResolver> resolver_;
  std::optional<DnsConfig> resolver_settings_;
  // LmdbStore or RedisStore; goes before base_ (its events are on base_).
  std::shared_ptr<StateStore> store_;
  bool store_failed_ = false;
  std::thread thread_;

  std::mutex inbox_mutex_;
  std::vector<AcceptedConnection> inbox_;
  unsigned drain_seconds_ = 0;
  bool stopping_ = false;

  class FilterRouter;
  std::shared_ptr<FilterRouter> filter_router_;
  std::unordered_map<uint64_t, std::unique_ptr<Session>> sessions_;
  std::vector<std::unique_ptr<Session>> finished_;

  struct Lingering {
    BufferEventPtr connection;
    std::chrono::steady_clock::time_point deadline;
  };
  std::vector<Lingering> lingering_;
  EventPtr linger_timer_;
};

}  // namespace portcullis
