// The StateStore one worker's sessions use when [store] backend = "redis": one hiredis async
// connection on that worker's event_base (hiredis's libevent adapter), shared by every call of
// the loop.
//
// How the StateStore contract is kept on Redis:
//   - update is WATCH key, GET key, the transform run here, then MULTI, SET key PX (or DEL),
//     EXEC; an EXEC that answers nil (the key changed in between, on any node) runs it all again,
//     at most max_update_attempts times, then the call fails with "contended". WATCH belongs to
//     the connection, so the updates of one store run one at a time (a queue); get, remove and
//     list are sent at once beside them (between WATCH and MULTI they change nothing of the
//     update's meaning; MULTI..EXEC is always sent in one go, so nothing lands inside it).
//     So a get is not ordered after an update asked before it (nor is it with LMDB's writer);
//     the update's own reply carries the record it wrote;
//   - the record is kept as store_record_codec encodes it (expiry in the value too) and Redis
//     is told to forget it at its expiry (PX);
//   - our own timeouts (hiredis 0.14 has none): a connect, or a call on the wire, that takes
//     longer than timeout_ms fails with StoreStatus::unavailable, the connection is dropped
//     (with every call on it) and made again after a backoff (100 ms doubling to 5 s, reset
//     once a connection is ready). While the connection is down, calls fail at once; while it
//     is being made, they wait for it;
//   - every reply is delivered from the inbox's event on the loop thread, never inside the
//     call; destroying the handle cancels the callback only (an update still runs).
#pragma once

#include <event2/event.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "event_handles.h"
#include "state_store.h"
#include "store_reply_inbox.h"

struct redisAsyncContext;

namespace portcullis {

struct RedisStoreOptions {
  std::string host = "127.0.0.1";  // numeric: hiredis would resolve a name on the loop thread
  std::uint16_t port = 6379;
  int database = 0;                    // SELECT after connect (0: none sent)
  std::string prefix = "portcullis:";  // before every key, so that several users share a server
  std::string password;                // AUTH after connect ("" none)
  std::chrono::milliseconds timeout{200};
  std::chrono::milliseconds first_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
};

class RedisStore : public StateStore, public std::enable_shared_from_this<RedisStore> {
 public:
  static constexpr int max_update_attempts = 8;

  // Starts connecting at once. Throws std::runtime_error when libevent cannot make its events.
  static std::shared_ptr<RedisStore> create(event_base* base, RedisStoreOptions options);
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  std::unique_ptr<StoreCall> get(std::string key, std::function<void(StoreReply)> done) override;
  std::unique_ptr<StoreCall> update(std::string key, StoreTransform transform,
                                    std::function<void(StoreReply)> done) override;
  std::unique_ptr<StoreCall> remove(std::string key, std::function<void(StoreReply)> done) override;
  std::unique_ptr<StoreCall> list(
      std::string prefix, std::size_t limit,
      std::function<void(StoreStatus, std::string error, std::vector<StoreEntry>)> done) override;

  // Calls whose callback has not run and was not cancelled.
  std::size_t pending_count() const { return callbacks_.size(); }
  bool connected() const { return state_ == State::ready; }
  // Called by the handle's destructor.
  void cancel(std::uint64_t id);

  // hiredis's callbacks (public for the C trampolines only).
  struct Op;
  void on_reply(std::uint64_t generation, std::uint64_t id, int step, void* reply);
  void on_connected(int status);
  void on_disconnected();

 private:
  enum class State { connecting, ready, down };
  enum class Kind { get, update, remove, list };
  struct Callbacks {
    std::function<void(StoreReply)> done;
    std::function<void(StoreStatus, std::string, std::vector<StoreEntry>)> listed;
  };

  RedisStore(event_base* base, RedisStoreOptions options);
  std::unique_ptr<StoreCall> start(Kind kind, std::string key, StoreTransform transform,
                                   std::size_t limit, Callbacks callbacks);
  void connect();
  void become_ready();
  void send(Op& op);
  void send_update(Op& op);
  void send_scan(Op& op);
  bool command(Op& op, int step, const std::vector<std::string>& arguments);
  void finish(std::uint64_t id, StoreStatus status, std::string error, StoreReply reply = {},
              std::vector<StoreEntry> entries = {});
  void next_update();
  // The connection is gone (detach: hiredis frees it itself) or given up (free: we free it).
  void drop(const std::string& reason, bool free_context);
  void arm(event* timer, std::chrono::milliseconds after);
  static void on_op_timeout(evutil_socket_t, short, void* data);
  static void on_retry(evutil_socket_t, short, void* data);
  static void on_connect_timeout(evutil_socket_t, short, void* data);
  static void on_backoff(evutil_socket_t, short, void* data);
  static void on_inbox(evutil_socket_t, short, void* data);
  void deliver();

  event_base* base_;
  RedisStoreOptions options_;
  redisAsyncContext* context_ = nullptr;
  State state_ = State::down;
  std::uint64_t generation_ = 1;  // of the connection; replies of an older one are ignored
  int setup_replies_left_ = 0;    // AUTH and SELECT answers awaited before the connection is ready
  std::chrono::milliseconds backoff_;
  EventPtr connect_timer_;
  EventPtr backoff_timer_;
  EventPtr wake_;
  std::shared_ptr<StoreReplyInbox> inbox_;
  std::map<std::uint64_t, std::unique_ptr<Op>> ops_;  // work not finished
  std::deque<std::uint64_t> waiting_;                 // asked while connecting
  std::deque<std::uint64_t> updates_;                 // front: the update on the wire
  std::unordered_map<std::uint64_t, Callbacks> callbacks_;
  std::uint64_t next_id_ = 1;
  bool closing_ = false;
  std::minstd_rand jitter_{std::random_device{}()};
};

}  // namespace portcullis
