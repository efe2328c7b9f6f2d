// `portcullis store`: what the state store holds (greylist triplets, their client nets'
// auto-allow counts, rate counters), listed, shown and deleted by an administrator — to clear a
// counter (delete it) or let a delayed sender through at once (pass its triplet). It reaches the
// store [store] names, as `run` does (blocking_store.h): the LMDB file, which LMDB lets it read
// and write while a running portcullis holds it (one environment per process, writes
// serialised by LMDB's lock file); or [store.redis], shared with every node, listed with SCAN
// (never KEYS) and changed with the same atomic updates the nodes make. The output is the
// same for both; Redis keys are shown without [store.redis] prefix.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>

namespace portcullis {

struct StoreCommandOptions {
  std::string config_path;
  std::string action;  // "list", "show", "delete" or "pass"
  std::string key;     // show, delete, pass: the key ("" with delete --prefix)
  std::string prefix;  // list: "" = every key; delete: required unless `key` is given
  bool prefix_given = false;
  std::size_t limit = 1000;  // list: entries shown; delete --prefix: entries deleted
  bool json = false;
};

// Exit code: 0 = done, 1 = no such key, a bad config or a store that cannot be used,
// 2 = bad arguments.
int run_store(const StoreCommandOptions& options, std::ostream& out, std::ostream& err);

}  // namespace portcullis
