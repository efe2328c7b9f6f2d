#include "worker.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include <algorithm>
#include <atomic>
#include <utility>

#include "callback_guard.h"
#include "dns_metrics_observer.h"
#include "filter_observer.h"
#include "log_sink.h"
#include "metrics.h"
#include "session.h"

namespace portcullis {

namespace {
std::atomic<uint64_t> next_session_id{1};

template <void (Worker::*Method)()>
void call(evutil_socket_t, short, void* self) {
  guard_callback("worker", [self] { (static_cast<Worker*>(self)->*Method)(); });
}
}  // namespace

class Worker::FilterRouter final : public CompletionTarget {
 public:
  explicit FilterRouter(Worker& worker) : worker_(worker) {}
  void deliver(uint64_t session_id, uint64_t call_id, FilterResult result) override {
    auto it = worker_.sessions_.find(session_id);
    if (it == worker_.sessions_.end()) {
      MetricsFilterObserver::instance().filter_result("(session gone)", "gone", {});
      return;
    }
    it->second->deliver_filter_result(call_id, std::move(result));
  }

 private:
  Worker& worker_;
};

Worker::Worker(const ServerContext& context)
    : context_(context), filter_router_(std::make_shared<FilterRouter>(*this)) {
  base_.reset(event_base_new());
  inbox_event_.reset(event_new(base_.get(), -1, 0, &call<&Worker::on_inbox>, this));
  reap_event_.reset(event_new(base_.get(), -1, 0, &call<&Worker::on_reap>, this));
  stop_event_.reset(event_new(base_.get(), -1, 0, &call<&Worker::on_stop>, this));
  stress_event_.reset(event_new(base_.get(), -1, 0, &call<&Worker::on_stress_changed>, this));
  drain_deadline_.reset(evtimer_new(base_.get(), &call<&Worker::on_stop_deadline>, this));
  linger_timer_.reset(evtimer_new(base_.get(), &call<&Worker::on_linger_tick>, this));
  upstream_pool_ = std::make_unique<UpstreamPool>(base_.get(), [this] { release_upstream_slot(); });
}

std::shared_ptr<DnsResolver> Worker::resolver_for(const DnsConfig& dns) {
  const bool same_settings = resolver_settings_ && resolver_settings_->resolvers == dns.resolvers &&
                             resolver_settings_->timeout == dns.timeout;
  if (same_settings) return resolver_;
  resolver_settings_ = dns;
  resolver_.reset();
  try {
    resolver_ = UnboundResolver::create(
        base_.get(), UnboundResolverOptions{dns.resolvers, std::chrono::seconds(dns.timeout),
                                            &MetricsDnsObserver::instance()});
  } catch (const std::exception& error) {
    // Once per settings: a failure is not retried for every session.
    log_warning("dns_resolver_failed", {{"error", error.what()}});
  }
  return resolver_;
}

StateStore* Worker::store() {
  if (store_ || store_failed_ || (!context_.store_database && !context_.redis_store)) {
    return store_.get();
  }
  try {
    if (context_.redis_store) {
      store_ = RedisStore::create(base_.get(), *context_.redis_store);
    } else {
      store_ = LmdbStore::create(base_.get(), context_.store_database);
    }
  } catch (const std::exception& error) {
    store_failed_ = true;
    log_warning("store_failed", {{"error", error.what()}});
  }
  return store_.get();
}

bool Worker::acquire_upstream_slot(unsigned max_connections) {
  if (!context_.upstream_status->try_acquire_connection(max_connections)) return false;
  metrics().upstream_connections_active.add(1);
  return true;
}

void Worker::release_upstream_slot() {
  metrics().upstream_connections_active.add(-1);
  context_.upstream_status->release_connection();
}

std::unique_ptr<UpstreamConnection> Worker::take_upstream(
    const std::shared_ptr<const Config>& config) {
  return upstream_pool_->take(config);
}

void Worker::keep_upstream(std::unique_ptr<UpstreamConnection> connection,
                           std::shared_ptr<const Config> config) {
  // Half the slots at most wait in pools, shared out over the workers, so that kept connections
  // in one worker cannot starve another of slots for long.
  const unsigned workers = std::max(1u, config->server.workers);
  const bool upstream_refuses_reuse =
      context_.upstream_status != nullptr && context_.upstream_status->reuse_refused();
  const unsigned capacity =
      stopping_ || upstream_refuses_reuse ? 0 : config->upstream.max_connections / (2 * workers);
  upstream_pool_->give_back(std::move(connection), std::move(config), capacity);
}

std::weak_ptr<CompletionTarget> Worker::filter_router() const {
  return std::static_pointer_cast<CompletionTarget>(filter_router_);
}

Worker::~Worker() {
  join();
  stopping_ = true;  // sessions destroyed below close their upstream connections
  filter_router_.reset();
  finished_.clear();
  sessions_.clear();
}

void Worker::start(unsigned number, CpuScheduling scheduling, bool pin) {
  thread_ = std::thread([this, number, scheduling, pin] {
    name_this_thread("worker " + std::to_string(number));
    // Either failure costs only speed under load; the worker runs on.
    if (std::string error; !apply_cpu_scheduling(scheduling, &error)) {
      log_warning("cpu_scheduling_failed", {{"worker", std::to_string(number)}, {"error", error}});
    }
    if (std::string error; pin && !pin_to_cpu(number - 1, &error)) {
      log_warning("pin_workers_failed", {{"worker", std::to_string(number)}, {"error", error}});
    }
    // A persistent no-op timer keeps the loop alive while it has no sessions.
    EventPtr keepalive(event_new(
        base_.get(), -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr));
    timeval hour{3600, 0};
    event_add(keepalive.get(), &hour);
    event_base_dispatch(base_.get());
    // Sessions still open at the deadline are closed with the loop.
    finished_.clear();
    sessions_.clear();
    lingering_.clear();
    // A freed bufferevent closes its socket in a finalizer that runs on the loop: one more
    // pass, so that a client of this worker sees its close now, not when the last worker has
    // drained and the process exits.
    event_base_loop(base_.get(), EVLOOP_NONBLOCK);
  });
}

void Worker::hand_over(AcceptedConnection connection) {
  {
    std::lock_guard lock(inbox_mutex_);
    inbox_.push_back(std::move(connection));
  }
  event_active(inbox_event_.get(), 0, 0);
}

void Worker::stop(unsigned drain_seconds) {
  {
    std::lock_guard lock(inbox_mutex_);
    drain_seconds_ = drain_seconds;
  }
  event_active(stop_event_.get(), 0, 0);
}

void Worker::stress_changed() {
  if (stress_event_) event_active(stress_event_.get(), 0, 0);
}

void Worker::on_stress_changed() {
  // A session that ends in its call moves to finished_ (still alive until the reap), so the
  // pointers stay valid while the map changes.
  std::vector<Session*> open_sessions;
  open_sessions.reserve(sessions_.size());
  for (auto& [id, session] : sessions_)
    open_sessions.push_back(session.get());
  for (Session* session : open_sessions)
    session->stress_changed();
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::on_inbox() {
  std::vector<AcceptedConnection> arrived;
  {
    std::lock_guard lock(inbox_mutex_);
    arrived.swap(inbox_);
  }
  for (auto& connection : arrived) {
    if (stopping_) {
      evutil_closesocket(connection.fd);
      context_.session_limits->release(connection.client_key);
      continue;
    }
    const uint64_t id = next_session_id.fetch_add(1);
    auto session = std::make_unique<Session>(*this, id, std::move(connection));
    Session* started = session.get();
    sessions_.emplace(id, std::move(session));
    started->start();
  }
}

void Worker::session_finished(uint64_t session_id) {
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return;
  finished_.push_back(std::move(it->second));
  sessions_.erase(it);
  event_active(reap_event_.get(), 0, 0);
}

void Worker::linger(BufferEventPtr connection) {
  bufferevent_setcb(connection.get(), nullptr, nullptr, nullptr, nullptr);
  bufferevent_enable(connection.get(), EV_WRITE);
  lingering_.push_back({std::move(connection),
                        std::chrono::steady_clock::now() + std::chrono::seconds(linger_seconds)});
  if (!evtimer_pending(linger_timer_.get(), nullptr)) {
    timeval tick{0, 20 * 1000};
    evtimer_add(linger_timer_.get(), &tick);
  }
}

void Worker::on_linger_tick() {
  const auto now = std::chrono::steady_clock::now();
  auto written = [](bufferevent* bev) {
    for (; bev; bev = bufferevent_get_underlying(bev)) {
      if (evbuffer_get_length(bufferevent_get_output(bev)) > 0) return false;
    }
    return true;
  };
  std::erase_if(lingering_, [&](const Lingering& entry) {
    return now >= entry.deadline || written(entry.connection.get());
  });
  if (!lingering_.empty()) {
    timeval tick{0, 20 * 1000};
    evtimer_add(linger_timer_.get(), &tick);
  } else if (stopping_) {
    check_drained();
  }
}

void Worker::on_reap() {
  finished_.clear();
  if (stopping_) check_drained();
}

void Worker::on_stop() {
  unsigned drain_seconds;
  {
    std::lock_guard lock(inbox_mutex_);
    drain_seconds = drain_seconds_;
  }
  stopping_ = true;
  upstream_pool_->clear();
  std::vector<Session*> open_sessions;
  for (auto& [id, session] : sessions_)
    open_sessions.push_back(session.get());
  for (Session* session : open_sessions)
    session->shut_down();
  timeval deadline{static_cast<time_t>(drain_seconds), 0};
  evtimer_add(drain_deadline_.get(), &deadline);
  check_drained();
}

void Worker::on_stop_deadline() {
  if (!sessions_.empty()) {
    log_warning("drain_deadline", {{"sessions_closed", std::to_string(sessions_.size())}});
  }
  event_base_loopbreak(base_.get());
}

void Worker::check_drained() {
  if (sessions_.empty() && finished_.empty() && lingering_.empty()) {
    event_base_loopbreak(base_.get());
  }
}

}  // namespace portcullis
