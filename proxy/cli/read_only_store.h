// explain's view of [store] (issue 15: explain never creates a triplet): a StateStore that
// reads the LMDB file, or asks the Redis store (`remote`, a RedisStore on explain's loop: get
// and list only), and never writes either. An update runs its transform on the key's current
// record and answers what the live update would have answered (the decision, the record after
// it), without keeping anything; a remove answers ok and removes nothing. Every key asked is
// kept, with what was found and what an update would have made of it, for the trace.
//
// As the StateStore contract says, replies run on the loop's thread, never inside the call (a
// zero timer on `base`); destroying the StoreCall handle cancels the reply.
#pragma once

#include <event2/event.h>

#include <memory>
#include <string>
#include <vector>

#include "lmdb_database.h"
#include "state_store.h"

namespace portcullis {

class ReadOnlyStore final : public StateStore {
 public:
  // `database` nullptr: there is no store file yet, and every key is absent. Both must outlive
  // the store.
  ReadOnlyStore(event_base* base, LmdbDatabase* database);
  // [store] backend = "redis": every read is a get or a list on `remote`.
  ReadOnlyStore(event_base* base, std::shared_ptr<StateStore> remote);

  std::unique_ptr<StoreCall> get(std::string key, std::function<void(StoreReply)> done) override;
  std::unique_ptr<StoreCall> update(std::string key, StoreTransform transform,
                                    std::function<void(StoreReply)> done) override;
  std::unique_ptr<StoreCall> remove(std::string key, std::function<void(StoreReply)> done) override;
  std::unique_ptr<StoreCall> list(
      std::string prefix, std::size_t limit,
      std::function<void(StoreStatus, std::string error, std::vector<StoreEntry>)> done) override;

  // "store: KEY: absent" or "store: KEY: VALUE (expires …); an update now: RESULT, not
  // written (explain is read-only)", one per call since the last take, in the order asked.
  std::vector<std::string> take_lookups();

 private:
  StoreReply read(const std::string& key);
  std::unique_ptr<StoreCall> later(std::function<void()> callback);
  // What get and update note and answer once the key's record (or the failure) is known.
  void answer_get(const std::string& key, const StoreReply& reply);
  StoreReply answer_update(const std::string& key, StoreReply reply,
                           const StoreTransform& transform);

  event_base* base_;
  LmdbDatabase* database_ = nullptr;
  std::shared_ptr<StateStore> remote_;
  std::vector<std::string> lookups_;
};

}  // namespace portcullis
