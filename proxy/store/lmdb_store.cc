#include "lmdb_store.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include "callback_guard.h"
#include "metrics.h"
#include "store_call.h"

namespace portcullis {

std::shared_ptr<LmdbStore> LmdbStore::create(event_base* base, LmdbDatabase* database) {
  return std::shared_ptr<LmdbStore>(new LmdbStore(base, database));
}

LmdbStore::LmdbStore(event_base* base, LmdbDatabase* database) : base_(base), database_(database) {
  wake_.reset(event_new(base_, -1, 0, &LmdbStore::on_inbox, this));
  if (!wake_) throw std::runtime_error("event_new failed for the store's reply inbox");
  inbox_ = std::make_shared<StoreReplyInbox>(wake_.get());
}

LmdbStore::~LmdbStore() {
  // The writer may still post for this loop: after close() it posts into nothing.
  inbox_->close();
}

std::unique_ptr<StoreCall> LmdbStore::track(Pending pending, std::uint64_t* id) {
  *id = next_id_++;
  pending_.emplace(*id, std::move(pending));
  return std::make_unique<StoreCallHandle<LmdbStore>>(weak_from_this(), *id);
}

std::string LmdbStore::key_problem(const std::string& key) const {
  if (key.empty()) return "empty key";
  const std::size_t limit = std::min(max_store_key_bytes, database_->max_key_bytes());
  if (key.size() > limit) {
    return "key of " + std::to_string(key.size()) + " bytes, above the limit of " +
           std::to_string(limit);
  }
  return "";
}

namespace {

StoreDelivery refused(std::uint64_t id, std::string problem) {
  metrics().store_errors_total.with({"lmdb", "error"}).increment();
  StoreDelivery delivery;
  delivery.id = id;
  delivery.reply.status = StoreStatus::error;
  delivery.reply.error = std::move(problem);
  return delivery;
}

}  // namespace

std::unique_ptr<StoreCall> LmdbStore::get(std::string key, std::function<void(StoreReply)> done) {
  std::uint64_t id = 0;
  auto handle = track(Pending{std::move(done), nullptr}, &id);
  if (auto problem = key_problem(key); !problem.empty()) {
    inbox_->post(refused(id, std::move(problem)));
    return handle;
  }
  StoreDelivery delivery;
  delivery.id = id;
  delivery.reply = database_->read(key);
  inbox_->post(std::move(delivery));
  return handle;
}

void LmdbStore::write(std::string key, StoreTransform transform,
                      std::function<void(StoreReply)> done, std::unique_ptr<StoreCall>* handle) {
  std::uint64_t id = 0;
  *handle = track(Pending{std::move(done), nullptr}, &id);
  if (auto problem = key_problem(key); !problem.empty()) {
    inbox_->post(refused(id, std::move(problem)));
    return;
  }
  // The writer holds the inbox, not the store: a store that is gone gets nothing.
  database_->submit(LmdbDatabase::Write{std::move(key), std::move(transform),
                                        [inbox = inbox_, id](StoreReply reply) {
                                          StoreDelivery delivery;
                                          delivery.id = id;
                                          delivery.reply = std::move(reply);
                                          inbox->post(std::move(delivery));
                                        }});
}

std::unique_ptr<StoreCall> LmdbStore::update(std::string key, StoreTransform transform,
                                             std::function<void(StoreReply)> done) {
  std::unique_ptr<StoreCall> handle;
  if (!transform) {
    std::uint64_t id = 0;
    handle = track(Pending{std::move(done), nullptr}, &id);
    inbox_->post(refused(id, "an update without a transform"));
    return handle;
  }
  if (auto problem = key_problem(key); problem.empty()) {
    // An update that changes nothing (a greylist triplet renewed recently) is a read: no trip
    // through the writer, no commit.
    if (auto unchanged = database_->update_without_write(key, transform)) {
      std::uint64_t id = 0;
      handle = track(Pending{std::move(done), nullptr}, &id);
      StoreDelivery delivery;
      delivery.id = id;
      delivery.reply = std::move(*unchanged);
      inbox_->post(std::move(delivery));
      return handle;
    }
  }
  write(std::move(key), std::move(transform), std::move(done), &handle);
  return handle;
}

std::unique_ptr<StoreCall> LmdbStore::remove(std::string key,
                                             std::function<void(StoreReply)> done) {
  std::unique_ptr<StoreCall> handle;
  write(std::move(key), nullptr, std::move(done), &handle);
  return handle;
}

std::unique_ptr<StoreCall> LmdbStore::list(
    std::string prefix, std::size_t limit,
    std::function<void(StoreStatus, std::string error, std::vector<StoreEntry>)> done) {
  std::uint64_t id = 0;
  auto handle = track(Pending{nullptr, std::move(done)}, &id);
  StoreListing listing = database_->list(prefix, limit);
  StoreDelivery delivery;
  delivery.id = id;
  delivery.reply.status = listing.status;
  delivery.reply.error = std::move(listing.error);
  delivery.entries = std::move(listing.entries);
  inbox_->post(std::move(delivery));
  return handle;
}

void LmdbStore::cancel(std::uint64_t id) {
  pending_.erase(id);
}

void LmdbStore::on_inbox(evutil_socket_t, short, void* data) {
  auto* store = static_cast<LmdbStore*>(data);
  guard_callback("store_inbox", [&] { store->deliver(); });
}

void LmdbStore::deliver() {
  // A callback may drop the last reference to this store: stay alive until the batch is done.
  const auto self = shared_from_this();
  for (StoreDelivery& delivery : inbox_->take()) {
    const auto found = pending_.find(delivery.id);
    if (found == pending_.end()) continue;  // cancelled
    Pending pending = std::move(found->second);
    pending_.erase(found);
    if (pending.listed) {
      pending.listed(delivery.reply.status, std::move(delivery.reply.error),
                     std::move(delivery.entries));
    } else if (pending.done) {
      pending.done(std::move(delivery.reply));
    }
  }
}

}  // namespace portcullis
