#include "session_limits.h"

#include <algorithm>

namespace portcullis {

unsigned SessionLimits::stress_start_for(unsigned max_sessions, unsigned threshold_percent) {
  if (threshold_percent == 0) return 0;
  const unsigned long long scaled =
      (static_cast<unsigned long long>(max_sessions) * threshold_percent + 99) / 100;
  return std::max(1u, static_cast<unsigned>(scaled));
}

unsigned SessionLimits::stress_end() const {
  if (stress_start_ == 0) return 0;
  return stress_start_ - std::min(stress_start_, std::max(1u, stress_start_ / 10));
}

SessionLimits::Outcome SessionLimits::try_admit(const std::string& client_key) {
  std::lock_guard lock(mutex_);
  if (active_ >= max_sessions_) return Outcome::too_many_sessions;
  unsigned& from_client = per_client_[client_key];
  if (from_client >= max_per_client_) {
    if (from_client == 0) per_client_.erase(client_key);
    return Outcome::too_many_from_client;
  }
  ++from_client;
  ++active_;
  update_stress();
  return Outcome::admitted;
}

void SessionLimits::release(const std::string& client_key) {
  std::lock_guard lock(mutex_);
  auto it = per_client_.find(client_key);
  if (it == per_client_.end()) return;
  if (--it->second == 0) per_client_.erase(it);
  --active_;
  update_stress();
}

unsigned SessionLimits::active() const {
  std::lock_guard lock(mutex_);
  return active_;
}

void SessionLimits::update_stress() {
  if (stress_start_ == 0) return;
  const bool was = stressed_.load(std::memory_order_relaxed);
  // Above stress_end and below stress_start the state stays as it is, so a count that hovers at
  // the line does not flip it with every session.
  const bool now = was ? active_ > stress_end() : active_ >= stress_start_;
  if (now == was) return;
  stressed_.store(now, std::memory_order_relaxed);
  if (!stress_listener_) return;
  try {
    stress_listener_(now, active_);
  } catch (...) {
    // The listener logs and wakes the workers; the caller runs in a libevent callback, and a
    // failed log line must not undo the admission or release.
  }
}

}  // namespace portcullis
