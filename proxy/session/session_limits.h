#pragma once

#include <mutex>
#include <string>
#include <unordered_map>

namespace portcullis {

// [limits] max_sessions and max_sessions_per_ip, checked before the banner. Acquired by the
// acceptor thread, released by the worker whose session ends.
class SessionLimits {
 public:
  SessionLimits(unsigned max_sessions, unsigned max_per_client)
      : max_sessions_(max_sessions), max_per_client_(max_per_client) {}

  enum class Outcome { admitted, too_many_sessions, too_many_from_client };
  Outcome try_admit(const std::string& client_key);
  void release(const std::string& client_key);
  unsigned active() const;

 private:
  unsigned max_sessions_;
  unsigned max_per_client_;
  mutable std::mutex mutex_;
  unsigned active_ = 0;
  std::unordered_map<std::string, unsigned> per_client_;
};

}  // namespace portcullis
