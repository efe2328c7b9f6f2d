// Where replies for one loop's store calls wait until that loop runs them: any thread posts
// (the LMDB writer, or the loop itself for a read), and the first post of a batch wakes the
// loop through its event (event_active, which libevent allows from another thread once
// evthread_use_pthreads() has been called). Once closed (its loop's store is gone) posts are
// dropped.
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <mutex>
#include <vector>

#include "state_store.h"

namespace portcullis {

struct StoreDelivery {
  std::uint64_t id = 0;
  StoreReply reply;                 // get/update/remove; list: status and error
  std::vector<StoreEntry> entries;  // list
};

class StoreReplyInbox {
 public:
  explicit StoreReplyInbox(event* wake) : wake_(wake) {}

  // Any thread.
  void post(StoreDelivery delivery) {
    std::lock_guard lock(mutex_);
    if (!wake_) return;
    waiting_.push_back(std::move(delivery));
    if (waiting_.size() == 1) event_active(wake_, EV_TIMEOUT, 1);
  }
  // The loop thread: what has arrived, in order.
  std::vector<StoreDelivery> take() {
    std::lock_guard lock(mutex_);
    std::vector<StoreDelivery> taken;
    taken.swap(waiting_);
    return taken;
  }
  // The loop thread, before the wake event is freed.
  void close() {
    std::lock_guard lock(mutex_);
    wake_ = nullptr;
    waiting_.clear();
  }

 private:
  std::mutex mutex_;
  event* wake_;
  std::vector<StoreDelivery> waiting_;
};

}  // namespace portcullis
