// The metrics listener ([metrics] address, DESIGN §6): a small evhttp server on the main loop.
//   GET /metrics  200, Prometheus text 0.0.4: metrics().render() + render_process_metrics()
//   GET /healthz  200 "ok\n" (the process runs and its loop answers)
//   GET /readyz   200 "ready\n" when the ready check says so, else 503 "not ready\n"
//   other paths 404; methods other than GET and HEAD 405 (HEAD: the same status, no body).
//
// SECURITY: requests come from whoever can reach the address (meant for loopback or a
// monitoring network). evhttp bounds them: headers at most 8 KiB, no body (a request with one is
// refused with 413), 10 s to send a request; only the path is looked at. Nothing here reads
// configuration or changes state. libevent 2.1 has no connection cap for evhttp, so keep the
// address off the public internet (a firewall, or 127.0.0.1).
#pragma once

#include <event2/event.h>
#include <event2/http.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace portcullis {

struct EvhttpFree {
  void operator()(evhttp* http) const { evhttp_free(http); }
};
using EvhttpPtr = std::unique_ptr<evhttp, EvhttpFree>;

class MetricsServer {
 public:
  // True when the proxy can take mail: the upstream probe succeeded, the listeners accept and
  // the process is not draining. Called on the loop thread for each /readyz request.
  using ReadyCheck = std::function<bool()>;

  // Limits applied to every request.
  static constexpr std::size_t kMaxHeadersSize = 8 * 1024;
  static constexpr int kRequestTimeoutSeconds = 10;

  // Binds `address` ("127.0.0.1:9325", "[::1]:9325"; numeric only, port 0 = any free port) on
  // `base`, which must outlive the server. nullptr with *error set when the address is malformed
  // or cannot be bound ("metrics address 127.0.0.1:9325: cannot bind: Address already in use").
  static std::unique_ptr<MetricsServer> start(event_base* base, const std::string& address,
                                              ReadyCheck ready, std::string* error);

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The port actually bound (the chosen one when the address said port 0).
  std::uint16_t port() const { return port_; }

 private:
  // Only start() can make one (it needs the evhttp set up first), yet make_unique needs a
  // public constructor: this tag is what keeps it private.
  struct ConstructionTag {
    explicit ConstructionTag() = default;
  };

 public:
  MetricsServer(ConstructionTag, EvhttpPtr http, ReadyCheck ready);

 private:
  // The evhttp callback: no exception leaves it (a failure is answered with 500).
  static void on_request(evhttp_request* request, void* self);
  void handle(evhttp_request* request);

  EvhttpPtr http_;
  ReadyCheck ready_;
  std::uint16_t port_ = 0;
};

}  // namespace portcullis
