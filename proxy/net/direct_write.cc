#include "direct_write.h"

#include <event2/buffer.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>

namespace portcullis {

void write_now_or_queue(bufferevent* bev, std::string_view bytes) {
  if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
    const evutil_socket_t fd = bufferevent_getfd(bev);
    while (fd >= 0 && !bytes.empty()) {
      const ssize_t sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent > 0) {
        bytes.remove_prefix(static_cast<size_t>(sent));
        continue;
      }
      if (sent < 0 && errno == EINTR) continue;
      break;  // EAGAIN or an error: the bufferevent takes it from here
    }
  }
  if (!bytes.empty()) bufferevent_write(bev, bytes.data(), bytes.size());
}

void set_no_delay(evutil_socket_t fd) {
  if (fd < 0) return;
  const int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);  // best effort: only latency
}

}  // namespace portcullis
