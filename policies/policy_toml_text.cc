#include "policy_toml_text.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include <fmt/format.h>

namespace portcullis::policy {

namespace {

class RawCursor {
 public:
  RawCursor(std::string_view source, std::size_t index, TextPosition position)
      : source_(source), index_(index), position_(position) {}

  bool at_end() const { return index_ >= source_.size(); }
  char peek(std::size_t ahead = 0) const {
    return index_ + ahead < source_.size() ? source_[index_ + ahead] : '\0';
  }
  bool starts_with(std::string_view text) const { return source_.substr(index_).starts_with(text); }
  TextPosition position() const { return position_; }
  void advance(std::size_t count = 1) {
    for (std::size_t i = 0; i < count && index_ < source_.size(); ++i) {
      if (source_[index_] == '\n') {
        ++position_.line;
        position_.column = 1;
      } else {
        ++position_.column;
      }
      ++index_;
    }
  }
  bool at_newline() const { return peek() == '\n' || (peek() == '\r' && peek(1) == '\n'); }
  void skip_newline() { advance(peek() == '\r' ? 2 : 1); }

 private:
  std::string_view source_;
  std::size_t index_;
  TextPosition position_;
};

std::size_t utf8_length(std::uint32_t code_point) {
  if (code_point < 0x80) return 1;
  if (code_point < 0x800) return 2;
  if (code_point < 0x10000) return 3;
  return 4;
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Decodes one escape at the cursor (which stands on the backslash); returns how many bytes
// it decodes to, or 0 for a line-ending backslash (multi-line strings) or a bad escape.
std::size_t decode_escape(RawCursor& cursor, bool multi_line) {
  cursor.advance();  // the backslash
  const char c = cursor.peek();
  if (multi_line && (c == ' ' || c == '\t' || cursor.at_newline())) {
    while (!cursor.at_end() &&
           (cursor.peek() == ' ' || cursor.peek() == '\t' || cursor.at_newline())) {
      if (cursor.at_newline()) {
        cursor.skip_newline();
      } else {
        cursor.advance();
      }
    }
    return 0;
  }
  if (c == 'u' || c == 'U') {
    const std::size_t digits = c == 'u' ? 4 : 8;
    std::uint32_t code_point = 0;
    cursor.advance();
    for (std::size_t i = 0; i < digits; ++i) {
      const char h = cursor.peek();
      if (!is_hex(h)) return 0;
      code_point =
          code_point * 16 + static_cast<std::uint32_t>(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
      cursor.advance();
    }
    return utf8_length(code_point);
  }
  cursor.advance();
  return 1;
}

}  // namespace

std::vector<TextPosition> map_string_token(std::string_view source, unsigned line,
                                           unsigned column) {
  std::size_t index = 0;
  for (unsigned current = 1; current < line; ++current) {
    index = source.find('\n', index);
    if (index == std::string_view::npos) return {};
    ++index;
  }
  index += column - 1;
  if (column == 0 || index >= source.size()) return {};
  RawCursor cursor(source, index, {line, column});
  std::vector<TextPosition> positions;
  const bool literal = cursor.peek() == '\'';
  if (cursor.peek() != '"' && !literal) return {};
  const std::string_view triple = literal ? "'''" : "\"\"\"";
  const bool multi_line = cursor.starts_with(triple);
  const char quote = literal ? '\'' : '"';
  cursor.advance(multi_line ? 3 : 1);
  if (multi_line && cursor.at_newline()) cursor.skip_newline();
  // SECURITY: the cursor only moves forward through the (size-bounded) file.
  while (!cursor.at_end()) {
    if (multi_line && cursor.starts_with(triple)) {
      // Up to two quotes right before the closing triple belong to the value.
      std::size_t extra = 0;
      while (extra < 2 && cursor.peek(3 + extra) == quote)
        ++extra;
      for (std::size_t i = 0; i < extra; ++i) {
        positions.push_back(cursor.position());
        cursor.advance();
      }
      positions.push_back(cursor.position());
      return positions;
    }
    if (!multi_line && cursor.peek() == quote) {
      positions.push_back(cursor.position());
      return positions;
    }
    if (!literal && cursor.peek() == '\\') {
      const TextPosition start = cursor.position();
      const std::size_t decoded = decode_escape(cursor, multi_line);
      positions.insert(positions.end(), decoded, start);
      continue;
    }
    positions.push_back(cursor.position());
    cursor.advance();
  }
  return {};
}

std::optional<std::size_t> find_invalid_utf8(std::string_view text) {
  std::size_t i = 0;
  // SECURITY: one pass; every step checks the continuation bytes it reads are in range.
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x80) {
      ++i;
      continue;
    }
    std::size_t length = 0;
    unsigned char low = 0x80;
    unsigned char high = 0xbf;
    if (byte >= 0xc2 && byte <= 0xdf) {
      length = 2;
    } else if (byte >= 0xe0 && byte <= 0xef) {
      length = 3;
      if (byte == 0xe0) low = 0xa0;   // no overlong forms
      if (byte == 0xed) high = 0x9f;  // no surrogates
    } else if (byte >= 0xf0 && byte <= 0xf4) {
      length = 4;
      if (byte == 0xf0) low = 0x90;
      if (byte == 0xf4) high = 0x8f;  // nothing above U+10FFFF
    } else {
      return i;
    }
    if (i + length > text.size()) return i;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      const unsigned char min = k == 1 ? low : 0x80;
      const unsigned char max = k == 1 ? high : 0xbf;
      if (next < min || next > max) return i;
    }
    i += length;
  }
  return std::nullopt;
}

TextPosition position_of(std::string_view text, std::size_t offset) {
  TextPosition position{1, 1};
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++position.line;
      position.column = 1;
    } else {
      ++position.column;
    }
  }
  return position;
}

// Deepest nesting of '[' and '{' in values, outside strings and comments. Table headers
// ([x], [[x]]) count too; they are shallow.
int toml_nesting_depth(std::string_view text) {
  int depth = 0;
  int deepest = 0;
  std::size_t i = 0;
  // SECURITY: one forward pass over the size-bounded text.
  while (i < text.size()) {
    const char c = text[i];
    if (c == '#') {
      while (i < text.size() && text[i] != '\n')
        ++i;
      continue;
    }
    if (c == '"' || c == '\'') {
      const bool triple = text.substr(i, 3) == std::string(3, c);
      const std::string closing(triple ? 3 : 1, c);
      i += triple ? 3 : 1;
      while (i < text.size()) {
        if (c == '"' && text[i] == '\\') {
          i += 2;
          continue;
        }
        if (!triple && text[i] == '\n') break;  // unterminated: toml11 reports it
        if (text.substr(i, closing.size()) == closing) {
          i += closing.size();
          break;
        }
        ++i;
      }
      continue;
    }
    if (c == '[' || c == '{') deepest = std::max(deepest, ++depth);
    if ((c == ']' || c == '}') && depth > 0) --depth;
    ++i;
  }
  return deepest;
}

std::optional<std::string> read_regular_file(const std::string& path, std::size_t max_size,
                                             std::string* error) {
  // SECURITY: the file is opened once and checked through its descriptor (no race between
  // a check and the read), and the read is bounded by what fstat said and by max_size.
  struct OwnedFd {
    int fd;
    ~OwnedFd() {
      if (fd >= 0) ::close(fd);
    }
  } owned{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)};
  const int fd = owned.fd;
  const auto fail = [&](std::string message) -> std::optional<std::string> {
    *error = std::move(message);
    return std::nullopt;
  };
  if (fd < 0) return fail(std::strerror(errno));
  struct stat status {};
  if (::fstat(fd, &status) != 0) return fail(std::strerror(errno));
  if (!S_ISREG(status.st_mode)) return fail("not a regular file");
  if (static_cast<std::uint64_t>(status.st_size) > max_size) {
    return fail(fmt::format("larger than {} bytes", max_size));
  }
  std::string text;
  text.resize(static_cast<std::size_t>(status.st_size));
  std::size_t filled = 0;
  while (filled < text.size()) {
    const ssize_t got = ::read(fd, text.data() + filled, text.size() - filled);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return fail(std::strerror(errno));
    if (got == 0) break;  // shrank meanwhile
    filled += static_cast<std::size_t>(got);
  }
  text.resize(filled);
  return text;
}

}  // namespace portcullis::policy
