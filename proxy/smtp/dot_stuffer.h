#pragma once

#include <string>
#include <string_view>

namespace portcullis {

// Writes message content (CRLF line ends, not stuffed) in SMTP DATA form: a '.' at the start
// of a line is doubled, and finish() adds the one terminator (adding a CRLF first if the
// content does not end with one).
class DotStuffer {
 public:
  void feed(std::string_view content, std::string* out);
  void finish(std::string* out);

 private:
  bool at_line_start_ = true;    // the last byte written was LF (or nothing yet)
  bool saw_cr_ = false;          // the last byte written was CR
  bool ends_with_crlf_ = false;  // the last two bytes written were CR LF
  bool empty_ = true;
};

}  // namespace portcullis
