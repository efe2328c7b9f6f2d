#include "json_value.h"

#include <cmath>
#include <cstdlib>

#include <fmt/core.h>

namespace portcullis::test {

const JsonValue* JsonValue::find(const std::string& key) const {
  if (!is_object()) return nullptr;
  const auto& object = as_object();
  auto it = object.find(key);
  return it == object.end() ? nullptr : &it->second;
}

namespace {

void append_quoted(std::string& out, const std::string& text) {
  out.push_back('"');
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

void append_json(std::string& out, const JsonValue& value) {
  if (value.is_object()) {
    out.push_back('{');
    bool first = true;
    for (const auto& [key, member] : value.as_object()) {
      if (!first) out.push_back(',');
      first = false;
      append_quoted(out, key);
      out.push_back(':');
      append_json(out, member);
    }
    out.push_back('}');
  } else if (value.is_array()) {
    out.push_back('[');
    bool first = true;
    for (const auto& element : value.as_array()) {
      if (!first) out.push_back(',');
      first = false;
      append_json(out, element);
    }
    out.push_back(']');
  } else if (value.is_string()) {
    append_quoted(out, value.as_string());
  } else {
    out += value.to_text();
  }
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  // GCC 12 warns (maybe-uninitialized) on std::optional<std::variant<...>> returns, so the
  // parser fills out-parameters and reports success as bool.
  bool parse_document(JsonValue& out, std::string* error) {
    bool ok = parse_value(out, 0);
    skip_space();
    if (ok && at_ != text_.size()) ok = fail("trailing characters");
    if (!ok && error) *error = fmt::format("{} at offset {}", error_, at_);
    return ok;
  }

 private:
  bool parse_value(JsonValue& out, int depth) {
    if (depth > 64) return fail("nested too deeply");
    skip_space();
    if (at_ >= text_.size()) return fail("unexpected end");
    const char c = text_[at_];
    if (c == '{') return parse_object(out, depth);
    if (c == '[') return parse_array(out, depth);
    if (c == '"') {
      std::string text;
      if (!parse_string(text)) return false;
      out = JsonValue(std::move(text));
      return true;
    }
    if (literal("true")) {
      out = JsonValue(true);
      return true;
    }
    if (literal("false")) {
      out = JsonValue(false);
      return true;
    }
    if (literal("null")) {
      out = JsonValue();
      return true;
    }
    return parse_number(out);
  }

  bool parse_object(JsonValue& out, int depth) {
    ++at_;  // '{'
    JsonValue::Object object;
    skip_space();
    if (peek('}')) {
      ++at_;
      out = JsonValue(std::move(object));
      return true;
    }
    while (true) {
      skip_space();
      if (!peek('"')) return fail("expected a member name");
      std::string key;
      if (!parse_string(key)) return false;
      skip_space();
      if (!peek(':')) return fail("expected ':'");
      ++at_;
      JsonValue value;
      if (!parse_value(value, depth + 1)) return false;
      object.insert_or_assign(std::move(key), std::move(value));
      skip_space();
      if (peek(',')) {
        ++at_;
        continue;
      }
      if (peek('}')) {
        ++at_;
        out = JsonValue(std::move(object));
        return true;
      }
      return fail("expected ',' or '}'");
    }
  }

  bool parse_array(JsonValue& out, int depth) {
    ++at_;  // '['
    JsonValue::Array array;
    skip_space();
    if (peek(']')) {
      ++at_;
      out = JsonValue(std::move(array));
      return true;
    }
    while (true) {
      JsonValue value;
      if (!parse_value(value, depth + 1)) return false;
      array.push_back(std::move(value));
      skip_space();
      if (peek(',')) {
        ++at_;
        continue;
      }
      if (peek(']')) {
        ++at_;
        out = JsonValue(std::move(array));
        return true;
      }
      return fail("expected ',' or ']'");
    }
  }

  bool parse_string(std::string& out) {
    ++at_;  // opening quote
    while (at_ < text_.size()) {
      const char c = text_[at_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return fail("control character in a string");
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (at_ >= text_.size()) break;
      const char escape = text_[at_++];
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
        case 'u': {
          unsigned point = 0;
          if (!parse_hex4(point)) return false;
          if (point >= 0xD800 && point < 0xDC00 && text_.substr(at_, 2) == "\\u") {
            at_ += 2;
            unsigned low = 0;
            if (!parse_hex4(low)) return false;
            point = 0x10000 + ((point - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, point);
          break;
        }
        default:
          return fail("bad escape");
      }
    }
    return fail("unterminated string");
  }

  bool parse_hex4(unsigned& value) {
    if (at_ + 4 > text_.size()) return fail("short \\u escape");
    value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[at_++];
      value <<= 4;
      if (c >= '0' && c <= '9') {
        value |= static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        value |= static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        value |= static_cast<unsigned>(c - 'A' + 10);
      } else {
        return fail("bad \\u escape");
      }
    }
    return true;
  }

  static void append_utf8(std::string& out, unsigned point) {
    if (point < 0x80) {
      out.push_back(static_cast<char>(point));
    } else if (point < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (point >> 6)));
      out.push_back(static_cast<char>(0x80 | (point & 0x3F)));
    } else if (point < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (point >> 12)));
      out.push_back(static_cast<char>(0x80 | ((point >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (point & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (point >> 18)));
      out.push_back(static_cast<char>(0x80 | ((point >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((point >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (point & 0x3F)));
    }
  }

  bool parse_number(JsonValue& out) {
    const size_t start = at_;
    while (at_ < text_.size() &&
           (std::isdigit(static_cast<unsigned char>(text_[at_])) || text_[at_] == '-' ||
            text_[at_] == '+' || text_[at_] == '.' || text_[at_] == 'e' || text_[at_] == 'E')) {
      ++at_;
    }
    if (start == at_) return fail("unexpected character");
    const std::string digits(text_.substr(start, at_ - start));
    char* end = nullptr;
    const double value = std::strtod(digits.c_str(), &end);
    if (end != digits.c_str() + digits.size()) return fail("bad number");
    out = JsonValue(value);
    return true;
  }

  bool literal(std::string_view word) {
    if (text_.substr(at_, word.size()) != word) return false;
    at_ += word.size();
    return true;
  }
  bool peek(char c) const { return at_ < text_.size() && text_[at_] == c; }
  void skip_space() {
    while (at_ < text_.size() &&
           (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n' || text_[at_] == '\r')) {
      ++at_;
    }
  }
  bool fail(const char* what) {
    if (error_.empty()) error_ = what;
    return false;
  }

  std::string_view text_;
  size_t at_ = 0;
  std::string error_;
};

}  // namespace

std::string JsonValue::to_text() const {
  if (is_string()) return as_string();
  if (is_bool()) return as_bool() ? "true" : "false";
  if (is_null()) return {};
  if (is_number()) {
    const double number = as_number();
    if (std::floor(number) == number && std::fabs(number) < 1e15) {
      return fmt::format("{}", static_cast<long long>(number));
    }
    return fmt::format("{}", number);
  }
  std::string out;
  append_json(out, *this);
  return out;
}

std::optional<JsonValue> parse_json(std::string_view text, std::string* error) {
  JsonValue value;
  if (!Parser(text).parse_document(value, error)) return std::nullopt;
  return value;
}

}  // namespace portcullis::test
