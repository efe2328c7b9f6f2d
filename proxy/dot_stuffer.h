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
  bool at_line_start_ = true;
  bool saw_cr_ = false;
  bool empty_ = true;
};

}  // namespace portcullis
