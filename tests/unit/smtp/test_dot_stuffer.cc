#define BOOST_TEST_MODULE dot_stuffer
#include <boost/test/unit_test.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "dot_stuffer.h"
#include "smtp_parser.h"

using portcullis::DotStuffer;

namespace {

// Stuffs content given in pieces ending at `cuts`, then finishes.
std::string stuff(std::string_view content, const std::vector<size_t>& cuts = {}) {
  DotStuffer stuffer;
  std::string out;
  size_t previous = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(content.size());
  for (size_t cut : ends) {
    stuffer.feed(content.substr(previous, cut - previous), &out);
    previous = cut;
  }
  stuffer.finish(&out);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(leading_dots_are_doubled) {
  BOOST_TEST(stuff("a\r\n.b\r\n..\r\n.\r\nc.d\r\n") == "a\r\n..b\r\n...\r\n..\r\nc.d\r\n.\r\n");
  BOOST_TEST(stuff(".first\r\n") == "..first\r\n.\r\n");
  BOOST_TEST(stuff("\r\n.\r\n") == "\r\n..\r\n.\r\n");
}

BOOST_AUTO_TEST_CASE(empty_message_is_only_the_terminator) {
  BOOST_TEST(stuff("") == ".\r\n");
  DotStuffer stuffer;
  std::string out;
  stuffer.feed("", &out);
  stuffer.feed("", &out);
  stuffer.finish(&out);
  BOOST_TEST(out == ".\r\n");
}

BOOST_AUTO_TEST_CASE(content_without_trailing_crlf_gets_one) {
  BOOST_TEST(stuff("abc") == "abc\r\n.\r\n");
  BOOST_TEST(stuff("abc\r\n.") == "abc\r\n..\r\n.\r\n");
  BOOST_TEST(stuff("abc\r\nx") == "abc\r\nx\r\n.\r\n");
  // A trailing CR is completed, never left bare before the terminator.
  BOOST_TEST(stuff("abc\r") == "abc\r\n.\r\n");
  BOOST_TEST(stuff("abc\r\n") == "abc\r\n.\r\n");
}

BOOST_AUTO_TEST_CASE(split_input_gives_the_same_output) {
  const std::string content = "From: x\r\n\r\n.a\r\n..b\r\nmid.dle\r\n.\r\n\r\n.end";
  const std::string expected = "From: x\r\n\r\n..a\r\n...b\r\nmid.dle\r\n..\r\n\r\n..end\r\n.\r\n";
  BOOST_TEST(stuff(content) == expected);
  std::vector<size_t> every_byte;
  for (size_t cut = 1; cut < content.size(); ++cut) {
    BOOST_TEST_CONTEXT("split at byte " << cut) {
      BOOST_TEST(stuff(content, {cut}) == expected);
    }
    every_byte.push_back(cut);
  }
  BOOST_TEST(stuff(content, every_byte) == expected);
  // A CRLF split across pieces still counts as the content's final line end.
  BOOST_TEST(stuff("abc\r\n", {4}) == "abc\r\n.\r\n");
}

BOOST_AUTO_TEST_CASE(stuffer_can_be_reused_after_finish) {
  DotStuffer stuffer;
  std::string first;
  stuffer.feed("no end", &first);
  stuffer.finish(&first);
  std::string second;
  stuffer.feed(".x\r\n", &second);
  stuffer.finish(&second);
  BOOST_TEST(first == "no end\r\n.\r\n");
  BOOST_TEST(second == "..x\r\n.\r\n");
}

BOOST_AUTO_TEST_CASE(parser_reads_back_exactly_what_was_stuffed) {
  // Stuffing then reading in data mode must give the content back, ending at the terminator.
  for (std::string_view content : {"", "\r\n", ".\r\n", "..\r\n", "a\r\n.\r\nb\r\n",
                                   "Subject: x\r\n\r\n.\r\n..\r\n...x\r\n", ".\r\n.\r\n.\r\n"}) {
    BOOST_TEST_CONTEXT("content " << content.size() << " bytes") {
      const std::string wire = stuff(content) + "NEXT";
      portcullis::SmtpParser parser(portcullis::ParserLimits{});
      parser.begin_data();
      portcullis::Command command;
      std::string read_back;
      portcullis::DataEnd end;
      auto step = parser.feed(wire, &command, &read_back, &end);
      BOOST_TEST((step.event == portcullis::SmtpParser::Event::data_end));
      BOOST_TEST(step.consumed == wire.size() - 4);
      BOOST_TEST(end.ok());
      BOOST_TEST(read_back == content);
    }
  }
}
