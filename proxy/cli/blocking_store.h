// `portcullis store`'s way to the state store that [store] names: the same StateStore a worker
// uses (LmdbStore on the LMDB file, or RedisStore on [store.redis]), on an event loop of its
// own that each call runs until its reply is in. A command-line tool asks one thing at a time,
// so waiting is what it wants; the store's own guarantees are kept (an update is the backend's
// atomic read-modify-write: LMDB's writer, or Redis's compare-and-set script against every node).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "event_handles.h"
#include "lmdb_database.h"
#include "quiet_main_log.h"
#include "state_store.h"

namespace portcullis {

class BlockingStore {
 public:
  // The store of `config`, or nullptr and *error. LMDB: the file must exist (`run` makes it,
  // as the user it runs as; one made here, perhaps as root, would not be the file `run`
  // expects to own). Redis: the connection is made by the first call, whose reply says when it
  // cannot be.
  static std::unique_ptr<BlockingStore> open(const Config& config, std::string* error);
  ~BlockingStore();
  BlockingStore(const BlockingStore&) = delete;
  BlockingStore& operator=(const BlockingStore&) = delete;

  StoreReply get(std::string key);
  StoreReply update(std::string key, StoreTransform transform);
  // Every key removed, the calls in flight together (one LMDB batch, one Redis pipeline); the
  // replies in the order of `keys`.
  std::vector<StoreReply> remove(const std::vector<std::string>& keys);
  StoreListing list(std::string prefix, std::size_t limit);

 private:
  BlockingStore() = default;
  // Runs the loop until `*pending` is 0.
  void wait_for(const std::size_t* pending);

  // Declared in the order they are needed; destroyed the other way (the store before the
  // database and the loop it is on).
  std::unique_ptr<QuietMainLog> quiet_log_;
  EventBasePtr base_;
  std::unique_ptr<LmdbDatabase> database_;
  std::shared_ptr<StateStore> store_;
};

}  // namespace portcullis
