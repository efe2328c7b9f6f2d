#pragma once

#include <memory>
#include <mutex>

#include "config.h"
#include "event_handles.h"
#include "rejection_log.h"
#include "session_limits.h"
#include "tls_context.h"
#include "upstream_status.h"

namespace portcullis {

class LmdbDatabase;
struct RedisStoreOptions;

// An immutable object that a reload replaces as a whole; whoever took a snapshot keeps it
// (a session keeps the configuration and certificates it started with until it ends).
template <typename T>
class SnapshotHolder {
 public:
  explicit SnapshotHolder(std::shared_ptr<const T> value = nullptr) : value_(std::move(value)) {}
  std::shared_ptr<const T> current() const {
    std::lock_guard lock(mutex_);
    return value_;
  }
  void replace(std::shared_ptr<const T> value) {
    std::lock_guard lock(mutex_);
    value_ = std::move(value);
  }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const T> value_;
};

using ConfigHolder = SnapshotHolder<Config>;

// What every worker and session reads: the configuration and the process-wide shared state.
struct ServerContext {
  ConfigHolder* config = nullptr;
  SnapshotHolder<TlsServerContexts>* tls = nullptr;
  SnapshotHolder<UpstreamTlsContext>* upstream_tls = nullptr;
  UpstreamStatus* upstream_status = nullptr;
  SessionLimits* session_limits = nullptr;
  RejectionLog* rejection_log = nullptr;  // null: no [log] rejections
  // [store]: the process's one LMDB environment, which each worker's store uses; null: none
  // (FilterServices::store() is then nullptr).
  LmdbDatabase* store_database = nullptr;
  // [store] backend = "redis": the settings each worker's own connection is made with (as read
  // at start); null: LMDB (store_database) is the backend.
  const RedisStoreOptions* redis_store = nullptr;
};

}  // namespace portcullis
