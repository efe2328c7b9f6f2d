#include "upstream_status.h"

#include <utility>

#include "metrics.h"

namespace portcullis {

std::shared_ptr<const UpstreamCapabilities> UpstreamStatus::capabilities() const {
  std::lock_guard lock(mutex_);
  return capabilities_;
}

void UpstreamStatus::set_reachable(UpstreamCapabilities capabilities) {
  auto snapshot = std::make_shared<const UpstreamCapabilities>(std::move(capabilities));
  std::lock_guard lock(mutex_);
  capabilities_ = std::move(snapshot);
  metrics().upstream_up.set(1);
}

void UpstreamStatus::set_unreachable() {
  std::lock_guard lock(mutex_);
  capabilities_.reset();
  metrics().upstream_up.set(0);
}

void UpstreamStatus::request_probe() {
  std::function<void()> requester;
  {
    std::lock_guard lock(mutex_);
    requester = probe_requester_;
  }
  if (requester) requester();
}

void UpstreamStatus::set_probe_requester(std::function<void()> requester) {
  std::lock_guard lock(mutex_);
  probe_requester_ = std::move(requester);
}

bool UpstreamStatus::try_acquire_connection(unsigned max_connections) {
  unsigned current = connections_.load();
  while (current < max_connections) {
    if (connections_.compare_exchange_weak(current, current + 1)) return true;
  }
  return false;
}

void UpstreamStatus::release_connection() {
  connections_.fetch_sub(1);
}

}  // namespace portcullis
