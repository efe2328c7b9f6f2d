// Upstream connections that a finished session left clean, kept by one worker for its next
// sessions. A new connection costs the upstream a TCP handshake, a banner, an EHLO and (for
// Postfix) a client lookup; a kept one needs only XCLIENT and the client's EHLO, which also
// reset every per-client attribute at the upstream.
//
// A kept connection still holds its [upstream] max_connections slot. At most `capacity` are
// kept per worker (half the slots, shared out over the workers), each for at most
// [upstream] idle_timeout seconds; one the upstream closes or writes to while kept is dropped.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>

#include "config.h"
#include "event_handles.h"
#include "upstream_connection.h"

namespace portcullis {

class UpstreamPool {
 public:
  // `release_slot` is called once for every connection the pool closes.
  UpstreamPool(event_base* base, std::function<void()> release_slot);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // A kept connection opened under `config` (the same configuration generation: a reload may
  // have changed the upstream), most recently kept first; null when there is none.
  std::unique_ptr<UpstreamConnection> take(const std::shared_ptr<const Config>& config);
  // Keeps `connection` when it is reusable, idle_timeout > 0 and there is room; otherwise
  // closes it (QUIT) and releases its slot.
  void give_back(std::unique_ptr<UpstreamConnection> connection,
                 std::shared_ptr<const Config> config, unsigned capacity);
  // Closes every kept connection (shutdown).
  void clear();
  size_t size() const { return idle_.size(); }

 private:
  struct Entry {
    std::unique_ptr<UpstreamConnection> connection;
    std::shared_ptr<const Config> config;  // also keeps the address list the connection uses
    std::chrono::steady_clock::time_point expires;
  };
  void close(Entry& entry);
  void sweep();
  void schedule_sweep();

  event_base* base_;
  std::function<void()> release_slot_;
  std::deque<Entry> idle_;  // oldest first
  EventPtr sweep_timer_;
};

}  // namespace portcullis
