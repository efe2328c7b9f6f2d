// RedisStore against a real redis-server started here on a free loopback port (stopped by
// pid): the StateStore contract (deferred callbacks, transforms on the current record, cancel),
// two stores counting on one key without losing an update, many concurrent updates of a hot
// key on four connections and on two loop threads, one store's updates of a key queued behind
// each other, an update
// that changes nothing (no write), the script lost (NOSCRIPT → EVAL), an update that gives up
// as "contended", prefixes, AUTH and SELECT, expiry, and the failures: a server killed
// (unavailable at once), a server that stops answering (unavailable after timeout_ms), and a
// server back on the same port (used again without a new store).
#define BOOST_TEST_MODULE redis_store
#include <boost/test/unit_test.hpp>

#include <event2/event.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <hiredis/hiredis.h>

#include "event_handles.h"
#include "metrics.h"
#include "redis_store.h"
#include "store_record_codec.h"
#include "test_redis_server.h"
#include "test_support.h"

using namespace portcullis;

namespace portcullis {
std::ostream& operator<<(std::ostream& out, StoreStatus status) {
  return out << static_cast<int>(status);
}
}  // namespace portcullis
using namespace std::chrono_literals;
using portcullis::test::Clock;
using portcullis::test::contains;
using portcullis::test::elapsed_ms;

namespace {

using RedisServer = portcullis::test::TestRedisServer;

RedisStoreOptions options_for(const RedisServer& server, std::string prefix = "test:") {
  RedisStoreOptions options;
  options.port = server.port();
  options.prefix = std::move(prefix);
  options.password = server.password();
  options.timeout = 1000ms;  // room for a loaded machine: only the timeout cases wait it out
  options.first_backoff = 20ms;
  options.max_backoff = 200ms;
  return options;
}

StoreClock::time_point in(std::chrono::milliseconds from_now) {
  return StoreClock::now() + from_now;
}

// Counts in the value as decimal text.
StoreTransform increment() {
  return [](const std::optional<StoreRecord>& current, StoreClock::time_point now) {
    const long count = current ? std::stol(current->value) + 1 : 1;
    return StoreChange{StoreRecord{std::to_string(count), now + 60s}, std::to_string(count)};
  };
}

struct Loop {
  Loop() : base(event_base_new(), &event_base_free) {
    // Keeps the loop waiting for events instead of returning at once.
    keep_alive.reset(event_new(
        base.get(), -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr));
    const timeval second{1, 0};
    event_add(keep_alive.get(), &second);
  }
  std::shared_ptr<RedisStore> store(RedisStoreOptions options) {
    return RedisStore::create(base.get(), std::move(options));
  }
  // Runs the loop until `done` or `limit` passes; returns done().
  template <typename Done>
  bool run_until(Done done, std::chrono::milliseconds limit = 10s) {
    const auto deadline = Clock::now() + limit;
    while (!done() && Clock::now() < deadline)
      event_base_loop(base.get(), EVLOOP_ONCE);
    return done();
  }
  // Runs the loop for `duration` (events only: a connect, a backoff).
  void run_for(std::chrono::milliseconds duration) {
    const auto deadline = Clock::now() + duration;
    run_until([&] { return Clock::now() >= deadline; }, duration + 1s);
  }
  StoreReply get(RedisStore& store, const std::string& key) {
    std::optional<StoreReply> reply;
    auto call = store.get(key, [&](StoreReply r) { reply = std::move(r); });
    BOOST_REQUIRE(run_until([&] { return reply.has_value(); }));
    return *reply;
  }
  StoreReply update(RedisStore& store, const std::string& key, StoreTransform transform) {
    std::optional<StoreReply> reply;
    auto call =
        store.update(key, std::move(transform), [&](StoreReply r) { reply = std::move(r); });
    BOOST_REQUIRE(run_until([&] { return reply.has_value(); }));
    return *reply;
  }
  StoreReply remove(RedisStore& store, const std::string& key) {
    std::optional<StoreReply> reply;
    auto call = store.remove(key, [&](StoreReply r) { reply = std::move(r); });
    BOOST_REQUIRE(run_until([&] { return reply.has_value(); }));
    return *reply;
  }
  std::vector<StoreEntry> list(RedisStore& store, const std::string& prefix, std::size_t limit) {
    std::optional<std::vector<StoreEntry>> listing;
    auto call = store.list(
        prefix, limit, [&](StoreStatus status, std::string error, std::vector<StoreEntry> entries) {
          BOOST_CHECK_MESSAGE(status == StoreStatus::ok, error);
          listing = std::move(entries);
        });
    BOOST_REQUIRE(run_until([&] { return listing.has_value(); }));
    return *listing;
  }
  // Asks `key` until a get answers ok (the store reconnected) or `limit` passes.
  bool wait_for_ok(RedisStore& store, const std::string& key, std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      if (get(store, key).status == StoreStatus::ok) return true;
      run_for(20ms);
    }
    return false;
  }

  std::unique_ptr<event_base, decltype(&event_base_free)> base;
  EventPtr keep_alive;
};

StoreTransform set_to(std::string value, std::chrono::milliseconds lifetime = 60s) {
  return [value, lifetime](const std::optional<StoreRecord>&, StoreClock::time_point now) {
    return StoreChange{StoreRecord{value, now + lifetime}, "set"};
  };
}

}  // namespace

BOOST_AUTO_TEST_CASE(get_update_remove_and_list) {
  RedisServer server;
  Loop loop;
  auto store = loop.store(options_for(server));

  StoreReply absent = loop.get(*store, "k:a");
  BOOST_TEST(absent.status == StoreStatus::ok);
  BOOST_TEST(!absent.record.has_value());

  const auto expires = in(60s);
  StoreReply written = loop.update(
      *store, "k:a", [expires](const std::optional<StoreRecord>& current, StoreClock::time_point) {
        return StoreChange{StoreRecord{current ? "again" : "first", expires}, "done"};
      });
  BOOST_TEST_REQUIRE(written.status == StoreStatus::ok, written.error);
  BOOST_TEST(written.result == "done");
  BOOST_REQUIRE(written.record.has_value());
  BOOST_TEST(written.record->value == "first");

  StoreReply read = loop.get(*store, "k:a");
  BOOST_REQUIRE(read.record.has_value());
  BOOST_TEST(read.record->value == "first");
  // Kept to the millisecond (the codec's unit).
  BOOST_TEST(std::chrono::duration_cast<std::chrono::milliseconds>(read.record->expires - expires)
                 .count() == 0);

  BOOST_TEST(loop.update(*store, "k:b", set_to("bee")).status == StoreStatus::ok);
  BOOST_TEST(loop.update(*store, "other", set_to("x")).status == StoreStatus::ok);
  auto entries = loop.list(*store, "k:", 10);
  BOOST_REQUIRE_EQUAL(entries.size(), 2u);
  BOOST_TEST(entries[0].key == "k:a");
  BOOST_TEST(entries[1].key == "k:b");
  BOOST_TEST(entries[1].record.value == "bee");
  BOOST_TEST(loop.list(*store, "k:", 1).size() == 1u);
  BOOST_TEST(loop.list(*store, "", 10).size() == 3u);

  BOOST_TEST(loop.remove(*store, "k:a").status == StoreStatus::ok);
  BOOST_TEST(!loop.get(*store, "k:a").record.has_value());
  BOOST_TEST(loop.remove(*store, "k:a").status == StoreStatus::ok);  // absent: still ok

  // A transform that gives no record deletes the key.
  BOOST_TEST(loop.update(*store, "k:b",
                         [](const std::optional<StoreRecord>&, StoreClock::time_point) {
                           return StoreChange{std::nullopt, "gone"};
                         })
                 .result == "gone");
  BOOST_TEST(!loop.get(*store, "k:b").record.has_value());
}

BOOST_AUTO_TEST_CASE(an_update_applies_the_transform_to_the_current_value) {
  RedisServer server;
  Loop loop;
  auto store = loop.store(options_for(server));
  for (int i = 1; i <= 5; ++i) {
    StoreReply reply = loop.update(*store, "count", increment());
    BOOST_TEST_REQUIRE(reply.status == StoreStatus::ok, reply.error);
    BOOST_TEST(reply.result == std::to_string(i));
  }
  BOOST_TEST(loop.get(*store, "count").record->value == "5");
}

BOOST_AUTO_TEST_CASE(callbacks_run_on_the_loop_never_inside_the_call_and_cancel_keeps_the_update) {
  RedisServer server;
  Loop loop;
  auto store = loop.store(options_for(server));
  bool ran = false;
  auto call = store->get("x", [&](StoreReply) { ran = true; });
  BOOST_TEST(!ran);
  BOOST_REQUIRE(loop.run_until([&] { return ran; }));

  bool cancelled_ran = false;
  auto update =
      store->update("cancelled", set_to("kept"), [&](StoreReply) { cancelled_ran = true; });
  update.reset();
  BOOST_TEST(store->pending_count() == 0u);
  // The update is still applied (a get sent after it may be answered before it lands, as with
  // any backend: ask until it shows); its callback never runs.
  const auto start = Clock::now();
  std::optional<StoreRecord> seen;
  while (!seen && elapsed_ms(start) < 5000)
    seen = loop.get(*store, "cancelled").record;
  BOOST_REQUIRE(seen.has_value());
  BOOST_TEST(seen->value == "kept");
  BOOST_TEST(!cancelled_ran);

  // Refused keys get an error, also deferred.
  std::optional<StoreReply> refused;
  auto bad = store->get("", [&](StoreReply r) { refused = std::move(r); });
  BOOST_TEST(!refused.has_value());
  BOOST_REQUIRE(loop.run_until([&] { return refused.has_value(); }));
  BOOST_TEST(refused->status == StoreStatus::error);
  BOOST_TEST(loop.get(*store, std::string(max_store_key_bytes + 1, 'k')).status ==
             StoreStatus::error);
}

BOOST_AUTO_TEST_CASE(two_stores_counting_on_one_key_lose_no_update) {
  RedisServer server;
  Loop loop;
  auto first = loop.store(options_for(server));
  auto second = loop.store(options_for(server));
  constexpr int each = 500;
  struct Counter {
    std::shared_ptr<RedisStore> store;
    int done = 0;
    int failed = 0;
    std::unique_ptr<StoreCall> call;
    void next() {
      call = store->update("shared", increment(), [this](StoreReply reply) {
        if (reply.status != StoreStatus::ok) {
          ++failed;
          BOOST_TEST_MESSAGE("update failed: " << reply.error);
        }
        if (++done < each) next();
      });
    }
  };
  Counter a{first, 0, 0, nullptr}, b{second, 0, 0, nullptr};
  a.next();
  b.next();
  BOOST_REQUIRE(loop.run_until([&] { return a.done == each && b.done == each; }, 60s));
  BOOST_TEST(a.failed == 0);
  BOOST_TEST(b.failed == 0);
  BOOST_TEST(loop.get(*first, "shared").record->value == std::to_string(2 * each));
}

// A hot key, as a bench client's rate-limit counter is: four connections (four workers, or two
// nodes of two) each ask 100 increments at once, without waiting for any answer. Every one must
// succeed (none "contended") and none may be lost. (WATCH/MULTI/EXEC with 8 attempts lost some
// of them here as "contended".)
BOOST_AUTO_TEST_CASE(many_concurrent_updates_of_one_key_all_succeed_and_count_exactly) {
  RedisServer server;
  Loop loop;
  constexpr int connections = 4;
  constexpr int each = 100;
  std::vector<std::shared_ptr<RedisStore>> stores;
  for (int i = 0; i < connections; ++i)
    stores.push_back(loop.store(options_for(server)));
  BOOST_REQUIRE(loop.run_until([&] {
    return std::all_of(stores.begin(), stores.end(), [](const auto& s) { return s->connected(); });
  }));
  int answered = 0;
  int failed = 0;
  std::vector<std::string> errors;
  std::vector<std::unique_ptr<StoreCall>> calls;
  for (int i = 0; i < each; ++i) {
    for (auto& store : stores) {
      calls.push_back(store->update("hot", increment(), [&](StoreReply reply) {
        ++answered;
        if (reply.status != StoreStatus::ok) {
          ++failed;
          if (errors.size() < 3) errors.push_back(reply.error);
        }
      }));
    }
  }
  BOOST_REQUIRE(loop.run_until([&] { return answered == connections * each; }, 60s));
  BOOST_TEST(failed == 0);
  for (const auto& error : errors)
    BOOST_TEST_MESSAGE("update failed: " << error);
  const StoreReply final_count = loop.get(*stores[0], "hot");
  BOOST_REQUIRE(final_count.record.has_value());
  BOOST_TEST(final_count.record->value == std::to_string(connections * each));
}

// Two workers, each on its own loop thread with its own connection, each with 300 updates of
// one key asked at once (a busy worker's sessions): the one that wins a round must not win
// every round after it, or the other one gives up as "contended".
BOOST_AUTO_TEST_CASE(two_workers_on_their_own_threads_with_deep_queues_lose_no_update) {
  RedisServer server;
  constexpr int each = 300;
  std::atomic<int> failed{0};
  auto worker = [&] {
    Loop loop;
    auto store = loop.store(options_for(server));
    int answered = 0;
    std::vector<std::unique_ptr<StoreCall>> calls;
    for (int i = 0; i < each; ++i) {
      calls.push_back(store->update("busy", increment(), [&](StoreReply reply) {
        ++answered;
        if (reply.status != StoreStatus::ok) ++failed;
      }));
    }
    if (!loop.run_until([&] { return answered == each; }, 60s))
      ++failed;  // no Boost.Test here: not thread-safe
  };
  std::thread first(worker);
  std::thread second(worker);
  first.join();
  second.join();
  BOOST_TEST(failed.load() == 0);
  Loop loop;
  auto store = loop.store(options_for(server));
  BOOST_TEST(loop.get(*store, "busy").record->value == std::to_string(2 * each));
}

// One store (one worker) never contends with itself: its updates of a key run one after the
// other, each starting from what the one before wrote, so each transform runs exactly once.
BOOST_AUTO_TEST_CASE(one_stores_updates_of_one_key_queue_and_run_their_transform_once) {
  RedisServer server;
  Loop loop;
  auto store = loop.store(options_for(server));
  constexpr int count = 200;
  int runs = 0;
  int answered = 0;
  int failed = 0;
  std::vector<std::unique_ptr<StoreCall>> calls;
  for (int i = 0; i < count; ++i) {
    calls.push_back(store->update(
        "queued",
        [&runs](const std::optional<StoreRecord>& current, StoreClock::time_point now) {
          ++runs;
          const long value = current ? std::stol(current->value) + 1 : 1;
          return StoreChange{StoreRecord{std::to_string(value), now + 60s}, ""};
        },
        [&](StoreReply reply) {
          ++answered;
          if (reply.status != StoreStatus::ok) ++failed;
        }));
  }
  BOOST_REQUIRE(loop.run_until([&] { return answered == count; }, 30s));
  BOOST_TEST(failed == 0);
  BOOST_TEST(runs == count);
  BOOST_TEST(loop.get(*store, "queued").record->value == std::to_string(count));
}

// A transform that gives back the record it was given writes nothing: Redis's copy keeps its
// bytes (and its TTL) as another client left them.
BOOST_AUTO_TEST_CASE(an_update_that_changes_nothing_writes_nothing) {
  RedisServer server;
  Loop loop;
  auto store = loop.store(options_for(server));
  BOOST_TEST(loop.update(*store, "same", set_to("v")).status == StoreStatus::ok);
  redisContext* other = redisConnect("127.0.0.1", server.port());
  BOOST_REQUIRE(other != nullptr && other->err == 0);
  auto* ttl = static_cast<redisReply*>(redisCommand(other, "PEXPIRE test:same 5000000"));
  BOOST_REQUIRE(ttl != nullptr);
  freeReplyObject(ttl);
  const StoreReply kept = loop.update(
      *store, "same", [](const std::optional<StoreRecord>& current, StoreClock::time_point) {
        return StoreChange{current, "kept"};
      });
  BOOST_TEST(kept.status == StoreStatus::ok);
  BOOST_TEST(kept.result == "kept");
  BOOST_REQUIRE(kept.record.has_value());
  BOOST_TEST(kept.record->value == "v");
  auto* left = static_cast<redisReply*>(redisCommand(other, "PTTL test:same"));
  BOOST_REQUIRE(left != nullptr);
  BOOST_TEST(left->integer > 60000);  // a write would have set it to 60 s again
  freeReplyObject(left);
  redisFree(other);
}

// The server forgets the compare-and-set script (SCRIPT FLUSH, or a failover to a server that
// never had it): EVALSHA answers NOSCRIPT and the update is sent again with EVAL.
BOOST_AUTO_TEST_CASE(an_update_after_script_flush_falls_back_to_eval) {
  RedisServer server;
  Loop loop;
  auto store = loop.store(options_for(server));
  BOOST_TEST(loop.update(*store, "flushed", increment()).status == StoreStatus::ok);
  redisContext* other = redisConnect("127.0.0.1", server.port());
  BOOST_REQUIRE(other != nullptr && other->err == 0);
  auto* flushed = static_cast<redisReply*>(redisCommand(other, "SCRIPT FLUSH"));
  BOOST_REQUIRE(flushed != nullptr);
  freeReplyObject(flushed);
  redisFree(other);
  const StoreReply second = loop.update(*store, "flushed", increment());
  BOOST_TEST(second.status == StoreStatus::ok, second.error);
  BOOST_TEST(second.result == "2");
  const StoreReply third = loop.update(*store, "flushed", increment());
  BOOST_TEST(third.status == StoreStatus::ok, third.error);
  BOOST_TEST(loop.get(*store, "flushed").record->value == "3");
}

BOOST_AUTO_TEST_CASE(prefixes_keep_stores_apart) {
  RedisServer server;
  Loop loop;
  auto blue = loop.store(options_for(server, "blue:"));
  auto green = loop.store(options_for(server, "green:"));
  BOOST_TEST(loop.update(*blue, "k", set_to("b")).status == StoreStatus::ok);
  BOOST_TEST(loop.update(*green, "k", set_to("g")).status == StoreStatus::ok);
  BOOST_TEST(loop.get(*blue, "k").record->value == "b");
  BOOST_TEST(loop.get(*green, "k").record->value == "g");
  auto listed = loop.list(*blue, "", 10);
  BOOST_REQUIRE_EQUAL(listed.size(), 1u);
  BOOST_TEST(listed[0].key == "k");
  BOOST_TEST(listed[0].record.value == "b");
  BOOST_TEST(loop.remove(*blue, "k").status == StoreStatus::ok);
  BOOST_TEST(loop.get(*green, "k").record->value == "g");

  // Glob characters in a prefix are matched as they are.
  auto starred = loop.store(options_for(server, "s*:"));
  BOOST_TEST(loop.update(*starred, "k", set_to("s")).status == StoreStatus::ok);
  BOOST_TEST(loop.list(*starred, "", 10).size() == 1u);
}

BOOST_AUTO_TEST_CASE(records_expire_in_redis) {
  RedisServer server;
  Loop loop;
  auto store = loop.store(options_for(server));
  BOOST_TEST(loop.update(*store, "short", set_to("v", 150ms)).status == StoreStatus::ok);
  BOOST_TEST(loop.get(*store, "short").record.has_value());
  const auto start = Clock::now();
  bool gone = false;
  while (!gone && elapsed_ms(start) < 5000) {
    gone = !loop.get(*store, "short").record.has_value();
    if (!gone) loop.run_for(20ms);
  }
  BOOST_TEST(gone);
  BOOST_TEST(elapsed_ms(start) >= 100);
  // Gone from Redis too, not only hidden: nothing is listed.
  BOOST_TEST(loop.list(*store, "", 10).empty());
}

BOOST_AUTO_TEST_CASE(auth_and_select_after_connect) {
  RedisServer server("s3cret");
  Loop loop;
  auto options = options_for(server);
  options.database = 3;
  auto store = loop.store(options);
  BOOST_TEST(loop.update(*store, "k", set_to("in 3")).status == StoreStatus::ok);
  auto zero = options_for(server);
  auto store_zero = loop.store(zero);
  BOOST_TEST(!loop.get(*store_zero, "k").record.has_value());  // another database
  BOOST_TEST(loop.get(*store, "k").record->value == "in 3");

  auto wrong = options_for(server);
  wrong.password = "wrong";
  auto refused = loop.store(wrong);
  StoreReply reply = loop.get(*refused, "k");
  BOOST_TEST(reply.status == StoreStatus::unavailable);
  BOOST_TEST_MESSAGE(reply.error);
}

BOOST_AUTO_TEST_CASE(a_killed_server_gives_unavailable_and_a_restarted_one_is_used_again) {
  RedisServer server;
  Loop loop;
  auto options = options_for(server);
  auto store = loop.store(options);
  BOOST_TEST(loop.update(*store, "k", set_to("v")).status == StoreStatus::ok);
  auto& unavailable = metrics().store_errors_total.with({"redis", "unavailable"});
  const auto unavailable_before = unavailable.value();

  server.kill();
  const auto start = Clock::now();
  StoreReply down = loop.get(*store, "k");
  BOOST_TEST(down.status == StoreStatus::unavailable);
  BOOST_TEST(elapsed_ms(start) < options.timeout.count() + 500);
  BOOST_TEST_MESSAGE(down.error);
  // While down, calls keep failing fast (updates too), and nothing hangs.
  for (int i = 0; i < 5; ++i) {
    BOOST_TEST(loop.update(*store, "k", increment()).status == StoreStatus::unavailable);
  }
  BOOST_TEST(elapsed_ms(start) < 5 * (options.timeout.count() + 500));
  BOOST_TEST(unavailable.value() >= unavailable_before + 6);

  server.start();  // the same port
  BOOST_TEST(loop.wait_for_ok(*store, "k", 10s));
  BOOST_TEST(loop.update(*store, "k", set_to("back")).status == StoreStatus::ok);
  BOOST_TEST(loop.get(*store, "k").record->value == "back");
}

BOOST_AUTO_TEST_CASE(a_server_that_stops_answering_times_out_and_recovers) {
  RedisServer server;
  Loop loop;
  auto options = options_for(server);
  auto store = loop.store(options);
  BOOST_TEST(loop.update(*store, "k", set_to("v")).status == StoreStatus::ok);

  server.process().send_signal(SIGSTOP);
  const auto start = Clock::now();
  StoreReply get = loop.get(*store, "k");
  const auto waited = elapsed_ms(start);
  BOOST_TEST(get.status == StoreStatus::unavailable);
  BOOST_TEST(waited >= options.timeout.count() - 20);
  BOOST_TEST(waited < options.timeout.count() + 1000);
  // The reconnects time out too (the kernel accepts, the server never answers).
  std::optional<StoreReply> during;
  auto call = store->update("k", increment(), [&](StoreReply r) { during = std::move(r); });
  BOOST_REQUIRE(loop.run_until([&] { return during.has_value(); }, 5s));
  BOOST_TEST(during->status == StoreStatus::unavailable);

  server.process().send_signal(SIGCONT);
  BOOST_TEST(loop.wait_for_ok(*store, "k", 10s));
  BOOST_TEST(loop.get(*store, "k").record->value == "v");
}

BOOST_AUTO_TEST_CASE(an_update_whose_key_always_changes_under_it_gives_up_as_contended) {
  RedisServer server;
  Loop loop;
  auto store = loop.store(options_for(server));
  // Another client writes the key while each attempt's transform runs, after the bytes it
  // runs on were read and before the compare-and-set: every compare-and-set must then write
  // nothing.
  redisContext* other = redisConnect("127.0.0.1", server.port());
  BOOST_REQUIRE(other != nullptr && other->err == 0);
  int runs = 0;
  StoreReply reply = loop.update(
      *store, "hot", [&](const std::optional<StoreRecord>&, StoreClock::time_point now) {
        ++runs;
        const std::string theirs = encode_store_record({std::to_string(runs), now + 60s});
        auto* written = static_cast<redisReply*>(
            redisCommand(other, "SET test:hot %b", theirs.data(), theirs.size()));
        if (written) freeReplyObject(written);
        return StoreChange{StoreRecord{"mine", now + 60s}, ""};
      });
  BOOST_TEST(reply.status == StoreStatus::error);
  BOOST_TEST(contains(reply.error, "contended"), reply.error);
  BOOST_TEST(runs == RedisStore::max_update_attempts);
  // The other client's last write stands; ours never landed.
  auto* last = static_cast<redisReply*>(redisCommand(other, "GET test:hot"));
  BOOST_REQUIRE(last != nullptr);
  const auto theirs = decode_store_record(std::string_view(last->str, last->len));
  BOOST_REQUIRE(theirs.has_value());
  BOOST_TEST(theirs->value == std::to_string(runs));
  freeReplyObject(last);
  redisFree(other);
}
