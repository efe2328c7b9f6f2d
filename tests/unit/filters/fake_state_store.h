// An in-memory StateStore for the filters' tests, with the contract's timing: each call is
// applied at once, atomically (a transform sees every earlier update), and its callback runs
// only on a later turn() that the test drives, never inside the call. Destroying a handle
// cancels the callback, not the update. `now` is the test's clock; `failing` makes every call
// answer that status without touching the records.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "state_store.h"

namespace portcullis::test {

class FakeStateStore : public StateStore {
 public:
  std::unique_ptr<StoreCall> get(std::string key, std::function<void(StoreReply)> done) override {
    ++gets;
    StoreReply reply = failure_reply();
    if (reply.status == StoreStatus::ok) reply.record = live(key);
    return queue(std::move(reply), std::move(done));
  }

  std::unique_ptr<StoreCall> update(std::string key, StoreTransform transform,
                                    std::function<void(StoreReply)> done) override {
    ++updates;
    updated_keys.push_back(key);
    StoreReply reply = failure_reply();
    if (reply.status == StoreStatus::ok) {
      StoreChange change = transform(live(key), now);
      if (change.record) {
        records[key] = *change.record;
      } else {
        records.erase(key);
      }
      reply.record = std::move(change.record);
      reply.result = std::move(change.result);
    }
    return queue(std::move(reply), std::move(done));
  }

  std::unique_ptr<StoreCall> remove(std::string key,
                                    std::function<void(StoreReply)> done) override {
    StoreReply reply = failure_reply();
    if (reply.status == StoreStatus::ok) records.erase(key);
    return queue(std::move(reply), std::move(done));
  }

  std::unique_ptr<StoreCall> list(
      std::string prefix, std::size_t limit,
      std::function<void(StoreStatus, std::string, std::vector<StoreEntry>)> done) override {
    std::vector<StoreEntry> entries;
    for (const auto& [key, record] : records) {
      if (entries.size() < limit && key.starts_with(prefix) && record.expires > now) {
        entries.push_back(StoreEntry{key, record});
      }
    }
    StoreReply reply = failure_reply();
    return queue(reply, [done = std::move(done), entries = std::move(entries)](StoreReply r) {
      done(r.status, r.error, r.status == StoreStatus::ok ? entries : std::vector<StoreEntry>{});
    });
  }

  // Runs the callbacks of the calls made so far whose handles still exist; the number run.
  int turn() {
    int ran = 0;
    auto due = std::move(pending_);
    pending_.clear();
    for (auto& [weak, reply] : due) {
      if (auto callback = weak.lock()) {
        auto run = std::move(*callback);
        ++ran;
        run(std::move(reply));
      }
    }
    return ran;
  }

  // The record of `key` unless expired.
  std::optional<StoreRecord> live(const std::string& key) const {
    auto found = records.find(key);
    if (found == records.end() || found->second.expires <= now) return std::nullopt;
    return found->second;
  }

  StoreClock::time_point now = StoreClock::time_point(std::chrono::seconds(1'800'000'000));
  std::optional<StoreStatus> failing;
  std::map<std::string, StoreRecord> records;
  std::vector<std::string> updated_keys;
  int gets = 0;
  int updates = 0;

 private:
  using Callback = std::function<void(StoreReply)>;

  class Call : public StoreCall {
   public:
    explicit Call(std::shared_ptr<Callback> callback) : callback_(std::move(callback)) {}

   private:
    std::shared_ptr<Callback> callback_;
  };

  StoreReply failure_reply() const {
    StoreReply reply;
    if (failing) {
      reply.status = *failing;
      reply.error = "the test's store is down";
    }
    return reply;
  }

  std::unique_ptr<StoreCall> queue(StoreReply reply, Callback done) {
    auto callback = std::make_shared<Callback>(std::move(done));
    pending_.emplace_back(callback, std::move(reply));
    return std::make_unique<Call>(callback);
  }

  std::vector<std::pair<std::weak_ptr<Callback>, StoreReply>> pending_;
};

}  // namespace portcullis::test
