#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config.h"

namespace portcullis {

enum class LogLevel { info, warning, error };

struct LogField {
  std::string key;
  std::string value;
  bool peer = false;  // supplied by a peer: escaped and truncated before it is written
};

// Makes a peer-supplied string safe for a log line: bytes outside printable ASCII (and '\\',
// '"') become \xHH, and the result is cut to `max_bytes` with "..." appended when cut.
std::string escape_peer(std::string_view text, size_t max_bytes = 256);

// The main log. Thread-safe; each event is written with one write(2), so lines from
// different workers never interleave (a file is opened O_APPEND and written without taking
// turns; stderr, which may be a pipe, one line at a time).
//   text: "2026-11-30T01:02:03.456Z portcullis[123]: warning: EVENT: key=value key=value"
//         (values with spaces are quoted)
//   json: {"ts":"…","level":"warning","event":"EVENT","key":"value",…}
class LogSink {
 public:
  // target: "stderr" | "syslog" | a file path (opened for append, created 0640).
  static std::unique_ptr<LogSink> open(const std::string& target, LogFormat format,
                                       std::string* error);
  ~LogSink();

  void write(LogLevel level, std::string_view event, const std::vector<LogField>& fields);
  // SIGUSR1: reopen a file target (no-op for stderr/syslog).
  bool reopen(std::string* error);
  // Before the privilege drop: a file target becomes uid:gid's (see log_file_owner.h); stderr
  // and syslog are left alone.
  bool give_to(uid_t uid, gid_t gid, std::string* error);

  // Tests: capture formatted lines instead of writing them.
  static std::unique_ptr<LogSink> capture(LogFormat format);
  std::vector<std::string> captured() const;

 private:
  // Only open() and capture() make one, yet make_unique needs a public constructor: this tag
  // is what keeps it private.
  struct ConstructionTag {
    explicit ConstructionTag() = default;
  };

 public:
  LogSink(ConstructionTag, std::string target, LogFormat format);

 private:
  std::string format_line(LogLevel level, std::string_view event,
                          const std::vector<LogField>& fields) const;
  // The line without the time stamp and "portcullis[pid]: " prefix (text), which syslog adds.
  std::string format_message(LogLevel level, std::string_view event,
                             const std::vector<LogField>& fields) const;

  std::string target_;
  LogFormat format_;
  int fd_ = -1;
  bool syslog_ = false;
  bool owns_fd_ = false;  // a file we opened (not stderr)
  bool capturing_ = false;
  mutable std::shared_mutex mutex_;
  std::vector<std::string> captured_;
};

// The process-wide main log (stderr/text until set). Not owned: the caller keeps the sink alive.
void set_main_log(LogSink* sink);
LogSink& main_log();

inline void log_info(std::string_view event, const std::vector<LogField>& fields = {}) {
  main_log().write(LogLevel::info, event, fields);
}
inline void log_warning(std::string_view event, const std::vector<LogField>& fields = {}) {
  main_log().write(LogLevel::warning, event, fields);
}
inline void log_error(std::string_view event, const std::vector<LogField>& fields = {}) {
  main_log().write(LogLevel::error, event, fields);
}

}  // namespace portcullis
