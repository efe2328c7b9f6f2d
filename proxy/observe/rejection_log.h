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
// become \u00XX, so one record is always exactly one line of valid JSON. Evidence values are
// checked to be single-line JSON; one that is not is written as a JSON string instead.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
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
  // reject | tempfail | disconnect | tag | accept; accept with source "upstream" and a
  // queue_id is a delivered message ([log] all_transactions)
  std::string action;
  std::string reply;  // the reply as sent, "550 5.7.1 text" (multi-line: joined by "\n")
  std::string source = "policy";  // policy | upstream
  std::string queue_id;           // "" → null
  // fact → value already rendered as a JSON value (true, 3, "text", ["a","b"]).
  std::vector<std::pair<std::string, std::string>> evidence;
  std::string decided_at;     // "" → omitted
  std::string failed_filter;  // "" → omitted
};

// A JSON string literal (with quotes) for arbitrary bytes: see SECURITY above. Escapes used:
// \" and \\ for quote and backslash; \n \r \t; \u00XX (upper-case hex) for the other C0
// controls, DEL and the C1 controls (U+0080-U+009F); \u00XX of the byte for every byte that
// does not start a well-formed UTF-8 sequence.
std::string json_string(std::string_view bytes);

// One record as a JSON object, no newline.
std::string format_rejection(const RejectionRecord& record);

class RejectionLog {
  // Only open() constructs (make_unique needs a public constructor; the tag keeps it private).
  struct OpenTag {
    explicit OpenTag() = default;
  };

 public:
  // Opens (creates 0640) `path` for appending; nullptr and *error on failure.
  static std::unique_ptr<RejectionLog> open(const std::string& path, std::string* error);
  RejectionLog(OpenTag, std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~RejectionLog();  // closes the file
  RejectionLog(const RejectionLog&) = delete;
  RejectionLog& operator=(const RejectionLog&) = delete;

  // One line with one write(2) under the mutex (EINTR and short writes retried). A failed
  // write is reported on the main log (once until a write succeeds again) and the record lost.
  void write(const RejectionRecord& record);
  // SIGUSR1 (log rotation, not from a signal handler: it takes the mutex): opens the path
  // again and swaps the new file in; every line goes wholly to the old or the new file. On
  // failure the old file stays in use and *error says why.
  bool reopen(std::string* error);
  // Before the privilege drop: the file becomes uid:gid's (see log_file_owner.h).
  bool give_to(uid_t uid, gid_t gid, std::string* error);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;  // owned: closed by reopen() (the old one) and the destructor
  bool write_failing_ = false;
  std::mutex mutex_;
};

}  // namespace portcullis
