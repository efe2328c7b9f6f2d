// A MessageReader over a MessageStore with an offset of its own: any number of them read the
// same store at once, and none moves the store's sequential position (the relay's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "message_store.h"
#include "message_view.h"

namespace portcullis {

class StoredMessageReader final : public MessageReader {
 public:
  // `store` must outlive the reader and must not change while it reads.
  explicit StoredMessageReader(const MessageStore& store) : store_(store) {}

  bool read(std::string* chunk, std::size_t max_bytes) override;
  const std::string& error() const override { return error_; }

 private:
  const MessageStore& store_;
  std::uint64_t offset_ = 0;
  std::string error_;
};

}  // namespace portcullis
