// SECURITY: holds message bytes from untrusted clients. Memory use is bounded by
// spill_threshold (the session bounds the total through max_message_size); beyond it the bytes
// go to a 0600 file with no name, so no other user can open it and nothing is left behind.
#include "message_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

namespace portcullis {
namespace {

std::string describe_errno(const char* what, int error_number) {
  return std::string(what) + ": " + std::strerror(error_number);
}

// Writes everything at `offset`, retrying on EINTR and short writes.
bool write_all_at(int fd, std::string_view bytes, uint64_t offset, int* error_number) {
  while (!bytes.empty()) {
    const ssize_t written = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (written < 0) {
      if (errno == EINTR) continue;
      *error_number = errno;
      return false;
    }
    if (written == 0) {
      *error_number = ENOSPC;
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(written));
    offset += static_cast<uint64_t>(written);
  }
  return true;
}

}  // namespace

MessageStore::MessageStore(size_t spill_threshold, std::string spill_dir)
    : spill_threshold_(spill_threshold), spill_dir_(std::move(spill_dir)) {}

MessageStore::~MessageStore() {
  clear();
}

bool MessageStore::spill() {
  int fd = ::open(spill_dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int tmpfile_error = errno;
    // Some file systems have no O_TMPFILE: a named file unlinked at once is the next best.
    std::string name = spill_dir_ + "/portcullis-message-XXXXXX";
    std::vector<char> name_buffer(name.begin(), name.end());
    name_buffer.push_back('\0');
    fd = ::mkostemp(name_buffer.data(), O_CLOEXEC);
    if (fd < 0) {
      error_ = "cannot create a spill file in " + spill_dir_ + ": " +
               describe_errno("O_TMPFILE", tmpfile_error) + "; " + describe_errno("mkstemp", errno);
      return false;
    }
    if (::unlink(name_buffer.data()) != 0) {
      const int unlink_error = errno;
      ::close(fd);
      error_ = "cannot unlink spill file " + std::string(name_buffer.data()) + ": " +
               std::strerror(unlink_error);
      return false;
    }
  }
  int error_number = 0;
  if (!write_all_at(fd, memory_, 0, &error_number)) {
    ::close(fd);
    error_ = "cannot write spill file in " + spill_dir_ + ": " + std::strerror(error_number);
    return false;
  }
  fd_ = fd;
  std::string().swap(memory_);  // release the memory, not only the contents
  return true;
}

bool MessageStore::append(std::string_view bytes) {
  if (bytes.empty()) return true;
  if (!spilled() && memory_.size() + bytes.size() <= spill_threshold_) {
    memory_.append(bytes);
    size_ += bytes.size();
    return true;
  }
  if (!spilled() && !spill()) return false;
  int error_number = 0;
  // Writing at size_ (not appending) means a failed partial write is simply overwritten by
  // the next one and never counted.
  if (!write_all_at(fd_, bytes, size_, &error_number)) {
    error_ = "cannot write spill file in " + spill_dir_ + ": " + std::strerror(error_number);
    return false;
  }
  size_ += bytes.size();
  return true;
}

void MessageStore::rewind() {
  read_offset_ = 0;
}

bool MessageStore::read_range(uint64_t offset, size_t max_bytes, std::string* bytes,
                              std::string* error) const {
  bytes->clear();
  if (offset >= size_) return true;
  const size_t wanted = static_cast<size_t>(std::min<uint64_t>(max_bytes, size_ - offset));
  if (!spilled()) {
    bytes->assign(memory_, static_cast<size_t>(offset), wanted);
    return true;
  }
  bytes->resize(wanted);
  size_t filled = 0;
  while (filled < wanted) {
    // pread: the file offset stays put, so readers never disturb each other.
    const ssize_t got =
        ::pread(fd_, bytes->data() + filled, wanted - filled, static_cast<off_t>(offset + filled));
    if (got < 0) {
      if (errno == EINTR) continue;
      *error = "cannot read spill file: " + std::string(std::strerror(errno));
      bytes->clear();
      return false;
    }
    if (got == 0) {
      *error = "spill file is shorter than the message";
      bytes->clear();
      return false;
    }
    filled += static_cast<size_t>(got);
  }
  return true;
}

bool MessageStore::read_at(uint64_t offset, size_t length, std::string* bytes) {
  return read_range(offset, length, bytes, &error_);
}

bool MessageStore::read(std::string* chunk, size_t max_bytes) {
  chunk->clear();
  if (read_offset_ >= size_ || max_bytes == 0) return false;
  if (!read_at(read_offset_, max_bytes, chunk)) return false;
  read_offset_ += chunk->size();
  return true;
}

void MessageStore::seek(uint64_t offset) {
  read_offset_ = std::min(offset, size_);
}

bool MessageStore::read_header_section(size_t max_bytes, std::string* header) {
  header->clear();
  std::string bytes;
  const size_t look = max_bytes > SIZE_MAX - 2 ? SIZE_MAX : max_bytes + 2;
  if (!read_at(0, look, &bytes)) return false;

  // Lines end in LF (CRLF in a stored message); the first empty line ends the header.
  size_t line_start = 0;
  size_t last_field_start = 0;  // start of the last line seen that does not begin with WSP
  while (line_start < bytes.size()) {
    const size_t lf = bytes.find('\n', line_start);
    const size_t next = lf == std::string::npos ? bytes.size() : lf + 1;
    const std::string_view line(bytes.data() + line_start, next - line_start);
    if (line == "\r\n" || line == "\n") {
      if (line_start <= max_bytes) {
        header->assign(bytes, 0, line_start);
        return true;
      }
      break;
    }
    if (line_start <= max_bytes && bytes[line_start] != ' ' && bytes[line_start] != '\t') {
      last_field_start = line_start;
    }
    line_start = next;
  }
  if (bytes.size() == size_ && size_ <= max_bytes) {
    *header = std::move(bytes);  // the whole message is header
    return true;
  }
  // Cut: the last field may go on past what was read, so only the fields before it count.
  header->assign(bytes, 0, last_field_start);
  return true;
}

void MessageStore::clear() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  std::string().swap(memory_);
  size_ = 0;
  read_offset_ = 0;
  error_.clear();
}

}  // namespace portcullis
