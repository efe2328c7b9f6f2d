#include "session_limits.h"

namespace portcullis {

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
  return Outcome::admitted;
}

void SessionLimits::release(const std::string& client_key) {
  std::lock_guard lock(mutex_);
  auto it = per_client_.find(client_key);
  if (it == per_client_.end()) return;
  if (--it->second == 0) per_client_.erase(it);
  --active_;
}

unsigned SessionLimits::active() const {
  std::lock_guard lock(mutex_);
  return active_;
}

}  // namespace portcullis
