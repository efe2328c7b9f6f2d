// SECURITY: log lines carry peer-supplied strings (HELO names, addresses, replies). Fields
// marked `peer` go through escape_peer (printable ASCII only, bounded length); every other
// value has its control bytes escaped too, so no input can start a new log line or break the
// JSON.
#include "log_sink.h"

#include "callback_guard.h"
#include "log_file_owner.h"

#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

namespace portcullis {
namespace {

constexpr char hex_digits[] = "0123456789ABCDEF";
constexpr std::string_view stderr_target = "stderr";
constexpr std::string_view syslog_target = "syslog";
constexpr std::string_view capture_target = "(capture)";

std::string timestamp_now() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  tm utc{};
  ::gmtime_r(&now.tv_sec, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                     now.tv_nsec / 1000000);
}

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::info:
      return "info";
    case LogLevel::warning:
      return "warning";
    case LogLevel::error:
      return "error";
  }
  return "info";
}

int syslog_priority(LogLevel level) {
  switch (level) {
    case LogLevel::info:
      return LOG_INFO;
    case LogLevel::warning:
      return LOG_WARNING;
    case LogLevel::error:
      return LOG_ERR;
  }
  return LOG_INFO;
}

void append_hex_escape(std::string* out, unsigned char byte) {
  out->append("\\x");
  out->push_back(hex_digits[byte >> 4]);
  out->push_back(hex_digits[byte & 0x0F]);
}

// Our own values (config paths, error texts) may hold UTF-8 but must not hold line ends.
std::string escape_controls(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7F) {
      append_hex_escape(&out, byte);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Length of the well-formed UTF-8 sequence starting at text[0] (RFC 3629), 0 if it is not one.
size_t utf8_sequence_length(std::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const auto continuation = [&](size_t i, unsigned char low = 0x80, unsigned char high = 0xBF) {
    return i < text.size() && byte(i) >= low && byte(i) <= high;
  };
  const unsigned char lead = byte(0);
  if (lead >= 0xC2 && lead <= 0xDF) return continuation(1) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    const unsigned char low = lead == 0xE0 ? 0xA0 : 0x80;   // no overlong forms
    const unsigned char high = lead == 0xED ? 0x9F : 0xBF;  // no surrogates
    return continuation(1, low, high) && continuation(2) ? 3 : 0;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    const unsigned char low = lead == 0xF0 ? 0x90 : 0x80;
    const unsigned char high = lead == 0xF4 ? 0x8F : 0xBF;  // nothing above U+10FFFF
    return continuation(1, low, high) && continuation(2) && continuation(3) ? 4 : 0;
  }
  return 0;
}

void append_json_string(std::string* out, std::string_view text) {
  out->push_back('"');
  size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte == '"' || byte == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(byte));
      ++i;
    } else if (byte >= 0x20 && byte < 0x7F) {
      out->push_back(static_cast<char>(byte));
      ++i;
    } else if (const size_t length = byte >= 0x80 ? utf8_sequence_length(text.substr(i)) : 0;
               length > 0) {
      out->append(text.substr(i, length));
      i += length;
    } else {
      // Control bytes, DEL, and bytes that are not UTF-8 (kept visible as their Latin-1 code
      // point, so the line stays valid JSON).
      out->append("\\u00");
      out->push_back(hex_digits[byte >> 4]);
      out->push_back(hex_digits[byte & 0x0F]);
      ++i;
    }
  }
  out->push_back('"');
}

void append_text_value(std::string* out, std::string_view value) {
  const bool needs_quotes = value.empty() || value.find_first_of(" \"=") != std::string_view::npos;
  if (!needs_quotes) {
    out->append(value);
    return;
  }
  out->push_back('"');
  for (const char c : value) {
    if (c == '"' || c == '\\') out->push_back('\\');
    out->push_back(c);
  }
  out->push_back('"');
}

// One write(2) per line keeps lines whole; the loop only finishes a rare short write.
void write_line(int fd, std::string_view line) {
  while (!line.empty()) {
    const ssize_t written = ::write(fd, line.data(), line.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere left to report a failing log
    }
    line.remove_prefix(static_cast<size_t>(written));
  }
}

int open_log_file(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

std::atomic<LogSink*> main_log_sink{nullptr};

}  // namespace

std::string escape_peer(std::string_view text, size_t max_bytes) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes) + 3);
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    const bool plain = byte >= 0x20 && byte < 0x7F && byte != '\\' && byte != '"';
    const size_t piece_size = plain ? 1 : 4;
    if (out.size() + piece_size > max_bytes) {
      out.append("...");
      break;
    }
    if (plain) {
      out.push_back(c);
    } else {
      append_hex_escape(&out, byte);
    }
  }
  return out;
}

LogSink::LogSink(ConstructionTag, std::string target, LogFormat format)
    : target_(std::move(target)), format_(format) {}

LogSink::~LogSink() {
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
  if (syslog_) ::closelog();
}

std::unique_ptr<LogSink> LogSink::open(const std::string& target, LogFormat format,
                                       std::string* error) {
  auto sink = std::make_unique<LogSink>(ConstructionTag{}, target, format);
  if (target == stderr_target) {
    sink->fd_ = STDERR_FILENO;
  } else if (target == syslog_target) {
    ::openlog("portcullis", LOG_PID | LOG_NDELAY, LOG_MAIL);
    sink->syslog_ = true;
  } else if (target.empty()) {
    if (error != nullptr) *error = "no log target given";
    return nullptr;
  } else {
    sink->fd_ = open_log_file(target);
    if (sink->fd_ < 0) {
      if (error != nullptr) {
        *error = "cannot open log file " + target + ": " + std::strerror(errno);
      }
      return nullptr;
    }
    sink->owns_fd_ = true;
  }
  return sink;
}

std::unique_ptr<LogSink> LogSink::capture(LogFormat format) {
  auto sink = std::make_unique<LogSink>(ConstructionTag{}, std::string(capture_target), format);
  sink->capturing_ = true;
  return sink;
}

std::vector<std::string> LogSink::captured() const {
  std::lock_guard lock(mutex_);
  return captured_;
}

std::string LogSink::format_message(LogLevel level, std::string_view event,
                                    const std::vector<LogField>& fields) const {
  std::string out;
  if (format_ == LogFormat::json) {
    out.append("{\"ts\":");
    append_json_string(&out, timestamp_now());
    out.append(",\"level\":");
    append_json_string(&out, level_name(level));
    out.append(",\"event\":");
    append_json_string(&out, event);
    for (const auto& field : fields) {
      out.push_back(',');
      append_json_string(&out, field.key);
      out.push_back(':');
      append_json_string(&out, field.peer ? escape_peer(field.value) : field.value);
    }
    out.push_back('}');
    return out;
  }
  out.append(level_name(level));
  out.append(": ");
  out.append(escape_controls(event));
  const char* separator = ": ";
  for (const auto& field : fields) {
    out.append(separator);
    separator = " ";
    out.append(escape_controls(field.key));
    out.push_back('=');
    append_text_value(&out, field.peer ? escape_peer(field.value) : escape_controls(field.value));
  }
  return out;
}

std::string LogSink::format_line(LogLevel level, std::string_view event,
                                 const std::vector<LogField>& fields) const {
  if (format_ == LogFormat::json) return format_message(level, event, fields);
  // The process id is read once (a system call per line otherwise); Portcullis never forks.
  static const std::string tag = " portcullis[" + std::to_string(::getpid()) + "]: ";
  return timestamp_now() + tag + format_message(level, event, fields);
}

void LogSink::write(LogLevel level, std::string_view event, const std::vector<LogField>& fields) {
  // Called from libevent callbacks: nothing may escape, and a lost log line is the lesser harm.
  try {
    if (syslog_) {
      // syslog adds its own time stamp, ident and pid.
      const std::string message = format_message(level, event, fields);
      ::syslog(syslog_priority(level), "%s", message.c_str());
      return;
    }
    std::string line = format_line(level, event, fields);
    if (capturing_) {  // set when made, never changed: readable without the lock
      std::unique_lock lock(mutex_);
      captured_.push_back(std::move(line));
      return;
    }
    line.push_back('\n');
    if (owns_fd_) {
      // A file opened with O_APPEND: the kernel appends each write(2) whole, so workers write
      // side by side; the shared lock only keeps reopen() from closing fd_ under a write.
      std::shared_lock lock(mutex_);
      write_line(fd_, line);
      return;
    }
    // stderr may be a pipe or a socket, where only the lock keeps lines whole.
    std::unique_lock lock(mutex_);
    write_line(fd_, line);
  } catch (...) {
  }
}

bool LogSink::give_to(uid_t uid, gid_t gid, std::string* error) {
  std::unique_lock lock(mutex_);
  if (!owns_fd_) return true;
  return give_log_file_to(fd_, target_, uid, gid, error);
}

bool LogSink::reopen(std::string* error) {
  if (!owns_fd_) return true;
  const int fd = open_log_file(target_);
  if (fd < 0) {
    if (error != nullptr)
      *error = "cannot reopen log file " + target_ + ": " + std::strerror(errno);
    return false;
  }
  std::unique_lock lock(mutex_);
  ::close(fd_);
  fd_ = fd;
  return true;
}

void set_main_log(LogSink* sink) {
  main_log_sink.store(sink);
  // The callback guard (net/) sits below this library; from now on its reports are log events.
  set_callback_failure_reporter([](const char* where, const char* what) noexcept {
    try {
      log_error("callback_failed", {{"callback", where}, {"error", what, true}});
    } catch (...) {
      // The log itself failed (out of memory): nothing better is left to do than go on.
    }
  });
}

LogSink& main_log() {
  if (LogSink* sink = main_log_sink.load()) return *sink;
  static const std::unique_ptr<LogSink> fallback =
      LogSink::open("stderr", LogFormat::text, nullptr);
  return *fallback;
}

}  // namespace portcullis
