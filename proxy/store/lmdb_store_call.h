// The handle of one LmdbStore call: destroying it cancels the callback (never the update).
#pragma once

#include <cstdint>
#include <memory>

#include "state_store.h"

namespace portcullis {

class LmdbStore;

class LmdbStoreCall : public StoreCall {
 public:
  LmdbStoreCall(std::weak_ptr<LmdbStore> store, std::uint64_t id)
      : store_(std::move(store)), id_(id) {}
  ~LmdbStoreCall() override;

 private:
  std::weak_ptr<LmdbStore> store_;
  std::uint64_t id_;
};

}  // namespace portcullis
