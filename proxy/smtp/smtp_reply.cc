// SECURITY: SmtpReplyParser reads bytes from the upstream MTA. A line is buffered only up to
// max_line bytes (plus its CR) and a reply only up to max_lines lines; anything longer, any
// line that does not start with a reply code, a NUL or a bare CR makes the stream invalid
// (the caller drops the connection). The reply's wire form is passed to the client unchanged,
// which is why a bare CR, a possible line end for the client, is refused here.
#include "smtp_reply.h"

#include <cstring>

namespace portcullis {
namespace {

// Our own reply texts may carry facts such as a sender domain; a CR, LF or NUL in them must
// not end the reply line early or smuggle a second one.
std::string sanitize_reply_text(std::string_view text) {
  std::string clean(text);
  for (char& c : clean) {
    if (c == '\r' || c == '\n' || c == '\0') c = ' ';
  }
  return clean;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

SmtpReply SmtpReply::make(int code, std::string_view text) {
  return make(code, std::vector<std::string>{std::string(text)});
}

SmtpReply SmtpReply::make(int code, const std::vector<std::string>& texts) {
  SmtpReply reply;
  reply.code = code;
  const std::string code_text = std::to_string(code);
  if (texts.empty()) {
    reply.lines.emplace_back();
    reply.wire = code_text + "\r\n";
    return reply;
  }
  for (size_t i = 0; i < texts.size(); ++i) {
    const bool last = i + 1 == texts.size();
    std::string text = sanitize_reply_text(texts[i]);
    reply.wire += code_text;
    // RFC 5321 4.2: Reply-code [ SP textstring ] on the last line, Reply-code "-" [ textstring ]
    // on the others.
    if (!last) {
      reply.wire += '-';
    } else if (!text.empty()) {
      reply.wire += ' ';
    }
    reply.wire += text;
    reply.wire += "\r\n";
    reply.lines.push_back(std::move(text));
  }
  return reply;
}

void SmtpReplyParser::reset() {
  line_.clear();
  partial_ = SmtpReply{};
  failed_ = false;
  dropped_lines_ = 0;
}

SmtpReplyParser::Step SmtpReplyParser::fail(size_t consumed) {
  failed_ = true;
  line_.clear();
  partial_ = SmtpReply{};
  return Step{consumed, false, true};
}

SmtpReplyParser::Step SmtpReplyParser::feed(std::string_view input, SmtpReply* reply) {
  if (failed_) return Step{0, false, true};
  size_t position = 0;
  while (position < input.size()) {
    const void* found = std::memchr(input.data() + position, '\n', input.size() - position);
    const size_t line_end =
        found != nullptr ? static_cast<size_t>(static_cast<const char*>(found) - input.data())
                         : input.size();
    const size_t piece = line_end - position;
    if (line_.size() + piece > max_line + 1) return fail(line_end);
    line_.append(input.substr(position, piece));
    if (found == nullptr) return Step{input.size(), false, false};
    position = line_end + 1;

    std::string_view line = line_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > max_line) return fail(position);
    if (line.find('\r') != std::string_view::npos || line.find('\0') != std::string_view::npos) {
      return fail(position);
    }
    if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2])) {
      return fail(position);
    }
    if (line[0] < '1' || line[0] > '5') return fail(position);
    if (line.size() > 3 && line[3] != '-' && line[3] != ' ') return fail(position);
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (!partial_.lines.empty() && code != partial_.code) return fail(position);
    const bool last = line.size() == 3 || line[3] == ' ';
    partial_.code = code;
    if (partial_.lines.size() < max_lines) {
      partial_.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view{});
      partial_.wire.append(line);
      partial_.wire.append("\r\n");
    } else {
      ++dropped_lines_;
    }
    line_.clear();
    if (last) {
      if (dropped_lines_ > 0) {
        // The kept lines, the last of them now the final one ("NNN text").
        partial_ = SmtpReply::make(code, partial_.lines);
        dropped_lines_ = 0;
      }
      if (reply != nullptr) *reply = std::move(partial_);
      partial_ = SmtpReply{};
      return Step{position, true, false};
    }
  }
  return Step{input.size(), false, false};
}

}  // namespace portcullis
