// While it lives, the process's main log is a capture nobody reads: the command-line tools
// that open the Redis store (`store`, `explain`) do so, since its connection's comings and
// goings are a running proxy's news; their failures reach the command through the replies.
#pragma once

#include <memory>

#include "log_sink.h"

namespace portcullis {

class QuietMainLog {
 public:
  QuietMainLog();
  ~QuietMainLog();  // the main log is stderr again
  QuietMainLog(const QuietMainLog&) = delete;
  QuietMainLog& operator=(const QuietMainLog&) = delete;

 private:
  std::unique_ptr<LogSink> sink_;
};

}  // namespace portcullis
