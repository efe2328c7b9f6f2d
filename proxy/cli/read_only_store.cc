#include "read_only_store.h"

#include <fmt/format.h>
#include <chrono>

#include "filter_runner.h"
#include "rejection_log.h"

namespace portcullis {

namespace {

class TimerCall final : public StoreCall {
 public:
  explicit TimerCall(std::unique_ptr<TimerHandle> timer) : timer_(std::move(timer)) {}

 private:
  std::unique_ptr<TimerHandle> timer_;
};

std::string describe_record(const std::optional<StoreRecord>& record) {
  if (!record) return "absent";
  const auto seconds =
      std::chrono::floor<std::chrono::seconds>(record->expires.time_since_epoch()).count();
  return fmt::format(
      "{} (expires in {} s)", json_string(record->value),
      seconds -
          std::chrono::floor<std::chrono::seconds>(StoreClock::now().time_since_epoch()).count());
}

std::string describe_listing(const std::string& prefix, std::size_t entries) {
  return fmt::format("store: list {}: {} entr{}", json_string(prefix), entries,
                     entries == 1 ? "y" : "ies");
}

}  // namespace

ReadOnlyStore::ReadOnlyStore(event_base* base, LmdbDatabase* database)
    : base_(base), database_(database) {}

ReadOnlyStore::ReadOnlyStore(event_base* base, std::shared_ptr<StateStore> remote)
    : base_(base), remote_(std::move(remote)) {}

StoreReply ReadOnlyStore::read(const std::string& key) {
  if (database_ == nullptr) return StoreReply{};
  return database_->read(key);
}

std::unique_ptr<StoreCall> ReadOnlyStore::later(std::function<void()> callback) {
  return std::make_unique<TimerCall>(
      start_loop_timer(base_, std::chrono::milliseconds(0), std::move(callback)));
}

void ReadOnlyStore::answer_get(const std::string& key, const StoreReply& reply) {
  lookups_.push_back(reply.status == StoreStatus::ok
                         ? fmt::format("store: {}: {}", key, describe_record(reply.record))
                         : fmt::format("store: {}: {}", key, reply.error));
}

StoreReply ReadOnlyStore::answer_update(const std::string& key, StoreReply reply,
                                        const StoreTransform& transform) {
  if (reply.status != StoreStatus::ok) {
    lookups_.push_back(fmt::format("store: {}: {}", key, reply.error));
    return reply;
  }
  const std::string found = describe_record(reply.record);
  StoreChange change = transform(reply.record, database_ ? database_->now() : StoreClock::now());
  reply.record = std::move(change.record);
  reply.result = std::move(change.result);
  lookups_.push_back(
      fmt::format("store: {}: {}; an update now: {}, not written (explain is read-only)", key,
                  found, json_string(reply.result)));
  return reply;
}

std::unique_ptr<StoreCall> ReadOnlyStore::get(std::string key,
                                              std::function<void(StoreReply)> done) {
  if (remote_) {
    // The remote call's handle is the caller's: dropping it cancels this callback too.
    return remote_->get(key, [this, key, done = std::move(done)](StoreReply reply) {
      answer_get(key, reply);
      done(std::move(reply));
    });
  }
  StoreReply reply = read(key);
  answer_get(key, reply);
  return later([done = std::move(done), reply = std::move(reply)] { done(reply); });
}

std::unique_ptr<StoreCall> ReadOnlyStore::update(std::string key, StoreTransform transform,
                                                 std::function<void(StoreReply)> done) {
  if (remote_) {
    return remote_->get(
        key, [this, key, transform = std::move(transform), done = std::move(done)](
                 StoreReply reply) { done(answer_update(key, std::move(reply), transform)); });
  }
  StoreReply reply = answer_update(key, read(key), transform);
  return later([done = std::move(done), reply = std::move(reply)] { done(reply); });
}

std::unique_ptr<StoreCall> ReadOnlyStore::remove(std::string key,
                                                 std::function<void(StoreReply)> done) {
  lookups_.push_back(fmt::format("store: {}: not deleted (explain is read-only)", key));
  return later([done = std::move(done)] { done(StoreReply{}); });
}

std::unique_ptr<StoreCall> ReadOnlyStore::list(
    std::string prefix, std::size_t limit,
    std::function<void(StoreStatus, std::string, std::vector<StoreEntry>)> done) {
  if (remote_) {
    return remote_->list(
        prefix, limit,
        [this, prefix, done = std::move(done)](StoreStatus status, std::string error,
                                               std::vector<StoreEntry> entries) {
          lookups_.push_back(status == StoreStatus::ok
                                 ? describe_listing(prefix, entries.size())
                                 : fmt::format("store: list {}: {}", json_string(prefix), error));
          done(status, std::move(error), std::move(entries));
        });
  }
  StoreListing listing = database_ ? database_->list(prefix, limit) : StoreListing{};
  lookups_.push_back(describe_listing(prefix, listing.entries.size()));
  return later([done = std::move(done), listing = std::move(listing)]() mutable {
    done(listing.status, std::move(listing.error), std::move(listing.entries));
  });
}

std::vector<std::string> ReadOnlyStore::take_lookups() {
  std::vector<std::string> taken;
  taken.swap(lookups_);
  return taken;
}

}  // namespace portcullis
