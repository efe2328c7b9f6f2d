#include "store_command.h"

#include <sys/stat.h>

#include <fmt/format.h>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string_view>
#include <vector>

#include "config.h"
#include "lmdb_database.h"
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

// Waits for the writer's replies to the deletes handed to it.
class DeleteReplies {
 public:
  std::function<void(StoreReply)> reply_function() {
    {
      std::lock_guard lock(mutex_);
      ++expected_;
    }
    return [this](StoreReply reply) {
      std::lock_guard lock(mutex_);
      if (reply.status == StoreStatus::ok) {
        ++deleted_;
      } else if (first_error_.empty()) {
        first_error_ = reply.error.empty() ? "the store refused the delete" : reply.error;
      }
      ++received_;
      done_.notify_all();
    };
  }

  // The number deleted; *error set to the first failure's reason.
  std::size_t wait(std::string* error) {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return received_ == expected_; });
    *error = first_error_;
    return deleted_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  std::size_t expected_ = 0;
  std::size_t received_ = 0;
  std::size_t deleted_ = 0;
  std::string first_error_;
};

int list_entries(LmdbDatabase& database, const StoreCommandOptions& options, std::ostream& out,
                 std::ostream& err) {
  const StoreListing listing = database.list(options.prefix, options.limit);
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

int show_entry(LmdbDatabase& database, const StoreCommandOptions& options, std::ostream& out,
               std::ostream& err) {
  const StoreReply reply = database.read(options.key);
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

int delete_entries(LmdbDatabase& database, const StoreCommandOptions& options, std::ostream& out,
                   std::ostream& err) {
  std::vector<std::string> keys;
  if (!options.key.empty()) {
    const StoreReply reply = database.read(options.key);
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
    const StoreListing listing = database.list(options.prefix, options.limit);
    if (listing.status != StoreStatus::ok) {
      err << fmt::format("portcullis store: cannot list the store: {}\n", listing.error);
      return 1;
    }
    for (const auto& entry : listing.entries)
      keys.push_back(entry.key);
  }
  DeleteReplies replies;
  for (const auto& key : keys)
    database.submit({key, StoreTransform{}, replies.reply_function()});
  std::string error;
  const std::size_t deleted = replies.wait(&error);
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
int pass_triplet(LmdbDatabase& database, const StoreCommandOptions& options, std::ostream& out,
                 std::ostream& err) {
  if (!options.key.starts_with("gl:")) {
    err << fmt::format("portcullis store: pass takes a greylist triplet key (gl:...), not {}\n",
                       printable_key(options.key));
    return 1;
  }
  std::mutex mutex;
  std::condition_variable done;
  std::optional<StoreReply> answer;
  database.submit({options.key,
                   [](const std::optional<StoreRecord>& current, StoreClock::time_point) {
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
                   },
                   [&](StoreReply reply) {
                     std::lock_guard lock(mutex);
                     answer = std::move(reply);
                     done.notify_all();
                   }});
  std::unique_lock lock(mutex);
  done.wait(lock, [&] { return answer.has_value(); });
  if (answer->status != StoreStatus::ok) {
    err << fmt::format("portcullis store: cannot update {}: {}\n", printable_key(options.key),
                       answer->error);
    return 1;
  }
  if (answer->result == "absent") {
    err << fmt::format("portcullis store: no such key: {}\n", printable_key(options.key));
    return 1;
  }
  if (answer->result == "unreadable") {
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
  if (config.store.backend != StoreBackend::lmdb) {
    err << "portcullis store: [store] backend \"redis\" is not supported by this command yet\n";
    return 1;
  }
  const std::string path = lmdb_store_path(config.server);
  // Opening creates a missing file; one made here (perhaps as root) would not be the file
  // `run` expects to own, so a missing store is reported instead.
  struct stat file_status {};
  if (::stat(path.c_str(), &file_status) != 0) {
    err << fmt::format(
        "portcullis store: no store at {}: nothing has been stored yet (`portcullis run` "
        "creates it)\n",
        path);
    return 1;
  }
  LmdbDatabaseOptions database_options;
  database_options.path = path;
  database_options.map_size = config.store.lmdb_map_size;
  // No sweep from here: list and show write nothing; the running proxy sweeps.
  database_options.sweep_interval = std::chrono::hours(24 * 365);
  std::string error;
  std::unique_ptr<LmdbDatabase> database = LmdbDatabase::open(std::move(database_options), &error);
  if (!database) {
    err << fmt::format("portcullis store: cannot open the store {}: {}\n", path, error);
    return 1;
  }
  if (options.action == "list") return list_entries(*database, options, out, err);
  if (options.action == "show") return show_entry(*database, options, out, err);
  if (options.action == "pass") return pass_triplet(*database, options, out, err);
  return delete_entries(*database, options, out, err);
}

}  // namespace portcullis
