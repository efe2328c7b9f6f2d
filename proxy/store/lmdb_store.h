// The StateStore one worker's sessions use: bound to that worker's event_base, backed by the
// process's LmdbDatabase (shared by all workers; see lmdb_database.h for batching, expiry and
// durability).
//
// How the StateStore contract is kept:
//   - every call is known by its id in the pending table; its reply arrives through this
//     loop's StoreReplyInbox and runs on the loop thread, never inside the call (a read is
//     done at once but delivered from the inbox's event on the next loop turn);
//   - destroying the StoreCall handle erases the id: a reply that arrives later is dropped,
//     while the update it asked for is still applied by the writer;
//   - an update whose transform gives back the record as it found it (a greylist triplet
//     renewed recently) is answered from a read on the loop thread, like a get
//     (LmdbDatabase::update_without_write): no trip through the writer, no commit;
//   - keys longer than LMDB takes (or than max_store_key_bytes) and empty keys are refused
//     with StoreStatus::error, delivered the same way.
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "event_handles.h"
#include "lmdb_database.h"
#include "state_store.h"
#include "store_reply_inbox.h"

namespace portcullis {

class LmdbStore : public StateStore, public std::enable_shared_from_this<LmdbStore> {
 public:
  // `database` must outlive the store. Throws std::runtime_error when libevent cannot make
  // the inbox's event.
  static std::shared_ptr<LmdbStore> create(event_base* base, LmdbDatabase* database);
  ~LmdbStore() override;
  LmdbStore(const LmdbStore&) = delete;
  LmdbStore& operator=(const LmdbStore&) = delete;

  std::unique_ptr<StoreCall> get(std::string key, std::function<void(StoreReply)> done) override;
  std::unique_ptr<StoreCall> update(std::string key, StoreTransform transform,
                                    std::function<void(StoreReply)> done) override;
  std::unique_ptr<StoreCall> remove(std::string key, std::function<void(StoreReply)> done) override;
  std::unique_ptr<StoreCall> list(
      std::string prefix, std::size_t limit,
      std::function<void(StoreStatus, std::string error, std::vector<StoreEntry>)> done) override;

  // Calls whose callback has not run and was not cancelled.
  std::size_t pending_count() const { return pending_.size(); }
  // Called by the handle's destructor.
  void cancel(std::uint64_t id);

 private:
  struct Pending {
    std::function<void(StoreReply)> done;
    std::function<void(StoreStatus, std::string, std::vector<StoreEntry>)> listed;
  };

  LmdbStore(event_base* base, LmdbDatabase* database);
  std::unique_ptr<StoreCall> track(Pending pending, std::uint64_t* id);
  // The key's problem, or "" when the backend takes it.
  std::string key_problem(const std::string& key) const;
  void write(std::string key, StoreTransform transform, std::function<void(StoreReply)> done,
             std::unique_ptr<StoreCall>* handle);
  static void on_inbox(evutil_socket_t, short, void* data);
  void deliver();

  event_base* base_;
  LmdbDatabase* database_;
  EventPtr wake_;
  std::shared_ptr<StoreReplyInbox> inbox_;
  std::unordered_map<std::uint64_t, Pending> pending_;
  std::uint64_t next_id_ = 1;
};

}  // namespace portcullis
