// A small JSON reader for the proxy's JSON log lines (one object per line).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace portcullis::test {

class JsonValue {
 public:
  using Array = std::vector<JsonValue>;
  using Object = std::map<std::string, JsonValue>;

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

  bool as_bool() const { return std::get<bool>(value_); }
  double as_number() const { return std::get<double>(value_); }
  const std::string& as_string() const { return std::get<std::string>(value_); }
  const Array& as_array() const { return std::get<Array>(value_); }
  const Object& as_object() const { return std::get<Object>(value_); }

  // The member `key` of an object; nullptr when absent or not an object.
  const JsonValue* find(const std::string& key) const;
  // Strings as they are, numbers without a trailing ".0", true/false, null as "";
  // arrays and objects as compact JSON.
  std::string to_text() const;

 private:
  std::variant<std::monostate, bool, double, std::string, Array, Object> value_;
};

// Parses one JSON text. SECURITY: nesting is limited to 64 levels; the input is the program
// under test's log line.
std::optional<JsonValue> parse_json(std::string_view text, std::string* error = nullptr);

}  // namespace portcullis::test
