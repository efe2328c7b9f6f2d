#pragma once

#include <memory>
#include <mutex>

#include "config.h"
#include "session_limits.h"
#include "upstream_status.h"

namespace portcullis {

// The configuration in force. A reload replaces the snapshot; a session keeps the snapshot it
// started with until it ends.
class ConfigHolder {
 public:
  explicit ConfigHolder(std::shared_ptr<const Config> config) : config_(std::move(config)) {}
  std::shared_ptr<const Config> current() const {
    std::lock_guard lock(mutex_);
    return config_;
  }
  void replace(std::shared_ptr<const Config> config) {
    std::lock_guard lock(mutex_);
    config_ = std::move(config);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const Config> config_;
};

// What every worker and session reads: the configuration and the process-wide shared state.
struct ServerContext {
  ConfigHolder* config = nullptr;
  UpstreamStatus* upstream_status = nullptr;
  SessionLimits* session_limits = nullptr;
};

}  // namespace portcullis
