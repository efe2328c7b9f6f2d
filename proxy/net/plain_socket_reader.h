// Reads a plain (non-TLS) socket bufferevent's descriptor directly into the bufferevent's input
// buffer: one recv per readable event, where the bufferevent's own reading adds an
// ioctl(FIONREAD) to every read. Writing, and everything after a switch to TLS, stays with the
// bufferevent (stop() first, then wrap).
// SECURITY: reads are bounded (kReadChunk per event) and stop once the input holds
// `high_water` bytes, until the owner has consumed some and calls start() again.
#pragma once

#include <event2/bufferevent.h>
#include <event2/event.h>

#include <cstddef>
#include <functional>

#include "event_handles.h"

namespace portcullis {

class PlainSocketReader {
 public:
  static constexpr size_t kReadChunk = 16 * 1024;

  // on_data: bytes were appended to the input. on_event: BEV_EVENT_READING with
  // BEV_EVENT_EOF, BEV_EVENT_ERROR or BEV_EVENT_TIMEOUT (as a bufferevent's event callback
  // gets them); reading has stopped for EOF and errors. Either callback may destroy the owner.
  PlainSocketReader(event_base* base, bufferevent* bev, size_t high_water,
                    std::function<void()> on_data, std::function<void(short what)> on_event);
  PlainSocketReader(const PlainSocketReader&) = delete;
  PlainSocketReader& operator=(const PlainSocketReader&) = delete;

  // Starts reading (no-op when reading) with an idle timeout (null: none); the timeout restarts
  // after every read.
  void start(const timeval* timeout);
  // Reads with a new idle timeout (without re-registering the descriptor when reading).
  void restart(const timeval* timeout);
  void stop();
  bool reading() const { return reading_; }

 private:
  static void readable_cb(evutil_socket_t fd, short what, void* self);
  void on_readable(short what);

  bufferevent* bev_;
  size_t high_water_;
  EventPtr event_;
  bool reading_ = false;
  std::function<void()> on_data_;
  std::function<void(short)> on_event_;
};

}  // namespace portcullis
