#include "stored_message_reader.h"

namespace portcullis {

bool StoredMessageReader::read(std::string* chunk, std::size_t max_bytes) {
  chunk->clear();
  if (!error_.empty() || offset_ >= store_.size() || max_bytes == 0) return false;
  if (!store_.read_range(offset_, max_bytes, chunk, &error_)) return false;
  offset_ += chunk->size();
  return !chunk->empty();
}

}  // namespace portcullis
