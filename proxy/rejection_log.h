// The rejection log (DESIGN §6): JSON Lines, one object per decision that is not a plain
// accept (and, with [log] all_transactions, one per delivered message). Field names are fixed:
//   ts (RFC 3339 UTC with milliseconds), session, client_ip, client_port, client_name, helo,
//   tls, sender, rcpts, phase, rule, mode, action, reply, source ("policy" | "upstream"),
//   queue_id, evidence
// plus decided_at (the phase a delayed refusal was decided in) and failed_filter when set.
//
// Thread-safe; each line is written with one write(2) to a file opened O_APPEND, so lines from
// different workers never interleave. SIGUSR1 → reopen() (log rotation).
// SECURITY: every string can come from a peer (HELO, addresses, upstream replies): the JSON
// writer escapes control characters, quotes and backslashes, and bytes that are not valid UTF-8
// become \u00XX, so one record is always exactly one line of valid JSON.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace portcullis {

struct RejectionRecord {
  std::int64_t time_ms = 0;  // since the epoch; 0 = now
  std::uint64_t session = 0;
  std::string client_ip;
  unsigned client_port = 0;
  std::string client_name;  // "" → null
  std::string helo;         // "" → null
  bool tls = false;
  std::optional<std::string> sender;  // nullopt → null (no MAIL yet); "" is the null sender
  std::vector<std::string> rcpts;     // accepted so far (plus the refused one at rcpt)
  std::string phase;                  // connect | helo | mail | rcpt | data
  std::string rule;                   // "" → null (upstream, filter failure, delivered)
  std::string mode = "enforce";       // enforce | observe
  std::string action;                 // reject | tempfail | disconnect | tag | accept | delivered
  std::string reply;  // the reply as sent, "550 5.7.1 text" (multi-line: joined by "\n")
  std::string source = "policy";  // policy | upstream
  std::string queue_id;           // "" → null
  // fact → value already rendered as a JSON value (true, 3, "text", ["a","b"]).
  std::vector<std::pair<std::string, std::string>> evidence;
  std::string decided_at;     // "" → omitted
  std::string failed_filter;  // "" → omitted
};

// A JSON string literal (with quotes) for arbitrary bytes: see SECURITY above.
std::string json_string(std::string_view bytes);

// One record as a JSON object, no newline.
std::string format_rejection(const RejectionRecord& record);

class RejectionLog {
 public:
  // Opens (creates 0640) `path` for appending; nullptr and *error on failure.
  static std::unique_ptr<RejectionLog> open(const std::string& path, std::string* error);
  ~RejectionLog();

  void write(const RejectionRecord& record);
  bool reopen(std::string* error);
  const std::string& path() const { return path_; }

 private:
  explicit RejectionLog(std::string path) : path_(std::move(path)) {}
  std::string path_;
  int fd_ = -1;
  std::mutex mutex_;
};

}  // namespace portcullis
