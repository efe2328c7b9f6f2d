// SECURITY: this parser reads bytes straight from untrusted SMTP clients. It is pure (bytes in,
// events out, no I/O), every buffer it keeps is bounded by ParserLimits, and it never throws on
// any input. tests/fuzz/fuzz_smtp_parser.cc exercises it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis {

enum class BareLfMode { reject, normalize };

enum class Verb { helo, ehlo, mail, rcpt, data, rset, noop, quit, vrfy, help, starttls, unknown };

// Why a command line could not be taken as a command. The session maps each to its reply.
enum class CommandError {
  none,
  line_too_long,       // 500 5.5.2: longer than the limit for its verb (the rest was discarded)
  nul_byte,            // 500 5.5.2
  bare_lf,             // 500 5.5.2: line ended in LF without CR while bare_lf = reject
  bare_cr,             // 500 5.5.2: a CR not followed by LF inside the line
  forbidden,           // 221 2.7.0 and close: looks like HTTP (GET/POST/CONNECT/HEAD) or a header
  unrecognized,        // 500 5.5.2: unknown verb (verb == unknown)
  syntax,              // 501 5.5.4: the verb is known but its arguments are wrong
  bad_sender_path,     // 501 5.1.7: MAIL FROM path does not follow RFC 5321
  bad_recipient_path,  // 501 5.1.3: RCPT TO path does not follow RFC 5321
  bad_parameter,       // 501 5.5.4: an ESMTP parameter does not follow RFC 5321 4.1.2
};

struct EsmtpParam {
  std::string keyword;  // as sent; compare case-insensitively
  std::string value;    // empty when has_value is false
  bool has_value = false;
};

struct Command {
  Verb verb = Verb::unknown;
  CommandError error = CommandError::none;
  std::string line;      // the whole line without its line end (for logs; escape before printing)
  std::string argument;  // text after the verb and one space (HELO/EHLO domain, VRFY, HELP, NOOP)
  std::string path;      // MAIL/RCPT mailbox without the angle brackets; "" for <>
  std::string params_text;  // MAIL/RCPT parameters exactly as sent, to relay unchanged
  std::vector<EsmtpParam> params;
};

// Facts about a finished message; a message with any problem must be refused, except that
// none of these stop the parser from finding the real end of DATA.
struct DataEnd {
  bool bare_cr = false;           // 550 5.5.2
  bool bare_lf = false;           // 550 5.5.2 (only in reject mode; normalize rewrites it)
  bool nul = false;               // 550 5.6.0
  bool line_too_long = false;     // 552 5.3.4
  bool header_too_large = false;  // 552 5.3.4
  bool too_big = false;           // 552 5.3.4
  uint64_t size = 0;              // bytes of the unstuffed message (CRLF line ends), counted even
                                  // past the point where content stops being emitted
  bool ok() const {
    return !(bare_cr || bare_lf || nul || line_too_long || header_too_large || too_big);
  }
};

struct ParserLimits {
  // RFC 5321 4.5.3.1.4: 512 octets including CRLF, plus the increments of the extensions we
  // advertise (SIZE: +26 on MAIL; DSN: +100 on MAIL, +500 on RCPT).
  size_t command_line = 512;
  size_t mail_extra = 26;
  size_t rcpt_extra = 0;
  size_t max_line_length = 65536;   // DATA line, without its line end
  size_t max_header_size = 102400;  // bytes of the header section
  uint64_t max_message_size = 52428800;
  BareLfMode bare_lf = BareLfMode::reject;
};

// Turns the client's byte stream into commands and message content, one event per call.
// Input may be split at any byte boundary; splitting never changes the events.
class SmtpParser {
 public:
  enum class Event { need_more, command, data_end };

  struct Step {
    size_t consumed = 0;  // bytes of the input taken (the caller drains exactly these)
    Event event = Event::need_more;
  };

  explicit SmtpParser(ParserLimits limits);

  void set_limits(const ParserLimits& limits) { limits_ = limits; }
  const ParserLimits& limits() const { return limits_; }

  // Command mode: consumes up to and including one line end and returns Event::command with
  // *command filled, or consumes everything (keeping at most the line limit) and returns
  // need_more. Lines over the limit are discarded up to their end without being buffered.
  // Data mode: appends unstuffed content with CRLF line ends to *content (nothing once the
  // message has a problem, so memory stays bounded) and returns Event::data_end with *end
  // filled once CRLF.CRLF is seen; the parser is then back in command mode and bytes after
  // the terminator are left unconsumed.
  Step feed(std::string_view input, Command* command, std::string* content, DataEnd* end);

  // After the 354 reply: what follows is message content.
  void begin_data();
  bool in_data() const { return in_data_; }
  // Part of a command line is held, waiting for the rest of it.
  bool mid_command_line() const { return !in_data_ && (!line_.empty() || discarding_); }

  // Forget any partial line (used after STARTTLS, where buffered plaintext is discarded).
  void reset();

 private:
  // Data mode remembers where in a line it stands, so a CR or a leading "." at the end of one
  // chunk is judged by the first byte of the next.
  enum class DataState {
    line_start,    // nothing of the current line seen yet
    after_dot,     // the line began with '.', which was dropped (RFC 5321 4.5.2)
    after_dot_cr,  // ".\r" at the start of a line that may be the terminator
    mid_line,      // inside a line
    after_cr,      // a CR inside a line, waiting to see whether LF follows
  };

  Step feed_command(std::string_view input, Command* command);
  Step feed_data(std::string_view input, std::string* content, DataEnd* end);
  Command finish_command_line(std::string_view raw_line, bool overlong) const;
  size_t command_buffer_limit() const;
  void emit_content(std::string_view bytes, std::string* content);
  void end_data_line(bool real_crlf, std::string* content);
  void start_message();

  ParserLimits limits_;
  bool in_data_ = false;
  // command mode
  std::string line_;         // raw bytes of the current line, at most command_buffer_limit()
  bool discarding_ = false;  // the current line is over every limit; skip to its LF
  // data mode
  DataEnd data_{};
  DataState data_state_ = DataState::line_start;
  bool previous_line_crlf_ = true;  // the previous line ended with a real CRLF (or none yet)
  bool in_header_ = true;
  size_t line_bytes_ = 0;          // raw bytes of the current line so far (no line end)
  size_t line_content_bytes_ = 0;  // unstuffed bytes of the current line so far
  uint64_t header_bytes_ = 0;
};

// "helo", "mail", … ("unknown" for Verb::unknown): for logs and tests.
const char* to_string(Verb verb);

// Parse one complete command line (without its line end). Exposed for tests.
Command parse_command_line(std::string_view line);

}  // namespace portcullis
