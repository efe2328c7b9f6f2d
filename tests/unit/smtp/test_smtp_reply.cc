#define BOOST_TEST_MODULE smtp_reply
#include <boost/test/unit_test.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "smtp_reply.h"

using portcullis::SmtpReply;
using portcullis::SmtpReplyParser;

namespace {

std::string describe(const SmtpReply& reply) {
  std::string out = std::to_string(reply.code) + " lines=";
  for (const std::string& line : reply.lines)
    out += "[" + line + "]";
  out += " wire=[" + reply.wire + "]";
  return out;
}

struct Outcome {
  std::vector<std::string> replies;
  bool error = false;
  size_t consumed = 0;  // bytes consumed when the last reply completed (or the error showed)
};

// Feeds a stream in pieces ending at `cuts`, the way the upstream client does.
Outcome read_replies(std::string_view input, const std::vector<size_t>& cuts) {
  SmtpReplyParser parser;
  Outcome outcome;
  std::string pending;
  size_t consumed_total = 0;
  size_t previous_cut = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(input.size());
  for (size_t cut : ends) {
    pending.append(input.substr(previous_cut, cut - previous_cut));
    previous_cut = cut;
    while (!pending.empty()) {
      SmtpReply reply;
      SmtpReplyParser::Step step = parser.feed(pending, &reply);
      BOOST_REQUIRE_LE(step.consumed, pending.size());
      pending.erase(0, step.consumed);
      consumed_total += step.consumed;
      if (step.error) {
        outcome.error = true;
        outcome.consumed = consumed_total;
        return outcome;
      }
      if (!step.complete) {
        BOOST_REQUIRE(pending.empty());
        break;
      }
      outcome.replies.push_back(describe(reply));
      outcome.consumed = consumed_total;
    }
  }
  return outcome;
}

Outcome read_whole(std::string_view input) {
  return read_replies(input, {});
}

// The same replies (or the same error) whole, split at every byte boundary, and byte by byte.
Outcome read_at_every_split(std::string_view input) {
  Outcome whole = read_whole(input);
  for (size_t cut = 1; cut < input.size(); ++cut) {
    BOOST_TEST_CONTEXT("split at byte " << cut) {
      Outcome split = read_replies(input, {cut});
      BOOST_TEST(split.replies == whole.replies, boost::test_tools::per_element());
      BOOST_TEST(split.error == whole.error);
    }
  }
  std::vector<size_t> every_byte;
  for (size_t cut = 1; cut < input.size(); ++cut)
    every_byte.push_back(cut);
  Outcome bytewise = read_replies(input, every_byte);
  BOOST_TEST(bytewise.replies == whole.replies, boost::test_tools::per_element());
  BOOST_TEST(bytewise.error == whole.error);
  return whole;
}

SmtpReply read_one(std::string_view input) {
  SmtpReplyParser parser;
  SmtpReply reply;
  SmtpReplyParser::Step step = parser.feed(input, &reply);
  BOOST_REQUIRE(!step.error);
  BOOST_REQUIRE(step.complete);
  BOOST_REQUIRE_EQUAL(step.consumed, input.size());
  return reply;
}

void expect_error(std::string_view input) {
  BOOST_TEST_CONTEXT("input " << input) {
    SmtpReplyParser parser;
    SmtpReply reply;
    SmtpReplyParser::Step step = parser.feed(input, &reply);
    BOOST_TEST(step.error);
    BOOST_TEST(!step.complete);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(make_single_line) {
  SmtpReply reply = SmtpReply::make(250, "2.0.0 Ok");
  BOOST_TEST(reply.code == 250);
  BOOST_TEST(reply.lines == std::vector<std::string>{"2.0.0 Ok"});
  BOOST_TEST(reply.wire == "250 2.0.0 Ok\r\n");
  BOOST_TEST(reply.positive());
  BOOST_TEST(reply.klass() == 2);
}

BOOST_AUTO_TEST_CASE(make_multi_line) {
  SmtpReply reply = SmtpReply::make(250, std::vector<std::string>{"a", "b"});
  BOOST_TEST(reply.code == 250);
  BOOST_TEST(reply.lines == (std::vector<std::string>{"a", "b"}));
  BOOST_TEST(reply.wire == "250-a\r\n250 b\r\n");

  SmtpReply three = SmtpReply::make(550, std::vector<std::string>{"5.7.1 one", "", "three"});
  BOOST_TEST(three.wire == "550-5.7.1 one\r\n550-\r\n550 three\r\n");
  BOOST_TEST(!three.positive());
  BOOST_TEST(three.klass() == 5);
}

BOOST_AUTO_TEST_CASE(make_with_empty_text) {
  SmtpReply reply = SmtpReply::make(354, "");
  BOOST_TEST(reply.wire == "354\r\n");
  BOOST_TEST(reply.lines == std::vector<std::string>{""});
  BOOST_TEST(reply.positive());
  SmtpReply none = SmtpReply::make(221, std::vector<std::string>{});
  BOOST_TEST(none.wire == "221\r\n");
}

BOOST_AUTO_TEST_CASE(make_never_lets_text_end_the_line) {
  // A fact placed into a reply text must not inject a second reply line.
  SmtpReply reply = SmtpReply::make(550, std::string_view("5.7.1 x\r\n250 ok\nz\0y", 19));
  BOOST_TEST(reply.wire == "550 5.7.1 x  250 ok z y\r\n");
  BOOST_TEST(reply.lines.size() == 1U);
  SmtpReply multi = SmtpReply::make(451, std::vector<std::string>{"a\r\n451 b", "c"});
  BOOST_TEST(multi.wire == "451-a  451 b\r\n451 c\r\n");
}

BOOST_AUTO_TEST_CASE(made_replies_read_back_unchanged) {
  for (const SmtpReply& made :
       {SmtpReply::make(220, "mx.example ESMTP"), SmtpReply::make(421, "4.4.1 try later"),
        SmtpReply::make(250, std::vector<std::string>{"mx", "PIPELINING", "SIZE 1000"})}) {
    SmtpReply read = read_one(made.wire);
    BOOST_TEST(read.code == made.code);
    BOOST_TEST(read.lines == made.lines, boost::test_tools::per_element());
    BOOST_TEST(read.wire == made.wire);
  }
}

BOOST_AUTO_TEST_CASE(single_line_reply) {
  SmtpReply reply = read_one("250 2.1.0 Ok\r\n");
  BOOST_TEST(reply.code == 250);
  BOOST_TEST(reply.lines == std::vector<std::string>{"2.1.0 Ok"});
  BOOST_TEST(reply.wire == "250 2.1.0 Ok\r\n");

  SmtpReply bare_code = read_one("354\r\n");
  BOOST_TEST(bare_code.code == 354);
  BOOST_TEST(bare_code.lines == std::vector<std::string>{""});
  BOOST_TEST(bare_code.wire == "354\r\n");
}

BOOST_AUTO_TEST_CASE(multi_line_reply) {
  const std::string wire = "250-mx.example\r\n250-PIPELINING\r\n250-\r\n250 SIZE 10240000\r\n";
  SmtpReply reply = read_one(wire);
  BOOST_TEST(reply.code == 250);
  BOOST_TEST(
      reply.lines == (std::vector<std::string>{"mx.example", "PIPELINING", "", "SIZE 10240000"}),
      boost::test_tools::per_element());
  BOOST_TEST(reply.wire == wire);
}

BOOST_AUTO_TEST_CASE(bare_lf_lines_are_taken_and_given_crlf) {
  SmtpReply reply = read_one("250-first\n250 second\r\n");
  BOOST_TEST(reply.lines == (std::vector<std::string>{"first", "second"}),
             boost::test_tools::per_element());
  BOOST_TEST(reply.wire == "250-first\r\n250 second\r\n");
  SmtpReply lf_only = read_one("220 hello\n");
  BOOST_TEST(lf_only.wire == "220 hello\r\n");
}

BOOST_AUTO_TEST_CASE(one_reply_per_call) {
  const std::string stream = "250 first\r\n451-4.3.0 a\r\n451 4.3.0 b\r\n";
  SmtpReplyParser parser;
  SmtpReply reply;
  SmtpReplyParser::Step step = parser.feed(stream, &reply);
  BOOST_TEST(step.complete);
  BOOST_TEST(step.consumed == 11U);
  BOOST_TEST(reply.code == 250);
  step = parser.feed(std::string_view(stream).substr(11), &reply);
  BOOST_TEST(step.complete);
  BOOST_TEST(step.consumed == stream.size() - 11);
  BOOST_TEST(reply.code == 451);
  BOOST_TEST(reply.lines.size() == 2U);
  // Nothing left: need more.
  step = parser.feed("", &reply);
  BOOST_TEST(!step.complete);
  BOOST_TEST(!step.error);
  BOOST_TEST(step.consumed == 0U);
}

BOOST_AUTO_TEST_CASE(every_split_gives_the_same_replies) {
  const std::string stream =
      "220 mx.example ESMTP\r\n"
      "250-mx.example\r\n250-PIPELINING\n250 8BITMIME\r\n"
      "250 2.1.0 Ok\r\n"
      "550 5.1.1 <x@y>: Recipient address rejected\r\n"
      "354 End data with <CR><LF>.<CR><LF>\r\n";
  Outcome outcome = read_at_every_split(stream);
  BOOST_TEST(!outcome.error);
  BOOST_TEST(outcome.replies.size() == 5U);
  BOOST_TEST(outcome.consumed == stream.size());

  const std::string broken = "250-a\r\n250 b\r\n250-c\r\n251 d\r\n";
  Outcome failed = read_at_every_split(broken);
  BOOST_TEST(failed.error);
  BOOST_TEST(failed.replies.size() == 1U);
}

BOOST_AUTO_TEST_CASE(code_mismatch_is_an_error) {
  expect_error("250-a\r\n251 b\r\n");
  expect_error("250-a\r\n550 b\r\n");
}

BOOST_AUTO_TEST_CASE(lines_that_are_not_replies_are_errors) {
  for (std::string_view input :
       {"\r\n", "25\r\n", "25x ok\r\n", "2500 ok\r\n", "250x\r\n", "250\tok\r\n", "abc\r\n",
        "650 out of range\r\n", "050 out of range\r\n", "HTTP/1.1 200 OK\r\n", " 250 ok\r\n"}) {
    expect_error(input);
  }
}

BOOST_AUTO_TEST_CASE(bare_cr_and_nul_are_errors) {
  expect_error("250 a\rb\r\n");
  expect_error("250 a\r\r\n");
  expect_error(std::string_view("250 a\0b\r\n", 9));
}

BOOST_AUTO_TEST_CASE(overlong_lines_are_errors) {
  const std::string at_limit = "250 " + std::string(SmtpReplyParser::max_line - 4, 'x');
  BOOST_REQUIRE_EQUAL(at_limit.size(), SmtpReplyParser::max_line);
  SmtpReply reply = read_one(at_limit + "\r\n");
  BOOST_TEST(reply.lines[0].size() == SmtpReplyParser::max_line - 4);
  expect_error(at_limit + "x\r\n");
  expect_error(at_limit + "x\n");

  // Without any line end, the parser gives up once the limit is passed, not at the LF.
  SmtpReplyParser parser;
  const std::string endless(SmtpReplyParser::max_line, '2');
  SmtpReplyParser::Step step = parser.feed(endless, &reply);
  BOOST_TEST(!step.error);
  step = parser.feed("22", &reply);
  BOOST_TEST(step.error);
}

BOOST_AUTO_TEST_CASE(lines_past_the_bound_are_read_and_dropped) {
  std::string at_limit;
  for (size_t i = 0; i + 1 < SmtpReplyParser::max_lines; ++i)
    at_limit += "250-line " + std::to_string(i) + "\r\n";
  SmtpReply reply = read_one(at_limit + "250 last\r\n");
  BOOST_TEST(reply.lines.size() == SmtpReplyParser::max_lines);
  BOOST_TEST(reply.lines.back() == "last");

  // 2,000 lines: the reply is still a 250 (an upstream that accepted a message accepted it),
  // of its first max_lines lines, and valid on the wire (the last kept line is the final one).
  std::string long_reply;
  for (size_t i = 0; i < 1999; ++i)
    long_reply += (i < SmtpReplyParser::max_lines ? "250-line " : "250-dropped ") +
                  std::to_string(i) + "\r\n";
  long_reply += "250 really last\r\n";
  SmtpReplyParser parser;
  SmtpReply shortened;
  const SmtpReplyParser::Step step = parser.feed(long_reply + "220 next\r\n", &shortened);
  BOOST_TEST(!step.error);
  BOOST_TEST(step.complete);
  BOOST_TEST(step.consumed == long_reply.size());
  BOOST_TEST(shortened.code == 250);
  BOOST_TEST(shortened.lines.size() == SmtpReplyParser::max_lines);
  BOOST_TEST(shortened.lines.front() == "line 0");
  BOOST_TEST(shortened.wire.find("dropped") == std::string::npos);
  const std::string last_line =
      "250 line " + std::to_string(SmtpReplyParser::max_lines - 1) + "\r\n";
  BOOST_TEST(shortened.wire.size() >= last_line.size());
  BOOST_TEST(shortened.wire.compare(shortened.wire.size() - last_line.size(), last_line.size(),
                                    last_line) == 0,
             shortened.wire.substr(shortened.wire.size() - 40));
  // The next reply starts clean.
  SmtpReply next;
  BOOST_TEST(parser.feed("220 next\r\n", &next).complete);
  BOOST_TEST(next.code == 220);
  BOOST_TEST(next.lines.size() == 1u);
}

BOOST_AUTO_TEST_CASE(error_sticks_until_reset) {
  SmtpReplyParser parser;
  SmtpReply reply;
  BOOST_TEST(parser.feed("garbage\r\n", &reply).error);
  SmtpReplyParser::Step step = parser.feed("250 ok\r\n", &reply);
  BOOST_TEST(step.error);
  BOOST_TEST(step.consumed == 0U);
  parser.reset();
  step = parser.feed("250 ok\r\n", &reply);
  BOOST_TEST(!step.error);
  BOOST_TEST(step.complete);
  BOOST_TEST(reply.code == 250);
}

BOOST_AUTO_TEST_CASE(reset_drops_a_partial_reply) {
  SmtpReplyParser parser;
  SmtpReply reply;
  BOOST_TEST(!parser.feed("250-partial\r\n250 tr", &reply).complete);
  parser.reset();
  SmtpReplyParser::Step step = parser.feed("220 fresh\r\n", &reply);
  BOOST_TEST(step.complete);
  BOOST_TEST(reply.code == 220);
  BOOST_TEST(reply.wire == "220 fresh\r\n");
}
