// Positions inside TOML string values.
//
// toml11 tells where a value starts (its opening quote), not where each character of the
// decoded string came from. Conditions and actions are parsed from decoded strings, so an
// error at offset N inside `when` is mapped back to the file by re-reading the raw token.
#pragma once

#include <cstddef>
#include <optional>
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

}  // namespace portcullis::policy
