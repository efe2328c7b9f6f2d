// SECURITY: handles HTTP requests from the network; see the header for the bounds evhttp
// enforces before a request reaches handle(). Only the request's method and decoded path are
// read; no request data is echoed back.
#include "metrics_server.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include "metrics.h"
#include "net_address.h"

namespace portcullis {
namespace {

constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kTextContentType = "text/plain; charset=utf-8";

// Every method evhttp can parse reaches handle(), so the ones we do not serve get 405 from us
// rather than evhttp's 501.
constexpr ev_uint16_t kAllMethods = EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                    EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH;

void reply(evhttp_request* request, int code, const char* reason, const char* content_type,
           std::string_view body) {
  evkeyvalq* headers = evhttp_request_get_output_headers(request);
  evhttp_add_header(headers, "Content-Type", content_type);
  evhttp_add_header(headers, "Cache-Control", "no-store");
  if (evhttp_request_get_command(request) == EVHTTP_REQ_HEAD) {
    // libevent 2.1 would send a body given for HEAD; announce its length only (RFC 9110 9.3.2).
    evhttp_add_header(headers, "Content-Length", std::to_string(body.size()).c_str());
  } else {
    evbuffer_add(evhttp_request_get_output_buffer(request), body.data(), body.size());
  }
  evhttp_send_reply(request, code, reason, nullptr);
}

// The host part as getaddrinfo wants it: without the brackets of "[::1]:9325".
std::string host_of(std::string_view address) {
  if (!address.empty() && address.front() == '[')
    return std::string(address.substr(1, address.find(']') - 1));
  return std::string(address.substr(0, address.rfind(':')));
}

std::uint16_t bound_port(evhttp_bound_socket* bound) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  if (getsockname(evhttp_bound_socket_get_fd(bound), reinterpret_cast<sockaddr*>(&storage),
                  &length) != 0)
    return 0;
  const auto address = NetAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&storage), length);
  return address ? address->port() : 0;
}

}  // namespace

MetricsServer::MetricsServer(ConstructionTag, EvhttpPtr http, ReadyCheck ready)
    : http_(std::move(http)), ready_(std::move(ready)) {
  evhttp_set_gencb(http_.get(), &MetricsServer::on_request, this);
}

std::unique_ptr<MetricsServer> MetricsServer::start(event_base* base, const std::string& address,
                                                    ReadyCheck ready, std::string* error) {
  const auto parsed = NetAddress::parse_host_port(address);
  if (!parsed) {
    *error = "metrics address " + address +
             ": not a numeric host:port (e.g. 127.0.0.1:9325 or [::1]:9325)";
    return nullptr;
  }
  EvhttpPtr http(evhttp_new(base));
  if (!http) {
    *error = "metrics address " + address + ": cannot create the HTTP server";
    return nullptr;
  }
  evhttp_set_max_headers_size(http.get(), static_cast<ev_ssize_t>(kMaxHeadersSize));
  evhttp_set_max_body_size(http.get(), 0);
  evhttp_set_timeout(http.get(), kRequestTimeoutSeconds);
  evhttp_set_allowed_methods(http.get(), kAllMethods);

  auto server =
      std::make_unique<MetricsServer>(ConstructionTag{}, std::move(http), std::move(ready));
  evhttp_bound_socket* bound =
      evhttp_bind_socket_with_handle(server->http_.get(), host_of(address).c_str(), parsed->port());
  if (bound == nullptr) {
    const int bind_errno = errno;
    *error = "metrics address " + address +
             ": cannot bind: " + (bind_errno != 0 ? std::strerror(bind_errno) : "unknown error");
    return nullptr;
  }
  server->port_ = bound_port(bound);
  return server;
}

void MetricsServer::on_request(evhttp_request* request, void* self) {
  try {
    static_cast<MetricsServer*>(self)->handle(request);
  } catch (const std::exception&) {
    // handle() sends its reply last, so nothing has been sent yet when it throws (an allocation
    // failure while rendering, or the ready check throwing).
    try {
      reply(request, 500, "Internal Server Error", kTextContentType, "internal error\n");
    } catch (...) {
      evhttp_send_error(request, 500, nullptr);
    }
  } catch (...) {
    evhttp_send_error(request, 500, nullptr);
  }
}

void MetricsServer::handle(evhttp_request* request) {
  const evhttp_cmd_type method = evhttp_request_get_command(request);
  if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
    evhttp_add_header(evhttp_request_get_output_headers(request), "Allow", "GET, HEAD");
    reply(request, 405, "Method Not Allowed", kTextContentType, "method not allowed\n");
    return;
  }
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(request);
  const char* raw_path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
  const std::string_view path = raw_path != nullptr ? raw_path : "";

  if (path == "/metrics") {
    const std::string body = metrics().render() + render_process_metrics();
    reply(request, 200, "OK", kMetricsContentType, body);
  } else if (path == "/healthz") {
    reply(request, 200, "OK", kTextContentType, "ok\n");
  } else if (path == "/readyz") {
    if (ready_ && ready_()) {
      reply(request, 200, "OK", kTextContentType, "ready\n");
    } else {
      reply(request, 503, "Service Unavailable", kTextContentType, "not ready\n");
    }
  } else {
    reply(request, 404, "Not Found", kTextContentType, "not found\n");
  }
}

}  // namespace portcullis
