// LmdbStore and LmdbDatabase on a real event_base, in a temporary directory: the StateStore
// contract (deferred callbacks, transforms on the current record, cancel), expiry and the
// bounded sweep, two loops counting on one key, a full map, the key and value limits, reopening
// the file, and a writer process killed with SIGKILL.
#define BOOST_TEST_MODULE lmdb_store
#include <boost/test/unit_test.hpp>

#include <event2/event.h>
#include <event2/thread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "event_handles.h"
#include "lmdb_database.h"
#include "lmdb_store.h"
#include "metrics.h"
#include "store_record_codec.h"
#include "test_support.h"

using namespace portcullis;
using namespace std::chrono_literals;
using portcullis::test::TempDir;

namespace {

// Replies are posted from the writer thread with event_active: libevent must be thread-aware
// before any event_base is made.
struct ThreadedLibevent {
  ThreadedLibevent() { evthread_use_pthreads(); }
};
BOOST_TEST_GLOBAL_FIXTURE(ThreadedLibevent);

// A wall clock the test moves by hand (shared with the writer thread).
struct FakeClock {
  std::atomic<std::int64_t> milliseconds{1'700'000'000'000};
  StoreClock::time_point now() const {
    return StoreClock::time_point(std::chrono::milliseconds(milliseconds.load()));
  }
  void advance(std::chrono::milliseconds by) { milliseconds += by.count(); }
};

// One loop with its store.
struct Loop {
  explicit Loop(LmdbDatabase* database) : base(event_base_new()) {
    // Keeps the loop waiting for the inbox's event instead of returning at once.
    keep_alive.reset(event_new(
        base.get(), -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr));
    const timeval second{1, 0};
    event_add(keep_alive.get(), &second);
    store = LmdbStore::create(base.get(), database);
  }
  ~Loop() {
    store.reset();
    keep_alive.reset();
  }
  template <typename Done>
  void run_until(Done done) {
    while (!done())
      event_base_loop(base.get(), EVLOOP_ONCE);
  }
  StoreReply get(const std::string& key) {
    std::optional<StoreReply> reply;
    auto call = store->get(key, [&](StoreReply r) { reply = std::move(r); });
    run_until([&] { return reply.has_value(); });
    return *reply;
  }
  StoreReply update(const std::string& key, StoreTransform transform) {
    std::optional<StoreReply> reply;
    auto call =
        store->update(key, std::move(transform), [&](StoreReply r) { reply = std::move(r); });
    run_until([&] { return reply.has_value(); });
    return *reply;
  }
  StoreReply set(const std::string& key, std::string value, StoreClock::time_point expires) {
    return update(key, [value, expires](const std::optional<StoreRecord>&, StoreClock::time_point) {
      return StoreChange{StoreRecord{value, expires}, "set"};
    });
  }
  StoreReply remove(const std::string& key) {
    std::optional<StoreReply> reply;
    auto call = store->remove(key, [&](StoreReply r) { reply = std::move(r); });
    run_until([&] { return reply.has_value(); });
    return *reply;
  }
  StoreListing list(const std::string& prefix, std::size_t limit) {
    std::optional<StoreListing> listing;
    auto call = store->list(prefix, limit,
                            [&](StoreStatus status, std::string error, std::vector<StoreEntry> e) {
                              listing = StoreListing{status, std::move(error), std::move(e)};
                            });
    run_until([&] { return listing.has_value(); });
    return *listing;
  }

  EventBasePtr base;
  EventPtr keep_alive;
  std::shared_ptr<LmdbStore> store;
};

// An update that adds one to a decimal counter kept for an hour.
StoreTransform increment() {
  return [](const std::optional<StoreRecord>& current, StoreClock::time_point now) {
    const long count = current ? std::stol(current->value) + 1 : 1;
    return StoreChange{StoreRecord{std::to_string(count), now + 1h}, std::to_string(count)};
  };
}

// Appends "+" to the value: always a change.
StoreTransform increment_from_text() {
  return [](const std::optional<StoreRecord>& current, StoreClock::time_point now) {
    return StoreChange{StoreRecord{(current ? current->value : "") + "+", now + 1h}, ""};
  };
}

struct StoreFixture {
  explicit StoreFixture(std::uint64_t map_size = std::uint64_t{64} << 20) { open(map_size); }
  void open(std::uint64_t map_size = std::uint64_t{64} << 20) {
    LmdbDatabaseOptions options;
    options.path = (dir / "store.mdb").string();
    options.map_size = map_size;
    options.clock = [this] { return clock.now(); };
    options.sweep_interval = 1h;  // the tests sweep by hand
    std::string error;
    database = LmdbDatabase::open(std::move(options), &error);
    BOOST_REQUIRE_MESSAGE(database, error);
    loop = std::make_unique<Loop>(database.get());
  }
  void close() {
    loop.reset();
    database.reset();
  }
  ~StoreFixture() { close(); }

  TempDir dir{"portcullis-store"};
  FakeClock clock;
  std::unique_ptr<LmdbDatabase> database;
  std::unique_ptr<Loop> loop;
};

}  // namespace

BOOST_AUTO_TEST_CASE(record_codec_round_trips_and_refuses_short_bytes) {
  const StoreRecord record{std::string("a\0b", 3), StoreClock::time_point(1'700'000'000'123ms)};
  const auto decoded = decode_store_record(encode_store_record(record));
  BOOST_REQUIRE(decoded);
  BOOST_TEST(decoded->value == record.value);
  BOOST_TEST((decoded->expires == record.expires));
  BOOST_TEST(!decode_store_record("1234567"));
}

BOOST_FIXTURE_TEST_CASE(get_update_list_remove, StoreFixture) {
  Loop& l = *loop;
  const auto expires = clock.now() + 1h;

  bool called = false;
  auto call = l.store->get("gl:a", [&](StoreReply) { called = true; });
  BOOST_TEST(!called);  // never inside the call
  l.run_until([&] { return called; });
  BOOST_TEST(!l.get("gl:a").record);

  called = false;
  auto write = l.store->update(
      "gl:a",
      [&](const std::optional<StoreRecord>&, StoreClock::time_point) {
        return StoreChange{StoreRecord{"one", expires}, "made"};
      },
      [&](StoreReply reply) {
        called = true;
        BOOST_TEST((reply.status == StoreStatus::ok));
        BOOST_TEST(reply.result == "made");
        BOOST_REQUIRE(reply.record);
        BOOST_TEST(reply.record->value == "one");
      });
  BOOST_TEST(!called);
  l.run_until([&] { return called; });

  const StoreReply got = l.get("gl:a");
  BOOST_TEST((got.status == StoreStatus::ok));
  BOOST_REQUIRE(got.record);
  BOOST_TEST(got.record->value == "one");
  BOOST_TEST((got.record->expires == expires));

  l.set("gl:b", "two", expires);
  l.set("rl:c", "three", expires);
  const StoreListing listed = l.list("gl:", 10);
  BOOST_TEST((listed.status == StoreStatus::ok));
  BOOST_REQUIRE(listed.entries.size() == 2u);
  BOOST_TEST(listed.entries[0].key == "gl:a");
  BOOST_TEST(listed.entries[1].key == "gl:b");
  BOOST_TEST(listed.entries[1].record.value == "two");
  BOOST_TEST(l.list("gl:", 1).entries.size() == 1u);
  BOOST_TEST(l.list("", 10).entries.size() == 3u);
  BOOST_TEST(l.list("zz", 10).entries.empty());

  BOOST_TEST((l.remove("gl:a").status == StoreStatus::ok));
  BOOST_TEST(!l.get("gl:a").record);
  BOOST_TEST((l.remove("gl:a").status == StoreStatus::ok));  // absent is fine
  BOOST_TEST(l.list("gl:", 10).entries.size() == 1u);
  BOOST_TEST(l.store->pending_count() == 0u);
}

BOOST_FIXTURE_TEST_CASE(transform_sees_the_current_record, StoreFixture) {
  Loop& l = *loop;
  BOOST_TEST(l.update("n", increment()).result == "1");
  BOOST_TEST(l.update("n", increment()).result == "2");
  const StoreReply third = l.update("n", increment());
  BOOST_TEST(third.result == "3");
  BOOST_REQUIRE(third.record);
  BOOST_TEST(third.record->value == "3");

  // nullopt from the transform deletes the key; its result still comes back.
  const StoreReply deleted =
      l.update("n", [](const std::optional<StoreRecord>& current, StoreClock::time_point) {
        return StoreChange{std::nullopt, current ? "was " + current->value : "absent"};
      });
  BOOST_TEST(deleted.result == "was 3");
  BOOST_TEST(!deleted.record);
  BOOST_TEST(!l.get("n").record);
}

BOOST_FIXTURE_TEST_CASE(the_transform_is_given_the_store_clock, StoreFixture) {
  std::optional<StoreClock::time_point> seen;
  loop->update("k", [&seen](const std::optional<StoreRecord>&, StoreClock::time_point now) {
    seen = now;
    return StoreChange{};
  });
  BOOST_REQUIRE(seen);
  BOOST_TEST((*seen == clock.now()));
}

BOOST_FIXTURE_TEST_CASE(expired_records_are_absent_and_swept_in_bounded_steps, StoreFixture) {
  Loop& l = *loop;
  for (int i = 0; i < 5; ++i)
    l.set("old:" + std::to_string(i), "x", clock.now() + 10s);
  l.set("live", "y", clock.now() + 1h);
  clock.advance(20s);

  BOOST_TEST(!l.get("old:0").record);
  BOOST_TEST(l.list("old:", 10).entries.empty());
  BOOST_TEST(l.list("", 10).entries.size() == 1u);
  // An update sees the expired record as absent.
  BOOST_TEST(l.update("old:1", increment()).result == "1");

  // A record whose expiry is already past is not written at all.
  l.set("born-dead", "z", clock.now() - 1s);
  BOOST_TEST(!l.get("born-dead").record);

  // old:0, old:2, old:3, old:4 are still in the file until swept.
  BOOST_TEST(database->record_count() == 6u);  // 4 old + old:1 + live
  std::size_t removed = 0;
  std::size_t steps = 0;
  while (database->record_count() > 2u && steps < 10) {
    removed += database->sweep_step();
    ++steps;
  }
  BOOST_TEST(removed == 4u);
  BOOST_TEST(database->record_count() == 2u);
  BOOST_TEST(l.get("live").record->value == "y");
  BOOST_TEST(l.get("old:1").record->value == "1");
}

// An update whose transform gives the record back as it found it is answered from a read: the
// same reply (record, result) as a write, and no commit; one that changes it still commits.
BOOST_FIXTURE_TEST_CASE(an_update_that_changes_nothing_commits_nothing, StoreFixture) {
  const auto expires = clock.now() + 1h;
  BOOST_TEST((loop->set("k", "v", expires).status == StoreStatus::ok));
  const std::uint64_t before = database->batches_committed();
  int runs = 0;
  const StoreReply kept =
      loop->update("k", [&runs](const std::optional<StoreRecord>& current, StoreClock::time_point) {
        ++runs;
        return StoreChange{current, "kept"};
      });
  BOOST_TEST((kept.status == StoreStatus::ok));
  BOOST_TEST(kept.result == "kept");
  BOOST_REQUIRE(kept.record.has_value());
  BOOST_TEST(kept.record->value == "v");
  BOOST_TEST(runs == 1);
  const StoreReply absent =
      loop->update("never", [](const std::optional<StoreRecord>&, StoreClock::time_point) {
        return StoreChange{std::nullopt, "none"};
      });
  BOOST_TEST((absent.status == StoreStatus::ok));
  BOOST_TEST(absent.result == "none");
  BOOST_TEST(!absent.record.has_value());
  BOOST_TEST(database->batches_committed() == before);
  BOOST_TEST((loop->update("k", increment_from_text()).status == StoreStatus::ok));
  BOOST_TEST(database->batches_committed() == before + 1);
  BOOST_TEST(loop->get("k").record->value == "v+");
}

BOOST_AUTO_TEST_CASE(a_sweep_step_looks_at_a_bounded_number_of_records) {
  TempDir dir{"portcullis-store"};
  FakeClock clock;
  LmdbDatabaseOptions options;
  options.path = (dir / "store.mdb").string();
  options.map_size = std::uint64_t{16} << 20;
  options.clock = [&clock] { return clock.now(); };
  options.sweep_interval = 1h;
  options.sweep_scan_limit = 3;
  std::string error;
  auto database = LmdbDatabase::open(std::move(options), &error);
  BOOST_REQUIRE_MESSAGE(database, error);
  {
    Loop l(database.get());
    for (int i = 0; i < 7; ++i)
      l.set("k" + std::to_string(i), "v", clock.now() + 1s);
  }
  clock.advance(2s);
  BOOST_TEST(database->sweep_step() == 3u);
  BOOST_TEST(database->sweep_step() == 3u);
  BOOST_TEST(database->sweep_step() == 1u);
  BOOST_TEST(database->record_count() == 0u);
}

BOOST_FIXTURE_TEST_CASE(two_loops_counting_on_one_key_lose_nothing, StoreFixture) {
  constexpr int per_loop = 1000;
  auto count_from_a_loop = [this] {
    Loop l(database.get());
    int replies = 0;
    std::vector<std::unique_ptr<StoreCall>> calls;
    for (int i = 0; i < per_loop; ++i) {
      calls.push_back(l.store->update("counter", increment(), [&](StoreReply reply) {
        BOOST_TEST((reply.status == StoreStatus::ok));
        ++replies;
      }));
    }
    l.run_until([&] { return replies == per_loop; });
  };
  std::thread first(count_from_a_loop);
  std::thread second(count_from_a_loop);
  first.join();
  second.join();
  const StoreReply total = loop->get("counter");
  BOOST_REQUIRE(total.record);
  BOOST_TEST(total.record->value == std::to_string(2 * per_loop));
}

BOOST_FIXTURE_TEST_CASE(a_cancelled_call_gets_no_callback_but_its_update_is_applied, StoreFixture) {
  Loop& l = *loop;
  bool cancelled_ran = false;
  l.store->update("n", increment(), [&](StoreReply) { cancelled_ran = true; }).reset();
  // Queued after the cancelled one, so its reply comes after the cancelled one's would.
  BOOST_TEST(l.update("n", increment()).result == "2");
  BOOST_TEST(!cancelled_ran);
  BOOST_TEST(l.store->pending_count() == 0u);

  bool get_ran = false;
  l.store->get("n", [&](StoreReply) { get_ran = true; }).reset();
  BOOST_TEST(l.get("n").record->value == "2");
  BOOST_TEST(!get_ran);
}

BOOST_FIXTURE_TEST_CASE(updates_asked_by_a_store_that_is_gone_are_still_applied, StoreFixture) {
  {
    Loop gone(database.get());
    for (int i = 0; i < 100; ++i)
      gone.store->update("n", increment(),
                         [](StoreReply) { BOOST_FAIL("a reply for a gone store"); });
  }
  close();  // applies what is queued
  open();
  BOOST_TEST(loop->get("n").record->value == "100");
}

BOOST_FIXTURE_TEST_CASE(keys_and_values_past_the_limits_are_errors, StoreFixture) {
  Loop& l = *loop;
  // The contract's limit is what LMDB takes: no key the contract allows is refused.
  BOOST_TEST(database->max_key_bytes() >= max_store_key_bytes);
  const std::size_t longest = max_store_key_bytes;
  BOOST_TEST((l.set(std::string(longest, 'k'), "v", clock.now() + 1h).status == StoreStatus::ok));
  BOOST_TEST(l.get(std::string(longest, 'k')).record->value == "v");

  const std::uint64_t errors_before = metrics().store_errors_total.with({"lmdb", "error"}).value();
  const StoreReply long_key = l.set(std::string(longest + 1, 'k'), "v", clock.now() + 1h);
  BOOST_TEST((long_key.status == StoreStatus::error));
  BOOST_TEST(long_key.error.find("above the limit") != std::string::npos);
  BOOST_TEST((l.get(std::string(max_store_key_bytes + 1, 'k')).status == StoreStatus::error));
  BOOST_TEST((l.remove(std::string(max_store_key_bytes + 1, 'k')).status == StoreStatus::error));
  BOOST_TEST((l.get("").status == StoreStatus::error));

  BOOST_TEST((l.set("v", std::string(max_store_value_bytes, 'v'), clock.now() + 1h).status ==
              StoreStatus::ok));
  const StoreReply long_value =
      l.set("v", std::string(max_store_value_bytes + 1, 'v'), clock.now() + 1h);
  BOOST_TEST((long_value.status == StoreStatus::error));
  BOOST_TEST(l.get("v").record->value.size() == max_store_value_bytes);  // left as it was

  const StoreReply threw =
      l.update("t", [](const std::optional<StoreRecord>&, StoreClock::time_point) -> StoreChange {
        throw std::runtime_error("bad record");
      });
  BOOST_TEST((threw.status == StoreStatus::error));
  BOOST_TEST(threw.error.find("bad record") != std::string::npos);
  BOOST_TEST(metrics().store_errors_total.with({"lmdb", "error"}).value() == errors_before + 6);
}

BOOST_AUTO_TEST_CASE(a_full_map_answers_full_and_the_store_stays_usable) {
  TempDir dir{"portcullis-store"};
  LmdbDatabaseOptions options;
  options.path = (dir / "store.mdb").string();
  options.map_size = 64 * 1024;
  std::string error;
  auto database = LmdbDatabase::open(std::move(options), &error);
  BOOST_REQUIRE_MESSAGE(database, error);
  Loop l(database.get());
  const std::uint64_t full_before = metrics().store_errors_total.with({"lmdb", "full"}).value();
  const auto expires = StoreClock::now() + 1h;

  int written = 0;
  std::optional<StoreReply> refused;
  for (int i = 0; i < 100 && !refused; ++i) {
    StoreReply reply = l.set("big:" + std::to_string(i), std::string(4000, 'x'), expires);
    if (reply.status == StoreStatus::ok) {
      ++written;
    } else {
      refused = std::move(reply);
    }
  }
  BOOST_REQUIRE(refused);
  BOOST_TEST((refused->status == StoreStatus::full));
  BOOST_TEST(refused->error.find("MDB_MAP_FULL") != std::string::npos);
  BOOST_TEST(written > 0);
  BOOST_TEST(metrics().store_errors_total.with({"lmdb", "full"}).value() == full_before + 1);

  // What was committed is still there, and removing makes room again.
  BOOST_TEST(l.get("big:0").record->value.size() == 4000u);
  for (int i = 0; i < written; ++i)
    BOOST_TEST((l.remove("big:" + std::to_string(i)).status == StoreStatus::ok));
  BOOST_TEST((l.set("small", "v", expires).status == StoreStatus::ok));
}

// A write that fills the map aborts the batch's transaction; the batch runs again without it.
// Whatever each reply said is what the file holds: an ok write is there, a failed one is not
// (with the map full even a small update may fail: LMDB copies pages on every write).
BOOST_AUTO_TEST_CASE(writes_batched_with_a_full_one_are_answered_truthfully) {
  TempDir dir{"portcullis-store"};
  LmdbDatabaseOptions options;
  options.path = (dir / "store.mdb").string();
  options.map_size = 64 * 1024;
  std::string error;
  auto database = LmdbDatabase::open(std::move(options), &error);
  BOOST_REQUIRE_MESSAGE(database, error);
  Loop l(database.get());
  const auto expires = StoreClock::now() + 1h;
  std::vector<std::unique_ptr<StoreCall>> calls;
  int replies = 0;
  int full = 0;
  std::vector<int> big_written;
  int counted = 0;
  for (int i = 0; i < 40; ++i) {
    calls.push_back(l.store->update(
        "big:" + std::to_string(i),
        [expires](const std::optional<StoreRecord>&, StoreClock::time_point) {
          return StoreChange{StoreRecord{std::string(4000, 'x'), expires}, ""};
        },
        [&, i](StoreReply reply) {
          ++replies;
          if (reply.status == StoreStatus::full) ++full;
          if (reply.status == StoreStatus::ok) big_written.push_back(i);
        }));
    calls.push_back(l.store->update("counter", increment(), [&](StoreReply reply) {
      ++replies;
      if (reply.status == StoreStatus::ok) ++counted;
    }));
  }
  l.run_until([&] { return replies == 80; });
  BOOST_TEST(full > 0);
  BOOST_TEST(counted > 0);
  BOOST_TEST(l.get("counter").record->value == std::to_string(counted));
  BOOST_TEST(l.list("big:", 100).entries.size() == big_written.size());
  for (int i : big_written)
    BOOST_TEST(l.get("big:" + std::to_string(i)).record.has_value());
}

BOOST_FIXTURE_TEST_CASE(records_survive_reopening_the_file, StoreFixture) {
  loop->set("gl:triplet", "seen", clock.now() + 1h);
  loop->update("n", increment());
  close();
  open();
  BOOST_TEST(loop->get("gl:triplet").record->value == "seen");
  BOOST_TEST(loop->update("n", increment()).result == "2");
}

BOOST_AUTO_TEST_CASE(open_fails_with_a_message_when_the_directory_is_missing) {
  TempDir dir{"portcullis-store"};
  LmdbDatabaseOptions options;
  options.path = (dir / "missing" / "store.mdb").string();
  std::string error;
  BOOST_TEST(!LmdbDatabase::open(std::move(options), &error));
  BOOST_TEST(error.find("missing/store.mdb") != std::string::npos);
  BOOST_TEST(error.find("mdb_env_open") != std::string::npos);
}

// A child process counts in a loop and tells the parent each count the store has confirmed;
// the parent kills it with SIGKILL mid-traffic, reopens the file and finds every confirmed
// count (a commit is on disk before its reply) and a store that still takes writes.
BOOST_AUTO_TEST_CASE(a_writer_killed_with_sigkill_leaves_a_usable_store) {
  TempDir dir{"portcullis-store"};
  const std::string path = (dir / "store.mdb").string();
  int confirmations[2];
  BOOST_REQUIRE(pipe(confirmations) == 0);
  const pid_t child = fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    close(confirmations[0]);
    LmdbDatabaseOptions options;
    options.path = path;
    options.map_size = std::uint64_t{64} << 20;
    std::string error;
    auto database = LmdbDatabase::open(std::move(options), &error);
    if (!database) _exit(2);
    Loop l(database.get());
    // Several writes in flight at once, so that batches are being committed when it dies.
    std::vector<std::unique_ptr<StoreCall>> calls;
    long confirmed = 0;
    for (;;) {
      int replies = 0;
      calls.clear();
      for (int i = 0; i < 50; ++i) {
        calls.push_back(l.store->update("counter", increment(), [&](StoreReply reply) {
          if (reply.status != StoreStatus::ok) _exit(3);
          ++replies;
          confirmed = std::max(confirmed, std::stol(reply.record->value));
        }));
      }
      l.run_until([&] { return replies == 50; });
      if (write(confirmations[1], &confirmed, sizeof confirmed) != sizeof confirmed) _exit(4);
    }
  }
  close(confirmations[1]);
  long last_confirmed = 0;
  while (last_confirmed < 2000) {
    long value = 0;
    BOOST_REQUIRE(read(confirmations[0], &value, sizeof value) == sizeof value);
    last_confirmed = value;
  }
  BOOST_REQUIRE(kill(child, SIGKILL) == 0);
  int status = 0;
  BOOST_REQUIRE(waitpid(child, &status, 0) == child);
  BOOST_TEST(WIFSIGNALED(status));
  close(confirmations[0]);

  LmdbDatabaseOptions options;
  options.path = path;
  options.map_size = std::uint64_t{64} << 20;
  std::string error;
  auto database = LmdbDatabase::open(std::move(options), &error);
  BOOST_REQUIRE_MESSAGE(database, error);
  Loop l(database.get());
  const StoreReply counted = l.get("counter");
  BOOST_REQUIRE(counted.record);
  const long after_restart = std::stol(counted.record->value);
  BOOST_TEST(after_restart >= last_confirmed);
  BOOST_TEST(l.update("counter", increment()).result == std::to_string(after_restart + 1));
}
