#pragma once

#include <event2/listener.h>

#include <string>
#include <vector>

#include "config.h"
#include "event_handles.h"
#include "server_context.h"

namespace portcullis {

class Worker;

// The listening sockets. They are bound before privileges are dropped and accept on the main
// loop; each connection is admitted against [limits] and handed to a worker in turn.
class Acceptor {
 public:
  Acceptor(event_base* base, const ServerContext& context, std::vector<Worker*> workers);

  // A listening socket on `address` as `run` makes it (SO_REUSEADDR, IPV6_V6ONLY for an IPv6
  // address, close-on-exec), not yet accepting; nullptr with errno set when it cannot be bound.
  // `check` test-binds each [[listen]] address with it, so both apply the same rules.
  static ListenerPtr bind_listener(event_base* base, const NetAddress& address,
                                   evconnlistener_cb callback, void* argument);

  // Binds every [[listen]] address, not yet accepting; false (with *error) when one cannot be
  // bound.
  bool bind_all(std::string* error);
  // Starts accepting (once the upstream's capabilities are known; until then connections wait
  // in the backlog).
  void enable_all();
  // Stops accepting (SIGTERM): the sockets are closed.
  void close_all();
  // The [[listen]] blocks as bound, in bind order.
  std::vector<std::shared_ptr<const ListenConfig>> bound() const;

 private:
  // *handed_over turns true once the socket belongs to a worker (the caller closes it otherwise).
  void on_accept(const std::shared_ptr<const ListenConfig>& listener, evutil_socket_t fd,
                 const sockaddr* address, int length, bool* handed_over);
  void on_error(evconnlistener* listener);

  struct ListenerSlot {
    Acceptor* acceptor;
    std::shared_ptr<const ListenConfig> listener;  // as bound; reloads leave it alone
  };

  static void accept_cb(evconnlistener* listener, evutil_socket_t fd, sockaddr* address, int length,
                        void* slot);
  static void error_cb(evconnlistener* listener, void* slot);

  event_base* base_;
  ServerContext context_;
  std::vector<Worker*> workers_;
  size_t next_worker_ = 0;
  bool closed_ = false;
  std::vector<ListenerPtr> listeners_;
  std::vector<std::unique_ptr<ListenerSlot>> slots_;
};

}  // namespace portcullis
