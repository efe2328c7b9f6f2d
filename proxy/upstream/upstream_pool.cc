#include "upstream_pool.h"

#include <utility>

#include "callback_guard.h"

namespace portcullis {

namespace {
constexpr timeval kSweepInterval{1, 0};
}

UpstreamPool::UpstreamPool(event_base* base, std::function<void()> release_slot)
    : base_(base), release_slot_(std::move(release_slot)) {
  sweep_timer_.reset(evtimer_new(
      base_,
      [](evutil_socket_t, short, void* self) {
        guard_callback("upstream_pool_sweep",
                       [self] { static_cast<UpstreamPool*>(self)->sweep(); });
      },
      this));
}

UpstreamPool::~UpstreamPool() {
  clear();
}

std::unique_ptr<UpstreamConnection> UpstreamPool::take(
    const std::shared_ptr<const Config>& config) {
  while (!idle_.empty()) {
    Entry entry = std::move(idle_.back());
    idle_.pop_back();
    // One the upstream closed (or wrote to) while it was kept is no longer usable.
    if (entry.config == config && entry.connection->reusable()) return std::move(entry.connection);
    close(entry);
  }
  return nullptr;
}

void UpstreamPool::give_back(std::unique_ptr<UpstreamConnection> connection,
                             std::shared_ptr<const Config> config, unsigned capacity) {
  if (!connection) return;
  const unsigned idle_timeout = config ? config->upstream.idle_timeout : 0;
  Entry entry{std::move(connection), std::move(config),
              std::chrono::steady_clock::now() + std::chrono::seconds(idle_timeout)};
  if (idle_timeout == 0 || !entry.connection->reusable()) return close(entry);
  if (idle_.size() >= capacity) {
    if (capacity == 0) return close(entry);
    close(idle_.front());  // the oldest makes room: it would expire first anyway
    idle_.pop_front();
  }
  idle_.push_back(std::move(entry));
  schedule_sweep();
}

void UpstreamPool::clear() {
  for (Entry& entry : idle_)
    close(entry);
  idle_.clear();
  if (sweep_timer_) event_del(sweep_timer_.get());
}

void UpstreamPool::close(Entry& entry) {
  if (!entry.connection) return;
  entry.connection->quit();
  entry.connection.reset();
  release_slot_();
}

void UpstreamPool::sweep() {
  const auto now = std::chrono::steady_clock::now();
  // Entries expire in the order they were kept; dead ones anywhere are dropped too.
  std::deque<Entry> kept;
  for (Entry& entry : idle_) {
    if (entry.expires <= now || !entry.connection->reusable()) {
      close(entry);
    } else {
      kept.push_back(std::move(entry));
    }
  }
  idle_ = std::move(kept);
  schedule_sweep();
}

void UpstreamPool::schedule_sweep() {
  if (idle_.empty() || evtimer_pending(sweep_timer_.get(), nullptr)) return;
  evtimer_add(sweep_timer_.get(), &kSweepInterval);
}

}  // namespace portcullis
