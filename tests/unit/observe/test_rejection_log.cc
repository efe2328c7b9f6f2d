// The rejection log writer (proxy/observe/rejection_log.h): exact lines for hand-built records
// (field order, types, nulls), hostile strings that must stay one valid JSON line, concurrent
// writers, and rotation by rename + reopen() without a lost or split line.
#define BOOST_TEST_MODULE rejection_log
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "json_reader.h"
#include "rejection_log.h"

namespace fs = std::filesystem;
using portcullis::format_rejection;
using portcullis::json_string;
using portcullis::JsonValue;
using portcullis::parse_json;
using portcullis::RejectionLog;
using portcullis::RejectionRecord;

namespace {

// 2026-11-30T03:50:28.123Z
constexpr std::int64_t sample_time_ms = 1796010628123;

// A private directory, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "rejlog-test-XXXXXX").string();
    BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Every line of a file, and whether the file ends with a newline (a torn write would not).
std::vector<std::string> read_lines(const fs::path& path, bool* ends_with_newline = nullptr) {
  std::ifstream in(path, std::ios::binary);
  BOOST_REQUIRE_MESSAGE(in, "cannot read " << path);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (ends_with_newline != nullptr) {
    *ends_with_newline = content.empty() || content.back() == '\n';
  }
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < content.size()) {
    const std::size_t end = content.find('\n', start);
    if (end == std::string::npos) {
      lines.push_back(content.substr(start));
      break;
    }
    lines.push_back(content.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

std::unique_ptr<RejectionLog> open_log(const fs::path& path) {
  std::string error;
  auto log = RejectionLog::open(path.string(), &error);
  BOOST_REQUIRE_MESSAGE(log != nullptr, error);
  return log;
}

RejectionRecord numbered_record(std::uint64_t session, std::size_t index) {
  RejectionRecord record;
  record.time_ms = sample_time_ms;
  record.session = session;
  record.client_ip = "198.51.100.9";
  record.client_port = static_cast<unsigned>(index);
  record.phase = "connect";
  record.rule = "dnsbl";
  record.action = "reject";
  // Long enough that a torn or interleaved write would be visible.
  record.reply = "554 5.7.1 " + std::string(300, 'x');
  return record;
}

}  // namespace

BOOST_AUTO_TEST_CASE(full_record_field_order_and_types) {
  RejectionRecord record;
  record.time_ms = sample_time_ms;
  record.session = 42;
  record.client_ip = "192.0.2.7";
  record.client_port = 51234;
  record.client_name = "mail.example.net";
  record.helo = "mail.example.net";
  record.tls = true;
  record.sender = "alice@example.org";
  record.rcpts = {"bob@example.com", "carol@example.com"};
  record.phase = "rcpt";
  record.rule = "spf hard fail";
  record.action = "reject";
  record.reply = "550 5.7.23 SPF validation failed for example.org";
  record.evidence = {{"spf", "\"fail\""},
                     {"dnsbl.score", "3"},
                     {"dnsbl.lists", "[\"zen\",\"bl\"]"},
                     {"tls", "true"}};
  const std::string expected =
      R"({"ts":"2026-11-30T03:50:28.123Z","session":42,"client_ip":"192.0.2.7",)"
      R"("client_port":51234,"client_name":"mail.example.net","helo":"mail.example.net",)"
      R"("tls":true,"sender":"alice@example.org","rcpts":["bob@example.com","carol@example.com"],)"
      R"("phase":"rcpt","rule":"spf hard fail","mode":"enforce","action":"reject",)"
      R"("reply":"550 5.7.23 SPF validation failed for example.org","source":"policy",)"
      R"("queue_id":null,"evidence":{"spf":"fail","dnsbl.score":3,"dnsbl.lists":["zen","bl"],)"
      R"("tls":true}})";
  BOOST_TEST(format_rejection(record) == expected);
}

BOOST_AUTO_TEST_CASE(connect_record_nulls_and_optional_fields) {
  RejectionRecord record;
  record.time_ms = 1796011200000;  // 2026-11-30T04:00:00.000Z
  record.session = 7;
  record.client_ip = "2001:db8::25";
  record.client_port = 25;
  record.phase = "rcpt";
  record.rcpts = {"postmaster@example.org"};
  record.mode = "observe";
  record.action = "tempfail";
  record.reply = "451 4.3.0 Temporary failure, please try again later";
  record.decided_at = "connect";
  record.failed_filter = "dnsbl";
  const std::string expected =
      R"({"ts":"2026-11-30T04:00:00.000Z","session":7,"client_ip":"2001:db8::25",)"
      R"("client_port":25,"client_name":null,"helo":null,"tls":false,"sender":null,)"
      R"("rcpts":["postmaster@example.org"],"phase":"rcpt","rule":null,"mode":"observe",)"
      R"("action":"tempfail","reply":"451 4.3.0 Temporary failure, please try again later",)"
      R"("source":"policy","queue_id":null,"evidence":{},"decided_at":"connect",)"
      R"("failed_filter":"dnsbl"})";
  BOOST_TEST(format_rejection(record) == expected);
}

BOOST_AUTO_TEST_CASE(delivered_record_with_null_sender_and_queue_id) {
  RejectionRecord record;
  record.time_ms = sample_time_ms;
  record.session = 9;
  record.client_ip = "203.0.113.5";
  record.client_port = 40000;
  record.helo = "bounce.example";
  record.sender = "";  // the null sender <> is "", not null
  record.rcpts = {"a@example.org"};
  record.phase = "data";
  record.action = "accept";
  record.reply = "250 2.0.0 Ok: queued as 9479CA7449F";
  record.source = "upstream";
  record.queue_id = "9479CA7449F";
  const std::string expected =
      R"({"ts":"2026-11-30T03:50:28.123Z","session":9,"client_ip":"203.0.113.5",)"
      R"("client_port":40000,"client_name":null,"helo":"bounce.example","tls":false,)"
      R"("sender":"","rcpts":["a@example.org"],"phase":"data","rule":null,"mode":"enforce",)"
      R"("action":"accept","reply":"250 2.0.0 Ok: queued as 9479CA7449F",)"
      R"("source":"upstream","queue_id":"9479CA7449F","evidence":{}})";
  BOOST_TEST(format_rejection(record) == expected);
}

BOOST_AUTO_TEST_CASE(timestamps) {
  RejectionRecord record;
  record.time_ms = -1;  // floor, not truncation, before the epoch
  BOOST_TEST(format_rejection(record).substr(0, 33) == R"({"ts":"1969-12-31T23:59:59.999Z",)");
  record.time_ms = 951782400007;  // leap day
  BOOST_TEST(format_rejection(record).substr(0, 33) == R"({"ts":"2000-02-29T00:00:00.007Z",)");

  // 0 = now: the stamp lies between two readings of the clock.
  record.time_ms = 0;
  const auto stamp_of = [](const std::string& line) {
    const auto value = parse_json(line);
    BOOST_REQUIRE(value.has_value());
    return *value->find_string("ts");
  };
  const auto clock_stamp = []() {
    RejectionRecord reference;
    reference.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    const auto value = parse_json(format_rejection(reference));
    return *value->find_string("ts");
  };
  const std::string before = clock_stamp();
  const std::string now = stamp_of(format_rejection(record));
  const std::string after = clock_stamp();
  BOOST_TEST(now.size() == 24u);
  BOOST_TEST(now.back() == 'Z');
  BOOST_TEST(before <= now);  // same fixed-width format: text order is time order
  BOOST_TEST(now <= after);
}

BOOST_AUTO_TEST_CASE(json_string_escapes) {
  BOOST_TEST(json_string("") == R"("")");
  BOOST_TEST(json_string("plain text") == R"("plain text")");
  BOOST_TEST(json_string("q\"b\\") == R"("q\"b\\")");
  BOOST_TEST(json_string("a\r\nb\tc") == R"("a\r\nb\tc")");
  BOOST_TEST(json_string(std::string("nul\0end", 7)) == R"("nul\u0000end")");
  BOOST_TEST(json_string("\x01\x1b[31m\x1f") == R"("\u0001\u001B[31m\u001F")");
  BOOST_TEST(json_string("\b\f") == R"("\u0008\u000C")");
  BOOST_TEST(json_string("del\x7f") == R"("del\u007F")");
  // Valid UTF-8 passes through; C1 controls are escaped as their code point.
  BOOST_TEST(json_string("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") ==
             "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"");
  BOOST_TEST(json_string("\xC2\x9B"
                         "2J\xC2\xA0") == "\"\\u009B2J\xC2\xA0\"");
  // Bytes that are not UTF-8 become \u00XX of the byte.
  BOOST_TEST(json_string("\xFF\xFE") == R"("\u00FF\u00FE")");
  BOOST_TEST(json_string("\xC3") == R"("\u00C3")");                      // truncated sequence
  BOOST_TEST(json_string("\xC0\xAF") == R"("\u00C0\u00AF")");            // overlong '/'
  BOOST_TEST(json_string("\xED\xA0\x80") == R"("\u00ED\u00A0\u0080")");  // surrogate
  BOOST_TEST(json_string("\xE2\x82x") == R"("\u00E2\u0082x")");
}

BOOST_AUTO_TEST_CASE(hostile_strings_make_one_valid_line) {
  TempDir dir;
  const fs::path path = dir.path() / "rejections.log";
  const char smuggle_bytes[] = "evil\r\n.\r\nMAIL FROM:<x>\0\"q\"\\\x7f";
  const std::string smuggle(smuggle_bytes, sizeof smuggle_bytes - 1);  // keeps the NUL
  RejectionRecord record;
  record.time_ms = sample_time_ms;
  record.client_ip = "192.0.2.1";
  record.helo = smuggle;
  record.client_name = "\xFF\xFE\xC3(";
  record.sender = "a\nb@example.org";
  record.rcpts = {"\"x\r\ny\"@example.org", std::string(1, '\0')};
  record.phase = "helo";
  record.rule = "rule with \"quotes\"";
  record.action = "reject";
  record.reply = "554 5.7.1 first line\n554 5.7.1 second line";
  // A broken pre-rendered value must not break the line either.
  record.evidence = {{"key\n", "\"unterminated"}, {"multi", "[1,\n2]"}, {"ok", "[\"a\"]"}};
  {
    auto log = open_log(path);
    log->write(record);
  }
  bool ends_with_newline = false;
  const auto lines = read_lines(path, &ends_with_newline);
  BOOST_TEST(ends_with_newline);
  BOOST_REQUIRE_EQUAL(lines.size(), 1u);
  std::string error;
  const auto value = parse_json(lines[0], &error);
  BOOST_REQUIRE_MESSAGE(value.has_value(), error << " in " << lines[0]);
  BOOST_REQUIRE(value->is_object());
  BOOST_TEST(*value->find_string("helo") == smuggle);  // valid bytes come back unchanged
  // Invalid bytes come back as the Latin-1 code points (U+00FF, U+00FE, U+00C3) in UTF-8.
  BOOST_TEST(*value->find_string("client_name") == "\xC3\xBF\xC3\xBE\xC3\x83(");
  BOOST_TEST(*value->find_string("sender") == "a\nb@example.org");
  const auto& rcpts = value->find("rcpts")->as_array();
  BOOST_REQUIRE_EQUAL(rcpts.size(), 2u);
  BOOST_TEST(rcpts[0].as_string() == "\"x\r\ny\"@example.org");
  BOOST_TEST(rcpts[1].as_string() == std::string(1, '\0'));
  BOOST_TEST(*value->find_string("rule") == "rule with \"quotes\"");
  BOOST_TEST(*value->find_string("reply") == "554 5.7.1 first line\n554 5.7.1 second line");
  const JsonValue* evidence = value->find("evidence");
  BOOST_REQUIRE(evidence != nullptr);
  BOOST_TEST(*evidence->find_string("key\n") == "\"unterminated");
  BOOST_TEST(*evidence->find_string("multi") == "[1,\n2]");
  BOOST_REQUIRE(evidence->find("ok")->is_array());
  BOOST_TEST(evidence->find("ok")->as_array()[0].as_string() == "a");
}

BOOST_AUTO_TEST_CASE(file_is_created_0640_and_appended) {
  TempDir dir;
  const fs::path path = dir.path() / "rejections.log";
  const mode_t old_umask = ::umask(022);
  {
    auto log = open_log(path);
    log->write(numbered_record(1, 1));
  }
  ::umask(old_umask);
  struct stat info {};
  BOOST_REQUIRE(::stat(path.c_str(), &info) == 0);
  BOOST_TEST((info.st_mode & 07777) == 0640u);
  {
    auto log = open_log(path);  // a restart appends, never truncates
    log->write(numbered_record(2, 2));
    BOOST_TEST(log->path() == path.string());
  }
  const auto lines = read_lines(path);
  BOOST_REQUIRE_EQUAL(lines.size(), 2u);
  BOOST_TEST(*parse_json(lines[0])->find("session")->as_integer() == 1);
  BOOST_TEST(*parse_json(lines[1])->find("session")->as_integer() == 2);
}

BOOST_AUTO_TEST_CASE(open_failure_names_the_path) {
  TempDir dir;
  const std::string path = (dir.path() / "missing" / "rejections.log").string();
  std::string error;
  BOOST_TEST(RejectionLog::open(path, &error) == nullptr);
  BOOST_TEST(error.find(path) != std::string::npos, error);
  BOOST_TEST(error.find("No such file or directory") != std::string::npos, error);
}

BOOST_AUTO_TEST_CASE(concurrent_writers_write_whole_lines) {
  TempDir dir;
  const fs::path path = dir.path() / "rejections.log";
  constexpr std::size_t threads = 4;
  constexpr std::size_t per_thread = 1000;
  {
    auto log = open_log(path);
    std::vector<std::thread> writers;
    for (std::size_t t = 0; t < threads; ++t) {
      writers.emplace_back([&log, t] {
        for (std::size_t i = 0; i < per_thread; ++i)
          log->write(numbered_record(t, i));
      });
    }
    for (auto& writer : writers)
      writer.join();
  }
  bool ends_with_newline = false;
  const auto lines = read_lines(path, &ends_with_newline);
  BOOST_TEST(ends_with_newline);
  BOOST_REQUIRE_EQUAL(lines.size(), threads * per_thread);
  std::set<std::pair<std::int64_t, std::int64_t>> seen;
  std::size_t invalid = 0;
  for (const auto& line : lines) {
    const auto value = parse_json(line);
    if (!value || !value->is_object()) {
      ++invalid;
      continue;
    }
    seen.emplace(*value->find("session")->as_integer(), *value->find("client_port")->as_integer());
  }
  BOOST_TEST(invalid == 0u);
  BOOST_TEST(seen.size() == threads * per_thread);  // each record exactly once
}

BOOST_AUTO_TEST_CASE(reopen_after_rename_splits_lines_between_files) {
  TempDir dir;
  const fs::path path = dir.path() / "rejections.log";
  const fs::path rotated = dir.path() / "rejections.log.1";
  auto log = open_log(path);
  for (std::size_t i = 0; i < 3; ++i)
    log->write(numbered_record(1, i));
  fs::rename(path, rotated);  // logrotate's mv: the open descriptor still writes to it
  log->write(numbered_record(1, 3));
  std::string error;
  BOOST_REQUIRE_MESSAGE(log->reopen(&error), error);
  BOOST_TEST(fs::exists(path));
  for (std::size_t i = 4; i < 6; ++i)
    log->write(numbered_record(1, i));
  log.reset();

  const auto old_lines = read_lines(rotated);
  const auto new_lines = read_lines(path);
  BOOST_REQUIRE_EQUAL(old_lines.size(), 4u);
  BOOST_REQUIRE_EQUAL(new_lines.size(), 2u);
  for (std::size_t i = 0; i < 4; ++i) {
    BOOST_TEST(*parse_json(old_lines[i])->find("client_port")->as_integer() ==
               static_cast<std::int64_t>(i));
  }
  BOOST_TEST(*parse_json(new_lines[0])->find("client_port")->as_integer() == 4);
  BOOST_TEST(*parse_json(new_lines[1])->find("client_port")->as_integer() == 5);
}

BOOST_AUTO_TEST_CASE(rotation_under_load_loses_no_line) {
  TempDir dir;
  const fs::path path = dir.path() / "rejections.log";
  constexpr std::size_t threads = 4;
  constexpr std::size_t per_thread = 1000;
  constexpr int rotations = 5;
  auto log = open_log(path);
  std::atomic<bool> started{false};
  std::vector<std::thread> writers;
  for (std::size_t t = 0; t < threads; ++t) {
    writers.emplace_back([&, t] {
      for (std::size_t i = 0; i < per_thread; ++i) {
        log->write(numbered_record(t, i));
        started = true;
      }
    });
  }
  while (!started)
    std::this_thread::yield();
  for (int r = 1; r <= rotations; ++r) {
    fs::rename(path, dir.path() / ("rejections.log." + std::to_string(r)));
    std::string error;
    BOOST_REQUIRE_MESSAGE(log->reopen(&error), error);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (auto& writer : writers)
    writer.join();
  log.reset();

  std::set<std::pair<std::int64_t, std::int64_t>> seen;
  std::size_t total = 0;
  std::size_t invalid = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    bool ends_with_newline = false;
    for (const auto& line : read_lines(entry.path(), &ends_with_newline)) {
      ++total;
      const auto value = parse_json(line);
      if (!value || !value->is_object()) {
        ++invalid;
        continue;
      }
      seen.emplace(*value->find("session")->as_integer(),
                   *value->find("client_port")->as_integer());
    }
    BOOST_TEST(ends_with_newline, entry.path());
  }
  BOOST_TEST(invalid == 0u);
  BOOST_TEST(total == threads * per_thread);
  BOOST_TEST(seen.size() == threads * per_thread);
}

BOOST_AUTO_TEST_CASE(failed_reopen_keeps_the_old_file) {
  TempDir dir;
  const fs::path subdir = dir.path() / "logs";
  fs::create_directory(subdir);
  const fs::path path = subdir / "rejections.log";
  const fs::path moved = dir.path() / "kept.log";
  auto log = open_log(path);
  log->write(numbered_record(1, 1));
  fs::rename(path, moved);
  fs::remove(subdir);  // the path can no longer be created
  std::string error;
  BOOST_TEST(!log->reopen(&error));
  BOOST_TEST(error.find(path.string()) != std::string::npos, error);
  log->write(numbered_record(1, 2));  // still goes to the old (moved) file
  log.reset();
  BOOST_TEST(read_lines(moved).size() == 2u);
}
