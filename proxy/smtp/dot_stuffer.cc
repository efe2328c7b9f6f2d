// SECURITY: the content is the client's message (already checked by SmtpParser). The output
// grows by at most one byte per line plus the CRLF and terminator finish() adds; the only
// state kept between calls is three flags about the last bytes written.
#include "dot_stuffer.h"

#include <cstring>

namespace portcullis {

void DotStuffer::feed(std::string_view content, std::string* out) {
  size_t position = 0;
  while (position < content.size()) {
    // RFC 5321 4.5.2: a line that begins with '.' gets one more.
    if (at_line_start_ && content[position] == '.') out->push_back('.');
    const void* found = std::memchr(content.data() + position, '\n', content.size() - position);
    const size_t piece_end =
        found != nullptr ? static_cast<size_t>(static_cast<const char*>(found) - content.data()) + 1
                         : content.size();
    out->append(content.substr(position, piece_end - position));

    const char last = content[piece_end - 1];
    if (last == '\n') {
      const bool cr_before = piece_end - position >= 2 ? content[piece_end - 2] == '\r' : saw_cr_;
      ends_with_crlf_ = cr_before;
      at_line_start_ = true;
      saw_cr_ = false;
    } else {
      ends_with_crlf_ = false;
      at_line_start_ = false;
      saw_cr_ = last == '\r';
    }
    empty_ = false;
    position = piece_end;
  }
}

void DotStuffer::finish(std::string* out) {
  // A trailing CR is completed to CRLF rather than left bare in front of the terminator.
  if (saw_cr_) {
    out->push_back('\n');
  } else if (!empty_ && !ends_with_crlf_) {
    out->append("\r\n");
  }
  out->append(".\r\n");
  *this = DotStuffer{};
}

}  // namespace portcullis
