// A small strict JSON reader (RFC 8259) for `portcullis report` and the rejection-log tests:
// objects, arrays, strings with every escape (surrogate pairs joined), numbers, true, false,
// null. It accepts exactly the RFC grammar and nothing more: no comments, no trailing commas,
// no single quotes, no byte order mark, no leading zeros, no lone surrogates, no raw control
// characters or invalid UTF-8 inside strings, no duplicate member names, nothing but
// whitespace after the value.
// SECURITY: the input is untrusted (log files can hold peer-supplied bytes). Nesting is limited
// to max_json_depth so recursion is bounded; the input size is bounded by the caller (the
// report reads lines of at most 1 MiB); every read is checked against the end of the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace portcullis {

// Arrays and objects nested deeper than this are refused ("[[1]]" has depth 2).
inline constexpr std::size_t max_json_depth = 64;

class JsonValue {
 public:
  struct Member;
  using Array = std::vector<JsonValue>;
  using Object = std::vector<Member>;  // document order; names are unique

  JsonValue() = default;  // null
  explicit JsonValue(bool value) : value_(value) {}
  explicit JsonValue(double value) : value_(value) {}
  explicit JsonValue(std::string value) : value_(std::move(value)) {}
  explicit JsonValue(Array value) : value_(std::move(value)) {}
  explicit JsonValue(Object value) : value_(std::move(value)) {}

  bool is_null() const { return std::holds_alternative<std::monostate>(value_); }
  bool is_bool() const { return std::holds_alternative<bool>(value_); }
  bool is_number() const { return std::holds_alternative<double>(value_); }
  bool is_string() const { return std::holds_alternative<std::string>(value_); }
  bool is_array() const { return std::holds_alternative<Array>(value_); }
  bool is_object() const { return std::holds_alternative<Object>(value_); }

  // Each throws std::bad_variant_access when the value has another type.
  bool as_bool() const { return std::get<bool>(value_); }
  double as_number() const { return std::get<double>(value_); }
  const std::string& as_string() const { return std::get<std::string>(value_); }
  const Array& as_array() const { return std::get<Array>(value_); }
  const Object& as_object() const { return std::get<Object>(value_); }

  // A number that is a whole value exactly representable as int64; nullopt otherwise.
  std::optional<std::int64_t> as_integer() const;
  // The member `name` of an object; nullptr when absent or when this is not an object.
  const JsonValue* find(std::string_view name) const;
  // The member `name` when it is a string; nullptr otherwise (absent, null, another type).
  const std::string* find_string(std::string_view name) const;

 private:
  std::variant<std::monostate, bool, double, std::string, Array, Object> value_;
};

struct JsonValue::Member {
  std::string name;
  JsonValue value;
};

// Parses one JSON text (surrounding whitespace allowed). On failure returns nullopt and, when
// `error` is given, sets it to "offset N: what was wrong" (N counts bytes from 0).
std::optional<JsonValue> parse_json(std::string_view text, std::string* error = nullptr);

// The length (1-4) of the well-formed UTF-8 sequence at the start of `bytes` (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), or 0 when it does not start with
// one. Shared with the rejection-log writer, which escapes what this refuses.
std::size_t utf8_sequence_length(std::string_view bytes);

}  // namespace portcullis
