// Owning handles for libevent objects: each C handle lives in a unique_ptr whose deleter is the
// library's own free function (OpenSSL's are in tls/ssl_handles.h).
#pragma once

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <memory>

namespace portcullis {

struct EventBaseFree {
  void operator()(event_base* base) const { event_base_free(base); }
};
struct EventFree {
  void operator()(event* ev) const { event_free(ev); }
};
struct BufferEventFree {
  void operator()(bufferevent* bev) const { bufferevent_free(bev); }
};
struct ListenerFree {
  void operator()(evconnlistener* listener) const { evconnlistener_free(listener); }
};

using EventBasePtr = std::unique_ptr<event_base, EventBaseFree>;
using EventPtr = std::unique_ptr<event, EventFree>;
using BufferEventPtr = std::unique_ptr<bufferevent, BufferEventFree>;
using ListenerPtr = std::unique_ptr<evconnlistener, ListenerFree>;

}  // namespace portcullis
