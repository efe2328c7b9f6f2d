#include "server.h"

#include <event2/thread.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <csignal>
#include <utility>

#include "acceptor.h"
#include "callback_guard.h"
#include "descriptor_budget.h"
#include "descriptor_limit.h"
#include "metrics.h"
#include "privilege.h"
#include "redis_settings.h"
#include "upstream_probe.h"
#include "worker.h"

namespace portcullis {

namespace {
// How many of a refused reload's errors are logged one per line (documented in
// docs/configuration.md); the closing reload_failed line counts all of them.
constexpr size_t kReloadErrorsLogged = 20;
}  // namespace

Server::Server(Config config)
    : config_(std::make_shared<const Config>(std::move(config))), config_holder_(config_) {}

Server::~Server() {
  acceptor_.reset();
  for (auto& worker : workers_)
    worker->join();
  workers_.clear();
  probe_.reset();
  signal_events_.clear();
  set_main_log(nullptr);
}

int Server::run() {
  const Config& config = *config_;
  std::string error;
  log_ = LogSink::open(config.log.main, config.log.format, &error);
  if (!log_) {
    fmt::print(stderr, "portcullis: cannot open the main log {}: {}\n", config.log.main, error);
    return 1;
  }
  set_main_log(log_.get());
  check_descriptor_limit(config);

  const bool as_root = geteuid() == 0;
  if (as_root && config.server.user.empty()) {
    log_error("refusing_to_run",
              {{"reason",
                "running as root without [server] user; set user to an unprivileged "
                "account"}});
    return 1;
  }
  if (!prepare_state_dir(config.server.state_dir, config.server.user, &error)) {
    log_error("state_dir", {{"error", error}});
    return 1;
  }
  if (config.upstream.pass_client == PassClient::none) {
    log_warning("pass_client_none",
                {{"detail",
                  "the upstream sees Portcullis's address as the client; it must not "
                  "treat that address as trusted"}});
  }

  if (!load_tls(config)) return 1;
  if (!config.log.rejections.empty()) {
    rejection_log_ = RejectionLog::open(config.log.rejections, &error);
    if (!rejection_log_) {
      log_error("rejection_log", {{"path", config.log.rejections}, {"error", error}});
      return 1;
    }
  }

  if (config.store.backend == StoreBackend::redis) {
    redis_store_options_ = redis_store_options(config.store.redis);
  } else {
    LmdbDatabaseOptions store_options;
    store_options.path = lmdb_store_path(config.server);
    store_options.map_size = config.store.lmdb_map_size;
    store_database_ = LmdbDatabase::open(std::move(store_options), &error);
    if (!store_database_) {
      log_error("store_open_failed", {{"backend", "lmdb"}, {"error", error}});
      return 1;
    }
  }

  evthread_use_pthreads();
  std::signal(SIGPIPE, SIG_IGN);
  base_.reset(event_base_new());
  // Signals are taken over before anything listens: a SIGTERM that arrives while the start-up
  // goes on (binding, dropping privileges, starting the workers) is handled once the loop
  // runs, instead of killing the process with the default action.
  auto on_signal = [](evutil_socket_t signal_number, short, void* self) {
    auto* server = static_cast<Server*>(self);
    // A reload that throws keeps the configuration in force: nothing is replaced before the
    // new one is complete.
    guard_callback("signal", [&] {
      switch (signal_number) {
        case SIGTERM:
        case SIGINT:
          return server->on_terminate();
        case SIGHUP:
          return server->on_reload();
        case SIGUSR1:
          return server->on_reopen_logs();
      }
    });
  };
  for (int signal_number : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) {
    EventPtr ev(evsignal_new(base_.get(), signal_number, on_signal, this));
    evsignal_add(ev.get(), nullptr);
    signal_events_.push_back(std::move(ev));
  }
  session_limits_ = std::make_unique<SessionLimits>(
      config.limits.max_sessions, config.limits.max_sessions_per_ip,
      SessionLimits::stress_start_for(config.limits.max_sessions, config.limits.stress_threshold));
  // Runs on the thread that crossed the line; workers_ is complete before the first session.
  session_limits_->set_stress_listener([this](bool stressed, unsigned active) {
    metrics().stress_active.set(stressed ? 1 : 0);
    if (stressed) metrics().stress_episodes_total.increment();
    const auto current = config_holder_.current();
    log_warning(
        stressed ? "stress_started" : "stress_ended",
        {{"sessions", std::to_string(active)},
         {"max_sessions", std::to_string(current->limits.max_sessions)},
         {"stress_start", std::to_string(session_limits_->stress_start())},
         {"stress_end", std::to_string(session_limits_->stress_end())},
         {"command_timeout", std::to_string(stressed ? std::min(current->timeouts.command,
                                                                current->timeouts.stress_command)
                                                     : current->timeouts.command)}});
    for (auto& worker : workers_)
      worker->stress_changed();
  });
  ServerContext context{
      &config_holder_,
      &tls_holder_,
      &upstream_tls_holder_,
      &upstream_status_,
      session_limits_.get(),
      rejection_log_.get(),
      store_database_.get(),
      config.store.backend == StoreBackend::redis ? &redis_store_options_ : nullptr};

  std::vector<Worker*> worker_pointers;
  for (unsigned i = 0; i < config.server.workers; ++i) {
    workers_.push_back(std::make_unique<Worker>(context));
    worker_pointers.push_back(workers_.back().get());
  }
  acceptor_ = std::make_unique<Acceptor>(base_.get(), context, worker_pointers);
  if (!acceptor_->bind_all(&error)) {
    log_error("listen_failed", {{"error", error}});
    return 1;
  }
  // Bound like the SMTP listeners, before privileges are dropped (a port below 1024 works).
  if (config.metrics.address) {
    metrics_server_ = MetricsServer::start(
        base_.get(), config.metrics.address->host_port(),
        [this] { return ready_ && !terminating_ && upstream_status_.capabilities() != nullptr; },
        &error);
    if (!metrics_server_) {
      log_error("metrics_listen_failed",
                {{"address", config.metrics.address->host_port()}, {"error", error}});
      return 1;
    }
  }
  if (as_root) {
    // Opened as root, the log files become the user's: the switched process reopens them on
    // SIGUSR1, and logrotate works on them as that user.
    uid_t uid;
    gid_t gid;
    if (!lookup_user(config.server.user, &uid, &gid, &error) || !log_->give_to(uid, gid, &error) ||
        (rejection_log_ && !rejection_log_->give_to(uid, gid, &error)) ||
        (store_database_ && !store_database_->give_to(uid, gid, &error))) {
      log_error("log_owner", {{"user", config.server.user}, {"error", error}});
      return 1;
    }
    if (!drop_privileges(config.server.user, &error)) {
      log_error("privilege_drop_failed", {{"error", error}});
      return 1;
    }
    log_info("privileges_dropped", {{"user", config.server.user}});
  }

  probe_ = std::make_unique<UpstreamProbe>(base_.get(), &upstream_status_);
  upstream_status_.set_probe_requester([probe = probe_.get()] { probe->request(); });
  for (unsigned i = 0; i < workers_.size(); ++i)
    workers_[i]->start(i + 1, config.server.cpu_scheduling, config.server.pin_workers);
  // Accept only once the first probe has said what the upstream offers (or that it is down):
  // set_on_result below, before the loop runs.
  probe_->reconfigure(config_);

  probe_->set_on_result([this](bool) {
    acceptor_->enable_all();
    ready_ = true;
  });
  metrics().config_last_reload_success_timestamp_seconds.set(static_cast<int64_t>(time(nullptr)));
  log_info("started",
           {{"version", PORTCULLIS_VERSION},
            {"workers", std::to_string(config.server.workers)},
            {"hostname", config.server.hostname},
            {"filters", std::to_string(config.filters.chain.size())},
            {"policy_rules",
             std::to_string(config.policy.policy ? config.policy.policy->rules().size() : 0)}});
  event_base_dispatch(base_.get());

  for (auto& worker : workers_)
    worker->join();
  log_info("stopped");
  return 0;
}

void Server::check_descriptor_limit(const Config& config) {
  // Before anything else is opened. Raising the soft limit needs no privilege, and the limit
  // survives the privilege drop.
  const DescriptorLimit::Raised raised = DescriptorLimit::raise_soft_to_hard();
  if (!raised.error.empty()) {
    log_warning("descriptor_limit_raise_failed", {{"error", raised.error}});
  } else if (raised.after.soft != raised.before.soft) {
    log_info("descriptor_limit_raised", {{"from", std::to_string(raised.before.soft)},
                                         {"to", std::to_string(raised.after.soft)}});
  }
  if (!raised.known) return;
  const std::uint64_t needed = descriptor_budget(config).total();
  const auto shortfall = DescriptorLimit::shortfall(config, raised.after.soft, "the soft limit");
  if (shortfall) {
    log_warning("descriptor_limit_low",
                {{"needed", std::to_string(needed)},
                 {"available", std::to_string(raised.after.soft)},
                 {"max_sessions", std::to_string(config.limits.max_sessions)},
                 {"detail", *shortfall}});
  }
}

void Server::on_terminate() {
  if (terminating_) return;
  terminating_ = true;
  const unsigned drain_seconds = config_holder_.current()->timeouts.drain;
  log_info("stopping", {{"drain_seconds", std::to_string(drain_seconds)}});
  acceptor_->close_all();
  for (auto& worker : workers_)
    worker->stop(drain_seconds);
  event_base_loopexit(base_.get(), nullptr);
}

void Server::on_reload() {
  const auto current = config_holder_.current();
  ConfigResult loaded = load_config(current->path);
  if (!loaded.config) {
    // A generated config can hold thousands of errors; the first few say what is wrong, the
    // rest would flood the log on every SIGHUP.
    const size_t logged = std::min(loaded.errors.size(), kReloadErrorsLogged);
    for (size_t i = 0; i < logged; ++i) {
      log_error("reload_failed", {{"error", loaded.errors[i].to_string()}});
    }
    log_error("reload_failed",
              {{"detail", "keeping the configuration in force"},
               {"errors", std::to_string(loaded.errors.size())},
               {"errors_not_logged", std::to_string(loaded.errors.size() - logged)}});
    metrics().reloads_total.with({"failed"}).increment();
    return;
  }
  auto next = std::make_shared<const Config>(std::move(*loaded.config));
  if (!load_tls(*next)) {
    log_error("reload_failed", {{"detail", "keeping the configuration and certificates in force"}});
    metrics().reloads_total.with({"failed"}).increment();
    return;
  }
  log_listener_changes(*next);
  std::vector<std::string> restart_only;
  if (next->server.workers != current->server.workers) restart_only.push_back("server.workers");
  if (next->server.user != current->server.user) restart_only.push_back("server.user");
  if (next->server.cpu_scheduling != current->server.cpu_scheduling)
    restart_only.push_back("server.cpu_scheduling");
  if (next->server.pin_workers != current->server.pin_workers)
    restart_only.push_back("server.pin_workers");
  if (next->limits.max_sessions != current->limits.max_sessions ||
      next->limits.max_sessions_per_ip != current->limits.max_sessions_per_ip) {
    restart_only.push_back("limits.max_sessions*");
  }
  if (next->limits.stress_threshold != current->limits.stress_threshold) {
    restart_only.push_back("limits.stress_threshold");
  }
  if (next->log.main != current->log.main || next->log.format != current->log.format ||
      next->log.rejections != current->log.rejections) {
    restart_only.push_back("log");
  }
  if (next->metrics.address.has_value() != current->metrics.address.has_value() ||
      (next->metrics.address &&
       next->metrics.address->host_port() != current->metrics.address->host_port())) {
    restart_only.push_back("metrics.address");
  }
  // The LMDB environment stays open on the file it was opened on (one per process and file).
  if (next->store.backend != current->store.backend ||
      next->store.lmdb_map_size != current->store.lmdb_map_size ||
      !(next->store.redis == current->store.redis) ||
      lmdb_store_path(next->server) != lmdb_store_path(current->server)) {
    restart_only.push_back("store");
  }
  for (const auto& setting : restart_only) {
    log_warning("reload_needs_restart", {{"setting", setting}});
  }
  config_holder_.replace(next);
  probe_->reconfigure(next);
  metrics().reloads_total.with({"ok"}).increment();
  metrics().config_last_reload_success_timestamp_seconds.set(static_cast<int64_t>(time(nullptr)));
  log_info("reloaded",
           {{"config", next->path},
            {"filters", std::to_string(next->filters.chain.size())},
            {"policy_rules",
             std::to_string(next->policy.policy ? next->policy.policy->rules().size() : 0)}});
}

void Server::log_listener_changes(const Config& next) const {
  // Matched by address: a block that moved in the file is the same listener.
  const auto bound = acceptor_->bound();
  const auto same_settings = [](const ListenConfig& a, const ListenConfig& b) {
    return a.mode == b.mode && a.tls == b.tls && a.proxy_protocol == b.proxy_protocol;
  };
  const auto needs_restart = [](const std::string& address, const char* change) {
    log_warning("reload_needs_restart",
                {{"setting", "listen"}, {"address", address}, {"change", change}});
  };
  for (const auto& listener : bound) {
    const std::string address = listener->address.host_port();
    const auto found = std::find_if(
        next.listeners.begin(), next.listeners.end(),
        [&](const ListenConfig& candidate) { return candidate.address.host_port() == address; });
    if (found == next.listeners.end()) {
      needs_restart(address, "removed; still accepting until a restart");
    } else if (!same_settings(*found, *listener)) {
      needs_restart(address, "changed; the bound settings stay until a restart");
    }
    if (!listener->tls.empty() && !next.tls_block(listener->tls)) {
      needs_restart(address, "its [tls] block is gone: TLS on it fails until a restart");
    }
  }
  for (const auto& listener : next.listeners) {
    const std::string address = listener.address.host_port();
    const bool known = std::any_of(bound.begin(), bound.end(), [&](const auto& candidate) {
      return candidate->address.host_port() == address;
    });
    if (!known) needs_restart(address, "added; not bound until a restart");
  }
}

bool Server::load_tls(const Config& config) {
  TlsServerContexts::LoadResult loaded = TlsServerContexts::load(config, &ticket_keys_);
  for (const auto& warning : loaded.warnings)
    log_warning("tls_certificate", {{"detail", warning}});
  for (const auto& error : loaded.errors)
    log_error("tls_load_failed", {{"error", error}});
  if (!loaded.contexts) return false;
  std::shared_ptr<const UpstreamTlsContext> upstream_tls;
  if (config.upstream.tls != UpstreamTls::none) {
    std::string error;
    SslCtxPtr ctx = make_upstream_tls_context(config.upstream, &error);
    if (!ctx) {
      log_error("tls_load_failed", {{"error", "upstream: " + error}});
      return false;
    }
    upstream_tls = std::make_shared<const UpstreamTlsContext>(UpstreamTlsContext{std::move(ctx)});
  }
  tls_holder_.replace(std::move(loaded.contexts));
  upstream_tls_holder_.replace(std::move(upstream_tls));
  return true;
}

void Server::on_reopen_logs() {
  std::string error;
  bool reopened = true;
  if (!log_->reopen(&error)) {
    log_error("log_reopen_failed", {{"error", error}});
    reopened = false;
  }
  if (rejection_log_ && !rejection_log_->reopen(&error)) {
    log_error("log_reopen_failed", {{"path", rejection_log_->path()}, {"error", error}});
    reopened = false;
  }
  if (reopened) log_info("logs_reopened");
}

}  // namespace portcullis
