// Writes to a plain-socket bufferevent without a round through the event loop: when nothing is
// queued, the bytes go to the socket at once (no EPOLLOUT registration and removal — two
// epoll_ctl calls per reply otherwise); what the socket does not take is queued as usual, and
// errors surface through the bufferevent's own event callback when it writes the rest.
// Only for bufferevents directly on a socket (not TLS filters).
#pragma once

#include <event2/bufferevent.h>

#include <string_view>

namespace portcullis {

void write_now_or_queue(bufferevent* bev, std::string_view bytes);

// TCP_NODELAY: every write here is a complete reply, command or message chunk, so holding it
// back for coalescing (Nagle) only adds a delayed-ACK wait.
void set_no_delay(evutil_socket_t fd);

}  // namespace portcullis
