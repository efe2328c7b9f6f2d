#include "quiet_main_log.h"

namespace portcullis {

QuietMainLog::QuietMainLog() : sink_(LogSink::capture(LogFormat::text)) {
  set_main_log(sink_.get());
}

QuietMainLog::~QuietMainLog() {
  set_main_log(nullptr);
}

}  // namespace portcullis
