// SECURITY: parses replies from the upstream MTA; every line and the line count are bounded.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis {

struct SmtpReply {
  int code = 0;                    // 100..599
  std::vector<std::string> lines;  // text after "NNN-" / "NNN " of each line (may be empty)
  std::string wire;                // the reply as received, each line ended by CRLF

  bool positive() const { return code >= 200 && code < 400; }
  int klass() const { return code / 100; }
  // The reply in SMTP form; several text lines become a multi-line reply.
  static SmtpReply make(int code, std::string_view text);
  static SmtpReply make(int code, const std::vector<std::string>& texts);
};

// Reads upstream replies from a byte stream, one per call.
class SmtpReplyParser {
 public:
  static constexpr size_t max_line = 4096;
  // Lines kept of a multi-line reply: the rest is read and dropped (an upstream that accepted a
  // message with a 2,000-line 250 still accepted it), and the reply is passed on as its code
  // with these lines.
  static constexpr size_t max_lines = 200;

  struct Step {
    size_t consumed = 0;
    bool complete = false;  // *reply is filled
    bool error = false;     // not SMTP: the connection should be dropped
  };

  // Accepts lines ended by CRLF or a bare LF. A line must start with three digits followed by
  // '-', ' ' or the line end; the code must be the same on every line of a reply.
  Step feed(std::string_view input, SmtpReply* reply);
  void reset();

 private:
  Step fail(size_t consumed);

  std::string line_;          // the current line, at most max_line bytes plus its CR
  SmtpReply partial_;         // the lines of a multi-line reply read so far
  bool failed_ = false;       // the stream is not SMTP; stays so until reset()
  size_t dropped_lines_ = 0;  // of the current reply, past max_lines
};

}  // namespace portcullis
