// SECURITY: this file turns untrusted client bytes into commands and message content.
// - Command mode keeps at most command_buffer_limit() bytes of a line (512 plus the largest
//   extension increment); the rest of an overlong line is skipped up to its LF, unbuffered.
// - Data mode keeps no line buffer at all: a small state (DataState) carries the meaning of a
//   trailing CR or leading "." across chunks, and content stops being appended as soon as the
//   message has any problem (NUL, bare CR/LF, line, header or size limit), so the caller's
//   buffer never grows past max_message_size.
// - Every scan is memchr over a string_view; positions found are cached so that each byte is
//   searched a bounded number of times (no quadratic rescans on inputs like 10 MB of CRs).
// - Nothing here throws on any input (only std::string growth, bounded as above, can fail).
#include "smtp_parser.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "smtp_path.h"

namespace portcullis {
namespace {

constexpr std::string_view crlf = "\r\n";

unsigned char to_lower_ascii(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c - 'A' + 'a') : c;
}

bool iequals_ascii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (to_lower_ascii(static_cast<unsigned char>(a[i])) !=
        to_lower_ascii(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

bool istarts_with_ascii(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && iequals_ascii(text.substr(0, prefix.size()), prefix);
}

std::string_view trim_trailing_blanks(std::string_view text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}

std::string_view trim_spaces(std::string_view text) {
  while (!text.empty() && text.front() == ' ')
    text.remove_prefix(1);
  return trim_trailing_blanks(text);
}

size_t saturating_add(size_t a, size_t b) {
  return a > std::numeric_limits<size_t>::max() - b ? std::numeric_limits<size_t>::max() : a + b;
}

struct VerbName {
  std::string_view name;
  Verb verb;
};

constexpr std::array<VerbName, 11> verb_names{{
    {"HELO", Verb::helo},
    {"EHLO", Verb::ehlo},
    {"MAIL", Verb::mail},
    {"RCPT", Verb::rcpt},
    {"DATA", Verb::data},
    {"RSET", Verb::rset},
    {"NOOP", Verb::noop},
    {"QUIT", Verb::quit},
    {"VRFY", Verb::vrfy},
    {"HELP", Verb::help},
    {"STARTTLS", Verb::starttls},
}};

// The first word ends at the first space; a line without a space is all first word.
std::string_view first_word(std::string_view line) {
  return line.substr(0, line.find(' '));
}

Verb verb_of_line(std::string_view line) {
  std::string_view word = first_word(line);
  for (const VerbName& entry : verb_names) {
    if (iequals_ascii(word, entry.name)) return entry.verb;
  }
  return Verb::unknown;
}

// Postfix's smtpd_forbidden_commands idea: an HTTP request line or a header field sent to an
// SMTP port is a cross-protocol attack, never a confused mail client.
bool looks_like_other_protocol(std::string_view line) {
  std::string_view word = first_word(line);
  if (word.size() < line.size()) {
    for (std::string_view method : {"GET", "POST", "CONNECT", "HEAD", "PUT"}) {
      if (iequals_ascii(word, method)) return true;
    }
  }
  size_t name_length = 0;
  while (name_length < line.size()) {
    unsigned char c = static_cast<unsigned char>(line[name_length]);
    if (c < 33 || c > 126 || c == ':') break;
    ++name_length;
  }
  return name_length > 0 && name_length < line.size() && line[name_length] == ':';
}

bool is_alnum_ascii(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// RFC 5321 4.1.2: esmtp-param = esmtp-keyword ["=" esmtp-value];
// esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-");
// esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 (RFC 6531).
bool parse_esmtp_param(std::string_view token, EsmtpParam* param) {
  size_t equals = token.find('=');
  std::string_view keyword = token.substr(0, equals);
  if (keyword.empty() || !is_alnum_ascii(static_cast<unsigned char>(keyword.front()))) {
    return false;
  }
  for (char c : keyword) {
    if (!is_alnum_ascii(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  param->keyword = std::string(keyword);
  if (equals == std::string_view::npos) return true;
  std::string_view value = token.substr(equals + 1);
  if (value.empty()) return false;
  for (char c : value) {
    unsigned char byte = static_cast<unsigned char>(c);
    bool printable = byte >= 33 && byte <= 126 && byte != '=';
    if (!printable && byte < 0x80) return false;
  }
  param->value = std::string(value);
  param->has_value = true;
  return true;
}

// Finds the '>' that closes a path starting at text[0] == '<', skipping quoted strings (a
// quoted local part may hold '>'). npos when there is none.
size_t closing_bracket(std::string_view text) {
  bool quoted = false;
  for (size_t i = 1; i < text.size(); ++i) {
    char c = text[i];
    if (quoted && c == '\\') {
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (c == '>' && !quoted) {
      return i;
    }
  }
  return std::string_view::npos;
}

// "MAIL FROM:<path> params" / "RCPT TO:<path> params"; argument is the text after the verb.
void parse_envelope_command(std::string_view argument, Command* command) {
  const bool is_mail = command->verb == Verb::mail;
  const std::string_view prefix = is_mail ? "FROM:" : "TO:";
  const CommandError bad_path =
      is_mail ? CommandError::bad_sender_path : CommandError::bad_recipient_path;

  if (!istarts_with_ascii(argument, prefix)) {
    command->error = CommandError::syntax;
    return;
  }
  std::string_view rest = argument.substr(prefix.size());
  // Postfix tolerates spaces after the colon; so do we.
  while (!rest.empty() && rest.front() == ' ')
    rest.remove_prefix(1);
  if (rest.empty()) {
    command->error = CommandError::syntax;
    return;
  }
  // An address without its angle brackets is a bad path (RFC 5321 4.1.2), not a bad command.
  if (rest.front() != '<') {
    command->error = bad_path;
    return;
  }
  size_t close = closing_bracket(rest);
  if (close == std::string_view::npos) {
    command->error = bad_path;
    return;
  }
  ParsedPath path =
      parse_path(rest.substr(0, close + 1), is_mail ? PathKind::mail_from : PathKind::rcpt_to);
  if (!path.ok) {
    command->error = bad_path;
    return;
  }
  std::string_view after_path = rest.substr(close + 1);
  if (!after_path.empty() && after_path.front() != ' ') {
    command->error = CommandError::syntax;
    return;
  }
  std::string_view params_text = trim_spaces(after_path);
  std::vector<EsmtpParam> params;
  std::string_view remaining = params_text;
  while (!remaining.empty()) {
    size_t space = remaining.find(' ');
    std::string_view token = remaining.substr(0, space);
    remaining = space == std::string_view::npos ? std::string_view{} : remaining.substr(space);
    while (!remaining.empty() && remaining.front() == ' ')
      remaining.remove_prefix(1);
    EsmtpParam param;
    if (!parse_esmtp_param(token, &param)) {
      command->error = CommandError::bad_parameter;
      return;
    }
    params.push_back(std::move(param));
  }
  command->path = std::move(path.mailbox);
  command->params_text = std::string(params_text);
  command->params = std::move(params);
}

Command line_error(std::string_view line, CommandError error) {
  Command command;
  command.verb = verb_of_line(line);
  command.error = error;
  command.line = std::string(line);
  return command;
}

}  // namespace

Command parse_command_line(std::string_view line) {
  if (line.find('\0') != std::string_view::npos) return line_error(line, CommandError::nul_byte);
  if (line.find('\r') != std::string_view::npos) return line_error(line, CommandError::bare_cr);
  if (looks_like_other_protocol(line)) return line_error(line, CommandError::forbidden);

  Command command;
  command.line = std::string(line);
  command.verb = verb_of_line(line);
  size_t space = line.find(' ');
  std::string_view argument =
      space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
  argument = trim_trailing_blanks(argument);

  switch (command.verb) {
    case Verb::unknown:
      command.error = CommandError::unrecognized;
      break;
    case Verb::helo:
    case Verb::ehlo:
    case Verb::vrfy:
      if (argument.empty()) {
        command.error = CommandError::syntax;
      } else {
        command.argument = std::string(argument);
      }
      break;
    case Verb::noop:
    case Verb::help:
      command.argument = std::string(argument);
      break;
    case Verb::data:
    case Verb::rset:
    case Verb::quit:
    case Verb::starttls:
      if (!argument.empty()) command.error = CommandError::syntax;
      break;
    case Verb::mail:
    case Verb::rcpt:
      command.argument = std::string(argument);
      parse_envelope_command(argument, &command);
      break;
  }
  return command;
}

SmtpParser::SmtpParser(ParserLimits limits) : limits_(limits) {}

void SmtpParser::begin_data() {
  start_message();
  in_data_ = true;
}

void SmtpParser::reset() {
  start_message();
  in_data_ = false;
}

void SmtpParser::start_message() {
  line_.clear();
  discarding_ = false;
  data_ = DataEnd{};
  data_state_ = DataState::line_start;
  previous_line_crlf_ = true;
  in_header_ = true;
  line_bytes_ = 0;
  line_content_bytes_ = 0;
  header_bytes_ = 0;
}

SmtpParser::Step SmtpParser::feed(std::string_view input, Command* command, std::string* content,
                                  DataEnd* end) {
  if (in_data_) {
    DataEnd scratch;
    return feed_data(input, content, end != nullptr ? end : &scratch);
  }
  Command scratch;
  return feed_command(input, command != nullptr ? command : &scratch);
}

size_t SmtpParser::command_buffer_limit() const {
  return saturating_add(limits_.command_line, std::max(limits_.mail_extra, limits_.rcpt_extra));
}

SmtpParser::Step SmtpParser::feed_command(std::string_view input, Command* command) {
  const void* found = std::memchr(input.data(), '\n', input.size());
  const size_t before_lf = found != nullptr
                               ? static_cast<size_t>(static_cast<const char*>(found) - input.data())
                               : input.size();
  if (!discarding_) {
    const size_t limit = command_buffer_limit();
    const size_t room = limit > line_.size() ? limit - line_.size() : 0;
    if (before_lf > room) {
      line_.append(input.substr(0, room));
      discarding_ = true;
    } else {
      line_.append(input.substr(0, before_lf));
    }
  }
  if (found == nullptr) return Step{input.size(), Event::need_more};

  *command = finish_command_line(line_, discarding_);
  line_.clear();
  discarding_ = false;
  return Step{before_lf + 1, Event::command};
}

Command SmtpParser::finish_command_line(std::string_view raw_line, bool overlong) const {
  const bool real_crlf = !raw_line.empty() && raw_line.back() == '\r';
  const std::string_view line = real_crlf ? raw_line.substr(0, raw_line.size() - 1) : raw_line;
  if (overlong) return line_error(line, CommandError::line_too_long);

  // The limit counts the line with its CRLF; a bare-LF line is measured as if it had one.
  const Verb verb = verb_of_line(line);
  size_t verb_limit = limits_.command_line;
  if (verb == Verb::mail) verb_limit = saturating_add(verb_limit, limits_.mail_extra);
  if (verb == Verb::rcpt) verb_limit = saturating_add(verb_limit, limits_.rcpt_extra);
  if (line.size() + crlf.size() > verb_limit) return line_error(line, CommandError::line_too_long);

  Command command = parse_command_line(line);
  if (!real_crlf && limits_.bare_lf == BareLfMode::reject &&
      command.error != CommandError::nul_byte && command.error != CommandError::bare_cr) {
    return line_error(line, CommandError::bare_lf);
  }
  return command;
}

void SmtpParser::emit_content(std::string_view bytes, std::string* content) {
  data_.size += bytes.size();
  line_content_bytes_ += bytes.size();
  if (data_.size > limits_.max_message_size) data_.too_big = true;
  if (in_header_) {
    header_bytes_ += bytes.size();
    if (header_bytes_ > limits_.max_header_size) data_.header_too_large = true;
  }
  if (data_.ok() && content != nullptr) content->append(bytes);
}

void SmtpParser::end_data_line(bool real_crlf, std::string* content) {
  const bool empty_line = line_content_bytes_ == 0;
  emit_content(crlf, content);
  if (empty_line) in_header_ = false;
  previous_line_crlf_ = real_crlf;
  line_bytes_ = 0;
  line_content_bytes_ = 0;
  data_state_ = DataState::line_start;
}

SmtpParser::Step SmtpParser::feed_data(std::string_view input, std::string* content, DataEnd* end) {
  const char* const data = input.data();
  const size_t size = input.size();
  size_t position = 0;

  auto count_raw = [this](size_t bytes) {
    line_bytes_ = saturating_add(line_bytes_, bytes);
    if (line_bytes_ > limits_.max_line_length) data_.line_too_long = true;
  };
  auto find_from = [data, size](char wanted, size_t from) -> size_t {
    const void* hit = std::memchr(data + from, wanted, size - from);
    return hit != nullptr ? static_cast<size_t>(static_cast<const char*>(hit) - data) : size;
  };
  // Cached positions of the next LF / CR at or after the current position (size: none left);
  // refreshed only once passed, so each byte is searched at most once per kind.
  bool lf_known = false;
  bool cr_known = false;
  size_t next_lf = 0;
  size_t next_cr = 0;

  while (position < size) {
    switch (data_state_) {
      case DataState::line_start:
        if (data[position] == '.') {
          ++position;
          count_raw(1);
          data_state_ = DataState::after_dot;
        } else {
          data_state_ = DataState::mid_line;
        }
        break;

      case DataState::after_dot:
        // Only ".\r\n" after a real CRLF ends the message; any other dot line is unstuffed.
        if (data[position] == '\r' && previous_line_crlf_) {
          ++position;
          data_state_ = DataState::after_dot_cr;
        } else {
          data_state_ = DataState::mid_line;
        }
        break;

      case DataState::after_dot_cr:
        if (data[position] == '\n') {
          ++position;
          *end = data_;
          start_message();
          in_data_ = false;
          return Step{position, Event::data_end};
        }
        data_.bare_cr = true;
        count_raw(1);
        emit_content("\r", content);
        data_state_ = DataState::mid_line;
        break;

      case DataState::after_cr:
        if (data[position] == '\n') {
          ++position;
          end_data_line(true, content);
        } else {
          data_.bare_cr = true;
          count_raw(1);
          emit_content("\r", content);
          data_state_ = DataState::mid_line;
        }
        break;

      case DataState::mid_line: {
        if (!lf_known || next_lf < position) {
          next_lf = find_from('\n', position);
          lf_known = true;
        }
        if (!cr_known || next_cr < position) {
          next_cr = find_from('\r', position);
          cr_known = true;
        }
        const size_t stop = std::min(next_lf, next_cr);
        if (stop > position) {
          const std::string_view run(data + position, stop - position);
          if (std::memchr(run.data(), '\0', run.size()) != nullptr) data_.nul = true;
          count_raw(run.size());
          emit_content(run, content);
          position = stop;
        }
        if (position == size) break;
        ++position;
        if (data[position - 1] == '\r') {
          data_state_ = DataState::after_cr;
        } else {
          // A bare LF: a line end that never counts as the CRLF before a terminator.
          if (limits_.bare_lf == BareLfMode::reject) data_.bare_lf = true;
          end_data_line(false, content);
        }
        break;
      }
    }
  }
  return Step{size, Event::need_more};
}

const char* to_string(Verb verb) {
  switch (verb) {
    case Verb::helo:
      return "helo";
    case Verb::ehlo:
      return "ehlo";
    case Verb::mail:
      return "mail";
    case Verb::rcpt:
      return "rcpt";
    case Verb::data:
      return "data";
    case Verb::rset:
      return "rset";
    case Verb::noop:
      return "noop";
    case Verb::quit:
      return "quit";
    case Verb::vrfy:
      return "vrfy";
    case Verb::help:
      return "help";
    case Verb::starttls:
      return "starttls";
    case Verb::unknown:
      return "unknown";
  }
  return "unknown";
}

}  // namespace portcullis
