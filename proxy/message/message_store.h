#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace portcullis {

// Holds one message while it is read and until it has been written upstream: in memory up to
// `spill_threshold` bytes, then in a private file (0600) under `spill_dir` that is unlinked as
// soon as it is created, so it disappears whatever happens to the process.
class MessageStore {
 public:
  MessageStore(size_t spill_threshold, std::string spill_dir);
  ~MessageStore();
  MessageStore(const MessageStore&) = delete;
  MessageStore& operator=(const MessageStore&) = delete;

  // False on a file error; error() then says why. The store keeps what it had.
  bool append(std::string_view bytes);
  uint64_t size() const { return size_; }
  bool spilled() const { return fd_ >= 0; }
  const std::string& error() const { return error_; }

  // Sequential reading from the start; returns false at the end or on error.
  void rewind();
  bool read(std::string* chunk, size_t max_bytes);
  // Moves the sequential read position to `offset` (at most size()), e.g. past bytes that are
  // not to be sent.
  void seek(uint64_t offset);

  // The header section: the bytes before the empty line that ends the header (a message with
  // no empty line is all header), for find_own_authentication_results. Reads at most
  // max_bytes + 2 bytes (enough to see the empty line after a header of max_bytes) and does
  // not move the sequential read position. When the header is longer than max_bytes, only the
  // whole fields that fit are returned (the next field's start was seen), never part of one.
  // False on a read error (error() says why).
  bool read_header_section(size_t max_bytes, std::string* header);

  // Up to `max_bytes` bytes from `offset` into *bytes (none at or past the end). Touches
  // neither the sequential read position nor error(), so readers of their own (the filters'
  // MessageView) can run beside the relay's reading. False on a read error, said in *error.
  bool read_range(uint64_t offset, size_t max_bytes, std::string* bytes, std::string* error) const;

  // Forget the message (closes the file).
  void clear();

 private:
  bool spill();
  // Up to `length` bytes from `offset` (fewer at the end), without moving read_offset_.
  bool read_at(uint64_t offset, size_t length, std::string* bytes);

  size_t spill_threshold_;
  std::string spill_dir_;
  std::string memory_;
  int fd_ = -1;
  uint64_t size_ = 0;
  uint64_t read_offset_ = 0;
  std::string error_;
};

}  // namespace portcullis
