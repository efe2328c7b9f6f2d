// libFuzzer target for SmtpReplyParser and SmtpReply::make. The first input byte picks the
// chunk size of a second, split run (which must give the same replies) and the reply code used
// to build a reply from the input with make() (which must read back unchanged).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "smtp_reply.h"

using namespace portcullis;

namespace {

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

void check_reply(const SmtpReply& reply) {
  require(reply.code >= 100 && reply.code <= 599, "code out of range");
  require(!reply.lines.empty() && reply.lines.size() <= SmtpReplyParser::max_lines,
          "line count out of range");
  const std::string code = std::to_string(reply.code);
  size_t position = 0;
  for (size_t i = 0; i < reply.lines.size(); ++i) {
    const size_t end = reply.wire.find("\r\n", position);
    require(end != std::string::npos, "wire has fewer lines than the reply");
    const std::string_view line = std::string_view(reply.wire).substr(position, end - position);
    require(line.size() <= SmtpReplyParser::max_line, "wire line past the limit");
    require(line.substr(0, 3) == code, "wire line without the reply code");
    require(line.find('\r') == std::string_view::npos, "bare CR in the wire");
    require(line.find('\n') == std::string_view::npos, "bare LF in the wire");
    position = end + 2;
  }
  require(position == reply.wire.size(), "wire has more lines than the reply");
}

struct Outcome {
  std::vector<std::string> replies;
  bool error = false;
  bool operator==(const Outcome&) const = default;
};

Outcome run(std::string_view input, size_t chunk_size) {
  SmtpReplyParser parser;
  Outcome outcome;
  std::string pending;
  for (size_t offset = 0; offset < input.size() && !outcome.error; offset += chunk_size) {
    pending.append(input.substr(offset, chunk_size));
    while (!pending.empty()) {
      SmtpReply reply;
      SmtpReplyParser::Step step = parser.feed(pending, &reply);
      require(step.consumed <= pending.size(), "consumed more than the input");
      require(!(step.complete && step.error), "complete and error at once");
      pending.erase(0, step.consumed);
      if (step.error) {
        outcome.error = true;
        require(parser.feed("250 ok\r\n", &reply).error, "error did not stick");
        break;
      }
      if (!step.complete) {
        require(pending.empty(), "need more left input unconsumed");
        break;
      }
      require(step.consumed > 0, "a reply without progress");
      check_reply(reply);
      outcome.replies.push_back(reply.wire);
    }
  }
  return outcome;
}

void check_make(int code, std::string_view text) {
  std::vector<std::string> texts;
  size_t start = 0;
  while (texts.size() < 8) {
    const size_t newline = text.find('\n', start);
    texts.emplace_back(
        text.substr(start, newline == std::string_view::npos ? 80 : newline - start).substr(0, 80));
    if (newline == std::string_view::npos) break;
    start = newline + 1;
  }
  const SmtpReply made = SmtpReply::make(code, texts);
  SmtpReplyParser parser;
  SmtpReply read;
  SmtpReplyParser::Step step = parser.feed(made.wire, &read);
  require(step.complete && !step.error, "a made reply does not parse");
  require(step.consumed == made.wire.size(), "a made reply parses short");
  require(read.code == made.code && read.lines == made.lines && read.wire == made.wire,
          "a made reply reads back differently");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static constexpr size_t chunk_sizes[] = {1, 2, 3, 7, 16, 100, 1000, 5000};
  const size_t chunk_size = chunk_sizes[data[0] & 7];
  const int code = 100 + (data[0] * 2) % 500;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Outcome whole = run(input, input.size() + 1);
  const Outcome split = run(input, chunk_size);
  require(whole == split, "splitting the input changed the replies");
  check_make(code, input);
  return 0;
}
