#include "upstream_probe.h"

#include <utility>

#include "callback_guard.h"
#include "log_sink.h"

namespace portcullis {

UpstreamProbe::UpstreamProbe(event_base* base, UpstreamStatus* status)
    : base_(base), status_(status) {
  request_event_.reset(event_new(base_, -1, 0, &UpstreamProbe::run_cb, this));
  retry_timer_.reset(evtimer_new(base_, &UpstreamProbe::run_cb, this));
}

void UpstreamProbe::run_cb(evutil_socket_t, short, void* self) {
  auto* probe = static_cast<UpstreamProbe*>(self);
  // A probe that failed to start is tried again at the next request or retry.
  guard_callback("upstream_probe", [probe] { probe->run(); });
}

void UpstreamProbe::reconfigure(std::shared_ptr<const Config> config) {
  config_ = std::move(config);
  run();
}

void UpstreamProbe::request() {
  event_active(request_event_.get(), 0, 0);
}

void UpstreamProbe::run() {
  if (connection_ || !config_) return;  // one probe at a time
  evtimer_del(retry_timer_.get());
  const Config& config = *config_;
  connection_ = std::make_unique<UpstreamConnection>(base_, config.upstream.addresses,
                                                     config.upstream.reply_timeout);
  UpstreamGreeting greeting;
  greeting.pass_client = PassClient::none;  // the probe speaks for Portcullis itself
  // An upstream that expects PROXY v2 expects it on every connection: LOCAL says "the proxy
  // itself" (Postfix's smtpd_upstream_proxy_protocol = haproxy accepts it).
  greeting.proxy_v2_local = config.upstream.pass_client == PassClient::proxy_v2;
  greeting.our_hostname = config.server.hostname;
  greeting.client_helo = config.server.hostname;
  connection_->open(std::move(greeting),
                    [this](UpstreamResult result) { on_result(std::move(result)); });
}

void UpstreamProbe::on_result(UpstreamResult result) {
  const Config& config = *config_;
  std::string where = connection_->connected_address().host_port();
  if (result.ok()) {
    UpstreamCapabilities capabilities = connection_->capabilities();
    connection_->quit();
    // (An upstream reached over STARTTLS may offer XCLIENT only after it: the plaintext probe
    // cannot tell, so it says nothing then; sessions still report a refusal.)
    if (config.upstream.pass_client == PassClient::xclient && !capabilities.xclient &&
        config.upstream.tls == UpstreamTls::none) {
      log_warning("upstream_without_xclient",
                  {{"upstream", where},
                   {"hint",
                    "the upstream does not offer XCLIENT to Portcullis: add Portcullis's address "
                    "to smtpd_authorized_xclient_hosts (Postfix); until then transactions are "
                    "refused with 421 4.3.0"}});
    }
    if (!last_reachable_ || first_) {
      log_info("upstream_reachable", {{"upstream", where},
                                      {"keywords", std::to_string(capabilities.keywords.size())},
                                      {"xclient", capabilities.xclient ? "yes" : "no"}});
    }
    status_->set_reachable(std::move(capabilities));
    last_reachable_ = true;
  } else {
    status_->set_unreachable();
    if (last_reachable_ || first_) {
      log_error("upstream_unreachable", {{"error", to_string(result.error)},
                                         {"detail", result.detail, true},
                                         {"reply", result.reply.wire, true}});
    }
    last_reachable_ = false;
    timeval retry{retry_seconds, 0};
    evtimer_add(retry_timer_.get(), &retry);
  }
  first_ = false;
  // Destroying the connection inside its own callback is safe: it notices and returns.
  connection_.reset();
  if (on_result_) on_result_(last_reachable_);
}

}  // namespace portcullis
