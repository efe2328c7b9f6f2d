#include "redis_store.h"

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <exception>
#include <optional>
#include <random>
#include <stdexcept>
#include <utility>

#include "callback_guard.h"
#include "log_sink.h"
#include "metrics.h"
#include "store_call.h"
#include "store_record_codec.h"

namespace portcullis {

struct RedisStore::Op {
  RedisStore* store = nullptr;
  std::uint64_t id = 0;
  Kind kind = Kind::get;
  std::string key;  // without the prefix; list: the prefix asked for
  StoreTransform transform;
  std::size_t limit = 0;
  int attempts = 0;
  StoreChange change;              // update: what the transform made of the last read
  std::string cursor = "0";        // list: SCAN's
  std::vector<std::string> found;  // list: keys without the prefix
  EventPtr timer;
  EventPtr retry;  // update: the pause before the next attempt
};

namespace {

// The reply steps of each kind of call.
enum Step : int {
  setup = 0,  // AUTH / SELECT
  watch,
  read,  // GET (get and update)
  multi,
  write,  // SET or DEL inside MULTI
  exec,
  remove_key,
  scan,
  fetch,  // MGET (list)
  ignored,
};

// A SCAN page; the most keys one list looks at (a store this big is listed by prefix).
constexpr const char* scan_page = "500";
constexpr std::size_t max_scanned_keys = 100000;

struct ReplyTag {
  std::uint64_t generation;
  std::uint64_t id;
  int step;
};

void reply_trampoline(redisAsyncContext* context, void* reply, void* data) {
  std::unique_ptr<ReplyTag> tag(static_cast<ReplyTag*>(data));
  auto* store = static_cast<RedisStore*>(context->data);
  if (!store) return;  // dropped or being destroyed: nothing waits for this any more
  guard_callback("redis_reply",
                 [&] { store->on_reply(tag->generation, tag->id, tag->step, reply); });
}

void connect_trampoline(const redisAsyncContext* context, int status) {
  auto* store = static_cast<RedisStore*>(context->data);
  if (!store) return;
  guard_callback("redis_connect", [&] { store->on_connected(status); });
}

void disconnect_trampoline(const redisAsyncContext* context, int) {
  auto* store = static_cast<RedisStore*>(context->data);
  if (!store) return;
  guard_callback("redis_disconnect", [&] { store->on_disconnected(); });
}

std::string reply_text(const redisReply* reply) {
  return std::string(reply->str, reply->len);
}

bool is_error(const redisReply* reply) {
  return reply->type == REDIS_REPLY_ERROR;
}

// SCAN's MATCH is a glob: the prefix's own glob characters are matched as they are.
std::string glob_escape(std::string_view text) {
  std::string escaped;
  for (char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') escaped += '\\';
    escaped += c;
  }
  return escaped;
}

std::int64_t milliseconds_until(StoreClock::time_point when, StoreClock::time_point now) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(when - now).count();
}

}  // namespace

std::shared_ptr<RedisStore> RedisStore::create(event_base* base, RedisStoreOptions options) {
  std::shared_ptr<RedisStore> store(new RedisStore(base, std::move(options)));
  store->connect();
  return store;
}

RedisStore::RedisStore(event_base* base, RedisStoreOptions options)
    : base_(base), options_(std::move(options)), backoff_(options_.first_backoff) {
  connect_timer_.reset(evtimer_new(base_, &RedisStore::on_connect_timeout, this));
  backoff_timer_.reset(evtimer_new(base_, &RedisStore::on_backoff, this));
  wake_.reset(event_new(base_, -1, 0, &RedisStore::on_inbox, this));
  if (!connect_timer_ || !backoff_timer_ || !wake_) {
    throw std::runtime_error("event_new failed for the Redis store");
  }
  inbox_ = std::make_shared<StoreReplyInbox>(wake_.get());
}

RedisStore::~RedisStore() {
  closing_ = true;
  inbox_->close();
  if (context_) {
    context_->data = nullptr;  // the callbacks hiredis runs while freeing find no store
    redisAsyncFree(context_);
    context_ = nullptr;
  }
}

void RedisStore::arm(event* timer, std::chrono::milliseconds after) {
  const timeval delay{static_cast<time_t>(after.count() / 1000),
                      static_cast<suseconds_t>((after.count() % 1000) * 1000)};
  evtimer_add(timer, &delay);
}

void RedisStore::connect() {
  state_ = State::connecting;
  redisAsyncContext* context = redisAsyncConnect(options_.host.c_str(), options_.port);
  if (!context) return drop("hiredis could not make a connection context", false);
  if (context->err) {
    const std::string error = context->errstr;
    redisAsyncFree(context);
    return drop(error, false);
  }
  if (redisLibeventAttach(context, base_) != REDIS_OK) {
    redisAsyncFree(context);
    return drop("hiredis could not attach to the event loop", false);
  }
  context->data = this;
  redisAsyncSetConnectCallback(context, connect_trampoline);
  redisAsyncSetDisconnectCallback(context, disconnect_trampoline);
  context_ = context;
  arm(connect_timer_.get(), options_.timeout);
}

void RedisStore::on_connected(int status) {
  if (status != REDIS_OK) {
    // hiredis frees the context after this callback.
    return drop(std::string("connect to ") + options_.host + ":" + std::to_string(options_.port) +
                    " failed: " + context_->errstr,
                false);
  }
  std::vector<std::vector<std::string>> setup_commands;
  if (!options_.password.empty()) setup_commands.push_back({"AUTH", options_.password});
  if (options_.database != 0) {
    setup_commands.push_back({"SELECT", std::to_string(options_.database)});
  }
  setup_replies_left_ = 0;
  for (const auto& arguments : setup_commands) {
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (const auto& argument : arguments) {
      argv.push_back(argument.data());
      lengths.push_back(argument.size());
    }
    auto* tag = new ReplyTag{generation_, 0, Step::setup};
    if (redisAsyncCommandArgv(context_, reply_trampoline, tag, static_cast<int>(argv.size()),
                              argv.data(), lengths.data()) != REDIS_OK) {
      delete tag;
      return drop("could not send " + arguments[0], false);
    }
    ++setup_replies_left_;
  }
  if (setup_replies_left_ == 0) become_ready();  // else once AUTH and SELECT are answered
}

void RedisStore::become_ready() {
  evtimer_del(connect_timer_.get());
  state_ = State::ready;
  backoff_ = options_.first_backoff;
  log_info("store_connected", {{"backend", "redis"},
                               {"address", options_.host + ":" + std::to_string(options_.port)}});
  std::deque<std::uint64_t> waiting;
  waiting.swap(waiting_);
  for (std::uint64_t id : waiting) {
    if (state_ != State::ready) break;  // dropped meanwhile: drop() answered them
    if (auto found = ops_.find(id); found != ops_.end()) send(*found->second);
  }
  next_update();
}

void RedisStore::on_disconnected() {
  // hiredis frees the context after this callback.
  std::string reason = "connection to Redis lost";
  if (context_ && context_->err) reason += std::string(": ") + context_->errstr;
  drop(reason, false);
}

void RedisStore::drop(const std::string& reason, bool free_context) {
  ++generation_;
  const bool was_ready = state_ == State::ready;
  state_ = State::down;
  setup_replies_left_ = 0;
  evtimer_del(connect_timer_.get());
  if (redisAsyncContext* context = context_) {
    context_ = nullptr;
    context->data = nullptr;
    if (free_context) redisAsyncFree(context);  // deferred by hiredis inside its callbacks
  }
  if (closing_) return;
  log_warning(
      was_ready ? "store_down" : "store_connect_failed",
      {{"backend", "redis"}, {"error", reason}, {"retry_in_ms", std::to_string(backoff_.count())}});
  waiting_.clear();
  updates_.clear();
  std::vector<std::uint64_t> ids;
  for (const auto& [id, op] : ops_)
    ids.push_back(id);
  for (std::uint64_t id : ids)
    finish(id, StoreStatus::unavailable, reason);
  evtimer_del(backoff_timer_.get());
  arm(backoff_timer_.get(), backoff_);
  backoff_ = std::min(backoff_ * 2, options_.max_backoff);
}

void RedisStore::on_backoff(evutil_socket_t, short, void* data) {
  auto* store = static_cast<RedisStore*>(data);
  guard_callback("redis_backoff", [&] { store->connect(); });
}

void RedisStore::on_connect_timeout(evutil_socket_t, short, void* data) {
  auto* store = static_cast<RedisStore*>(data);
  guard_callback("redis_connect_timeout", [&] {
    store->drop(
        "no connection to Redis within " + std::to_string(store->options_.timeout.count()) + " ms",
        true);
  });
}

void RedisStore::on_op_timeout(evutil_socket_t, short, void* data) {
  auto* op = static_cast<Op*>(data);
  RedisStore* store = op->store;
  guard_callback("redis_timeout", [&] {
    // A reply may still come on this connection: dropping it keeps every later reply in step.
    store->drop(
        "no answer from Redis within " + std::to_string(store->options_.timeout.count()) + " ms",
        true);
  });
}

void RedisStore::on_retry(evutil_socket_t, short, void* data) {
  auto* op = static_cast<Op*>(data);
  RedisStore* store = op->store;
  guard_callback("redis_retry", [&] {
    if (store->state_ == State::ready) store->send_update(*op);
  });
}

std::unique_ptr<StoreCall> RedisStore::start(Kind kind, std::string key, StoreTransform transform,
                                             std::size_t limit, Callbacks callbacks) {
  const std::uint64_t id = next_id_++;
  callbacks_.emplace(id, std::move(callbacks));
  auto handle = std::make_unique<StoreCallHandle<RedisStore>>(weak_from_this(), id);
  auto op = std::make_unique<Op>();
  op->store = this;
  op->id = id;
  op->kind = kind;
  op->key = std::move(key);
  op->transform = std::move(transform);
  op->limit = limit;
  op->timer.reset(evtimer_new(base_, &RedisStore::on_op_timeout, op.get()));
  if (kind == Kind::update) op->retry.reset(evtimer_new(base_, &RedisStore::on_retry, op.get()));
  Op& added = *op;
  ops_.emplace(id, std::move(op));

  std::string problem;
  if (kind != Kind::list && added.key.empty()) problem = "empty key";
  if (added.key.size() > max_store_key_bytes) {
    problem = "key of " + std::to_string(added.key.size()) + " bytes, above the limit of " +
              std::to_string(max_store_key_bytes);
  }
  if (kind == Kind::update && !added.transform) problem = "an update without a transform";
  if (!added.timer || (kind == Kind::update && !added.retry))
    problem = "event_new failed for the call's timer";
  if (!problem.empty()) {
    finish(id, StoreStatus::error, std::move(problem));
  } else if (state_ == State::down) {
    finish(id, StoreStatus::unavailable, "Redis is not connected (reconnecting)");
  } else if (kind == Kind::update) {
    updates_.push_back(id);
    if (state_ == State::ready && updates_.size() == 1) send_update(added);
  } else if (state_ == State::connecting) {
    waiting_.push_back(id);
  } else {
    send(added);
  }
  return handle;
}

bool RedisStore::command(Op& op, int step, const std::vector<std::string>& arguments) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const auto& argument : arguments) {
    argv.push_back(argument.data());
    lengths.push_back(argument.size());
  }
  auto* tag = new ReplyTag{generation_, op.id, step};
  if (redisAsyncCommandArgv(context_, reply_trampoline, tag, static_cast<int>(argv.size()),
                            argv.data(), lengths.data()) != REDIS_OK) {
    // Only a context that hiredis is already disconnecting refuses a command.
    delete tag;
    drop("could not send " + arguments[0] + " to Redis", false);
    return false;
  }
  return true;
}

void RedisStore::send(Op& op) {
  arm(op.timer.get(), options_.timeout);
  switch (op.kind) {
    case Kind::get:
      command(op, Step::read, {"GET", options_.prefix + op.key});
      return;
    case Kind::remove:
      command(op, Step::remove_key, {"DEL", options_.prefix + op.key});
      return;
    case Kind::list:
      send_scan(op);
      return;
    case Kind::update:
      send_update(op);
      return;
  }
}

void RedisStore::send_update(Op& op) {
  ++op.attempts;
  arm(op.timer.get(), options_.timeout);
  const std::string key = options_.prefix + op.key;
  if (!command(op, Step::watch, {"WATCH", key})) return;
  command(op, Step::read, {"GET", key});
}

void RedisStore::send_scan(Op& op) {
  arm(op.timer.get(), options_.timeout);
  command(op, Step::scan,
          {"SCAN", op.cursor, "MATCH", glob_escape(options_.prefix + op.key) + "*", "COUNT",
           scan_page});
}

void RedisStore::next_update() {
  if (state_ != State::ready || updates_.empty()) return;
  if (auto found = ops_.find(updates_.front()); found != ops_.end()) {
    send_update(*found->second);
  }
}

void RedisStore::on_reply(std::uint64_t generation, std::uint64_t id, int step, void* data) {
  if (generation != generation_) return;  // of a connection that was dropped
  auto* reply = static_cast<redisReply*>(data);
  if (!reply) return;  // the connection is going: on_disconnected() follows
  if (step == Step::setup) {
    if (is_error(reply)) return drop("Redis refused the set-up: " + reply_text(reply), true);
    if (--setup_replies_left_ == 0) become_ready();
    return;
  }
  if (step == Step::ignored) return;
  const auto found = ops_.find(id);
  if (found == ops_.end()) return;
  Op& op = *found->second;
  const auto now = StoreClock::now();

  switch (step) {
    case Step::watch:
    case Step::multi:
    case Step::write:
      return;  // an error here makes EXEC fail, which is where it is answered
    case Step::remove_key:
      if (is_error(reply)) return finish(id, StoreStatus::error, "DEL: " + reply_text(reply));
      return finish(id, StoreStatus::ok, "");
    case Step::read: {
      if (is_error(reply)) {
        if (op.kind == Kind::update) command(op, Step::ignored, {"UNWATCH"});
        return finish(id, StoreStatus::error, "GET: " + reply_text(reply));
      }
      std::optional<StoreRecord> current;
      if (reply->type == REDIS_REPLY_STRING) {
        current = decode_store_record(std::string_view(reply->str, reply->len));
        if (!current) {
          if (op.kind == Kind::update) command(op, Step::ignored, {"UNWATCH"});
          return finish(id, StoreStatus::error, "a corrupt record (shorter than its header)");
        }
        if (current->expires <= now) current.reset();  // Redis forgets it a moment later
      }
      if (op.kind == Kind::get) {
        StoreReply answer;
        answer.record = std::move(current);
        return finish(id, StoreStatus::ok, "", std::move(answer));
      }
      try {
        op.change = op.transform(current, now);
      } catch (const std::exception& error) {
        command(op, Step::ignored, {"UNWATCH"});
        return finish(id, StoreStatus::error, std::string("the transform failed: ") + error.what());
      }
      if (op.change.record && op.change.record->value.size() > max_store_value_bytes) {
        std::string problem = "value of " + std::to_string(op.change.record->value.size()) +
                              " bytes, above the limit of " + std::to_string(max_store_value_bytes);
        command(op, Step::ignored, {"UNWATCH"});
        return finish(id, StoreStatus::error, std::move(problem));
      }
      const std::string key = options_.prefix + op.key;
      if (op.change.record && op.change.record->expires <= now) op.change.record.reset();
      if (!command(op, Step::multi, {"MULTI"})) return;
      if (op.change.record) {
        const auto lifetime =
            std::max<std::int64_t>(1, milliseconds_until(op.change.record->expires, now));
        if (!command(op, Step::write,
                     {"SET", key, encode_store_record(*op.change.record), "PX",
                      std::to_string(lifetime)})) {
          return;
        }
      } else if (!command(op, Step::write, {"DEL", key})) {
        return;
      }
      command(op, Step::exec, {"EXEC"});
      return;
    }
    case Step::exec: {
      if (reply->type == REDIS_REPLY_NIL) {
        if (op.attempts < max_update_attempts) {
          // Two writers that read at the same moment would meet again at once: the loser
          // waits a random moment, longer each time, before it reads again.
          std::uniform_int_distribution<int> micros(0, 500 * op.attempts);
          const timeval delay{0, static_cast<suseconds_t>(micros(jitter_))};
          evtimer_add(op.retry.get(), &delay);
          return;
        }
        return finish(id, StoreStatus::error,
                      "contended: the key changed under " + std::to_string(op.attempts) +
                          " attempts in a row");
      }
      if (is_error(reply)) return finish(id, StoreStatus::error, "EXEC: " + reply_text(reply));
      if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 && is_error(reply->element[0])) {
        return finish(id, StoreStatus::error, "write: " + reply_text(reply->element[0]));
      }
      StoreReply answer;
      answer.record = std::move(op.change.record);
      answer.result = std::move(op.change.result);
      return finish(id, StoreStatus::ok, "", std::move(answer));
    }
    case Step::scan: {
      if (is_error(reply)) return finish(id, StoreStatus::error, "SCAN: " + reply_text(reply));
      if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
          reply->element[1]->type != REDIS_REPLY_ARRAY) {
        return finish(id, StoreStatus::error, "SCAN: an unexpected reply");
      }
      op.cursor = reply_text(reply->element[0]);
      const redisReply* keys = reply->element[1];
      for (size_t i = 0; i < keys->elements; ++i) {
        std::string key = reply_text(keys->element[i]);
        if (key.compare(0, options_.prefix.size(), options_.prefix) != 0) continue;
        op.found.push_back(key.substr(options_.prefix.size()));
      }
      if (op.cursor != "0" && op.found.size() < max_scanned_keys) return send_scan(op);
      // SCAN may give a key twice; the listing is in key order.
      std::sort(op.found.begin(), op.found.end());
      op.found.erase(std::unique(op.found.begin(), op.found.end()), op.found.end());
      if (op.found.size() > op.limit) op.found.resize(op.limit);
      if (op.found.empty()) return finish(id, StoreStatus::ok, "");
      std::vector<std::string> arguments{"MGET"};
      for (const auto& key : op.found)
        arguments.push_back(options_.prefix + key);
      arm(op.timer.get(), options_.timeout);
      command(op, Step::fetch, arguments);
      return;
    }
    case Step::fetch: {
      if (is_error(reply)) return finish(id, StoreStatus::error, "MGET: " + reply_text(reply));
      if (reply->type != REDIS_REPLY_ARRAY || reply->elements != op.found.size()) {
        return finish(id, StoreStatus::error, "MGET: an unexpected reply");
      }
      std::vector<StoreEntry> entries;
      for (size_t i = 0; i < reply->elements; ++i) {
        const redisReply* value = reply->element[i];
        if (value->type != REDIS_REPLY_STRING) continue;  // gone since the SCAN
        auto record = decode_store_record(std::string_view(value->str, value->len));
        if (!record || record->expires <= now) continue;
        entries.push_back(StoreEntry{op.found[i], std::move(*record)});
      }
      return finish(id, StoreStatus::ok, "", {}, std::move(entries));
    }
    default:
      return;
  }
}

void RedisStore::finish(std::uint64_t id, StoreStatus status, std::string error, StoreReply reply,
                        std::vector<StoreEntry> entries) {
  const auto found = ops_.find(id);
  if (found == ops_.end()) return;
  const bool was_update = found->second->kind == Kind::update;
  ops_.erase(found);
  if (status != StoreStatus::ok) {
    metrics().store_errors_total.with({"redis", store_status_name(status)}).increment();
  }
  StoreDelivery delivery;
  delivery.id = id;
  delivery.reply = std::move(reply);
  delivery.reply.status = status;
  delivery.reply.error = std::move(error);
  delivery.entries = std::move(entries);
  inbox_->post(std::move(delivery));
  if (was_update && !updates_.empty() && updates_.front() == id) {
    updates_.pop_front();
    next_update();
  }
}

std::unique_ptr<StoreCall> RedisStore::get(std::string key, std::function<void(StoreReply)> done) {
  return start(Kind::get, std::move(key), nullptr, 0, Callbacks{std::move(done), nullptr});
}

std::unique_ptr<StoreCall> RedisStore::update(std::string key, StoreTransform transform,
                                              std::function<void(StoreReply)> done) {
  return start(Kind::update, std::move(key), std::move(transform), 0,
               Callbacks{std::move(done), nullptr});
}

std::unique_ptr<StoreCall> RedisStore::remove(std::string key,
                                              std::function<void(StoreReply)> done) {
  return start(Kind::remove, std::move(key), nullptr, 0, Callbacks{std::move(done), nullptr});
}

std::unique_ptr<StoreCall> RedisStore::list(
    std::string prefix, std::size_t limit,
    std::function<void(StoreStatus, std::string error, std::vector<StoreEntry>)> done) {
  return start(Kind::list, std::move(prefix), nullptr, limit, Callbacks{nullptr, std::move(done)});
}

void RedisStore::cancel(std::uint64_t id) {
  callbacks_.erase(id);
}

void RedisStore::on_inbox(evutil_socket_t, short, void* data) {
  auto* store = static_cast<RedisStore*>(data);
  guard_callback("store_inbox", [&] { store->deliver(); });
}

void RedisStore::deliver() {
  // A callback may drop the last reference to this store: stay alive until the batch is done.
  const auto self = shared_from_this();
  for (StoreDelivery& delivery : inbox_->take()) {
    const auto found = callbacks_.find(delivery.id);
    if (found == callbacks_.end()) continue;  // cancelled
    Callbacks callbacks = std::move(found->second);
    callbacks_.erase(found);
    if (callbacks.listed) {
      callbacks.listed(delivery.reply.status, std::move(delivery.reply.error),
                       std::move(delivery.entries));
    } else if (callbacks.done) {
      callbacks.done(std::move(delivery.reply));
    }
  }
}

}  // namespace portcullis
