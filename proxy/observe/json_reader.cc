// A strict recursive-descent JSON reader; see the header.
// SECURITY: untrusted input. Every byte access goes through peek()/take(), which check the
// end of the input; recursion depth is bounded by max_json_depth; numbers are converted with
// std::from_chars (locale-independent, no reads past the validated literal).
#include "json_reader.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <fmt/format.h>

namespace portcullis {
namespace {

bool is_json_whitespace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_utf8(std::string* out, std::uint32_t code_point) {
  if (code_point < 0x80) {
    out->push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

// Parse failures unwind through this; it never leaves parse_json.
struct ParseFailure {
  std::size_t offset;
  std::string message;
};

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  JsonValue parse_document() {
    skip_whitespace();
    JsonValue value = parse_value(0);
    skip_whitespace();
    if (pos_ != text_.size()) fail("unexpected data after the value");
    return value;
  }

 private:
  [[noreturn]] void fail(std::string message) const {
    throw ParseFailure{pos_, std::move(message)};
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  void skip_whitespace() {
    while (!at_end() && is_json_whitespace(text_[pos_]))
      ++pos_;
  }

  void expect(char c, const char* what) {
    if (at_end() || text_[pos_] != c) fail(fmt::format("expected {}", what));
    ++pos_;
  }

  void expect_word(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) fail("invalid literal");
    pos_ += word.size();
  }

  JsonValue parse_value(std::size_t depth) {
    if (at_end()) fail("expected a value");
    switch (text_[pos_]) {
      case '{':
        return parse_object(depth + 1);
      case '[':
        return parse_array(depth + 1);
      case '"':
        return JsonValue(parse_string());
      case 't':
        expect_word("true");
        return JsonValue(true);
      case 'f':
        expect_word("false");
        return JsonValue(false);
      case 'n':
        expect_word("null");
        return JsonValue();
      default:
        if (text_[pos_] == '-' || is_digit(text_[pos_])) return JsonValue(parse_number());
        fail("expected a value");
    }
  }

  void check_depth(std::size_t depth) const {
    if (depth > max_json_depth) fail(fmt::format("nesting deeper than {}", max_json_depth));
  }

  JsonValue parse_array(std::size_t depth) {
    check_depth(depth);
    ++pos_;  // '['
    JsonValue::Array items;
    skip_whitespace();
    if (peek() == ']') {
      ++pos_;
      return JsonValue(std::move(items));
    }
    while (true) {
      skip_whitespace();
      items.push_back(parse_value(depth));
      skip_whitespace();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect(']', "',' or ']'");
      return JsonValue(std::move(items));
    }
  }

  JsonValue parse_object(std::size_t depth) {
    check_depth(depth);
    const std::size_t start = pos_;
    ++pos_;  // '{'
    JsonValue::Object members;
    skip_whitespace();
    if (peek() == '}') {
      ++pos_;
      return JsonValue(std::move(members));
    }
    while (true) {
      skip_whitespace();
      if (peek() != '"') fail("expected a member name");
      std::string name = parse_string();
      skip_whitespace();
      expect(':', "':'");
      skip_whitespace();
      JsonValue value = parse_value(depth);
      members.push_back(JsonValue::Member{std::move(name), std::move(value)});
      skip_whitespace();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect('}', "',' or '}'");
      break;
    }
    // Duplicate names make a record ambiguous (which one wins differs between readers), so a
    // strict reader refuses them. Sorting indices keeps the check O(n log n) for huge objects.
    std::vector<std::size_t> order(members.size());
    for (std::size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return members[a].name < members[b].name; });
    for (std::size_t i = 1; i < order.size(); ++i) {
      if (members[order[i]].name == members[order[i - 1]].name) {
        throw ParseFailure{start, "duplicate member name \"" + members[order[i]].name + "\""};
      }
    }
    return JsonValue(std::move(members));
  }

  unsigned parse_hex4() {
    if (text_.size() - pos_ < 4) fail("truncated \\u escape");
    unsigned value = 0;
    for (int i = 0; i < 4; ++i) {
      const int digit = hex_value(text_[pos_]);
      if (digit < 0) fail("invalid hex digit in \\u escape");
      value = value * 16 + static_cast<unsigned>(digit);
      ++pos_;
    }
    return value;
  }

  // At '\\u' already consumed up to the 'u'; handles surrogate pairs.
  void parse_unicode_escape(std::string* out) {
    const std::size_t escape_start = pos_ - 2;
    const unsigned first = parse_hex4();
    if (first >= 0xDC00 && first <= 0xDFFF) {
      throw ParseFailure{escape_start, "lone low surrogate"};
    }
    if (first < 0xD800 || first > 0xDBFF) {
      append_utf8(out, first);
      return;
    }
    if (text_.substr(pos_, 2) != "\\u") throw ParseFailure{escape_start, "lone high surrogate"};
    pos_ += 2;
    const unsigned second = parse_hex4();
    if (second < 0xDC00 || second > 0xDFFF) {
      throw ParseFailure{escape_start, "high surrogate not followed by a low surrogate"};
    }
    append_utf8(out, 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00));
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (at_end()) fail("unterminated string");
      const auto byte = static_cast<unsigned char>(text_[pos_]);
      if (byte == '"') {
        ++pos_;
        return out;
      }
      if (byte < 0x20) fail("control character in string");
      if (byte == '\\') {
        ++pos_;
        if (at_end()) fail("unterminated string");
        const char escape = text_[pos_++];
        switch (escape) {
          case '"':
            out.push_back('"');
            break;
          case '\\':
            out.push_back('\\');
            break;
          case '/':
            out.push_back('/');
            break;
          case 'b':
            out.push_back('\b');
            break;
          case 'f':
            out.push_back('\f');
            break;
          case 'n':
            out.push_back('\n');
            break;
          case 'r':
            out.push_back('\r');
            break;
          case 't':
            out.push_back('\t');
            break;
          case 'u':
            parse_unicode_escape(&out);
            break;
          default:
            --pos_;
            fail("invalid escape");
        }
        continue;
      }
      if (byte < 0x80) {
        out.push_back(static_cast<char>(byte));
        ++pos_;
        continue;
      }
      const std::size_t length = utf8_sequence_length(text_.substr(pos_));
      if (length == 0) fail("invalid UTF-8 in string");
      out.append(text_.substr(pos_, length));
      pos_ += length;
    }
  }

  double parse_number() {
    const std::size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
      if (is_digit(peek())) fail("leading zero in number");
    } else if (is_digit(peek())) {
      while (is_digit(peek()))
        ++pos_;
    } else {
      fail("expected a digit");
    }
    if (peek() == '.') {
      ++pos_;
      if (!is_digit(peek())) fail("expected a digit after '.'");
      while (is_digit(peek()))
        ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!is_digit(peek())) fail("expected a digit in the exponent");
      while (is_digit(peek()))
        ++pos_;
    }
    double value = 0;
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    const auto [end, error] = std::from_chars(first, last, value);
    if (error == std::errc::result_out_of_range) {
      throw ParseFailure{start, "number out of range"};
    }
    if (error != std::errc() || end != last) throw ParseFailure{start, "invalid number"};
    return value;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace

std::optional<std::int64_t> JsonValue::as_integer() const {
  if (!is_number()) return std::nullopt;
  const double value = as_number();
  // 2^63 is exactly representable; anything at or above it does not fit.
  constexpr double limit = 9223372036854775808.0;
  if (!(value >= -limit && value < limit) || std::trunc(value) != value) return std::nullopt;
  return static_cast<std::int64_t>(value);
}

const JsonValue* JsonValue::find(std::string_view name) const {
  const auto* members = std::get_if<Object>(&value_);
  if (members == nullptr) return nullptr;
  for (const auto& member : *members) {
    if (member.name == name) return &member.value;
  }
  return nullptr;
}

const std::string* JsonValue::find_string(std::string_view name) const {
  const JsonValue* value = find(name);
  if (value == nullptr) return nullptr;
  return std::get_if<std::string>(&value->value_);
}

std::optional<JsonValue> parse_json(std::string_view text, std::string* error) {
  try {
    Parser parser(text);
    return parser.parse_document();
  } catch (const ParseFailure& failure) {
    if (error != nullptr) *error = fmt::format("offset {}: {}", failure.offset, failure.message);
    return std::nullopt;
  }
}

std::size_t utf8_sequence_length(std::string_view bytes) {
  if (bytes.empty()) return 0;
  const auto byte_at = [&](std::size_t i) { return static_cast<unsigned char>(bytes[i]); };
  const unsigned char lead = byte_at(0);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  // The allowed range of the second byte narrows for the leads that could otherwise encode
  // overlong forms (E0, F0), surrogates (ED) or code points above U+10FFFF (F4).
  unsigned char second_min = 0x80;
  unsigned char second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;
    if (lead == 0xED) second_max = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;
    if (lead == 0xF4) second_max = 0x8F;
  } else {
    return 0;  // continuation byte, C0/C1 (always overlong), F5..FF
  }
  if (bytes.size() < length) return 0;
  if (byte_at(1) < second_min || byte_at(1) > second_max) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte_at(i) < 0x80 || byte_at(i) > 0xBF) return 0;
  }
  return length;
}

}  // namespace portcullis
