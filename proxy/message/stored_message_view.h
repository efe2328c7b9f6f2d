// The filters' MessageView (filters/api/message_view.h) of a transaction's MessageStore, made
// at end of data. The header section is read once, here, and kept: the filters and the relay
// (which looks in it for forged Authentication-Results) share that one read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "message_store.h"
#include "message_view.h"

namespace portcullis {

class StoredMessageView final : public MessageView {
 public:
  // `store` holds the whole message and must outlive the view and its readers unchanged;
  // its header section is read here (MessageStore::read_header_section, `max_header_size` is
  // [limits] max_header_size), which does not move its sequential read position.
  StoredMessageView(MessageStore& store, std::size_t max_header_size);

  std::uint64_t size() const override { return store_.size(); }
  std::string_view header_section() const override { return header_section_; }
  std::unique_ptr<MessageReader> read_from_start() const override;

  // False when the header section could not be read (header_section() is then empty and
  // header_error() says why).
  bool header_read() const { return header_error_.empty(); }
  const std::string& header_error() const { return header_error_; }

 private:
  const MessageStore& store_;
  std::string header_section_;
  std::string header_error_;
};

}  // namespace portcullis
