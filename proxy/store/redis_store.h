// The StateStore one worker's sessions use when [store] backend = "redis": one hiredis async
// connection on that worker's event_base (hiredis's libevent adapter), shared by every call of
// the loop.
//
// How the StateStore contract is kept on Redis:
//   - update is an optimistic compare-and-set: the current bytes of the key are read (GET),
//     the transform runs here, and a Lua script (EVALSHA of the script loaded by
//     SCRIPT LOAD at connect; EVAL when Redis answers NOSCRIPT, e.g. after a SCRIPT FLUSH or a
//     failover) writes the new record (SET PX, or DEL) only if the key still holds exactly
//     those bytes (absent = absent). Otherwise the script answers the key's current bytes and
//     the transform runs again on them at once, without another GET. Scripts run atomically,
//     so of several writers that read the same bytes exactly one wins each round, and a loser
//     is not starved: its next round is one round trip, while a winner's next update of the
//     key is two (GET, then the script), so the loser's lands first. (Starting the next update
//     from the bytes the last one wrote would save the GET, but let one busy worker win every
//     round against another: the bench lost updates as "contended" that way.) An update fails
//     ("contended") only after max_update_attempts rounds lost in a row (from the 8th on,
//     after a short random pause);
//   - a transform that returns the record it was given (the same value and expiry, or absent
//     for absent) writes nothing: after a GET the update is answered from that read alone;
//     after a lost round, the script only checks the bytes ("k");
//   - the updates of one key on one store run one after another (a per-key queue): a worker
//     never contends with itself. Updates of other keys, gets, removes and lists are on the wire at
//     the same time (no connection-scoped WATCH), so a get is not ordered after an update asked
//     before it (nor is it with LMDB's writer); the update's own reply carries the record it wrote;
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
#include <optional>
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
  // Compare-and-set rounds an update may lose in a row before it fails as "contended".
  static constexpr int max_update_attempts = 32;

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
  void begin_update(Op& op);
  // Runs the transform on op.seen and sends the compare-and-set (or answers at once).
  void transform_and_write(Op& op);
  void send_write(Op& op);
  void send_scan(Op& op);
  bool command(Op& op, int step, const std::vector<std::string>& arguments);
  void finish(std::uint64_t id, StoreStatus status, std::string error, StoreReply reply = {},
              std::vector<StoreEntry> entries = {});
  // The running update of `key` is done: the next one of the key starts.
  void next_update_of(const std::string& key);
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
  int setup_replies_left_ = 0;    // AUTH, SELECT, SCRIPT LOAD answers awaited before it is ready
  std::chrono::milliseconds backoff_;
  EventPtr connect_timer_;
  EventPtr backoff_timer_;
  EventPtr wake_;
  std::shared_ptr<StoreReplyInbox> inbox_;
  std::map<std::uint64_t, std::unique_ptr<Op>> ops_;  // work not finished
  std::deque<std::uint64_t> waiting_;                 // asked while connecting
  // Per key, the updates asked on this store; the front one is running.
  std::unordered_map<std::string, std::deque<std::uint64_t>> key_updates_;
  std::string script_sha_;  // of the compare-and-set script, from SCRIPT LOAD
  std::unordered_map<std::uint64_t, Callbacks> callbacks_;
  std::uint64_t next_id_ = 1;
  bool closing_ = false;
  std::minstd_rand jitter_{std::random_device{}()};
};

}  // namespace portcullis
