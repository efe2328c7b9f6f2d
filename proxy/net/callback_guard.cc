#include "callback_guard.h"

#include <unistd.h>

#include <atomic>
#include <string>

namespace portcullis {

namespace {

std::atomic<CallbackFailureReporter> installed_reporter{nullptr};

// An exception's text may quote peer bytes: only printable ASCII goes out as it is.
void append_printable(std::string& line, const char* text) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (const char* at = text; *at; ++at) {
    auto byte = static_cast<unsigned char>(*at);
    if (byte >= 0x20 && byte < 0x7f && byte != '"' && byte != '\\') {
      line += static_cast<char>(byte);
    } else {
      line += "\\x";
      line += kHex[byte >> 4];
      line += kHex[byte & 0xf];
    }
  }
}

void report_to_stderr(const char* where, const char* what) noexcept {
  try {
    std::string line = "portcullis: error: callback_failed: callback=";
    line += where;
    line += " error=\"";
    append_printable(line, what);
    line += "\"\n";
    [[maybe_unused]] ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  } catch (...) {
    // Out of memory while reporting: nothing better is left to do than go on.
  }
}

}  // namespace

void set_callback_failure_reporter(CallbackFailureReporter reporter) noexcept {
  installed_reporter.store(reporter, std::memory_order_release);
}

namespace callback_guard_detail {

void log_failure(const char* where, const char* what) noexcept {
  CallbackFailureReporter reporter = installed_reporter.load(std::memory_order_acquire);
  (reporter ? reporter : report_to_stderr)(where, what);
}

}  // namespace callback_guard_detail

}  // namespace portcullis
