#include "plain_socket_reader.h"

#include <event2/buffer.h>
#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include "callback_guard.h"

namespace portcullis {

PlainSocketReader::PlainSocketReader(event_base* base, bufferevent* bev, size_t high_water,
                                     std::function<void()> on_data,
                                     std::function<void(short what)> on_event)
    : bev_(bev),
      high_water_(high_water),
      event_(event_new(base, bufferevent_getfd(bev), EV_READ | EV_PERSIST,
                       &PlainSocketReader::readable_cb, this)),
      on_data_(std::move(on_data)),
      on_event_(std::move(on_event)) {}

void PlainSocketReader::start(const timeval* timeout) {
  if (reading_ || !event_) return;
  event_add(event_.get(), timeout && timeout->tv_sec > 0 ? timeout : nullptr);
  reading_ = true;
}

void PlainSocketReader::restart(const timeval* timeout) {
  if (!event_) return;
  // event_add on a pending event only reschedules its timeout: no epoll_ctl.
  event_add(event_.get(), timeout && timeout->tv_sec > 0 ? timeout : nullptr);
  reading_ = true;
}

void PlainSocketReader::stop() {
  if (reading_ && event_) event_del(event_.get());
  reading_ = false;
}

void PlainSocketReader::readable_cb(evutil_socket_t, short what, void* self) {
  auto* reader = static_cast<PlainSocketReader*>(self);
  // The owner's callbacks guard themselves; what throws here is the reader's own work (before
  // any callback ran), so the owner is told of an error and closes its session.
  auto on_event = reader->on_event_;
  guard_callback(
      "plain_socket_read", [&] { reader->on_readable(what); },
      [&] {
        if (on_event) on_event(BEV_EVENT_ERROR | BEV_EVENT_READING);
      });
}

void PlainSocketReader::on_readable(short what) {
  // The callbacks may destroy the owner, and with it this object: they are called through
  // copies, last.
  if (what & EV_TIMEOUT) {
    auto on_event = on_event_;
    return on_event(BEV_EVENT_TIMEOUT | BEV_EVENT_READING);
  }
  evbuffer* input = bufferevent_get_input(bev_);
  // A socket bufferevent keeps its input's end frozen; its own read callback unfreezes it
  // around each read in the same way.
  evbuffer_unfreeze(input, 0);
  evbuffer_iovec space;
  ssize_t got = -1;
  int read_errno = ENOMEM;
  if (evbuffer_reserve_space(input, kReadChunk, &space, 1) >= 1) {
    do {
      got = ::recv(bufferevent_getfd(bev_), space.iov_base, space.iov_len, 0);
    } while (got < 0 && errno == EINTR);
    read_errno = errno;
    space.iov_len = got > 0 ? static_cast<size_t>(got) : 0;
    evbuffer_commit_space(input, &space, got > 0 ? 1 : 0);
  }
  evbuffer_freeze(input, 0);
  if (got > 0) {
    if (evbuffer_get_length(input) >= high_water_) stop();
    auto on_data = on_data_;
    return on_data();
  }
  if (got < 0 && (read_errno == EAGAIN || read_errno == EWOULDBLOCK)) return;
  stop();
  auto on_event = on_event_;
  on_event((got == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR) | BEV_EVENT_READING);
}

}  // namespace portcullis
