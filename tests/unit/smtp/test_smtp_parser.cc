#define BOOST_TEST_MODULE smtp_parser
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <new>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "smtp_parser.h"

using portcullis::BareLfMode;
using portcullis::Command;
using portcullis::CommandError;
using portcullis::DataEnd;
using portcullis::parse_command_line;
using portcullis::ParserLimits;
using portcullis::SmtpParser;
using portcullis::Verb;

// The memory test must see every heap allocation the parser makes, and the only hook the
// language gives for that is replacing the global allocation functions. While tracking is on,
// they remember the largest single request.
namespace {
std::atomic<bool> tracking_allocations{false};
std::atomic<size_t> largest_allocation{0};
}  // namespace

#if defined(__GNUC__) && !defined(__clang__)
// GCC cannot see that these replacements pair malloc with free.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t size) {
  if (tracking_allocations.load(std::memory_order_relaxed)) {
    size_t seen = largest_allocation.load(std::memory_order_relaxed);
    while (size > seen && !largest_allocation.compare_exchange_weak(seen, size)) {
    }
  }
  if (void* block = std::malloc(size == 0 ? 1 : size)) return block;
  throw std::bad_alloc();
}
void operator delete(void* block) noexcept {
  std::free(block);
}
void operator delete(void* block, std::size_t) noexcept {
  std::free(block);
}

namespace {

// A string literal with embedded NULs, all of it but the terminating one.
template <size_t N>
std::string bytes_of(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

std::string escape(std::string_view bytes) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    unsigned char byte = static_cast<unsigned char>(c);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (byte < 0x20 || byte >= 0x7f) {
      out += "\\x";
      out += hex[byte >> 4];
      out += hex[byte & 15];
    } else {
      out += c;
    }
  }
  return out;
}

const char* error_name(CommandError error) {
  switch (error) {
    case CommandError::none:
      return "none";
    case CommandError::line_too_long:
      return "line_too_long";
    case CommandError::nul_byte:
      return "nul_byte";
    case CommandError::bare_lf:
      return "bare_lf";
    case CommandError::bare_cr:
      return "bare_cr";
    case CommandError::forbidden:
      return "forbidden";
    case CommandError::unrecognized:
      return "unrecognized";
    case CommandError::syntax:
      return "syntax";
    case CommandError::bad_sender_path:
      return "bad_sender_path";
    case CommandError::bad_recipient_path:
      return "bad_recipient_path";
    case CommandError::bad_parameter:
      return "bad_parameter";
  }
  return "?";
}

}  // namespace

// Boost.Test prints enum values in failure messages through these.
namespace portcullis {
std::ostream& operator<<(std::ostream& out, Verb verb) {
  return out << portcullis::to_string(verb);
}
std::ostream& operator<<(std::ostream& out, CommandError error) {
  return out << error_name(error);
}
std::ostream& operator<<(std::ostream& out, SmtpParser::Event event) {
  switch (event) {
    case SmtpParser::Event::need_more:
      return out << "need_more";
    case SmtpParser::Event::command:
      return out << "command";
    case SmtpParser::Event::data_end:
      return out << "data_end";
  }
  return out << "?";
}
}  // namespace portcullis

namespace {

std::string describe(const Command& command) {
  std::ostringstream out;
  out << "command verb=" << portcullis::to_string(command.verb)
      << " error=" << error_name(command.error) << " line=[" << escape(command.line)
      << "] argument=[" << escape(command.argument) << "] path=[" << escape(command.path)
      << "] params_text=[" << escape(command.params_text) << "] params=";
  for (const auto& param : command.params) {
    out << "{" << escape(param.keyword) << (param.has_value ? "=" : "") << escape(param.value)
        << "}";
  }
  return out.str();
}

std::string describe(const DataEnd& end, std::string_view content) {
  std::ostringstream out;
  out << "data_end bare_cr=" << end.bare_cr << " bare_lf=" << end.bare_lf << " nul=" << end.nul
      << " line_too_long=" << end.line_too_long << " header_too_large=" << end.header_too_large
      << " too_big=" << end.too_big << " size=" << end.size;
  // A refused message's content is only what was appended before the problem showed, which
  // depends on where the input was split; it is never relayed, so only good content counts.
  if (end.ok()) out << " content=[" << escape(content) << "]";
  return out.str();
}

struct Recorded {
  bool is_command = false;
  Command command;
  DataEnd end;
  std::string content;
  size_t input_offset = 0;  // bytes of the whole input consumed once this event was returned
  std::string description;
};

struct DriveOptions {
  ParserLimits limits;
  bool start_in_data = false;
  bool begin_data_after_data_command = true;
};

// Feeds input the way the session does: bytes arrive in pieces ending at `cuts`, unconsumed
// bytes stay in front of the next piece, and a DATA command without error switches the parser
// to data mode. The parser's contract is checked on every call.
std::vector<Recorded> drive(std::string_view input, const DriveOptions& options,
                            const std::vector<size_t>& cuts) {
  SmtpParser parser(options.limits);
  if (options.start_in_data) parser.begin_data();
  std::vector<Recorded> events;
  std::string pending;
  std::string content;
  size_t consumed_total = 0;
  size_t previous_cut = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(input.size());
  for (size_t cut : ends) {
    pending.append(input.substr(previous_cut, cut - previous_cut));
    previous_cut = cut;
    while (!pending.empty()) {
      Command command;
      DataEnd end;
      const bool was_in_data = parser.in_data();
      SmtpParser::Step step = parser.feed(pending, &command, &content, &end);
      BOOST_REQUIRE_LE(step.consumed, pending.size());
      pending.erase(0, step.consumed);
      consumed_total += step.consumed;
      if (step.event == SmtpParser::Event::need_more) {
        BOOST_REQUIRE_MESSAGE(pending.empty(), "need_more must consume everything");
        break;
      }
      BOOST_REQUIRE_GT(step.consumed, 0U);
      Recorded recorded;
      recorded.input_offset = consumed_total;
      if (step.event == SmtpParser::Event::command) {
        BOOST_REQUIRE_MESSAGE(!was_in_data, "a command event in data mode");
        recorded.is_command = true;
        recorded.command = command;
        recorded.description = describe(command);
        if (options.begin_data_after_data_command && command.verb == Verb::data &&
            command.error == CommandError::none) {
          parser.begin_data();
        }
      } else {
        BOOST_REQUIRE_MESSAGE(was_in_data, "data_end outside data mode");
        BOOST_REQUIRE(!parser.in_data());
        recorded.end = end;
        recorded.content = content;
        recorded.description = describe(end, content);
        content.clear();
      }
      events.push_back(std::move(recorded));
    }
  }
  return events;
}

std::vector<Recorded> drive_whole(std::string_view input, const DriveOptions& options) {
  return drive(input, options, {});
}

std::vector<std::string> descriptions(const std::vector<Recorded>& events) {
  std::vector<std::string> out;
  for (const Recorded& event : events) {
    out.push_back(event.description + " @" + std::to_string(event.input_offset));
  }
  return out;
}

// Whole, split once at every byte boundary, and byte by byte: always the same events.
std::vector<Recorded> drive_all_splits(std::string_view input, const DriveOptions& options) {
  std::vector<Recorded> whole = drive_whole(input, options);
  const std::vector<std::string> expected = descriptions(whole);
  for (size_t cut = 1; cut < input.size(); ++cut) {
    BOOST_TEST_CONTEXT("split at byte " << cut) {
      BOOST_TEST(descriptions(drive(input, options, {cut})) == expected,
                 boost::test_tools::per_element());
    }
  }
  std::vector<size_t> every_byte;
  for (size_t cut = 1; cut < input.size(); ++cut)
    every_byte.push_back(cut);
  BOOST_TEST_CONTEXT("byte by byte") {
    BOOST_TEST(descriptions(drive(input, options, every_byte)) == expected,
               boost::test_tools::per_element());
  }
  return whole;
}

Command parse_one(std::string_view bytes, ParserLimits limits = {}) {
  SmtpParser parser(limits);
  Command command;
  std::string content;
  DataEnd end;
  SmtpParser::Step step = parser.feed(bytes, &command, &content, &end);
  BOOST_REQUIRE(step.event == SmtpParser::Event::command);
  BOOST_REQUIRE_EQUAL(step.consumed, bytes.size());
  return command;
}

void expect_error(std::string_view bytes, CommandError error, ParserLimits limits = {}) {
  BOOST_TEST_CONTEXT("line " << escape(bytes)) {
    Command command = parse_one(bytes, limits);
    BOOST_TEST(command.error == error);
  }
}

ParserLimits normalize_limits() {
  ParserLimits limits;
  limits.bare_lf = BareLfMode::normalize;
  return limits;
}

// A command line of exactly `total` bytes including CRLF: verb, a space and filler.
std::string line_of_length(std::string_view prefix, size_t total) {
  std::string line(prefix);
  line.append(total - 2 - prefix.size(), 'x');
  line += "\r\n";
  return line;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Command mode: verbs and arguments
// ---------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(helo_and_ehlo_take_their_argument_with_trailing_blanks_trimmed) {
  Command helo = parse_one("HELO client.example\r\n");
  BOOST_TEST(helo.verb == Verb::helo);
  BOOST_TEST(helo.error == CommandError::none);
  BOOST_TEST(helo.argument == "client.example");
  BOOST_TEST(helo.line == "HELO client.example");

  Command ehlo = parse_one("ehlo [192.0.2.1] \t \r\n");
  BOOST_TEST(ehlo.verb == Verb::ehlo);
  BOOST_TEST(ehlo.error == CommandError::none);
  BOOST_TEST(ehlo.argument == "[192.0.2.1]");
  BOOST_TEST(ehlo.line == "ehlo [192.0.2.1] \t ");

  // The name is not judged here: anything non-empty is taken.
  Command odd = parse_one("EhLo not a valid name!\r\n");
  BOOST_TEST(odd.verb == Verb::ehlo);
  BOOST_TEST(odd.error == CommandError::none);
  BOOST_TEST(odd.argument == "not a valid name!");

  expect_error("HELO\r\n", CommandError::syntax);
  expect_error("HELO \r\n", CommandError::syntax);
  expect_error("EHLO  \t\r\n", CommandError::syntax);
  expect_error("EHLO\r\n", CommandError::syntax);
}

BOOST_AUTO_TEST_CASE(verbs_without_arguments) {
  const std::pair<std::string_view, Verb> verbs[] = {
      {"DATA", Verb::data},         {"RSET", Verb::rset}, {"QUIT", Verb::quit},
      {"STARTTLS", Verb::starttls}, {"data", Verb::data}, {"StartTls", Verb::starttls}};
  for (const auto& [name, verb] : verbs) {
    BOOST_TEST_CONTEXT("verb " << name) {
      Command plain = parse_one(std::string(name) + "\r\n");
      BOOST_TEST(plain.verb == verb);
      BOOST_TEST(plain.error == CommandError::none);
      BOOST_TEST(plain.argument.empty());
      // Trailing blanks are not an argument.
      Command trailing = parse_one(std::string(name) + "  \r\n");
      BOOST_TEST(trailing.verb == verb);
      BOOST_TEST(trailing.error == CommandError::none);
      Command with_argument = parse_one(std::string(name) + " now\r\n");
      BOOST_TEST(with_argument.verb == verb);
      BOOST_TEST(with_argument.error == CommandError::syntax);
    }
  }
}

BOOST_AUTO_TEST_CASE(noop_and_help_take_an_optional_argument) {
  Command noop = parse_one("NOOP\r\n");
  BOOST_TEST(noop.verb == Verb::noop);
  BOOST_TEST(noop.error == CommandError::none);
  BOOST_TEST(noop.argument.empty());
  Command noop_argument = parse_one("noop anything at all\r\n");
  BOOST_TEST(noop_argument.verb == Verb::noop);
  BOOST_TEST(noop_argument.error == CommandError::none);
  BOOST_TEST(noop_argument.argument == "anything at all");
  Command help = parse_one("HELP\r\n");
  BOOST_TEST(help.verb == Verb::help);
  BOOST_TEST(help.error == CommandError::none);
  Command help_topic = parse_one("Help MAIL\r\n");
  BOOST_TEST(help_topic.verb == Verb::help);
  BOOST_TEST(help_topic.error == CommandError::none);
  BOOST_TEST(help_topic.argument == "MAIL");
}

BOOST_AUTO_TEST_CASE(vrfy_requires_an_argument) {
  Command vrfy = parse_one("VRFY postmaster\r\n");
  BOOST_TEST(vrfy.verb == Verb::vrfy);
  BOOST_TEST(vrfy.error == CommandError::none);
  BOOST_TEST(vrfy.argument == "postmaster");
  expect_error("VRFY\r\n", CommandError::syntax);
  expect_error("vrfy \r\n", CommandError::syntax);
}

BOOST_AUTO_TEST_CASE(unknown_verbs_and_empty_lines_are_unrecognized) {
  for (std::string_view line :
       {"FOO\r\n", "\r\n", "AUTH PLAIN AGFiYwBkZWY=\r\n", "BDAT 10\r\n", "MAILFROM <a@b>\r\n",
        "HELO\tname\r\n", " HELO x\r\n", "GET\r\n", "GETX / HTTP/1.1\r\n", "\xc3\xa9 x\r\n"}) {
    BOOST_TEST_CONTEXT("line " << escape(line)) {
      Command command = parse_one(line);
      BOOST_TEST(command.verb == Verb::unknown);
      BOOST_TEST(command.error == CommandError::unrecognized);
    }
  }
}

BOOST_AUTO_TEST_CASE(mail_from_with_and_without_parameters) {
  Command plain = parse_one("MAIL FROM:<alice@Example.ORG>\r\n");
  BOOST_TEST(plain.verb == Verb::mail);
  BOOST_TEST(plain.error == CommandError::none);
  BOOST_TEST(plain.path == "alice@Example.ORG");
  BOOST_TEST(plain.params_text.empty());
  BOOST_TEST(plain.params.empty());

  Command null_sender = parse_one("mail from:<>\r\n");
  BOOST_TEST(null_sender.verb == Verb::mail);
  BOOST_TEST(null_sender.error == CommandError::none);
  BOOST_TEST(null_sender.path.empty());

  Command spaced = parse_one("MAIL FROM:  <a@b.example>\r\n");
  BOOST_TEST(spaced.error == CommandError::none);
  BOOST_TEST(spaced.path == "a@b.example");

  Command params =
      parse_one("MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS\r\n");
  BOOST_TEST(params.error == CommandError::none);
  BOOST_TEST(params.path == "a@b.example");
  BOOST_TEST(params.params_text == "SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS");
  BOOST_REQUIRE_EQUAL(params.params.size(), 4U);
  BOOST_TEST(params.params[0].keyword == "SIZE");
  BOOST_TEST(params.params[0].value == "1000");
  BOOST_TEST(params.params[0].has_value);
  BOOST_TEST(params.params[1].keyword == "BODY");
  BOOST_TEST(params.params[1].value == "8BITMIME");
  BOOST_TEST(params.params[2].keyword == "SMTPUTF8");
  BOOST_TEST(!params.params[2].has_value);
  BOOST_TEST(params.params[2].value.empty());
  BOOST_TEST(params.params[3].keyword == "RET");
  BOOST_TEST(params.params[3].value == "HDRS");

  // Parameter text is kept exactly as sent, inner spacing included; trailing blanks go.
  Command double_space = parse_one("MAIL FROM:<a@b.example>  size=10  x-Key=v \r\n");
  BOOST_TEST(double_space.error == CommandError::none);
  BOOST_TEST(double_space.params_text == "size=10  x-Key=v");
  BOOST_REQUIRE_EQUAL(double_space.params.size(), 2U);
  BOOST_TEST(double_space.params[1].keyword == "x-Key");

  Command quoted = parse_one("MAIL FROM:<\"a> b\"@example.org> SIZE=5\r\n");
  BOOST_TEST(quoted.error == CommandError::none);
  BOOST_TEST(quoted.path == "\"a> b\"@example.org");
  BOOST_TEST(quoted.params_text == "SIZE=5");

  Command routed = parse_one("MAIL FROM:<@relay.example:a@b.example>\r\n");
  BOOST_TEST(routed.error == CommandError::none);
  BOOST_TEST(routed.path == "a@b.example");
}

BOOST_AUTO_TEST_CASE(rcpt_to_with_and_without_parameters) {
  Command plain = parse_one("RCPT TO:<bob@example.net>\r\n");
  BOOST_TEST(plain.verb == Verb::rcpt);
  BOOST_TEST(plain.error == CommandError::none);
  BOOST_TEST(plain.path == "bob@example.net");

  Command postmaster = parse_one("rcpt to:<Postmaster>\r\n");
  BOOST_TEST(postmaster.error == CommandError::none);
  BOOST_TEST(postmaster.path == "Postmaster");

  Command dsn = parse_one(
      "RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.net\r\n");
  BOOST_TEST(dsn.error == CommandError::none);
  BOOST_TEST(dsn.params_text == "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.net");
  BOOST_REQUIRE_EQUAL(dsn.params.size(), 2U);
  BOOST_TEST(dsn.params[1].keyword == "ORCPT");
  BOOST_TEST(dsn.params[1].value == "rfc822;bob@example.net");

  // UTF-8 in a parameter value (RFC 6531).
  Command utf8 = parse_one(
      "RCPT TO:<bob@example.net> ORCPT=utf-8;b\xc3\xb6"
      "b@x\r\n");
  BOOST_TEST(utf8.error == CommandError::none);
  BOOST_REQUIRE_EQUAL(utf8.params.size(), 1U);
  BOOST_TEST(utf8.params[0].value ==
             "utf-8;b\xc3\xb6"
             "b@x");
}

BOOST_AUTO_TEST_CASE(envelope_syntax_errors) {
  expect_error("MAIL\r\n", CommandError::syntax);
  expect_error("MAIL \r\n", CommandError::syntax);
  expect_error("MAIL TO:<a@b.example>\r\n", CommandError::syntax);
  expect_error("MAIL FROM a@b.example\r\n", CommandError::syntax);
  expect_error("MAIL FROM:\r\n", CommandError::syntax);
  expect_error("MAIL  FROM:<a@b.example>\r\n", CommandError::syntax);
  expect_error("MAIL FROM:<a@b.example>SIZE=1\r\n", CommandError::syntax);
  expect_error("RCPT FROM:<a@b.example>\r\n", CommandError::syntax);
  expect_error("RCPT\r\n", CommandError::syntax);
}

BOOST_AUTO_TEST_CASE(bad_paths_get_their_own_errors) {
  // Missing angle brackets make a bad path (501 5.1.7 / 5.1.3), not a syntax error.
  expect_error("MAIL FROM:a@b.example\r\n", CommandError::bad_sender_path);
  expect_error("MAIL FROM:<a@b.example\r\n", CommandError::bad_sender_path);
  expect_error("RCPT TO:bob@example.net\r\n", CommandError::bad_recipient_path);
  expect_error("RCPT TO:<bob@example.net\r\n", CommandError::bad_recipient_path);
  expect_error("MAIL FROM:<a@@b.example>\r\n", CommandError::bad_sender_path);
  expect_error("MAIL FROM:<Postmaster>\r\n", CommandError::bad_sender_path);
  expect_error("MAIL FROM:<a b@c.example>\r\n", CommandError::bad_sender_path);
  expect_error("MAIL FROM:<\"open@b.example>\r\n", CommandError::bad_sender_path);
  expect_error("RCPT TO:<>\r\n", CommandError::bad_recipient_path);
  expect_error("RCPT TO:<bob@-example.net>\r\n", CommandError::bad_recipient_path);
  expect_error("RCPT TO:<bob@[300.1.1.1]>\r\n", CommandError::bad_recipient_path);
}

BOOST_AUTO_TEST_CASE(bad_esmtp_parameters) {
  for (std::string_view parameters :
       {"SIZE=", "=100", "-SIZE=1", "SI_ZE=1", "SIZE=1=2", "SIZE=a\tb", "SIZE=\x7f",
        "BODY=8BITMIME \x01", "S\xc3\xa9=1", "SIZE=a\x1f"}) {
    BOOST_TEST_CONTEXT("parameters " << escape(parameters)) {
      Command mail = parse_one("MAIL FROM:<a@b.example> " + std::string(parameters) + "\r\n");
      BOOST_TEST(mail.verb == Verb::mail);
      BOOST_TEST(mail.error == CommandError::bad_parameter);
      Command rcpt = parse_one("RCPT TO:<a@b.example> " + std::string(parameters) + "\r\n");
      BOOST_TEST(rcpt.verb == Verb::rcpt);
      BOOST_TEST(rcpt.error == CommandError::bad_parameter);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Command mode: cross-protocol lines
// ---------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(http_and_header_lines_are_forbidden) {
  for (std::string_view line :
       {"GET / HTTP/1.1\r\n", "post /form HTTP/1.0\r\n", "CONNECT mx.example:25 HTTP/1.1\r\n",
        "Head / HTTP/1.1\r\n", "PUT /x HTTP/1.1\r\n", "GET \r\n", "Host: mx.example\r\n",
        "User-Agent: curl/8.0\r\n", "X:\r\n", "Content-Length:12\r\n", "MAILFROM:<a@b>\r\n"}) {
    expect_error(line, CommandError::forbidden);
  }
  // Known verbs followed by a space are never header-like.
  expect_error("MAIL FROM:<a@b.example>\r\n", CommandError::none);
  expect_error("RCPT TO:<a@b.example>\r\n", CommandError::none);
  expect_error("HELO host:25\r\n", CommandError::none);
  // A colon that does not follow a run of printable characters from the line start.
  expect_error(":x\r\n", CommandError::unrecognized);
  expect_error("Host : x\r\n", CommandError::unrecognized);
}

// ---------------------------------------------------------------------------------------------
// Command mode: line errors and their priority
// ---------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(nul_bare_cr_and_bare_lf_lines) {
  expect_error(bytes_of("NOOP\0\r\n"), CommandError::nul_byte);
  expect_error("NO\rOP\r\n", CommandError::bare_cr);
  expect_error("NOOP\r\r\n", CommandError::bare_cr);
  expect_error("NOOP\n", CommandError::bare_lf);

  Command normalized = parse_one("MAIL FROM:<a@b.example>\n", normalize_limits());
  BOOST_TEST(normalized.verb == Verb::mail);
  BOOST_TEST(normalized.error == CommandError::none);
  BOOST_TEST(normalized.path == "a@b.example");
  BOOST_TEST(normalized.line == "MAIL FROM:<a@b.example>");
}

BOOST_AUTO_TEST_CASE(line_errors_follow_their_priority) {
  const std::string too_long_body(600, 'x');
  // line_too_long beats everything.
  expect_error(bytes_of("NOOP \0\r") + too_long_body + "\n", CommandError::line_too_long);
  // nul_byte beats bare_cr, bare_lf and forbidden.
  expect_error(bytes_of("GET \r\0\n"), CommandError::nul_byte);
  // bare_cr beats bare_lf and forbidden.
  expect_error("Host: a\rb\n", CommandError::bare_cr);
  // bare_lf beats forbidden and verb errors.
  expect_error("Host: x\n", CommandError::bare_lf);
  expect_error("HELO\n", CommandError::bare_lf);
  expect_error("FOO\n", CommandError::bare_lf);
  // In normalize mode the bare LF is no error and what is left decides.
  expect_error("Host: x\n", CommandError::forbidden, normalize_limits());
  expect_error("HELO\n", CommandError::syntax, normalize_limits());
  expect_error(bytes_of("GET \r\0\n"), CommandError::nul_byte, normalize_limits());
  expect_error("NO\rOP\n", CommandError::bare_cr, normalize_limits());
  // forbidden beats verb and argument errors.
  expect_error("GET /\r\n", CommandError::forbidden);
}

BOOST_AUTO_TEST_CASE(parse_command_line_on_complete_lines) {
  Command command = parse_command_line("RCPT TO:<x@y.example> NOTIFY=NEVER");
  BOOST_TEST(command.verb == Verb::rcpt);
  BOOST_TEST(command.error == CommandError::none);
  BOOST_TEST(command.path == "x@y.example");
  BOOST_TEST(command.params_text == "NOTIFY=NEVER");
  BOOST_TEST(parse_command_line("QUIT").verb == Verb::quit);
  BOOST_TEST(parse_command_line("").error == CommandError::unrecognized);
  BOOST_TEST(parse_command_line("NOOP\r").error == CommandError::bare_cr);
}

// ---------------------------------------------------------------------------------------------
// Command mode: length limits per verb
// ---------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(plain_verbs_allow_512_bytes_including_crlf) {
  for (std::string_view prefix : {"NOOP ", "HELO ", "VRFY ", "XXXX "}) {
    BOOST_TEST_CONTEXT("prefix " << prefix) {
      Command at_511 = parse_one(line_of_length(prefix, 511));
      Command at_512 = parse_one(line_of_length(prefix, 512));
      Command at_513 = parse_one(line_of_length(prefix, 513));
      BOOST_TEST(at_511.error != CommandError::line_too_long);
      BOOST_TEST(at_512.error != CommandError::line_too_long);
      BOOST_TEST(at_513.error == CommandError::line_too_long);
      BOOST_TEST(at_512.line.size() == 510U);
    }
  }
  // The extras of MAIL and RCPT do not stretch other verbs' limit.
  ParserLimits generous;
  generous.mail_extra = 126;
  generous.rcpt_extra = 500;
  expect_error(line_of_length("NOOP ", 513), CommandError::line_too_long, generous);
  expect_error(line_of_length("NOOP ", 512), CommandError::none, generous);
}

BOOST_AUTO_TEST_CASE(mail_and_rcpt_limits_include_their_extras) {
  // A MAIL line with a valid path, padded with one long parameter value.
  auto mail_line = [](size_t total) {
    return line_of_length("MAIL FROM:<a@b.example> X-PAD=", total);
  };
  auto rcpt_line = [](size_t total) {
    return line_of_length("RCPT TO:<a@b.example> X-PAD=", total);
  };
  ParserLimits no_extras;
  no_extras.mail_extra = 0;
  no_extras.rcpt_extra = 0;
  expect_error(mail_line(512), CommandError::none, no_extras);
  expect_error(mail_line(513), CommandError::line_too_long, no_extras);
  expect_error(rcpt_line(512), CommandError::none, no_extras);
  expect_error(rcpt_line(513), CommandError::line_too_long, no_extras);

  ParserLimits size_only;  // defaults: SIZE advertised (+26 on MAIL)
  expect_error(mail_line(538), CommandError::none, size_only);
  expect_error(mail_line(539), CommandError::line_too_long, size_only);
  expect_error(rcpt_line(512), CommandError::none, size_only);
  expect_error(rcpt_line(513), CommandError::line_too_long, size_only);

  ParserLimits size_and_dsn;
  size_and_dsn.mail_extra = 126;
  size_and_dsn.rcpt_extra = 500;
  expect_error(mail_line(638), CommandError::none, size_and_dsn);
  expect_error(mail_line(639), CommandError::line_too_long, size_and_dsn);
  expect_error(rcpt_line(1012), CommandError::none, size_and_dsn);
  expect_error(rcpt_line(1013), CommandError::line_too_long, size_and_dsn);
  // Just past the buffer limit (512 + 500), the line is discarded rather than buffered.
  expect_error(rcpt_line(1014), CommandError::line_too_long, size_and_dsn);
  expect_error(rcpt_line(5000), CommandError::line_too_long, size_and_dsn);
}

BOOST_AUTO_TEST_CASE(limit_applies_to_bare_lf_lines_as_if_they_had_crlf) {
  ParserLimits limits = normalize_limits();
  std::string at_512 = line_of_length("NOOP ", 512);
  at_512.erase(at_512.size() - 2, 1);  // drop the CR: 511 bytes, 510 of them before the LF
  expect_error(at_512, CommandError::none, limits);
  std::string at_513 = line_of_length("NOOP ", 513);
  at_513.erase(at_513.size() - 2, 1);
  expect_error(at_513, CommandError::line_too_long, limits);
}

BOOST_AUTO_TEST_CASE(overlong_line_is_discarded_without_buffering) {
  const ParserLimits limits;  // buffer limit 512 + 26
  const size_t buffer_limit = limits.command_line + limits.mail_extra;
  const std::string ten_megabytes(10 * 1024 * 1024, 'A');
  const std::string_view chunked(ten_megabytes);
  const std::string tail = "\r\nNOOP\r\n";

  for (size_t chunk_size : {size_t{65536}, ten_megabytes.size()}) {
    BOOST_TEST_CONTEXT("chunk size " << chunk_size) {
      SmtpParser parser(limits);
      Command command;
      std::string content;
      DataEnd end;
      largest_allocation = 0;
      tracking_allocations = true;
      for (size_t offset = 0; offset < chunked.size(); offset += chunk_size) {
        std::string_view piece = chunked.substr(offset, chunk_size);
        SmtpParser::Step step = parser.feed(piece, &command, &content, &end);
        BOOST_REQUIRE(step.event == SmtpParser::Event::need_more);
        BOOST_REQUIRE_EQUAL(step.consumed, piece.size());
      }
      tracking_allocations = false;
      // Nothing near the input size was ever allocated: the line was not buffered.
      BOOST_TEST(largest_allocation.load() <= 4 * buffer_limit);

      SmtpParser::Step step = parser.feed(tail, &command, &content, &end);
      BOOST_TEST(step.event == SmtpParser::Event::command);
      BOOST_TEST(step.consumed == 2U);
      BOOST_TEST(command.error == CommandError::line_too_long);
      BOOST_TEST(command.line.size() <= buffer_limit);
      BOOST_TEST(command.line.substr(0, 4) == "AAAA");

      Command next;
      step = parser.feed(std::string_view(tail).substr(2), &next, &content, &end);
      BOOST_TEST(step.event == SmtpParser::Event::command);
      BOOST_TEST(next.verb == Verb::noop);
      BOOST_TEST(next.error == CommandError::none);
    }
  }
}

BOOST_AUTO_TEST_CASE(overlong_line_followed_by_commands_in_one_buffer) {
  const std::string input = std::string(3000, 'z') + "\r\nHELO a.example\r\nQUIT\r\n";
  DriveOptions options;
  std::vector<Recorded> events = drive_all_splits(input, options);
  BOOST_REQUIRE_EQUAL(events.size(), 3U);
  BOOST_TEST(events[0].command.error == CommandError::line_too_long);
  BOOST_TEST(events[0].input_offset == 3002U);
  BOOST_TEST(events[1].command.verb == Verb::helo);
  BOOST_TEST(events[1].command.argument == "a.example");
  BOOST_TEST(events[2].command.verb == Verb::quit);
}

BOOST_AUTO_TEST_CASE(reset_forgets_a_partial_line) {
  SmtpParser parser(ParserLimits{});
  Command command;
  std::string content;
  DataEnd end;
  BOOST_TEST(parser.feed("RSET-INJ", &command, &content, &end).event ==
             SmtpParser::Event::need_more);
  parser.reset();
  SmtpParser::Step step = parser.feed("EHLO x\r\n", &command, &content, &end);
  BOOST_TEST(step.event == SmtpParser::Event::command);
  BOOST_TEST(command.verb == Verb::ehlo);
  BOOST_TEST(command.line == "EHLO x");
}

// ---------------------------------------------------------------------------------------------
// Pipelining: one buffer, every split
// ---------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(pipelined_session_gives_the_same_events_at_every_split) {
  const std::string input =
      "EHLO client.example\r\n"
      "MAIL FROM:<a@b.example> SIZE=20\r\n"
      "RCPT TO:<c@d.example>\r\n"
      "RCPT TO:<bad path>\r\n"
      "DATA\r\n"
      "Subject: s\r\n"
      "\r\n"
      "..leading dot\r\n"
      ".\r\n"
      "QUIT\r\n";
  DriveOptions options;
  std::vector<Recorded> events = drive_all_splits(input, options);
  BOOST_REQUIRE_EQUAL(events.size(), 7U);
  BOOST_TEST(events[0].command.verb == Verb::ehlo);
  BOOST_TEST(events[0].input_offset == 21U);
  BOOST_TEST(events[1].command.verb == Verb::mail);
  BOOST_TEST(events[1].command.params_text == "SIZE=20");
  BOOST_TEST(events[2].command.verb == Verb::rcpt);
  BOOST_TEST(events[2].command.path == "c@d.example");
  BOOST_TEST(events[3].command.error == CommandError::bad_recipient_path);
  BOOST_TEST(events[4].command.verb == Verb::data);
  BOOST_TEST(!events[5].is_command);
  const std::string expected_content = "Subject: s\r\n\r\n.leading dot\r\n";
  BOOST_TEST(events[5].content == expected_content);
  BOOST_TEST(events[5].end.ok());
  BOOST_TEST(events[5].end.size == expected_content.size());
  BOOST_TEST(events[5].input_offset == input.size() - 6);
  BOOST_TEST(events[6].command.verb == Verb::quit);
}

BOOST_AUTO_TEST_CASE(pipelined_errors_and_bare_lf_at_every_split) {
  const std::string input = bytes_of("NOOP\nHost: x\r\nNO\rOP\r\nNO\0OP\r\nHELO h\r\n");
  for (BareLfMode mode : {BareLfMode::reject, BareLfMode::normalize}) {
    DriveOptions options;
    options.limits.bare_lf = mode;
    std::vector<Recorded> events = drive_all_splits(input, options);
    BOOST_REQUIRE_EQUAL(events.size(), 5U);
    BOOST_TEST(events[0].command.error ==
               (mode == BareLfMode::reject ? CommandError::bare_lf : CommandError::none));
    BOOST_TEST(events[1].command.error == CommandError::forbidden);
    BOOST_TEST(events[2].command.error == CommandError::bare_cr);
    BOOST_TEST(events[3].command.error == CommandError::nul_byte);
    BOOST_TEST(events[4].command.verb == Verb::helo);
  }
}

// ---------------------------------------------------------------------------------------------
// Data mode
// ---------------------------------------------------------------------------------------------

namespace {

DriveOptions data_options(BareLfMode mode = BareLfMode::reject) {
  DriveOptions options;
  options.start_in_data = true;
  options.limits.bare_lf = mode;
  return options;
}

// Runs a message (terminator included) in data mode at every split; returns the one data_end.
Recorded single_message(std::string_view input, const DriveOptions& options) {
  std::vector<Recorded> events = drive_all_splits(input, options);
  BOOST_REQUIRE_GE(events.size(), 1U);
  BOOST_REQUIRE(!events[0].is_command);
  for (size_t i = 1; i < events.size(); ++i)
    BOOST_TEST(events[i].is_command);
  return events[0];
}

}  // namespace

BOOST_AUTO_TEST_CASE(dot_unstuffing_and_byte_exact_content) {
  const std::string message =
      "From: a@b.example\r\n"
      "\r\n"
      "..one\r\n"
      ".two\r\n"
      "...\r\n"
      "..\r\n"
      "not.a.dot\r\n"
      " .space\r\n"
      "8bit \xff\xfe\x80 tab\there\r\n"
      ".\r\n";
  Recorded end = single_message(message, data_options());
  BOOST_TEST(end.end.ok());
  const std::string expected =
      "From: a@b.example\r\n"
      "\r\n"
      ".one\r\n"
      "two\r\n"
      "..\r\n"
      ".\r\n"
      "not.a.dot\r\n"
      " .space\r\n"
      "8bit \xff\xfe\x80 tab\there\r\n";
  BOOST_TEST(end.content == expected);
  BOOST_TEST(end.end.size == expected.size());
  BOOST_TEST(end.input_offset == message.size());
}

BOOST_AUTO_TEST_CASE(empty_message_and_terminator_on_first_line) {
  Recorded end = single_message(".\r\n", data_options());
  BOOST_TEST(end.end.ok());
  BOOST_TEST(end.content.empty());
  BOOST_TEST(end.end.size == 0U);
  BOOST_TEST(end.input_offset == 3U);
}

BOOST_AUTO_TEST_CASE(bytes_after_the_terminator_are_left_for_command_mode) {
  SmtpParser parser(ParserLimits{});
  parser.begin_data();
  BOOST_TEST(parser.in_data());
  Command command;
  std::string content;
  DataEnd end;
  const std::string input = "body\r\n.\r\nQUIT\r\n";
  SmtpParser::Step step = parser.feed(input, &command, &content, &end);
  BOOST_TEST(step.event == SmtpParser::Event::data_end);
  BOOST_TEST(step.consumed == 9U);
  BOOST_TEST(!parser.in_data());
  BOOST_TEST(content == "body\r\n");
  BOOST_TEST(end.ok());
  step = parser.feed(std::string_view(input).substr(9), &command, &content, &end);
  BOOST_TEST(step.event == SmtpParser::Event::command);
  BOOST_TEST(command.verb == Verb::quit);
}

BOOST_AUTO_TEST_CASE(cr_at_the_end_of_a_chunk_waits_for_the_next_byte) {
  SmtpParser parser(ParserLimits{});
  parser.begin_data();
  Command command;
  std::string content;
  DataEnd end;
  SmtpParser::Step step = parser.feed("abc\r", &command, &content, &end);
  BOOST_TEST(step.event == SmtpParser::Event::need_more);
  BOOST_TEST(step.consumed == 4U);
  BOOST_TEST(content == "abc");  // the CR is not content until its meaning is known
  step = parser.feed("\n.\r", &command, &content, &end);
  BOOST_TEST(step.event == SmtpParser::Event::need_more);
  BOOST_TEST(content == "abc\r\n");
  step = parser.feed("\nMAIL", &command, &content, &end);
  BOOST_TEST(step.event == SmtpParser::Event::data_end);
  BOOST_TEST(step.consumed == 1U);
  BOOST_TEST(end.ok());
  BOOST_TEST(end.size == 5U);

  // ".\r" then something other than LF: the dot was stuffing and the CR is bare.
  parser.begin_data();
  content.clear();
  BOOST_TEST(parser.feed("x\r\n.\r", &command, &content, &end).event ==
             SmtpParser::Event::need_more);
  BOOST_TEST(parser.feed("y\r\n.\r\n", &command, &content, &end).event ==
             SmtpParser::Event::data_end);
  BOOST_TEST(end.bare_cr);
  BOOST_TEST(!end.ok());
}

BOOST_AUTO_TEST_CASE(bare_cr_is_refused_in_both_modes) {
  for (BareLfMode mode : {BareLfMode::reject, BareLfMode::normalize}) {
    for (std::string_view message : {"a\rb\r\n.\r\n", "a\r\r\n.\r\n", "\r.\r\n.\r\n",
                                     "a\r\n.\r\r\n.\r\n", "a\r\n\r.\r\n.\r\n"}) {
      BOOST_TEST_CONTEXT("mode " << (mode == BareLfMode::reject) << " message "
                                 << escape(message)) {
        Recorded end = single_message(message, data_options(mode));
        BOOST_TEST(end.end.bare_cr);
        BOOST_TEST(!end.end.bare_lf);
        BOOST_TEST(end.input_offset == message.size());
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(bare_lf_is_refused_or_normalized) {
  const std::string message = "Subject: x\n\nbody\n..dot\n.\nstill content\r\n.\r\n";
  Recorded rejected = single_message(message, data_options(BareLfMode::reject));
  BOOST_TEST(rejected.end.bare_lf);
  BOOST_TEST(!rejected.end.bare_cr);
  BOOST_TEST(rejected.input_offset == message.size());

  Recorded normalized = single_message(message, data_options(BareLfMode::normalize));
  BOOST_TEST(normalized.end.ok());
  const std::string expected = "Subject: x\r\n\r\nbody\r\n.dot\r\n\r\nstill content\r\n";
  BOOST_TEST(normalized.content == expected);
  BOOST_TEST(normalized.end.size == expected.size());

  // A bare-LF line end never counts as the CRLF before a terminator, even with ".\r\n".
  const std::string lf_then_dot = "a\n.\r\nb\r\n.\r\n";
  Recorded late = single_message(lf_then_dot, data_options(BareLfMode::normalize));
  BOOST_TEST(late.end.ok());
  BOOST_TEST(late.content == "a\r\n\r\nb\r\n");
  BOOST_TEST(late.input_offset == lf_then_dot.size());
}

BOOST_AUTO_TEST_CASE(nul_is_refused) {
  const std::string message = bytes_of("a\0b\r\n.\r\n");
  for (BareLfMode mode : {BareLfMode::reject, BareLfMode::normalize}) {
    Recorded end = single_message(message, data_options(mode));
    BOOST_TEST(end.end.nul);
    BOOST_TEST(!end.end.ok());
    BOOST_TEST(end.end.size == 5U);
  }
}

BOOST_AUTO_TEST_CASE(line_length_limit_counts_raw_bytes_without_line_end) {
  DriveOptions options = data_options();
  options.limits.max_line_length = 10;
  // 10 raw bytes pass byte-exact, the leading dot included.
  Recorded exact = single_message("0123456789\r\n..23456789\r\n.\r\n", options);
  BOOST_TEST(exact.end.ok());
  BOOST_TEST(exact.content == "0123456789\r\n.23456789\r\n");
  Recorded over = single_message("0123456789A\r\n.\r\n", options);
  BOOST_TEST(over.end.line_too_long);
  Recorded dotted = single_message("..234567890\r\n.\r\n", options);
  BOOST_TEST(dotted.end.line_too_long);
}

BOOST_AUTO_TEST_CASE(header_size_limit_covers_lines_up_to_the_first_empty_line) {
  DriveOptions options = data_options();
  // "Subject: 1234567\r\n" (18) + "\r\n" (2) = 20 bytes of header section.
  const std::string message = "Subject: 1234567\r\n\r\n" + std::string(100, 'b') + "\r\n.\r\n";
  options.limits.max_header_size = 20;
  Recorded fits = single_message(message, options);
  BOOST_TEST(fits.end.ok());
  BOOST_TEST(fits.content.size() == 122U);
  options.limits.max_header_size = 19;
  Recorded over = single_message(message, options);
  BOOST_TEST(over.end.header_too_large);
  BOOST_TEST(!over.end.too_big);
  BOOST_TEST(over.end.size == 122U);
}

BOOST_AUTO_TEST_CASE(message_size_limit_counts_unstuffed_bytes) {
  DriveOptions options = data_options();
  options.limits.max_message_size = 10;
  Recorded fits = single_message("..2345678\r\n.\r\n", options);  // unstuffed: 8 + CRLF = 10
  BOOST_TEST(fits.end.ok());
  BOOST_TEST(fits.end.size == 10U);
  Recorded over = single_message("123456789\r\n.\r\n", options);
  BOOST_TEST(over.end.too_big);
  BOOST_TEST(over.end.size == 11U);
}

BOOST_AUTO_TEST_CASE(content_stops_after_a_problem_but_size_and_terminator_go_on) {
  SmtpParser parser(ParserLimits{});
  parser.begin_data();
  Command command;
  std::string content;
  DataEnd end;
  BOOST_REQUIRE(parser.feed(bytes_of("ok\r\nN\0L\r\n"), &command, &content, &end).event ==
                SmtpParser::Event::need_more);
  const size_t content_at_problem = content.size();
  BOOST_TEST(content_at_problem <= 9U);
  const std::string bulk = std::string(1000, 'x') + "\r\n";
  for (int i = 0; i < 1000; ++i) {
    BOOST_REQUIRE(parser.feed(bulk, &command, &content, &end).event ==
                  SmtpParser::Event::need_more);
  }
  BOOST_TEST(content.size() == content_at_problem);
  SmtpParser::Step step = parser.feed(".\r\nQUIT\r\n", &command, &content, &end);
  BOOST_TEST(step.event == SmtpParser::Event::data_end);
  BOOST_TEST(step.consumed == 3U);
  BOOST_TEST(end.nul);
  BOOST_TEST(end.size == 4U + 5U + 1000U * bulk.size());
}

BOOST_AUTO_TEST_CASE(large_message_passes_with_exact_size) {
  // A 20 MB body in 64 KiB reads, the way a benchmark sends it.
  std::string message = "Subject: big\r\n\r\n";
  const std::string line = std::string(998, 'm') + "\r\n";
  while (message.size() < 20 * 1024 * 1024)
    message += line;
  const size_t content_size = message.size();
  message += ".\r\n";
  ParserLimits limits;
  SmtpParser parser(limits);
  parser.begin_data();
  Command command;
  std::string content;
  DataEnd end;
  int data_ends = 0;
  for (size_t offset = 0; offset < message.size(); offset += 65536) {
    std::string_view piece = std::string_view(message).substr(offset, 65536);
    SmtpParser::Step step = parser.feed(piece, &command, &content, &end);
    BOOST_REQUIRE_EQUAL(step.consumed, piece.size());
    if (step.event == SmtpParser::Event::data_end) ++data_ends;
  }
  BOOST_TEST(data_ends == 1);
  BOOST_TEST(end.ok());
  BOOST_TEST(end.size == content_size);
  BOOST_TEST(content.size() == content_size);
  BOOST_TEST((content == std::string_view(message).substr(0, content_size)));
}

// ---------------------------------------------------------------------------------------------
// SMTP smuggling end-of-data sequences (shared corpus)
// ---------------------------------------------------------------------------------------------

namespace {

struct EodSequence {
  std::string id;
  std::string bytes;
  bool is_end_of_data = false;
};

std::string from_hex(std::string_view hex) {
  BOOST_REQUIRE_EQUAL(hex.size() % 2, 0U);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    BOOST_FAIL("not a hex digit in the corpus");
    return 0;
  };
  std::string bytes;
  for (size_t i = 0; i < hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1])));
  }
  return bytes;
}

std::vector<EodSequence> load_eod_sequences() {
  const char* corpora = std::getenv("PORTCULLIS_CORPORA");
  BOOST_REQUIRE_MESSAGE(corpora != nullptr, "PORTCULLIS_CORPORA is not set");
  const std::string path = std::string(corpora) + "/smtp/smuggling/eod-sequences.tsv";
  std::ifstream file(path);
  BOOST_REQUIRE_MESSAGE(file.is_open(), "cannot open " << path);
  std::vector<EodSequence> sequences;
  std::string row;
  while (std::getline(file, row)) {
    if (row.empty() || row.front() == '#') continue;
    std::vector<std::string> columns;
    size_t start = 0;
    while (true) {
      size_t tab = row.find('\t', start);
      columns.push_back(row.substr(start, tab == std::string::npos ? tab : tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    BOOST_REQUIRE_GE(columns.size(), 4U);
    sequences.push_back({columns[0], from_hex(columns[2]), columns[3] == "yes"});
  }
  return sequences;
}

// Oracles independent of the parser: what the bytes before the real terminator contain.
bool has_bare_cr(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] == '\r' && (i + 1 == bytes.size() || bytes[i + 1] != '\n')) return true;
  }
  return false;
}
bool has_bare_lf(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] == '\n' && (i == 0 || bytes[i - 1] != '\r')) return true;
  }
  return false;
}

}  // namespace

BOOST_AUTO_TEST_CASE(smuggling_sequences_never_end_data_early) {
  const std::vector<EodSequence> sequences = load_eod_sequences();
  BOOST_REQUIRE_GE(sequences.size(), 2U);
  size_t control_rows = 0;
  const std::string before = "Subject: x\r\n\r\nline";
  const std::string smuggled =
      "mail FROM:<smuggled@x.example>\r\nrcpt TO:<v@y.example>\r\ndata\r\nsecond\r\n";
  const std::string final_terminator = ".\r\n";
  const std::string after = "QUIT\r\n";

  for (const EodSequence& sequence : sequences) {
    const std::string input = before + sequence.bytes + smuggled + final_terminator + after;
    for (BareLfMode mode : {BareLfMode::reject, BareLfMode::normalize}) {
      BOOST_TEST_CONTEXT("sequence " << sequence.id << " mode "
                                     << (mode == BareLfMode::reject ? "reject" : "normalize")) {
        std::vector<Recorded> events = drive_all_splits(input, data_options(mode));
        BOOST_REQUIRE_GE(events.size(), 2U);
        BOOST_REQUIRE(!events[0].is_command);
        if (sequence.is_end_of_data) {
          ++control_rows;
          // DATA ends at the sequence; the following lines are a second transaction.
          BOOST_TEST(events[0].input_offset == before.size() + sequence.bytes.size());
          BOOST_TEST(events[0].end.ok());
          BOOST_TEST(events[0].content == "Subject: x\r\n\r\nline\r\n");
          BOOST_REQUIRE_EQUAL(events.size(), 6U);
          BOOST_TEST(events[1].command.verb == Verb::mail);
          BOOST_TEST(events[1].command.path == "smuggled@x.example");
          BOOST_TEST(events[2].command.verb == Verb::rcpt);
          BOOST_TEST(events[3].command.verb == Verb::data);
          BOOST_TEST(!events[4].is_command);
          BOOST_TEST(events[4].content == "second\r\n");
          BOOST_TEST(events[5].command.verb == Verb::quit);
          continue;
        }
        // Exactly one data_end, at the real CRLF.CRLF; then QUIT and nothing else.
        BOOST_REQUIRE_EQUAL(events.size(), 2U);
        BOOST_TEST(events[0].input_offset == input.size() - after.size());
        BOOST_TEST(events[1].is_command);
        BOOST_TEST(events[1].command.verb == Verb::quit);

        const std::string message_bytes = before + sequence.bytes + smuggled;
        const DataEnd& end = events[0].end;
        const bool nul = message_bytes.find('\0') != std::string::npos;
        BOOST_TEST(end.nul == nul);
        BOOST_TEST(end.bare_cr == has_bare_cr(message_bytes));
        BOOST_TEST(end.bare_lf == (mode == BareLfMode::reject && has_bare_lf(message_bytes)));
        if (end.ok()) {
          // Accepted: the smuggled commands are plain content of the one message.
          BOOST_TEST(events[0].content.find("mail FROM:<smuggled@x.example>\r\n") !=
                     std::string::npos);
          BOOST_TEST(events[0].content.find("second\r\n") != std::string::npos);
        }
        if (mode == BareLfMode::normalize) {
          BOOST_TEST(!has_bare_cr(events[0].content));
          BOOST_TEST(!has_bare_lf(events[0].content));
        }
      }
    }
  }
  BOOST_TEST(control_rows == 2U);  // the control row, once per mode
}
