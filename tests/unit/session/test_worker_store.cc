// Worker::store(): none without a [store] database in the context; otherwise one store per
// loop on the shared database, whose replies run on that worker's loop; with Redis settings,
// the loop's own RedisStore.
#define BOOST_TEST_MODULE worker_store
#include <boost/test/unit_test.hpp>

#include <event2/event.h>
#include <event2/thread.h>

#include <memory>
#include <optional>
#include <string>

#include "lmdb_database.h"
#include "redis_store.h"
#include "test_redis_server.h"
#include "test_support.h"
#include "worker.h"

using namespace portcullis;
using namespace std::chrono_literals;

namespace {

struct ThreadedLibevent {
  ThreadedLibevent() { evthread_use_pthreads(); }
};
BOOST_TEST_GLOBAL_FIXTURE(ThreadedLibevent);

}  // namespace

BOOST_AUTO_TEST_CASE(no_database_no_store) {
  Worker worker(ServerContext{});
  BOOST_TEST(worker.store() == nullptr);
}

BOOST_AUTO_TEST_CASE(two_workers_share_the_database_through_their_own_stores) {
  portcullis::test::TempDir dir{"portcullis-worker-store"};
  LmdbDatabaseOptions options;
  options.path = (dir / "store.mdb").string();
  options.map_size = std::uint64_t{16} << 20;
  std::string error;
  auto database = LmdbDatabase::open(std::move(options), &error);
  BOOST_REQUIRE_MESSAGE(database, error);
  ServerContext context;
  context.store_database = database.get();
  Worker first(context);
  Worker second(context);
  StateStore* first_store = first.store();
  BOOST_REQUIRE(first_store != nullptr);
  BOOST_TEST(first.store() == first_store);  // one per loop, kept
  BOOST_REQUIRE(second.store() != nullptr);
  BOOST_TEST(second.store() != first_store);

  std::optional<StoreReply> written;
  auto write = first_store->update(
      "k",
      [](const std::optional<StoreRecord>&, StoreClock::time_point now) {
        return StoreChange{StoreRecord{"from the first worker", now + 1h}, ""};
      },
      [&](StoreReply reply) { written = std::move(reply); });
  while (!written)
    event_base_loop(first.base(), EVLOOP_ONCE);
  BOOST_TEST((written->status == StoreStatus::ok));

  std::optional<StoreReply> read;
  auto get = second.store()->get("k", [&](StoreReply reply) { read = std::move(reply); });
  while (!read)
    event_base_loop(second.base(), EVLOOP_ONCE);
  BOOST_REQUIRE(read->record);
  BOOST_TEST(read->record->value == "from the first worker");
}

BOOST_AUTO_TEST_CASE(with_redis_settings_a_worker_keeps_its_own_redis_connection) {
  portcullis::test::TestRedisServer redis;
  RedisStoreOptions options;
  options.port = redis.port();
  options.prefix = "worker:";
  ServerContext context;
  context.redis_store = &options;
  Worker worker(context);
  StateStore* store = worker.store();
  BOOST_REQUIRE(store != nullptr);
  BOOST_TEST(worker.store() == store);
  BOOST_TEST(dynamic_cast<RedisStore*>(store) != nullptr);
  std::optional<StoreReply> written;
  auto write = store->update(
      "k",
      [](const std::optional<StoreRecord>&, StoreClock::time_point now) {
        return StoreChange{StoreRecord{"in redis", now + 1h}, ""};
      },
      [&](StoreReply reply) { written = std::move(reply); });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!written && std::chrono::steady_clock::now() < deadline)
    event_base_loop(worker.base(), EVLOOP_ONCE);
  BOOST_REQUIRE(written.has_value());
  BOOST_TEST((written->status == StoreStatus::ok), written->error);
  BOOST_TEST(written->record->value == "in redis");
}
