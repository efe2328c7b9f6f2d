// Owning handles for LMDB: the environment and a transaction, each closed or aborted by its
// destructor, and the one way an LMDB return code becomes an error (LmdbFailure, with
// mdb_strerror's text and the code kept so that MDB_MAP_FULL can be told apart).
#pragma once

#include <lmdb.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace portcullis {

class LmdbFailure : public std::runtime_error {
 public:
  LmdbFailure(int code, const char* call)
      : std::runtime_error(std::string(call) + ": " + mdb_strerror(code)), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// Throws LmdbFailure unless `code` is MDB_SUCCESS.
inline void lmdb_check(int code, const char* call) {
  if (code != MDB_SUCCESS) throw LmdbFailure(code, call);
}

struct LmdbEnvClose {
  void operator()(MDB_env* env) const { mdb_env_close(env); }
};
using LmdbEnvPtr = std::unique_ptr<MDB_env, LmdbEnvClose>;

// A transaction that is aborted unless commit() succeeded.
class LmdbTxn {
 public:
  LmdbTxn(MDB_env* env, unsigned flags) {
    lmdb_check(mdb_txn_begin(env, nullptr, flags, &txn_), "mdb_txn_begin");
  }
  ~LmdbTxn() {
    if (txn_) mdb_txn_abort(txn_);
  }
  LmdbTxn(const LmdbTxn&) = delete;
  LmdbTxn& operator=(const LmdbTxn&) = delete;

  MDB_txn* get() const { return txn_; }
  // The transaction is gone afterwards whatever the result (LMDB frees it on failure too).
  void commit() {
    MDB_txn* txn = txn_;
    txn_ = nullptr;
    lmdb_check(mdb_txn_commit(txn), "mdb_txn_commit");
  }

 private:
  MDB_txn* txn_ = nullptr;
};

// A cursor, closed by its destructor (before its transaction ends).
class LmdbCursor {
 public:
  LmdbCursor(MDB_txn* txn, MDB_dbi dbi) {
    lmdb_check(mdb_cursor_open(txn, dbi, &cursor_), "mdb_cursor_open");
  }
  ~LmdbCursor() { mdb_cursor_close(cursor_); }
  LmdbCursor(const LmdbCursor&) = delete;
  LmdbCursor& operator=(const LmdbCursor&) = delete;
  MDB_cursor* get() const { return cursor_; }

 private:
  MDB_cursor* cursor_ = nullptr;
};

}  // namespace portcullis
