#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

namespace portcullis {

// [limits] max_sessions and max_sessions_per_ip, checked before the banner, and stress mode.
// Acquired by the acceptor thread, released by the worker whose session ends.
//
// Stress mode (as Postfix's): from `stress_start` open sessions until they fall to
// stress_end() (a tenth fewer, at least one fewer), sessions wait at most [timeouts] stress_command
// for a command and tolerate half the junk commands, so that a flood of idle connections
// cannot hold the process's sessions for the full command timeout.
class SessionLimits {
 public:
  // Called with the new state and the count of open sessions when stress mode starts or ends,
  // from the thread whose admit or release crossed the line, under the limits' lock (so calls
  // come in order): it must be quick and must not call back into SessionLimits.
  using StressListener = std::function<void(bool stressed, unsigned active)>;

  // `stress_start` 0: never in stress mode.
  SessionLimits(unsigned max_sessions, unsigned max_per_client, unsigned stress_start = 0)
      : max_sessions_(max_sessions), max_per_client_(max_per_client), stress_start_(stress_start) {}

  // The session count at which stress starts for [limits] max_sessions and stress_threshold (a
  // percentage; 0: never): rounded up, at least 1.
  static unsigned stress_start_for(unsigned max_sessions, unsigned threshold_percent);

  // Before the first session: who hears of stress changes.
  void set_stress_listener(StressListener listener) { stress_listener_ = std::move(listener); }

  enum class Outcome { admitted, too_many_sessions, too_many_from_client };
  Outcome try_admit(const std::string& client_key);
  void release(const std::string& client_key);
  unsigned active() const;
  // Any thread; cheap (one relaxed load), read each time a session arms a command timeout.
  bool stressed() const { return stressed_.load(std::memory_order_relaxed); }
  unsigned stress_start() const { return stress_start_; }
  unsigned stress_end() const;

 private:
  void update_stress();  // under mutex_

  unsigned max_sessions_;
  unsigned max_per_client_;
  unsigned stress_start_;
  StressListener stress_listener_;
  std::atomic<bool> stressed_{false};
  mutable std::mutex mutex_;
  unsigned active_ = 0;
  std::unordered_map<std::string, unsigned> per_client_;
};

}  // namespace portcullis
