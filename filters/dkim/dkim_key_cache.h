// The key records the dkim filter has parsed and decoded (DkimKeyRecord), keyed by the
// record's exact bytes: a message whose key query returns the same bytes gets the same decoded
// key, and a changed record (a new p=, a new tag) is a different entry, never the old key.
// Bounded: at most `capacity` entries, the least recently used dropped first, and each entry
// dropped once the TTL of the answer that brought it has passed (TTL 0: not kept).
//
// Not thread-safe: each worker thread has its own (for_this_thread), so decoded keys are never
// shared between threads and no lock is taken per message.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>

#include "dkim_key_record.h"

namespace portcullis {

class DkimKeyCache {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kDefaultCapacity = 256;

  explicit DkimKeyCache(std::size_t capacity = kDefaultCapacity) : capacity_(capacity) {}

  // The cache of the calling thread.
  static DkimKeyCache& for_this_thread();

  // The parsed record for these bytes: the cached one while it has not expired, else parsed
  // now (and kept for `ttl_seconds` from `now` when that is above 0).
  std::shared_ptr<const DkimKeyRecord> get(const std::string& record, std::uint32_t ttl_seconds,
                                           Clock::time_point now);

  std::size_t size() const { return entries_.size(); }
  std::uint64_t hits() const { return hits_; }
  std::uint64_t misses() const { return misses_; }

 private:
  struct Entry {
    std::string record;
    std::shared_ptr<const DkimKeyRecord> parsed;
    Clock::time_point expires;
  };
  using Order = std::list<Entry>;  // most recently used first

  std::size_t capacity_;
  Order order_;
  std::unordered_map<std::string, Order::iterator> entries_;
  std::uint64_t hits_ = 0;
  std::uint64_t misses_ = 0;
};

}  // namespace portcullis
