// Positions inside TOML string values.
//
// toml11 tells where a value starts (its opening quote), not where each character of the
// decoded string came from. Conditions and actions are parsed from decoded strings, so an
// error at offset N inside `when` is mapped back to the file by re-reading the raw token.
#pragma once

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

}  // namespace portcullis::policy
