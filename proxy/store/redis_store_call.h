// The handle of one RedisStore call: destroying it cancels the callback (never the update).
#pragma once

#include <cstdint>
#include <memory>

#include "state_store.h"

namespace portcullis {

class RedisStore;

class RedisStoreCall : public StoreCall {
 public:
  RedisStoreCall(std::weak_ptr<RedisStore> store, std::uint64_t id)
      : store_(std::move(store)), id_(id) {}
  ~RedisStoreCall() override;

 private:
  std::weak_ptr<RedisStore> store_;
  std::uint64_t id_;
};

}  // namespace portcullis
