#include "blocking_store.h"

#include <event2/thread.h>
#include <sys/stat.h>

#include <fmt/format.h>
#include <algorithm>

#include "lmdb_store.h"
#include "redis_settings.h"
#include "redis_store.h"

namespace portcullis {

std::unique_ptr<BlockingStore> BlockingStore::open(const Config& config, std::string* error) {
  std::unique_ptr<BlockingStore> store(new BlockingStore());
  store->quiet_log_ = std::make_unique<QuietMainLog>();
  // The LMDB writer wakes the loop from its own thread.
  evthread_use_pthreads();
  store->base_.reset(event_base_new());
  if (!store->base_) {
    *error = "event_base_new failed";
    return nullptr;
  }
  try {
    if (config.store.backend == StoreBackend::redis) {
      store->store_ =
          RedisStore::create(store->base_.get(), redis_command_options(config.store.redis));
      return store;
    }
    const std::string path = lmdb_store_path(config.server);
    struct stat file_status {};
    if (::stat(path.c_str(), &file_status) != 0) {
      *error = fmt::format(
          "no store at {}: nothing has been stored yet (`portcullis run` creates it)", path);
      return nullptr;
    }
    LmdbDatabaseOptions options;
    options.path = path;
    options.map_size = config.store.lmdb_map_size;
    // No sweep from here: the running proxy sweeps.
    options.sweep_interval = std::chrono::hours(24 * 365);
    std::string open_error;
    store->database_ = LmdbDatabase::open(std::move(options), &open_error);
    if (!store->database_) {
      *error = fmt::format("cannot open the store {}: {}", path, open_error);
      return nullptr;
    }
    store->store_ = LmdbStore::create(store->base_.get(), store->database_.get());
  } catch (const std::exception& failure) {
    *error = failure.what();
    return nullptr;
  }
  return store;
}

BlockingStore::~BlockingStore() {
  store_.reset();
  database_.reset();
  base_.reset();
}

void BlockingStore::wait_for(const std::size_t* pending) {
  // NO_EXIT_ON_EMPTY: LMDB's reply arrives by event_active from the writer's thread, with no
  // event of this loop armed meanwhile.
  while (*pending > 0)
    event_base_loop(base_.get(), EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY);
}

StoreReply BlockingStore::get(std::string key) {
  std::size_t pending = 1;
  StoreReply answer;
  auto call = store_->get(std::move(key), [&](StoreReply reply) {
    answer = std::move(reply);
    --pending;
  });
  wait_for(&pending);
  return answer;
}

StoreReply BlockingStore::update(std::string key, StoreTransform transform) {
  std::size_t pending = 1;
  StoreReply answer;
  auto call = store_->update(std::move(key), std::move(transform), [&](StoreReply reply) {
    answer = std::move(reply);
    --pending;
  });
  wait_for(&pending);
  return answer;
}

std::vector<StoreReply> BlockingStore::remove(const std::vector<std::string>& keys) {
  std::size_t pending = keys.size();
  std::vector<StoreReply> answers(keys.size());
  std::vector<std::unique_ptr<StoreCall>> calls;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    calls.push_back(store_->remove(keys[i], [&, i](StoreReply reply) {
      answers[i] = std::move(reply);
      --pending;
    }));
  }
  wait_for(&pending);
  return answers;
}

StoreListing BlockingStore::list(std::string prefix, std::size_t limit) {
  std::size_t pending = 1;
  StoreListing listing;
  auto call =
      store_->list(std::move(prefix), limit,
                   [&](StoreStatus status, std::string error, std::vector<StoreEntry> entries) {
                     listing = {status, std::move(error), std::move(entries)};
                     --pending;
                   });
  wait_for(&pending);
  return listing;
}

}  // namespace portcullis
