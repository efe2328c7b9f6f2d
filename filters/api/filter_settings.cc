// SettingsReader: typed, range-checked access to a [filter.NAME] block.
//
// The values come from the operator's config file (trusted, but possibly wrong): every error
// names the key and the value's place, and a wrong value never reaches a filter (the caller
// gets `fallback` and the collected errors make the whole block fail).
#include "filter_settings.h"

#include <algorithm>

#include <fmt/format.h>

namespace portcullis {

namespace {

// The type words used in messages: "expected a bool, got a string".
std::string_view value_type_with_article(const SettingValue& value) {
  struct Namer {
    std::string_view operator()(bool) const { return "a bool"; }
    std::string_view operator()(std::int64_t) const { return "an integer"; }
    std::string_view operator()(const std::string&) const { return "a string"; }
    std::string_view operator()(const SettingArray&) const { return "an array"; }
    std::string_view operator()(const SettingTable&) const { return "a table"; }
  };
  return std::visit(Namer{}, value.value);
}

}  // namespace

const SettingValue* SettingsReader::find(std::string_view key) const {
  auto it = std::find_if(table_.begin(), table_.end(),
                         [&](const auto& entry) { return entry.first == key; });
  return it == table_.end() ? nullptr : &it->second;
}

bool SettingsReader::boolean(std::string_view key, bool fallback) {
  const SettingValue* value = find(key);
  if (value == nullptr) return fallback;
  if (const bool* flag = std::get_if<bool>(&value->value)) return *flag;
  error(key, fmt::format("expected a bool, got {}", value_type_with_article(*value)), value);
  return fallback;
}

std::int64_t SettingsReader::integer(std::string_view key, std::int64_t fallback, std::int64_t min,
                                     std::int64_t max) {
  const SettingValue* value = find(key);
  if (value == nullptr) return fallback;
  const std::string expected = fmt::format("expected an integer from {} to {}", min, max);
  const std::int64_t* number = std::get_if<std::int64_t>(&value->value);
  if (number == nullptr) {
    error(key, fmt::format("{}, got {}", expected, value_type_with_article(*value)), value);
    return fallback;
  }
  if (*number < min || *number > max) {
    error(key, fmt::format("{}, got {}", expected, *number), value);
    return fallback;
  }
  return *number;
}

std::string SettingsReader::string(std::string_view key, std::string fallback) {
  const SettingValue* value = find(key);
  if (value == nullptr) return fallback;
  if (const std::string* text = std::get_if<std::string>(&value->value)) return *text;
  error(key, fmt::format("expected a string, got {}", value_type_with_article(*value)), value);
  return fallback;
}

std::vector<std::string> SettingsReader::strings(std::string_view key,
                                                 std::vector<std::string> fallback) {
  const SettingValue* value = find(key);
  if (value == nullptr) return fallback;
  const SettingArray* array = std::get_if<SettingArray>(&value->value);
  if (array == nullptr) {
    error(key, fmt::format("expected an array of strings, got {}", value_type_with_article(*value)),
          value);
    return fallback;
  }
  std::vector<std::string> texts;
  bool all_strings = true;
  for (std::size_t index = 0; index < array->size(); ++index) {
    const SettingValue& element = (*array)[index];
    if (const std::string* text = std::get_if<std::string>(&element.value)) {
      texts.push_back(*text);
    } else {
      // Each bad element is reported on its own, with its own position.
      error(fmt::format("{}[{}]", key, index),
            fmt::format("expected a string, got {}", value_type_with_article(element)), &element);
      all_strings = false;
    }
  }
  return all_strings ? texts : fallback;
}

void SettingsReader::reject_unknown(const std::vector<std::string_view>& known) {
  std::string known_list;
  for (std::string_view name : known) {
    if (!known_list.empty()) known_list += ", ";
    known_list += name;
  }
  // timeout and failure_mode are taken out by the config loader before the filter sees the
  // block; naming them keeps a typo such as "timout" from looking like a missing feature.
  const std::string message =
      known.empty() ? std::string("unknown key (this filter takes only timeout and failure_mode)")
                    : fmt::format(
                          "unknown key (known keys: {}; every filter also takes timeout and "
                          "failure_mode)",
                          known_list);
  for (const auto& [name, value] : table_) {
    if (std::find(known.begin(), known.end(), name) == known.end()) error(name, message, &value);
  }
}

void SettingsReader::error(std::string_view key, std::string message, const SettingValue* at) {
  errors_.push_back(SettingError{prefix_ + std::string(key), std::move(message),
                                 at != nullptr ? at->line : 0u, at != nullptr ? at->column : 0u});
}

}  // namespace portcullis
