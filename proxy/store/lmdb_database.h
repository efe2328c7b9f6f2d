// The process's one LMDB environment for [store] (LMDB allows one environment per file and
// process), shared by every worker's LmdbStore, and the single writer thread that applies
// their updates.
//
// Writes: update() and remove() are queued and return at once. The writer thread takes up to
// `batch_limit` queued writes, applies them in ONE write transaction (each transform runs on
// the key's current record inside it, so two updates of one key never interleave), commits,
// and only then hands each write's reply to the write's `reply` function, on the writer
// thread. This is group commit: every write queued while the last batch was being committed
// goes into the next one, so N sessions waiting at once cost one commit (LMDB's two syncs:
// the data pages, then the meta page), not N. A write whose transform leaves the record as it
// was is not put; a batch of only such writes dirties nothing and LMDB commits it without a
// sync.
// A write that fails with an LMDB error (MDB_MAP_FULL) aborts the transaction; the batch is
// run again without it (a transform may run more than once; the contract allows it).
//
// Reads (read(), list()) run on the calling thread in a read-only transaction: LMDB's MVCC
// lets them see the last commit without waiting for the writer.
//
// Expired records are absent to every call, and removed by sweep_step(): at most
// `sweep_scan_limit` records looked at per step, resumed where the last step stopped, run by
// the writer when it has been idle for `sweep_interval`, so that a big store never stalls.
//
// Durability is LMDB's default (a synced commit, no MDB_NOSYNC): a SIGKILL loses no
// committed write, only the batch being applied, whose replies were not yet given.
#pragma once

#include <lmdb.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "lmdb_handles.h"
#include "state_store.h"

namespace portcullis {

struct LmdbDatabaseOptions {
  std::string path;  // the data file; LMDB puts its lock file beside it ("PATH-lock")
  std::uint64_t map_size = std::uint64_t{1} << 30;
  std::size_t batch_limit = 256;
  std::size_t sweep_scan_limit = 256;
  std::chrono::milliseconds sweep_interval{1000};
  // The store's wall clock (the `now` of transforms and of expiry); a test gives a fake one.
  std::function<StoreClock::time_point()> clock;
};

struct StoreListing {
  StoreStatus status = StoreStatus::ok;
  std::string error;
  std::vector<StoreEntry> entries;
};

class LmdbDatabase {
 public:
  // A queued write: `transform` empty means remove the key. `reply` is called once, on the
  // writer thread, after the batch's commit (or its failure).
  struct Write {
    std::string key;
    StoreTransform transform;
    std::function<void(StoreReply)> reply;
  };

  // Opens (creating when absent) the file and starts the writer; nullptr with `error` set
  // when LMDB refuses (the directory missing or not writable, a map size below the file).
  static std::unique_ptr<LmdbDatabase> open(LmdbDatabaseOptions options, std::string* error);
  // Applies what is still queued, then stops the writer.
  ~LmdbDatabase();
  LmdbDatabase(const LmdbDatabase&) = delete;
  LmdbDatabase& operator=(const LmdbDatabase&) = delete;

  // The data and lock files become `uid`'s (opened as root before the privilege drop, as the
  // logs are); false with `error` set when chown fails.
  bool give_to(uid_t uid, gid_t gid, std::string* error) const;

  // Any thread.
  void submit(Write write);
  StoreReply read(const std::string& key);
  // The update of `key` done as a read, on the calling thread: when `transform` gives back
  // the live record as it found it (or absent for absent), nothing needs writing and that is
  // the reply, as the writer would have given it (linearised at the read, which sees the last
  // commit). nullopt when a write is needed (or anything failed): submit() it then; the
  // transform runs again there, on the record the writer finds.
  std::optional<StoreReply> update_without_write(const std::string& key,
                                                 const StoreTransform& transform);
  StoreListing list(const std::string& prefix, std::size_t limit);
  StoreClock::time_point now() const;
  // One bounded sweep: removes the expired records among the next `sweep_scan_limit`; returns
  // how many it removed.
  std::size_t sweep_step();
  // Records in the file, expired ones included (tests of the sweep).
  std::size_t record_count() const;
  // The longest key LMDB takes (511 bytes in Debian's build; below max_store_key_bytes).
  std::size_t max_key_bytes() const { return max_key_bytes_; }
  std::uint64_t batches_committed() const { return batches_committed_.load(); }

 private:
  explicit LmdbDatabase(LmdbDatabaseOptions options);
  void open_environment();
  void run_writer();
  void apply_batch(std::vector<Write>& batch);
  StoreReply apply_write(MDB_txn* txn, Write& write, StoreClock::time_point now);
  StoreReply failure_reply(const LmdbFailure& failure, const char* during);
  void note_success();

  LmdbDatabaseOptions options_;
  LmdbEnvPtr env_;
  MDB_dbi dbi_ = 0;
  std::size_t max_key_bytes_ = 0;

  std::mutex queue_mutex_;
  std::condition_variable queue_ready_;
  std::deque<Write> queue_;
  bool stopping_ = false;
  std::thread writer_;

  std::mutex sweep_mutex_;
  std::string sweep_from_;  // the key the next sweep step starts at ("" = the first)

  // Logged once per kind until a write succeeds again (a full map would otherwise log at the
  // rate of mail).
  std::atomic<bool> full_logged_{false};
  std::atomic<bool> error_logged_{false};
  std::atomic<std::uint64_t> batches_committed_{0};
};

}  // namespace portcullis
