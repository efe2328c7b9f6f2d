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
  int attempts = 0;                 // update: compare-and-set rounds sent
  StoreChange change;               // update: what the transform made of `seen`
  std::optional<std::string> seen;  // update: the key's bytes the transform ran on (absent)
  bool seen_fresh = false;          // update: `seen` came from Redis just now (GET or script)
  std::vector<std::string> write_arguments;  // update: the script's KEYS and ARGV
  bool use_eval = false;                     // update: Redis answered NOSCRIPT
  std::string cursor = "0";                  // list: SCAN's
  std::vector<std::string> found;            // list: keys without the prefix
  EventPtr timer;
  EventPtr retry;  // update: the pause before the next attempt
};

namespace {

// The reply steps of each kind of call.
enum Step : int {
  setup = 0,    // AUTH / SELECT
  script_load,  // SCRIPT LOAD of the compare-and-set script
  read,         // GET (get and update)
  write,        // EVALSHA / EVAL of the compare-and-set script (update)
  remove_key,
  scan,
  fetch,  // MGET (list)
};

// The compare-and-set of an update. KEYS[1] the key; ARGV: 1 whether the transform saw the key
// present ("1") or absent ("0"), 2 the bytes it saw, 3 what to do when they are still there:
// "s" SET ARGV[4] PX ARGV[5], "d" DEL, "k" nothing (the record stays as it is). Answers {1}
// when done, else {0, current bytes} ({0} when the key is absent now).
constexpr const char* compare_and_set_script = R"lua(
local current = redis.call('GET', KEYS[1])
local same
if ARGV[1] == '1' then same = (current == ARGV[2]) else same = (current == false) end
if not same then
  if current == false then return {0} end
  return {0, current}
end
if ARGV[3] == 's' then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
elseif ARGV[3] == 'd' then
  redis.call('DEL', KEYS[1])
end
return {1}
)lua";

// Rounds lost in a row after which the next one waits a short random moment first, so that
// writers that keep meeting on a key are spread apart. Until then a loser sends its next
// round at once, which gives it the lead: a winner's next update of the key starts with a GET.
constexpr int pause_after_attempts = 8;

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
  // After AUTH and SELECT: the script cache is per server, loaded again on every connection
  // (the server may be another one after a failover).
  setup_commands.push_back({"SCRIPT", "LOAD", compare_and_set_script});
  setup_replies_left_ = 0;
  for (const auto& arguments : setup_commands) {
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (const auto& argument : arguments) {
      argv.push_back(argument.data());
      lengths.push_back(argument.size());
    }
    const int step = arguments[0] == "SCRIPT" ? Step::script_load : Step::setup;
    auto* tag = new ReplyTag{generation_, 0, step};
    if (redisAsyncCommandArgv(context_, reply_trampoline, tag, static_cast<int>(argv.size()),
                              argv.data(), lengths.data()) != REDIS_OK) {
      delete tag;
      return drop("could not send " + arguments[0], false);
    }
    ++setup_replies_left_;
  }
  // Ready once AUTH, SELECT and SCRIPT LOAD are answered.
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
  key_updates_.clear();
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
    if (store->state_ == State::ready) store->transform_and_write(*op);
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
    // One update of a key at a time on this store: the others wait for it.
    auto& queue = key_updates_[added.key];
    queue.push_back(id);
    if (queue.size() == 1) {
      if (state_ == State::ready) {
        begin_update(added);
      } else {
        waiting_.push_back(id);
      }
    }
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
      begin_update(op);
      return;
  }
}

void RedisStore::begin_update(Op& op) {
  arm(op.timer.get(), options_.timeout);
  command(op, Step::read, {"GET", options_.prefix + op.key});
}

void RedisStore::transform_and_write(Op& op) {
  ++op.attempts;
  const auto now = StoreClock::now();
  std::optional<StoreRecord> current;
  if (op.seen) {
    current = decode_store_record(*op.seen);
    if (!current) {
      return finish(op.id, StoreStatus::error, "a corrupt record (shorter than its header)");
    }
    if (current->expires <= now) current.reset();  // Redis forgets it a moment later
  }
  try {
    op.change = op.transform(current, now);
  } catch (const std::exception& error) {
    return finish(op.id, StoreStatus::error, std::string("the transform failed: ") + error.what());
  }
  if (op.change.record && op.change.record->value.size() > max_store_value_bytes) {
    return finish(op.id, StoreStatus::error,
                  "value of " + std::to_string(op.change.record->value.size()) +
                      " bytes, above the limit of " + std::to_string(max_store_value_bytes));
  }
  if (op.change.record && op.change.record->expires <= now) op.change.record.reset();
  const bool unchanged = same_store_record(current, op.change.record);
  if (unchanged && op.seen_fresh) {
    // Nothing to write, and the read is the latest Redis had: the update is that read.
    StoreReply answer;
    answer.record = std::move(op.change.record);
    answer.result = std::move(op.change.result);
    return finish(op.id, StoreStatus::ok, "", std::move(answer));
  }
  std::string action = "k";
  std::string bytes;
  std::string lifetime = "1";
  if (unchanged) {
    // Only after a lost round is `seen` not a GET's: the script checks it, writing nothing.
  } else if (op.change.record) {
    action = "s";
    bytes = encode_store_record(*op.change.record);
    lifetime = std::to_string(
        std::max<std::int64_t>(1, milliseconds_until(op.change.record->expires, now)));
  } else {
    action = "d";
  }
  op.write_arguments = {"1",
                        options_.prefix + op.key,
                        op.seen ? "1" : "0",
                        op.seen.value_or(""),
                        std::move(action),
                        std::move(bytes),
                        std::move(lifetime)};
  send_write(op);
}

void RedisStore::send_write(Op& op) {
  arm(op.timer.get(), options_.timeout);
  std::vector<std::string> arguments;
  arguments.reserve(op.write_arguments.size() + 2);
  if (op.use_eval) {
    arguments = {"EVAL", compare_and_set_script};
  } else {
    arguments = {"EVALSHA", script_sha_};
  }
  arguments.insert(arguments.end(), op.write_arguments.begin(), op.write_arguments.end());
  command(op, Step::write, arguments);
}

void RedisStore::send_scan(Op& op) {
  arm(op.timer.get(), options_.timeout);
  command(op, Step::scan,
          {"SCAN", op.cursor, "MATCH", glob_escape(options_.prefix + op.key) + "*", "COUNT",
           scan_page});
}

void RedisStore::next_update_of(const std::string& key) {
  const auto queue = key_updates_.find(key);
  if (queue == key_updates_.end()) return;
  queue->second.pop_front();
  if (queue->second.empty()) {
    key_updates_.erase(queue);
    return;
  }
  const auto found = ops_.find(queue->second.front());
  if (found == ops_.end()) return;
  if (state_ == State::ready) {
    begin_update(*found->second);
  } else if (state_ == State::connecting) {
    waiting_.push_back(found->first);
  }
}

void RedisStore::on_reply(std::uint64_t generation, std::uint64_t id, int step, void* data) {
  if (generation != generation_) return;  // of a connection that was dropped
  auto* reply = static_cast<redisReply*>(data);
  if (!reply) return;  // the connection is going: on_disconnected() follows
  if (step == Step::setup || step == Step::script_load) {
    if (is_error(reply)) return drop("Redis refused the set-up: " + reply_text(reply), true);
    if (step == Step::script_load) {
      if (reply->type != REDIS_REPLY_STRING) {
        return drop("Redis answered SCRIPT LOAD without a digest", true);
      }
      script_sha_ = reply_text(reply);
    }
    if (--setup_replies_left_ == 0) become_ready();
    return;
  }
  const auto found = ops_.find(id);
  if (found == ops_.end()) return;
  Op& op = *found->second;
  const auto now = StoreClock::now();

  switch (step) {
    case Step::remove_key:
      if (is_error(reply)) return finish(id, StoreStatus::error, "DEL: " + reply_text(reply));
      return finish(id, StoreStatus::ok, "");
    case Step::read: {
      if (is_error(reply)) return finish(id, StoreStatus::error, "GET: " + reply_text(reply));
      std::optional<std::string> bytes;
      if (reply->type == REDIS_REPLY_STRING) bytes = reply_text(reply);
      if (op.kind == Kind::update) {
        op.seen = std::move(bytes);
        op.seen_fresh = true;
        return transform_and_write(op);
      }
      StoreReply answer;
      if (bytes) {
        answer.record = decode_store_record(*bytes);
        if (!answer.record) {
          return finish(id, StoreStatus::error, "a corrupt record (shorter than its header)");
        }
        if (answer.record->expires <= now) answer.record.reset();  // Redis forgets it soon
      }
      return finish(id, StoreStatus::ok, "", std::move(answer));
    }
    case Step::write: {
      if (is_error(reply)) {
        const std::string text = reply_text(reply);
        if (!op.use_eval && text.rfind("NOSCRIPT", 0) == 0) {
          // The server lost the script (SCRIPT FLUSH, a failover): EVAL loads it again.
          op.use_eval = true;
          return send_write(op);
        }
        return finish(id, StoreStatus::error, "compare-and-set: " + text);
      }
      if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
          reply->element[0]->type != REDIS_REPLY_INTEGER ||
          (reply->elements == 2 && reply->element[1]->type != REDIS_REPLY_STRING) ||
          reply->elements > 2) {
        return finish(id, StoreStatus::error, "compare-and-set: an unexpected reply");
      }
      if (reply->element[0]->integer == 1) {
        StoreReply answer;
        answer.record = std::move(op.change.record);
        answer.result = std::move(op.change.result);
        return finish(id, StoreStatus::ok, "", std::move(answer));
      }
      // Another writer was first: its bytes are what the next round runs on.
      op.seen.reset();
      if (reply->elements == 2) op.seen = reply_text(reply->element[1]);
      op.seen_fresh = true;
      if (op.attempts >= max_update_attempts) {
        return finish(id, StoreStatus::error,
                      "contended: the key changed under " + std::to_string(op.attempts) +
                          " attempts in a row");
      }
      if (op.attempts < pause_after_attempts) return transform_and_write(op);
      std::uniform_int_distribution<int> micros(0, 50 * op.attempts);
      const timeval delay{0, static_cast<suseconds_t>(micros(jitter_))};
      evtimer_add(op.retry.get(), &delay);
      return;
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
  std::string key = std::move(found->second->key);
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
  if (was_update) {
    const auto queue = key_updates_.find(key);
    if (queue != key_updates_.end() && !queue->second.empty() && queue->second.front() == id) {
      next_update_of(key);
    }
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
