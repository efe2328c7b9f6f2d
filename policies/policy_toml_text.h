// Positions inside TOML string values.
//
// toml11 tells where a value starts (its opening quote), not where each character of the
// decoded string came from. Conditions and actions are parsed from decoded strings, so an
// error at offset N inside `when` is mapped back to the file by re-reading the raw token.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis::policy {

struct TextPosition {
  unsigned line = 0;
  unsigned column = 0;
};

// For the TOML string token that starts at (line, column) of `source` (1-based, byte
// columns), the file position of each byte of the decoded value, plus one entry for the
// position just past the value (the closing quote). Handles "basic", 'literal', """multi-line
// basic""" (line-ending backslashes, escapes) and '''multi-line literal''' strings. Empty when
// no string token starts there.
std::vector<TextPosition> map_string_token(std::string_view source, unsigned line, unsigned column);

// The offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or nullopt. TOML documents are UTF-8, and
// toml11 3.7.1 reads past its buffer on some malformed sequences, so the loader checks first.
std::optional<std::size_t> find_invalid_utf8(std::string_view text);

// 1-based line and byte column of an offset.
TextPosition position_of(std::string_view text, std::size_t offset);

// Deepest nesting of '[' and '{' in `text`, outside strings and comments. toml11 parses arrays
// and inline tables recursively, so a loader refuses deep text before handing it over (the
// main config and policy files alike).
int toml_nesting_depth(std::string_view text);
inline constexpr int max_toml_nesting = 32;

// Reads the regular file at `path` whole when it is at most `max_size` bytes; nullopt with
// *error set otherwise (a device, FIFO or directory is refused, not read until memory runs
// out).
std::optional<std::string> read_regular_file(const std::string& path, std::size_t max_size,
                                             std::string* error);

}  // namespace portcullis::policy
