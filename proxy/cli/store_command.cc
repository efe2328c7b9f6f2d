#include "store_command.h"

#include <fmt/format.h>
#include <charconv>
#include <chrono>
#include <ctime>
#include <memory>
#include <optional>
#include <ostream>
#include <string_view>
#include <vector>

#include "blocking_store.h"
#include "config.h"
#include "rejection_log.h"

namespace portcullis {

namespace {

// One decoded part of a record: its name, as text and as a JSON value.
struct RecordField {
  std::string name;
  std::string text;
  std::string json;
};

struct RecordDescription {
  // "greylist", "greylist-auto-allow", "rate", "concurrent", "pass-cache" or "unknown"
  std::string kind;
  std::vector<RecordField> fields;
};

std::string rfc3339_utc(std::int64_t seconds_since_epoch) {
  const auto time = static_cast<time_t>(seconds_since_epoch);
  tm utc{};
  ::gmtime_r(&time, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", utc.tm_year + 1900, utc.tm_mon + 1,
                     utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
}

std::string rfc3339_utc(StoreClock::time_point when) {
  return rfc3339_utc(std::chrono::floor<std::chrono::seconds>(when.time_since_epoch()).count());
}

std::optional<std::int64_t> parse_count(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

RecordField time_field(std::string name, std::int64_t seconds) {
  const std::string text = rfc3339_utc(seconds);
  return {std::move(name), text, json_string(text)};
}

RecordField count_field(std::string name, std::int64_t count) {
  return {std::move(name), std::to_string(count), std::to_string(count)};
}

// The records are the filters' (the proxy may not include their headers, docs/design.md):
//   gl:NET:SENDER:RCPT  "v1 FIRST_SEEN_MS PASSED"  filters/greylist/greylist_state.cc
//   gla:NET             "COUNT"                    the same file (auto_allow_after)
//   rl:NAME:VALUE       "gcra1 TAT_NS" (a rate) or "conc1 OPEN" (concurrent),
//                       filters/ratelimit/rate_transforms.cc
//   pass:FILTER:IP      "1": the pass cache (a client that passed pregreet is not delayed
//                       again until the record expires), filters/pregreet/pregreet_filter.cc
// A record in another form is shown as "unknown", with its raw value only.
RecordDescription describe(const StoreEntry& entry) {
  const std::string_view key = entry.key;
  const std::string_view value = entry.record.value;
  if (key.starts_with("gl:") && value.starts_with("v1 ")) {
    const auto space = value.find(' ', 3);
    if (space != std::string_view::npos) {
      const auto first_seen_ms = parse_count(value.substr(3, space - 3));
      const std::string_view passed = value.substr(space + 1);
      if (first_seen_ms && (passed == "0" || passed == "1")) {
        return {"greylist",
                {time_field("first_seen", *first_seen_ms / 1000),
                 {"passed", passed == "1" ? "yes" : "no", passed == "1" ? "true" : "false"}}};
      }
    }
  }
  if (key.starts_with("gla:")) {
    if (const auto count = parse_count(value)) {
      return {"greylist-auto-allow", {count_field("passed_triplets", *count)}};
    }
  }
  if (key.starts_with("rl:")) {
    if (value.starts_with("gcra1 ")) {
      if (const auto tat_ns = parse_count(value.substr(6))) {
        // The count in the window needs the limit's `per`, which the record does not hold;
        // the theoretical arrival time is when the counter is empty again.
        return {"rate", {time_field("empty_at", *tat_ns / 1'000'000'000)}};
      }
    }
    if (value.starts_with("conc1 ")) {
      if (const auto open = parse_count(value.substr(6))) {
        return {"concurrent", {count_field("open_sessions", *open)}};
      }
    }
  }
  if (key.starts_with("pass:") && value == "1") return {"pass-cache", {}};
  return {"unknown", {}};
}

// Keys are printable ASCII when store_key() made them; anything else is shown quoted and
// escaped, so that a damaged file cannot reach the terminal.
std::string printable_key(const std::string& key) {
  for (const char c : key) {
    if (c <= ' ' || c > '~' || c == '"') return json_string(key);
  }
  return key;
}

void print_entry_text(const StoreEntry& entry, std::ostream& out) {
  const RecordDescription description = describe(entry);
  std::string line = fmt::format("{} {}", printable_key(entry.key), description.kind);
  for (const auto& field : description.fields)
    line += fmt::format(" {}={}", field.name, field.text);
  line += fmt::format(" expires={} value={}\n", rfc3339_utc(entry.record.expires),
                      json_string(entry.record.value));
  out << line;
}

std::string entry_json(const StoreEntry& entry) {
  const RecordDescription description = describe(entry);
  std::string json = fmt::format("{{\"key\":{},\"kind\":{}", json_string(entry.key),
                                 json_string(description.kind));
  for (const auto& field : description.fields)
    json += fmt::format(",{}:{}", json_string(field.name), field.json);
  json +=
      fmt::format(",\"expires\":{},\"value\":{}}}", json_string(rfc3339_utc(entry.record.expires)),
                  json_string(entry.record.value));
  return json;
}

int list_entries(BlockingStore& store, const StoreCommandOptions& options, std::ostream& out,
                 std::ostream& err) {
  const StoreListing listing = store.list(options.prefix, options.limit);
  if (listing.status != StoreStatus::ok) {
    err << fmt::format("portcullis store: cannot list the store: {}\n", listing.error);
    return 1;
  }
  if (options.json) {
    std::string json = "[";
    for (const auto& entry : listing.entries) {
      if (json.size() > 1) json += ",";
      json += entry_json(entry);
    }
    out << json << "]\n";
    return 0;
  }
  for (const auto& entry : listing.entries)
    print_entry_text(entry, out);
  if (listing.entries.size() == options.limit) {
    err << fmt::format("portcullis store: stopped at --limit {}; there may be more\n",
                       options.limit);
  }
  return 0;
}

int show_entry(BlockingStore& store, const StoreCommandOptions& options, std::ostream& out,
               std::ostream& err) {
  const StoreReply reply = store.get(options.key);
  if (reply.status != StoreStatus::ok) {
    err << fmt::format("portcullis store: cannot read {}: {}\n", printable_key(options.key),
                       reply.error);
    return 1;
  }
  if (!reply.record) {
    err << fmt::format("portcullis store: no such key: {}\n", printable_key(options.key));
    return 1;
  }
  const StoreEntry entry{options.key, *reply.record};
  if (options.json) {
    out << entry_json(entry) << "\n";
  } else {
    print_entry_text(entry, out);
  }
  return 0;
}

int delete_entries(BlockingStore& store, const StoreCommandOptions& options, std::ostream& out,
                   std::ostream& err) {
  std::vector<std::string> keys;
  if (!options.key.empty()) {
    const StoreReply reply = store.get(options.key);
    if (reply.status != StoreStatus::ok) {
      err << fmt::format("portcullis store: cannot read {}: {}\n", printable_key(options.key),
                         reply.error);
      return 1;
    }
    if (!reply.record) {
      err << fmt::format("portcullis store: no such key: {}\n", printable_key(options.key));
      return 1;
    }
    keys.push_back(options.key);
  } else {
    const StoreListing listing = store.list(options.prefix, options.limit);
    if (listing.status != StoreStatus::ok) {
      err << fmt::format("portcullis store: cannot list the store: {}\n", listing.error);
      return 1;
    }
    for (const auto& entry : listing.entries)
      keys.push_back(entry.key);
  }
  std::size_t deleted = 0;
  std::string error;
  for (const StoreReply& reply : store.remove(keys)) {
    if (reply.status == StoreStatus::ok) {
      ++deleted;
    } else if (error.empty()) {
      error = reply.error.empty() ? "the store refused the delete" : reply.error;
    }
  }
  if (!error.empty()) {
    err << fmt::format("portcullis store: deleted {} of {}: {}\n", deleted, keys.size(), error);
    return 1;
  }
  if (!options.key.empty()) {
    out << fmt::format("deleted {}\n", printable_key(options.key));
  } else {
    out << fmt::format("deleted {} entr{} with prefix {}\n", deleted, deleted == 1 ? "y" : "ies",
                       printable_key(options.prefix));
    if (deleted == options.limit) {
      out << fmt::format("stopped at --limit {}; run it again to delete more\n", options.limit);
    }
  }
  return 0;
}

// A greylist triplet marked as passed, so that the sender's next retry is delivered without
// waiting for the delay (deleting it would make the triplet new again). The record keeps its
// expiry; the filter renews it for `lifetime` at the delivery. The change is one atomic update:
// a record that is not a readable triplet, or that went away, is left alone.
int pass_triplet(BlockingStore& store, const StoreCommandOptions& options, std::ostream& out,
                 std::ostream& err) {
  if (!options.key.starts_with("gl:")) {
    err << fmt::format("portcullis store: pass takes a greylist triplet key (gl:...), not {}\n",
                       printable_key(options.key));
    return 1;
  }
  const StoreReply answer = store.update(
      options.key, [](const std::optional<StoreRecord>& current, StoreClock::time_point) {
        if (!current) return StoreChange{std::nullopt, "absent"};
        const std::string& value = current->value;
        const auto space = value.rfind(' ');
        if (!value.starts_with("v1 ") || space <= 2 ||
            !parse_count(std::string_view(value).substr(3, space - 3)) ||
            (value.substr(space + 1) != "0" && value.substr(space + 1) != "1")) {
          return StoreChange{current, "unreadable"};
        }
        StoreRecord passed{value.substr(0, space) + " 1", current->expires};
        return StoreChange{std::move(passed), "passed"};
      });
  if (answer.status != StoreStatus::ok) {
    err << fmt::format("portcullis store: cannot update {}: {}\n", printable_key(options.key),
                       answer.error);
    return 1;
  }
  if (answer.result == "absent") {
    err << fmt::format("portcullis store: no such key: {}\n", printable_key(options.key));
    return 1;
  }
  if (answer.result == "unreadable") {
    err << fmt::format("portcullis store: {} is not a greylist triplet record; left as it was\n",
                       printable_key(options.key));
    return 1;
  }
  out << fmt::format("passed {}\n", printable_key(options.key));
  return 0;
}

// The argument problem, or "" when the options make sense.
std::string argument_problem(const StoreCommandOptions& options) {
  if (options.action != "list" && options.action != "show" && options.action != "delete" &&
      options.action != "pass") {
    return fmt::format("unknown action '{}': list, show, delete or pass", options.action);
  }
  if (options.limit == 0) return "--limit must be at least 1";
  if (options.action == "list") {
    if (!options.key.empty()) return "list takes no key (use --prefix)";
  } else if (options.action == "show" || options.action == "pass") {
    if (options.key.empty()) return options.action + " needs a KEY";
    if (options.prefix_given) return options.action + " takes a KEY, not --prefix";
    if (options.action == "pass" && options.json) return "pass has no --json output";
  } else {
    if (options.key.empty() == !options.prefix_given) return "delete needs a KEY or --prefix P";
    if (options.prefix_given && options.prefix.empty()) {
      return "delete --prefix needs a non-empty prefix";
    }
    if (options.json) return "delete has no --json output";
  }
  return "";
}

}  // namespace

int run_store(const StoreCommandOptions& options, std::ostream& out, std::ostream& err) {
  if (const std::string problem = argument_problem(options); !problem.empty()) {
    err << "portcullis store: " << problem << "\n";
    return 2;
  }
  ConfigResult result = load_config(options.config_path);
  for (const auto& message : result.errors)
    err << "error: " << message.to_string() << "\n";
  if (!result.config) {
    err << fmt::format("{}: {} error(s)\n", options.config_path, result.errors.size());
    return 1;
  }
  const Config& config = *result.config;
  std::string error;
  std::unique_ptr<BlockingStore> store = BlockingStore::open(config, &error);
  if (!store) {
    err << fmt::format("portcullis store: {}\n", error);
    return 1;
  }
  if (options.action == "list") return list_entries(*store, options, out, err);
  if (options.action == "show") return show_entry(*store, options, out, err);
  if (options.action == "pass") return pass_triplet(*store, options, out, err);
  return delete_entries(*store, options, out, err);
}

}  // namespace portcullis
