// The StoreCall handle both backends hand out: it names its call by id, and destroying it
// cancels that call's callback (never its write) if the store still exists.
#pragma once

#include <cstdint>
#include <memory>

#include "state_store.h"

namespace portcullis {

// `Store` has `void cancel(std::uint64_t id)`.
template <typename Store>
class StoreCallHandle final : public StoreCall {
 public:
  StoreCallHandle(std::weak_ptr<Store> store, std::uint64_t id)
      : store_(std::move(store)), id_(id) {}
  ~StoreCallHandle() override {
    if (auto store = store_.lock()) store->cancel(id_);
  }

 private:
  std::weak_ptr<Store> store_;
  std::uint64_t id_;
};

}  // namespace portcullis
