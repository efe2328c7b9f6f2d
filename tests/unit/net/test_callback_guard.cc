#define BOOST_TEST_MODULE callback_guard
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "callback_guard.h"

namespace {

struct Report {
  std::string where;
  std::string what;
};
std::vector<Report> reports;

void record(const char* where, const char* what) noexcept {
  try {
    reports.push_back({where, what});
  } catch (...) {
  }
}

// Installs `record` for one test and restores the default after it.
struct RecordingReporter {
  RecordingReporter() {
    reports.clear();
    portcullis::set_callback_failure_reporter(&record);
  }
  ~RecordingReporter() { portcullis::set_callback_failure_reporter(nullptr); }
};

// What the test writes to file descriptor 2 while it lives, read back by contents().
class CapturedStderr {
 public:
  CapturedStderr() {
    char pattern[] = "/tmp/guard-stderr-XXXXXX";
    fd_ = ::mkstemp(pattern);
    BOOST_REQUIRE(fd_ >= 0);
    ::unlink(pattern);
    saved_ = ::dup(STDERR_FILENO);
    BOOST_REQUIRE(::dup2(fd_, STDERR_FILENO) == STDERR_FILENO);
  }
  ~CapturedStderr() {
    restore();
    ::close(fd_);
  }
  std::string contents() {
    restore();
    std::string text;
    char buffer[512];
    ssize_t got;
    off_t at = 0;
    while ((got = ::pread(fd_, buffer, sizeof buffer, at)) > 0) {
      text.append(buffer, static_cast<size_t>(got));
      at += got;
    }
    return text;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    saved_ = -1;
  }
  int fd_ = -1;
  int saved_ = -1;
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_body_that_returns_is_not_reported) {
  RecordingReporter reporter;
  bool ran = false;
  bool failure_ran = false;
  BOOST_TEST(portcullis::guard_callback(
      "quiet", [&] { ran = true; }, [&] { failure_ran = true; }));
  BOOST_TEST(ran);
  BOOST_TEST(!failure_ran);
  BOOST_TEST(reports.empty());
}

BOOST_AUTO_TEST_CASE(an_exception_is_reported_by_name_and_the_failure_handler_runs) {
  RecordingReporter reporter;
  bool failure_ran = false;
  BOOST_TEST(!portcullis::guard_callback(
      "session_read", [] { throw std::runtime_error("broken"); }, [&] { failure_ran = true; }));
  BOOST_TEST(failure_ran);
  BOOST_REQUIRE(reports.size() == 1u);
  BOOST_TEST(reports[0].where == "session_read");
  BOOST_TEST(reports[0].what == "broken");
}

BOOST_AUTO_TEST_CASE(a_throw_that_is_no_std_exception_is_reported_too) {
  RecordingReporter reporter;
  BOOST_TEST(!portcullis::guard_callback("odd", [] { throw 42; }));
  BOOST_REQUIRE(reports.size() == 1u);
  BOOST_TEST(reports[0].what == "unknown exception");
}

BOOST_AUTO_TEST_CASE(a_failure_handler_that_throws_is_stopped_and_reported) {
  RecordingReporter reporter;
  BOOST_TEST(!portcullis::guard_callback(
      "twice", [] { throw std::runtime_error("first"); },
      [] { throw std::runtime_error("second"); }));
  BOOST_REQUIRE(reports.size() == 2u);
  BOOST_TEST(reports[0].what == "first");
  BOOST_TEST(reports[1].what == "the failure handler threw too");
}

BOOST_AUTO_TEST_CASE(without_a_reporter_one_escaped_line_goes_to_stderr) {
  portcullis::set_callback_failure_reporter(nullptr);
  CapturedStderr captured;
  portcullis::guard_callback("early", [] { throw std::runtime_error("peer said \"hi\"\r\n"); });
  BOOST_TEST(captured.contents() ==
             "portcullis: error: callback_failed: callback=early "
             "error=\"peer said \\x22hi\\x22\\x0d\\x0a\"\n");
}
