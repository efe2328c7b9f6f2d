#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "event_handles.h"
#include "lmdb_database.h"
#include "log_sink.h"
#include "metrics_server.h"
#include "redis_store.h"
#include "rejection_log.h"
#include "server_context.h"
#include "session_limits.h"
#include "tls_ticket_keys.h"
#include "upstream_status.h"

namespace portcullis {

class Acceptor;
class UpstreamProbe;
class Worker;

// The process: main loop (listeners, signals, upstream probe) and the worker threads.
class Server {
 public:
  explicit Server(Config config);
  ~Server();

  // Runs until SIGTERM/SIGINT; returns the process exit code.
  int run();

 private:
  void on_terminate();
  void on_reload();
  void on_reopen_logs();
  // Loads certificates and keys of `config`; false (logged) keeps what is in force.
  bool load_tls(const Config& config);
  // Raises RLIMIT_NOFILE's soft limit to the hard one and warns (descriptor_limit_low) when
  // that is below what `config` needs (descriptor_budget.h).
  void check_descriptor_limit(const Config& config);
  // Logs reload_needs_restart for each [[listen]] block of `next` added, removed or changed
  // against the bound sockets.
  void log_listener_changes(const Config& next) const;

  std::shared_ptr<const Config> config_;
  std::unique_ptr<LogSink> log_;
  ConfigHolder config_holder_;
  TlsTicketKeys ticket_keys_;
  SnapshotHolder<TlsServerContexts> tls_holder_;
  SnapshotHolder<UpstreamTlsContext> upstream_tls_holder_;
  UpstreamStatus upstream_status_;
  std::unique_ptr<SessionLimits> session_limits_;
  EventBasePtr base_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<Acceptor> acceptor_;
  std::unique_ptr<UpstreamProbe> probe_;
  std::vector<EventPtr> signal_events_;
  std::unique_ptr<RejectionLog> rejection_log_;
  std::unique_ptr<LmdbDatabase> store_database_;  // outlives the workers' stores
  RedisStoreOptions redis_store_options_;         // backend = "redis": each worker connects
  std::unique_ptr<MetricsServer> metrics_server_;
  bool ready_ = false;  // the first upstream probe has answered and listeners accept
  bool terminating_ = false;
};

}  // namespace portcullis
