#define BOOST_TEST_MODULE log_sink
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "callback_guard.h"
#include "log_sink.h"

using portcullis::escape_peer;
using portcullis::LogField;
using portcullis::LogFormat;
using portcullis::LogLevel;
using portcullis::LogSink;

namespace {

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/logsink-test-XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    BOOST_REQUIRE(::mkdtemp(buffer.data()) != nullptr);
    path_ = buffer.data();
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string file_contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    lines.push_back(line);
  return lines;
}

const std::regex text_prefix(
    R"(^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z portcullis\[(\d+)\]: )");
const std::regex json_prefix(
    R"re(^\{"ts":"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z",)re");

// Seconds between the line's time stamp and now; the stamp must be UTC.
double seconds_from_now(const std::smatch& match) {
  tm stamp{};
  stamp.tm_year = std::stoi(match[1]) - 1900;
  stamp.tm_mon = std::stoi(match[2]) - 1;
  stamp.tm_mday = std::stoi(match[3]);
  stamp.tm_hour = std::stoi(match[4]);
  stamp.tm_min = std::stoi(match[5]);
  stamp.tm_sec = std::stoi(match[6]);
  const double when = static_cast<double>(::timegm(&stamp)) + std::stoi(match[7]) / 1000.0;
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  return now - when;
}

// The text line without its time stamp and "portcullis[pid]: ", after checking both.
std::string text_body(const std::string& line) {
  std::smatch match;
  BOOST_REQUIRE_MESSAGE(std::regex_search(line, match, text_prefix), "line: " << line);
  BOOST_TEST(std::stol(match[8]) == static_cast<long>(::getpid()));
  const double age = seconds_from_now(match);
  BOOST_TEST(age >= -1.0);
  BOOST_TEST(age <= 60.0);
  return match.suffix().str();
}

// The JSON line with its "ts" member replaced by "TS", after checking the stamp.
std::string json_without_ts(const std::string& line) {
  std::smatch match;
  BOOST_REQUIRE_MESSAGE(std::regex_search(line, match, json_prefix), "line: " << line);
  const double age = seconds_from_now(match);
  BOOST_TEST(age >= -1.0);
  BOOST_TEST(age <= 60.0);
  return "{\"ts\":\"TS\"," + match.suffix().str();
}

// Points file descriptor 2 at a file for the lifetime of the object.
class StderrToFile {
 public:
  explicit StderrToFile(const std::string& path) {
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    BOOST_REQUIRE(fd >= 0);
    BOOST_REQUIRE(::dup2(fd, STDERR_FILENO) == STDERR_FILENO);
    ::close(fd);
  }
  ~StderrToFile() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
  }

 private:
  int saved_ = -1;
};

}  // namespace

BOOST_AUTO_TEST_CASE(escape_peer_keeps_printable_ascii) {
  BOOST_TEST(escape_peer("mail.example.org [192.0.2.1]") == "mail.example.org [192.0.2.1]");
  BOOST_TEST(escape_peer("") == "");
}

BOOST_AUTO_TEST_CASE(escape_peer_escapes_controls_quotes_backslashes_and_high_bytes) {
  BOOST_TEST(escape_peer("a\r\nb") == "a\\x0D\\x0Ab");
  BOOST_TEST(escape_peer("say \"hi\"") == "say \\x22hi\\x22");
  BOOST_TEST(escape_peer("C:\\x") == "C:\\x5Cx");
  BOOST_TEST(escape_peer(std::string("n\0l", 3)) == "n\\x00l");
  BOOST_TEST(escape_peer("\x7F\xC3\xA9\xFF") == "\\x7F\\xC3\\xA9\\xFF");
}

BOOST_AUTO_TEST_CASE(escape_peer_truncates_with_an_ellipsis) {
  BOOST_TEST(escape_peer(std::string(256, 'a')) == std::string(256, 'a'));
  BOOST_TEST(escape_peer(std::string(257, 'a')) == std::string(256, 'a') + "...");
  BOOST_TEST(escape_peer("abcdef", 4) == "abcd...");
  // An escape sequence is never cut in half: "ab" + "\x0A" would need 6 bytes.
  BOOST_TEST(escape_peer("ab\ncd", 5) == "ab...");
  BOOST_TEST(escape_peer("ab\ncd", 6) == "ab\\x0A...");
  BOOST_TEST(escape_peer("ab\n", 6) == "ab\\x0A");
}

BOOST_AUTO_TEST_CASE(text_line_format) {
  auto sink = LogSink::capture(LogFormat::text);
  sink->write(LogLevel::warning, "upstream_unreachable",
              {{"address", "127.0.0.1:10025"}, {"reason", "Connection refused"}});
  sink->write(LogLevel::info, "started", {});
  sink->write(LogLevel::error, "config", {{"file", "/etc/portcullis/portcullis.toml"}});
  const auto lines = sink->captured();
  BOOST_REQUIRE(lines.size() == 3u);
  BOOST_TEST(text_body(lines[0]) ==
             "warning: upstream_unreachable: address=127.0.0.1:10025 reason=\"Connection "
             "refused\"");
  BOOST_TEST(text_body(lines[1]) == "info: started");
  BOOST_TEST(text_body(lines[2]) == "error: config: file=/etc/portcullis/portcullis.toml");
}

BOOST_AUTO_TEST_CASE(text_values_are_quoted_when_needed) {
  auto sink = LogSink::capture(LogFormat::text);
  sink->write(LogLevel::info, "e",
              {{"eq", "a=b"},
               {"quote", "say \"x\""},
               {"both", "a \\ b"},
               {"empty", ""},
               {"plain", "back\\slash"}});
  const auto lines = sink->captured();
  BOOST_REQUIRE(lines.size() == 1u);
  BOOST_TEST(text_body(lines[0]) ==
             "info: e: eq=\"a=b\" quote=\"say \\\"x\\\"\" both=\"a \\\\ b\" empty=\"\" "
             "plain=back\\slash");
}

BOOST_AUTO_TEST_CASE(text_peer_values_cannot_forge_lines) {
  auto sink = LogSink::capture(LogFormat::text);
  sink->write(LogLevel::info, "helo",
              {{"helo", "evil\r\n2026-01-01T00:00:00.000Z portcullis[1]: info: fake", true},
               {"own", "line\nbreak"},
               {"name", "x y", true}});
  const auto lines = sink->captured();
  BOOST_REQUIRE(lines.size() == 1u);
  BOOST_TEST(lines[0].find('\n') == std::string::npos);
  BOOST_TEST(lines[0].find('\r') == std::string::npos);
  BOOST_TEST(text_body(lines[0]) ==
             "info: helo: helo=\"evil\\\\x0D\\\\x0A2026-01-01T00:00:00.000Z portcullis[1]: "
             "info: fake\" own=line\\x0Abreak name=\"x y\"");
}

BOOST_AUTO_TEST_CASE(text_peer_values_are_truncated) {
  auto sink = LogSink::capture(LogFormat::text);
  sink->write(LogLevel::info, "helo", {{"helo", std::string(1000, 'h'), true}});
  BOOST_TEST(text_body(sink->captured().at(0)) ==
             "info: helo: helo=" + std::string(256, 'h') + "...");
}

BOOST_AUTO_TEST_CASE(json_line_format) {
  auto sink = LogSink::capture(LogFormat::json);
  sink->write(LogLevel::warning, "session",
              {{"client_ip", "192.0.2.1"},
               {"helo", "a\"b\\c\r\n\xC3\xA9", true},
               {"own", std::string("q\"t\\\t\x01\x7F", 7)},
               {"utf8", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x93\xA7"},
               {"broken", "\xC3(\xFF\xED\xA0\x80"}});
  const auto lines = sink->captured();
  BOOST_REQUIRE(lines.size() == 1u);
  BOOST_TEST(json_without_ts(lines[0]) ==
             "{\"ts\":\"TS\",\"level\":\"warning\",\"event\":\"session\","
             "\"client_ip\":\"192.0.2.1\","
             "\"helo\":\"a\\\\x22b\\\\x5Cc\\\\x0D\\\\x0A\\\\xC3\\\\xA9\","
             "\"own\":\"q\\\"t\\\\\\u0009\\u0001\\u007F\","
             "\"utf8\":\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x93\xA7\","
             "\"broken\":\"\\u00C3(\\u00FF\\u00ED\\u00A0\\u0080\"}");
}

BOOST_AUTO_TEST_CASE(json_without_fields) {
  auto sink = LogSink::capture(LogFormat::json);
  sink->write(LogLevel::info, "started", {});
  BOOST_TEST(json_without_ts(sink->captured().at(0)) ==
             "{\"ts\":\"TS\",\"level\":\"info\",\"event\":\"started\"}");
}

BOOST_AUTO_TEST_CASE(file_target_appends_creates_0640_and_reopens) {
  TempDir dir;
  const std::string path = dir.path() + "/main.log";
  {
    std::ofstream existing(path);
    existing << "old line\n";
  }
  ::unlink(path.c_str());  // start without the file so open() creates it
  const mode_t saved_umask = ::umask(0);
  std::string error;
  auto sink = LogSink::open(path, LogFormat::text, &error);
  ::umask(saved_umask);
  BOOST_REQUIRE_MESSAGE(sink, error);
  struct stat status {};
  BOOST_REQUIRE(::stat(path.c_str(), &status) == 0);
  BOOST_TEST((status.st_mode & 07777) == 0640u);

  sink->write(LogLevel::info, "one", {{"k", "v"}});
  sink->write(LogLevel::info, "two", {});
  auto lines = lines_of(file_contents(path));
  BOOST_REQUIRE(lines.size() == 2u);
  BOOST_TEST(text_body(lines[0]) == "info: one: k=v");
  BOOST_TEST(text_body(lines[1]) == "info: two");
  BOOST_TEST(sink->captured().empty());

  // logrotate: the file is renamed, SIGUSR1 makes us reopen the path.
  const std::string rotated = path + ".1";
  BOOST_REQUIRE(::rename(path.c_str(), rotated.c_str()) == 0);
  sink->write(LogLevel::info, "before_reopen", {});
  BOOST_TEST(sink->reopen(&error));
  sink->write(LogLevel::info, "after_reopen", {});
  lines = lines_of(file_contents(rotated));
  BOOST_REQUIRE(lines.size() == 3u);
  BOOST_TEST(text_body(lines[2]) == "info: before_reopen");
  lines = lines_of(file_contents(path));
  BOOST_REQUIRE(lines.size() == 1u);
  BOOST_TEST(text_body(lines[0]) == "info: after_reopen");
}

BOOST_AUTO_TEST_CASE(file_target_appends_to_existing_content) {
  TempDir dir;
  const std::string path = dir.path() + "/main.log";
  {
    std::ofstream existing(path);
    existing << "old line\n";
  }
  auto sink = LogSink::open(path, LogFormat::json, nullptr);
  BOOST_REQUIRE(sink);
  sink->write(LogLevel::error, "x", {});
  const auto lines = lines_of(file_contents(path));
  BOOST_REQUIRE(lines.size() == 2u);
  BOOST_TEST(lines[0] == "old line");
  BOOST_TEST(json_without_ts(lines[1]) == "{\"ts\":\"TS\",\"level\":\"error\",\"event\":\"x\"}");
}

BOOST_AUTO_TEST_CASE(unopenable_file_is_an_error) {
  TempDir dir;
  const std::string path = dir.path() + "/missing/main.log";
  std::string error;
  BOOST_TEST(!LogSink::open(path, LogFormat::text, &error));
  BOOST_TEST(error.find(path) != std::string::npos);
  BOOST_TEST(error.find("No such file or directory") != std::string::npos);
  BOOST_TEST(!LogSink::open("", LogFormat::text, &error));
  BOOST_TEST(!error.empty());
}

BOOST_AUTO_TEST_CASE(reopen_fails_and_keeps_writing_to_the_old_file) {
  TempDir dir;
  const std::string subdir = dir.path() + "/logs";
  BOOST_REQUIRE(::mkdir(subdir.c_str(), 0700) == 0);
  const std::string path = subdir + "/main.log";
  auto sink = LogSink::open(path, LogFormat::text, nullptr);
  BOOST_REQUIRE(sink);
  const std::string moved = dir.path() + "/moved";
  BOOST_REQUIRE(::rename(subdir.c_str(), moved.c_str()) == 0);
  std::string error;
  BOOST_TEST(!sink->reopen(&error));
  BOOST_TEST(error.find("No such file or directory") != std::string::npos);
  sink->write(LogLevel::info, "still_here", {});
  const auto lines = lines_of(file_contents(moved + "/main.log"));
  BOOST_REQUIRE(lines.size() == 1u);
  BOOST_TEST(text_body(lines[0]) == "info: still_here");
}

BOOST_AUTO_TEST_CASE(concurrent_writers_never_interleave) {
  TempDir dir;
  const std::string path = dir.path() + "/main.log";
  auto sink = LogSink::open(path, LogFormat::text, nullptr);
  BOOST_REQUIRE(sink);
  constexpr int thread_count = 4;
  constexpr int lines_per_thread = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < thread_count; ++t) {
    threads.emplace_back([&sink, t] {
      for (int i = 0; i < lines_per_thread; ++i) {
        sink->write(LogLevel::info, "tick",
                    {{"thread", std::to_string(t)},
                     {"i", std::to_string(i)},
                     {"pad", std::string(300, static_cast<char>('a' + t))}});
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  const auto lines = lines_of(file_contents(path));
  BOOST_REQUIRE(lines.size() == static_cast<size_t>(thread_count * lines_per_thread));
  std::vector<int> next(thread_count, 0);
  const std::regex body(R"(^info: tick: thread=(\d) i=(\d+) pad=([a-d]{300})$)");
  for (const auto& line : lines) {
    std::smatch match;
    const std::string rest = text_body(line);
    BOOST_REQUIRE_MESSAGE(std::regex_match(rest, match, body), "line: " << line);
    const int t = std::stoi(match[1]);
    BOOST_TEST(std::stoi(match[2]) == next[t]);  // each thread's lines stay in order
    BOOST_TEST(match[3].str() == std::string(300, static_cast<char>('a' + t)));
    ++next[t];
  }
}

BOOST_AUTO_TEST_CASE(stderr_target_and_default_main_log) {
  TempDir dir;
  const std::string path = dir.path() + "/stderr";
  auto capture = LogSink::capture(LogFormat::json);
  {
    StderrToFile redirect(path);
    auto sink = LogSink::open("stderr", LogFormat::text, nullptr);
    BOOST_REQUIRE(sink);
    sink->write(LogLevel::warning, "direct", {});
    BOOST_TEST(sink->reopen(nullptr));  // a no-op for stderr

    // Before set_main_log the main log is a stderr/text sink.
    portcullis::log_warning("via_default", {{"k", "v"}});
    portcullis::set_main_log(capture.get());
    portcullis::log_error("via_capture");
    portcullis::set_main_log(nullptr);
    portcullis::log_info("default_again");
  }
  const auto lines = lines_of(file_contents(path));
  BOOST_REQUIRE(lines.size() == 3u);
  BOOST_TEST(text_body(lines[0]) == "warning: direct");
  BOOST_TEST(text_body(lines[1]) == "warning: via_default: k=v");
  BOOST_TEST(text_body(lines[2]) == "info: default_again");
  const auto captured = capture->captured();
  BOOST_REQUIRE(captured.size() == 1u);
  BOOST_TEST(json_without_ts(captured[0]) ==
             "{\"ts\":\"TS\",\"level\":\"error\",\"event\":\"via_capture\"}");
}

BOOST_AUTO_TEST_CASE(a_guarded_callback_that_throws_is_a_callback_failed_event_in_the_main_log) {
  auto capture = LogSink::capture(LogFormat::json);
  portcullis::set_main_log(capture.get());
  bool failure_handled = false;
  const bool returned = portcullis::guard_callback(
      "test_callback", [] { throw std::runtime_error("bad \x01 byte"); },
      [&] { failure_handled = true; });
  portcullis::set_main_log(nullptr);
  BOOST_TEST(!returned);
  BOOST_TEST(failure_handled);
  const auto captured = capture->captured();
  BOOST_REQUIRE(captured.size() == 1u);
  BOOST_TEST(json_without_ts(captured[0]) ==
             "{\"ts\":\"TS\",\"level\":\"error\",\"event\":\"callback_failed\","
             "\"callback\":\"test_callback\",\"error\":\"bad \\\\x01 byte\"}");
}

BOOST_AUTO_TEST_CASE(syslog_target_opens_and_writes) {
  // No syslog daemon is needed: syslog(3) drops what it cannot deliver. This checks only that
  // the target is accepted and writing through it is safe, including awkward bytes.
  std::string error;
  auto sink = LogSink::open("syslog", LogFormat::text, &error);
  BOOST_REQUIRE_MESSAGE(sink, error);
  sink->write(LogLevel::info, "syslog_probe", {{"value", "100% %s %n", true}});
  BOOST_TEST(sink->reopen(&error));
  BOOST_TEST(sink->captured().empty());
}
