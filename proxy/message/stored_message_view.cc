#include "stored_message_view.h"

#include "stored_message_reader.h"

namespace portcullis {

StoredMessageView::StoredMessageView(MessageStore& store, std::size_t max_header_size)
    : store_(store) {
  if (!store.read_header_section(max_header_size, &header_section_)) {
    header_section_.clear();
    header_error_ = store.error().empty() ? "cannot read the header section" : store.error();
  }
}

std::unique_ptr<MessageReader> StoredMessageView::read_from_start() const {
  return std::make_unique<StoredMessageReader>(store_);
}

}  // namespace portcullis
