// The rejection log writer; see the header for the format and the threading rules.
// SECURITY: records carry peer-supplied bytes (HELO, addresses, recipients, upstream replies).
// json_string() escapes every byte that could end the line, break the JSON or reach a terminal
// as a control sequence; evidence values (pre-rendered JSON) are parsed before they are trusted
// as JSON. The file is opened O_APPEND|O_CLOEXEC with mode 0640 (the log names clients and
// senders, so it is not world-readable).
#include "rejection_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <system_error>

#include <fmt/format.h>

#include "json_reader.h"
#include "log_file_owner.h"
#include "log_sink.h"

namespace portcullis {
namespace {

constexpr char hex_digits[] = "0123456789ABCDEF";
constexpr mode_t log_file_mode = 0640;

void append_unicode_escape(std::string* out, unsigned char byte) {
  out->append("\\u00");
  out->push_back(hex_digits[byte >> 4]);
  out->push_back(hex_digits[byte & 0x0F]);
}

std::int64_t now_ms() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

// "2026-11-30T03:50:28.123Z"
std::string rfc3339_utc_ms(std::int64_t time_ms) {
  // Floor division, so times before 1970 still get a millisecond part in 0..999.
  std::int64_t seconds = time_ms / 1000;
  std::int64_t millis = time_ms % 1000;
  if (millis < 0) {
    millis += 1000;
    seconds -= 1;
  }
  const auto time = static_cast<time_t>(seconds);
  tm utc{};
  ::gmtime_r(&time, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
}

std::string json_string_or_null(std::string_view text) {
  return text.empty() ? std::string("null") : json_string(text);
}

// The evidence values are rendered by the caller; a caller bug must not break the one-line,
// valid-JSON promise, so a value that is not single-line JSON is logged as a string.
std::string evidence_value(const std::string& rendered) {
  for (const char c : rendered) {
    if (static_cast<unsigned char>(c) < 0x20) return json_string(rendered);
  }
  if (!parse_json(rendered).has_value()) return json_string(rendered);
  return rendered;
}

std::string error_text(int error_number) {
  return std::error_code(error_number, std::generic_category()).message();
}

int open_log_file(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, log_file_mode);
}

// 0 on success, else the errno of the failed write.
int write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t written = ::write(fd, data.data(), data.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data.remove_prefix(static_cast<std::size_t>(written));
  }
  return 0;
}

}  // namespace

std::string json_string(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() + 2);
  out.push_back('"');
  std::size_t i = 0;
  while (i < bytes.size()) {
    const auto byte = static_cast<unsigned char>(bytes[i]);
    if (byte >= 0x20 && byte < 0x7F) {
      if (byte == '"' || byte == '\\') out.push_back('\\');
      out.push_back(static_cast<char>(byte));
      ++i;
      continue;
    }
    if (byte == '\n' || byte == '\r' || byte == '\t') {
      out.push_back('\\');
      out.push_back(byte == '\n' ? 'n' : byte == '\r' ? 'r' : 't');
      ++i;
      continue;
    }
    const std::size_t length = byte >= 0x80 ? utf8_sequence_length(bytes.substr(i)) : 0;
    if (length == 2 && byte == 0xC2 && static_cast<unsigned char>(bytes[i + 1]) < 0xA0) {
      // C1 controls (U+0080..U+009F) are valid JSON but some terminals obey them (CSI is
      // U+009B); the escape keeps the same code point, so nothing is lost.
      append_unicode_escape(&out, static_cast<unsigned char>(bytes[i + 1]));
      i += 2;
      continue;
    }
    if (length > 0) {
      out.append(bytes.substr(i, length));
      i += length;
      continue;
    }
    // Other controls, DEL, and bytes that are not UTF-8 (shown as their Latin-1 code point).
    append_unicode_escape(&out, byte);
    ++i;
  }
  out.push_back('"');
  return out;
}

std::string format_rejection(const RejectionRecord& record) {
  std::string rcpts = "[";
  for (std::size_t i = 0; i < record.rcpts.size(); ++i) {
    if (i > 0) rcpts.push_back(',');
    rcpts += json_string(record.rcpts[i]);
  }
  rcpts.push_back(']');

  std::string evidence = "{";
  for (std::size_t i = 0; i < record.evidence.size(); ++i) {
    if (i > 0) evidence.push_back(',');
    evidence += json_string(record.evidence[i].first);
    evidence.push_back(':');
    evidence += evidence_value(record.evidence[i].second);
  }
  evidence.push_back('}');

  std::string line = fmt::format(
      "{{\"ts\":{},\"session\":{},\"client_ip\":{},\"client_port\":{},\"client_name\":{},"
      "\"helo\":{},\"tls\":{},\"sender\":{},\"rcpts\":{},\"phase\":{},\"rule\":{},\"mode\":{},"
      "\"action\":{},\"reply\":{},\"source\":{},\"queue_id\":{},\"evidence\":{}",
      json_string(rfc3339_utc_ms(record.time_ms != 0 ? record.time_ms : now_ms())), record.session,
      json_string(record.client_ip), record.client_port, json_string_or_null(record.client_name),
      json_string_or_null(record.helo), record.tls ? "true" : "false",
      record.sender ? json_string(*record.sender) : std::string("null"), rcpts,
      json_string(record.phase), json_string_or_null(record.rule), json_string(record.mode),
      json_string(record.action), json_string(record.reply), json_string(record.source),
      json_string_or_null(record.queue_id), evidence);
  if (!record.decided_at.empty()) line += ",\"decided_at\":" + json_string(record.decided_at);
  if (!record.failed_filter.empty()) {
    line += ",\"failed_filter\":" + json_string(record.failed_filter);
  }
  line.push_back('}');
  return line;
}

std::unique_ptr<RejectionLog> RejectionLog::open(const std::string& path, std::string* error) {
  const int fd = open_log_file(path);
  if (fd < 0) {
    if (error != nullptr) {
      *error = fmt::format("cannot open rejection log {}: {}", path, error_text(errno));
    }
    return nullptr;
  }
  return std::make_unique<RejectionLog>(OpenTag{}, path, fd);
}

RejectionLog::~RejectionLog() {
  if (fd_ >= 0) ::close(fd_);
}

void RejectionLog::write(const RejectionRecord& record) {
  std::string line = format_rejection(record);
  line.push_back('\n');
  int failure = 0;
  bool first_failure = false;
  {
    std::lock_guard lock(mutex_);
    failure = write_all(fd_, line);
    first_failure = failure != 0 && !write_failing_;
    write_failing_ = failure != 0;
  }
  // Reported outside the lock, and only when writing starts to fail, so a full disk does not
  // turn every refused message into a main-log line as well.
  if (first_failure) {
    log_error("rejection_log_write_failed",
              {{"path", path_}, {"error", error_text(failure)}, {"note", "records are lost"}});
  }
}

bool RejectionLog::give_to(uid_t uid, gid_t gid, std::string* error) {
  std::lock_guard lock(mutex_);
  return give_log_file_to(fd_, path_, uid, gid, error);
}

bool RejectionLog::reopen(std::string* error) {
  const int fd = open_log_file(path_);
  if (fd < 0) {
    if (error != nullptr) {
      *error = fmt::format("cannot reopen rejection log {}: {}", path_, error_text(errno));
    }
    return false;
  }
  int old_fd = -1;
  {
    std::lock_guard lock(mutex_);
    old_fd = fd_;
    fd_ = fd;
  }
  // A line is written under the lock, so it is complete in the old file before the swap.
  ::close(old_fd);
  return true;
}

}  // namespace portcullis
