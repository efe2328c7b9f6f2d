#pragma once

#include <event2/event.h>

#include <functional>
#include <memory>
#include <vector>

#include "config.h"
#include "event_handles.h"
#include "upstream_connection.h"
#include "upstream_status.h"

namespace portcullis {

// Learns the upstream's EHLO keywords on a connection of its own (at start-up, on reload and
// whenever a session could not connect), and retries every few seconds while the upstream is
// unreachable. Runs on the main loop.
class UpstreamProbe {
 public:
  static constexpr unsigned retry_seconds = 2;

  UpstreamProbe(event_base* base, UpstreamStatus* status);

  // Uses `config` from now on (start-up and reload) and probes at once.
  void reconfigure(std::shared_ptr<const Config> config);
  // Any thread.
  void request();
  // Called on the main loop after every probe.
  void set_on_result(std::function<void(bool reachable)> on_result) {
    on_result_ = std::move(on_result);
  }

 private:
  void run();
  static void run_cb(evutil_socket_t fd, short what, void* self);
  void on_result(UpstreamResult result);

  event_base* base_;
  UpstreamStatus* status_;
  std::shared_ptr<const Config> config_;
  std::unique_ptr<UpstreamConnection> connection_;
  EventPtr request_event_;
  EventPtr retry_timer_;
  bool last_reachable_ = false;
  bool first_ = true;
  std::function<void(bool reachable)> on_result_;
};

}  // namespace portcullis
