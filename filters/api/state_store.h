// The state that outlives a session (DESIGN §5): rate-limit counters, greylist triplets, pass
// caches. One abstract store, reached through FilterServices::store(); the proxy implements it
// on LMDB (embedded default, a file under state_dir) or on Redis (shared by several nodes).
//
// Every change is an atomic read-modify-write of one key: the filter gives a pure function of
// the key's current record (StoreTransform) and the store applies it so that no two updates of
// the key, from any worker or node, interleave. A backend may run the function more than once
// (Redis re-runs it when the key changed under it, compare-and-set; LMDB tries it on a read
// first) and on another thread (LMDB's writer), so it must capture what it needs by value and
// touch nothing shared. A function that gives back the record it was given (the same value
// and expiry, or absent for absent) changes nothing: the backend then writes nothing, and the
// update costs what a read does.
//
// As with DnsResolver: the callback runs on the asking loop's thread, never before the call
// returns; destroying the StoreCall handle before it runs cancels the callback only: an update
// that was asked is still applied (a session that ends can still give back its `concurrent`
// count). Keys are printable ASCII without spaces, at most 511 bytes (store_key()
// escapes the parts); values are opaque bytes, at most 4096.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis {

using StoreClock = std::chrono::system_clock;  // expiry survives restarts: wall-clock time

struct StoreRecord {
  std::string value;
  StoreClock::time_point expires;  // the store forgets the record then (or later, when swept)
};

enum class StoreStatus {
  ok,
  unavailable,  // Redis down or slow past its timeout_ms: the filter's failure_mode applies
  full,         // LMDB map full (lmdb_map_size): the same, and logged
  error,        // anything else (a corrupt record, a key too long): the same
};

struct StoreReply {
  StoreStatus status = StoreStatus::ok;
  std::string error;                  // set unless ok: what went wrong, for the log
  std::optional<StoreRecord> record;  // get: the record; update: the record after the update
  std::string result;                 // update: what the transform returned as its result
};

// What an update makes of a key: the new record (nullopt: delete the key, or leave it absent),
// and a result for the caller that is computed from the same read (e.g. "early, retry in 240
// s"), so that the decision and the write can never disagree.
struct StoreChange {
  std::optional<StoreRecord> record;
  std::string result;
};
using StoreTransform = std::function<StoreChange(const std::optional<StoreRecord>& current,
                                                 StoreClock::time_point now)>;

// A call in flight; destroying the handle cancels its callback.
class StoreCall {
 public:
  virtual ~StoreCall() = default;
};

struct StoreEntry {
  std::string key;
  StoreRecord record;
};

class StateStore {
 public:
  virtual ~StateStore() = default;
  // The record of `key` (reply.record nullopt when absent or expired). Never creates anything.
  virtual std::unique_ptr<StoreCall> get(std::string key, std::function<void(StoreReply)> done) = 0;
  // Applies `transform` atomically to `key`; `now` is given to it by the store.
  virtual std::unique_ptr<StoreCall> update(std::string key, StoreTransform transform,
                                            std::function<void(StoreReply)> done) = 0;
  // Deletes `key` (ok when it was absent).
  virtual std::unique_ptr<StoreCall> remove(std::string key,
                                            std::function<void(StoreReply)> done) = 0;
  // At most `limit` live records whose key starts with `prefix`, in key order (`portcullis
  // store list`).
  virtual std::unique_ptr<StoreCall> list(
      std::string prefix, std::size_t limit,
      std::function<void(StoreStatus, std::string error, std::vector<StoreEntry>)> done) = 0;
};

// LMDB's longest key (MDB_MAXKEYSIZE as Debian builds it, mdb_env_get_maxkeysize()).
// "ok", "unavailable", "full" or "error": for logs, errors and the metric's status label.
const char* store_status_name(StoreStatus status);

inline constexpr std::size_t max_store_key_bytes = 511;
inline constexpr std::size_t max_store_value_bytes = 4096;

// A key from its parts, joined by ':' with each part escaped (':', '%', bytes outside
// printable ASCII and space as %XX), so that no part can reach into another:
// store_key({"gl", "192.0.2.0/24", "a@b", "c@d"}) == "gl:192.0.2.0/24:a@b:c@d".
std::string store_key(const std::vector<std::string_view>& parts);

}  // namespace portcullis
