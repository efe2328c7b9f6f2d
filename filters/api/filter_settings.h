// A [filter.NAME] block as the config loader hands it to the registry: TOML-free, so that
// filters do not depend on the config format, and with each value's place in the file, so that
// a filter's validation errors still name file:line:column.
//
// `timeout` and `failure_mode` are read by the config loader (the runner owns them) and are not
// part of the settings a filter sees.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace portcullis {

struct SettingValue;
using SettingArray = std::vector<SettingValue>;
using SettingTable = std::vector<std::pair<std::string, SettingValue>>;  // in file order

struct SettingValue {
  // TOML floats and dates are not used by any filter; the loader reports them as errors.
  std::variant<bool, std::int64_t, std::string, SettingArray, SettingTable> value;
  unsigned line = 0;  // 0: unknown
  unsigned column = 0;
};

// A filter's validation error: `key` is relative to the block ("wait_ms", "list[1].zone");
// `line`/`column` are taken from the offending SettingValue (0 = the block itself).
struct SettingError {
  std::string key;
  std::string message;
  unsigned line = 0;
  unsigned column = 0;
};

// Typed access with errors collected, for factories' validation.
class SettingsReader {
 public:
  SettingsReader(const SettingTable& table, std::vector<SettingError>& errors,
                 std::string key_prefix = "")
      : table_(table), errors_(errors), prefix_(std::move(key_prefix)) {}

  const SettingValue* find(std::string_view key) const;

  // Each returns `fallback` when the key is absent; a present value of the wrong type, or out of
  // [min, max], is an error (and `fallback` is returned).
  bool boolean(std::string_view key, bool fallback);
  std::int64_t integer(std::string_view key, std::int64_t fallback, std::int64_t min,
                       std::int64_t max);
  std::string string(std::string_view key, std::string fallback);
  std::vector<std::string> strings(std::string_view key, std::vector<std::string> fallback);

  // Every key not in `known` is an error ("unknown key"). Call after reading.
  void reject_unknown(const std::vector<std::string_view>& known);

  void error(std::string_view key, std::string message, const SettingValue* at = nullptr);

 private:
  const SettingTable& table_;
  std::vector<SettingError>& errors_;
  std::string prefix_;
};

}  // namespace portcullis
