#include "lmdb_database.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <exception>
#include <utility>

#include "callback_guard.h"
#include "log_sink.h"
#include "metrics.h"
#include "store_record_codec.h"

namespace portcullis {

namespace {

MDB_val as_val(std::string_view bytes) {
  return MDB_val{bytes.size(), const_cast<char*>(bytes.data())};
}

std::string_view as_view(const MDB_val& val) {
  return {static_cast<const char*>(val.mv_data), val.mv_size};
}

StoreReply error_reply(StoreStatus status, std::string error) {
  StoreReply reply;
  reply.status = status;
  reply.error = std::move(error);
  return reply;
}

// The live record stored under `key` in `txn`; nullopt when absent or expired. Throws
// LmdbFailure on an LMDB error and returns an error through `corrupt` for a record too short
// to hold its expiry.
std::optional<StoreRecord> live_record(MDB_txn* txn, MDB_dbi dbi, const std::string& key,
                                       StoreClock::time_point now, bool* present, bool* corrupt) {
  MDB_val key_val = as_val(key);
  MDB_val data;
  const int code = mdb_get(txn, dbi, &key_val, &data);
  *present = false;
  *corrupt = false;
  if (code == MDB_NOTFOUND) return std::nullopt;
  lmdb_check(code, "mdb_get");
  *present = true;
  auto record = decode_store_record(as_view(data));
  if (!record) {
    *corrupt = true;
    return std::nullopt;
  }
  if (record->expires <= now) return std::nullopt;
  return record;
}

}  // namespace

std::unique_ptr<LmdbDatabase> LmdbDatabase::open(LmdbDatabaseOptions options, std::string* error) {
  if (!options.clock) options.clock = [] { return StoreClock::now(); };
  std::unique_ptr<LmdbDatabase> database(new LmdbDatabase(std::move(options)));
  try {
    database->open_environment();
  } catch (const LmdbFailure& failure) {
    *error = database->options_.path + ": " + failure.what();
    return nullptr;
  }
  database->writer_ = std::thread([raw = database.get()] { raw->run_writer(); });
  return database;
}

LmdbDatabase::LmdbDatabase(LmdbDatabaseOptions options) : options_(std::move(options)) {}

void LmdbDatabase::open_environment() {
  MDB_env* env = nullptr;
  lmdb_check(mdb_env_create(&env), "mdb_env_create");
  env_.reset(env);
  lmdb_check(mdb_env_set_mapsize(env, options_.map_size), "mdb_env_set_mapsize");
  // MDB_NOSUBDIR: one file (and its lock file) under state_dir, no directory to make.
  // MDB_NOTLS: a read transaction is not tied to its thread's slot, so loop threads and the
  // writer each read without caring which thread read before. No MDB_NOSYNC: every commit
  // is on disk before its replies are given.
  lmdb_check(mdb_env_open(env, options_.path.c_str(), MDB_NOSUBDIR | MDB_NOTLS, 0600),
             "mdb_env_open");
  // Reader slots left by a process that died (SIGKILL) would keep old pages from being
  // reused, and the file would grow towards lmdb_map_size: free them.
  int dead_readers = 0;
  lmdb_check(mdb_reader_check(env, &dead_readers), "mdb_reader_check");
  max_key_bytes_ = static_cast<std::size_t>(mdb_env_get_maxkeysize(env));
  LmdbTxn txn(env, 0);
  lmdb_check(mdb_dbi_open(txn.get(), nullptr, 0, &dbi_), "mdb_dbi_open");
  txn.commit();
}

LmdbDatabase::~LmdbDatabase() {
  if (writer_.joinable()) {
    {
      std::lock_guard lock(queue_mutex_);
      stopping_ = true;
    }
    queue_ready_.notify_one();
    writer_.join();
  }
}

bool LmdbDatabase::give_to(uid_t uid, gid_t gid, std::string* error) const {
  for (const std::string& path : {options_.path, options_.path + "-lock"}) {
    if (::chown(path.c_str(), uid, gid) != 0) {
      *error = "chown " + path + ": " + std::strerror(errno);
      return false;
    }
  }
  return true;
}

StoreClock::time_point LmdbDatabase::now() const {
  return options_.clock();
}

void LmdbDatabase::submit(Write write) {
  {
    std::lock_guard lock(queue_mutex_);
    queue_.push_back(std::move(write));
  }
  queue_ready_.notify_one();
}

void LmdbDatabase::run_writer() {
  auto last_sweep = std::chrono::steady_clock::now();
  for (;;) {
    std::vector<Write> batch;
    {
      std::unique_lock lock(queue_mutex_);
      const bool woken = queue_ready_.wait_for(lock, options_.sweep_interval,
                                               [&] { return stopping_ || !queue_.empty(); });
      if (!woken || queue_.empty()) {
        if (stopping_) return;
        lock.unlock();
        // Idle: the time to clean up.
        sweep_step();
        last_sweep = std::chrono::steady_clock::now();
        continue;
      }
      while (!queue_.empty() && batch.size() < options_.batch_limit) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    apply_batch(batch);
    // A store that is never idle is still swept, one bounded step per interval.
    if (std::chrono::steady_clock::now() - last_sweep >= options_.sweep_interval) {
      sweep_step();
      last_sweep = std::chrono::steady_clock::now();
    }
  }
}

void LmdbDatabase::apply_batch(std::vector<Write>& batch) {
  std::vector<std::optional<StoreReply>> replies(batch.size());
  // Writes that failed on their own (an LMDB error, a transform that threw, a value too
  // long) keep their reply and are not run again.
  std::vector<bool> settled(batch.size(), false);
  const StoreClock::time_point now = options_.clock();
  bool committed = false;
  while (!committed) {
    std::optional<LmdbTxn> txn;
    try {
      txn.emplace(env_.get(), 0);
    } catch (const LmdbFailure& failure) {
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (!settled[i]) replies[i] = failure_reply(failure, "begin");
      }
      break;
    }
    bool restart = false;
    for (std::size_t i = 0; i < batch.size() && !restart; ++i) {
      if (settled[i]) continue;
      try {
        StoreReply reply = apply_write(txn->get(), batch[i], now);
        if (reply.status != StoreStatus::ok) settled[i] = true;
        replies[i] = std::move(reply);
      } catch (const LmdbFailure& failure) {
        // LMDB's transaction is unusable after a failed put: start again without this write.
        replies[i] = failure_reply(failure, "write");
        settled[i] = true;
        restart = true;
      }
    }
    if (restart) continue;
    try {
      txn->commit();
      committed = true;
      batches_committed_.fetch_add(1);
    } catch (const LmdbFailure& failure) {
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (!settled[i]) replies[i] = failure_reply(failure, "commit");
      }
      break;
    }
  }
  bool all_ok = committed;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    StoreReply reply =
        replies[i] ? std::move(*replies[i]) : error_reply(StoreStatus::error, "not applied");
    if (reply.status != StoreStatus::ok) all_ok = false;
    if (batch[i].reply) {
      guard_callback("store_reply", [&] { batch[i].reply(std::move(reply)); });
    }
  }
  if (all_ok) note_success();
}

StoreReply LmdbDatabase::apply_write(MDB_txn* txn, Write& write, StoreClock::time_point now) {
  MDB_val key_val = as_val(write.key);
  if (!write.transform) {
    const int code = mdb_del(txn, dbi_, &key_val, nullptr);
    if (code != MDB_NOTFOUND) lmdb_check(code, "mdb_del");
    return StoreReply{};
  }
  bool present = false;
  bool corrupt = false;
  const auto current = live_record(txn, dbi_, write.key, now, &present, &corrupt);
  if (corrupt) {
    metrics().store_errors_total.with({"lmdb", "error"}).increment();
    return error_reply(StoreStatus::error, "corrupt record under " + write.key);
  }
  StoreChange change;
  try {
    change = write.transform(current, now);
  } catch (const std::exception& e) {
    metrics().store_errors_total.with({"lmdb", "error"}).increment();
    return error_reply(StoreStatus::error, std::string("the update failed: ") + e.what());
  }
  StoreReply reply;
  reply.result = std::move(change.result);
  if (change.record && change.record->expires > now) {
    if (change.record->value.size() > max_store_value_bytes) {
      metrics().store_errors_total.with({"lmdb", "error"}).increment();
      return error_reply(StoreStatus::error,
                         "value of " + std::to_string(change.record->value.size()) +
                             " bytes, above the limit of " + std::to_string(max_store_value_bytes));
    }
    if (!same_store_record(current, change.record)) {
      // Unchanged records are not written: a batch of only those dirties no page, and LMDB
      // commits it without a sync.
      const std::string bytes = encode_store_record(*change.record);
      MDB_val data = as_val(bytes);
      lmdb_check(mdb_put(txn, dbi_, &key_val, &data, 0), "mdb_put");
    }
    reply.record = std::move(change.record);
  } else if (present) {
    // Deleted, or given an expiry already past: either way absent from now on.
    lmdb_check(mdb_del(txn, dbi_, &key_val, nullptr), "mdb_del");
  }
  return reply;
}

StoreReply LmdbDatabase::failure_reply(const LmdbFailure& failure, const char* during) {
  const StoreStatus status =
      failure.code() == MDB_MAP_FULL ? StoreStatus::full : StoreStatus::error;
  metrics().store_errors_total.with({"lmdb", store_status_name(status)}).increment();
  std::atomic<bool>& logged = status == StoreStatus::full ? full_logged_ : error_logged_;
  if (!logged.exchange(true)) {
    if (status == StoreStatus::full) {
      log_error("store_full", {{"backend", "lmdb"},
                               {"path", options_.path},
                               {"map_size", std::to_string(options_.map_size)},
                               {"error", failure.what()},
                               {"detail",
                                "raise [store] lmdb_map_size; logged once until a "
                                "write succeeds again"}});
    } else {
      log_error("store_error", {{"backend", "lmdb"},
                                {"path", options_.path},
                                {"during", during},
                                {"error", failure.what()}});
    }
  }
  return error_reply(status, failure.what());
}

void LmdbDatabase::note_success() {
  full_logged_.store(false);
  error_logged_.store(false);
}

std::optional<StoreReply> LmdbDatabase::update_without_write(const std::string& key,
                                                             const StoreTransform& transform) {
  try {
    LmdbTxn txn(env_.get(), MDB_RDONLY);
    bool present = false;
    bool corrupt = false;
    const StoreClock::time_point now = options_.clock();
    const auto current = live_record(txn.get(), dbi_, key, now, &present, &corrupt);
    if (corrupt) return std::nullopt;  // the writer answers it (and counts the error)
    StoreChange change = transform(current, now);
    if (change.record && change.record->expires <= now) change.record.reset();
    if (!same_store_record(current, change.record)) return std::nullopt;
    StoreReply reply;
    reply.record = std::move(change.record);
    reply.result = std::move(change.result);
    return reply;
  } catch (const std::exception&) {
    return std::nullopt;  // an LMDB error or a transform that threw: the writer tells which
  }
}

StoreReply LmdbDatabase::read(const std::string& key) {
  try {
    LmdbTxn txn(env_.get(), MDB_RDONLY);
    bool present = false;
    bool corrupt = false;
    StoreReply reply;
    reply.record = live_record(txn.get(), dbi_, key, options_.clock(), &present, &corrupt);
    if (corrupt) {
      metrics().store_errors_total.with({"lmdb", "error"}).increment();
      return error_reply(StoreStatus::error, "corrupt record under " + key);
    }
    return reply;
  } catch (const LmdbFailure& failure) {
    return failure_reply(failure, "read");
  }
}

StoreListing LmdbDatabase::list(const std::string& prefix, std::size_t limit) {
  StoreListing listing;
  try {
    LmdbTxn txn(env_.get(), MDB_RDONLY);
    LmdbCursor cursor(txn.get(), dbi_);
    const StoreClock::time_point now = options_.clock();
    MDB_val key_val = as_val(prefix);
    MDB_val data;
    int code = prefix.empty() ? mdb_cursor_get(cursor.get(), &key_val, &data, MDB_FIRST)
                              : mdb_cursor_get(cursor.get(), &key_val, &data, MDB_SET_RANGE);
    while (code == MDB_SUCCESS && listing.entries.size() < limit) {
      const std::string_view key = as_view(key_val);
      if (key.substr(0, prefix.size()) != prefix) break;
      auto record = decode_store_record(as_view(data));
      if (record && record->expires > now) {
        listing.entries.push_back(StoreEntry{std::string(key), std::move(*record)});
      }
      code = mdb_cursor_get(cursor.get(), &key_val, &data, MDB_NEXT);
    }
    if (code != MDB_SUCCESS && code != MDB_NOTFOUND) lmdb_check(code, "mdb_cursor_get");
  } catch (const LmdbFailure& failure) {
    const StoreReply reply = failure_reply(failure, "list");
    listing.status = reply.status;
    listing.error = reply.error;
    listing.entries.clear();
  }
  return listing;
}

std::size_t LmdbDatabase::sweep_step() {
  std::lock_guard lock(sweep_mutex_);
  std::size_t removed = 0;
  try {
    LmdbTxn txn(env_.get(), 0);
    std::string next_from;
    {
      LmdbCursor cursor(txn.get(), dbi_);
      const StoreClock::time_point now = options_.clock();
      MDB_val key_val = as_val(sweep_from_);
      MDB_val data;
      int code = sweep_from_.empty() ? mdb_cursor_get(cursor.get(), &key_val, &data, MDB_FIRST)
                                     : mdb_cursor_get(cursor.get(), &key_val, &data, MDB_SET_RANGE);
      std::size_t looked_at = 0;
      while (code == MDB_SUCCESS && looked_at < options_.sweep_scan_limit) {
        ++looked_at;
        const auto record = decode_store_record(as_view(data));
        // A corrupt record is left for an administrator to see (`portcullis store`).
        if (record && record->expires <= now) {
          lmdb_check(mdb_cursor_del(cursor.get(), 0), "mdb_cursor_del");
          ++removed;
        }
        // After a delete the cursor already stands on the next record, and MDB_NEXT gives it.
        code = mdb_cursor_get(cursor.get(), &key_val, &data, MDB_NEXT);
      }
      if (code == MDB_SUCCESS) {
        next_from = std::string(as_view(key_val));
      } else if (code != MDB_NOTFOUND) {
        lmdb_check(code, "mdb_cursor_get");
      }
    }
    if (removed > 0) {
      txn.commit();
    }
    sweep_from_ = std::move(next_from);  // "" at the end: the next step starts over
  } catch (const LmdbFailure& failure) {
    failure_reply(failure, "sweep");
    return 0;
  }
  return removed;
}

std::size_t LmdbDatabase::record_count() const {
  MDB_stat stat;
  lmdb_check(mdb_env_stat(env_.get(), &stat), "mdb_env_stat");
  return stat.ms_entries;
}

}  // namespace portcullis
