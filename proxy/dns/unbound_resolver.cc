#include "unbound_resolver.h"

#include <unbound-event.h>
#include <unbound.h>

#include <stdexcept>
#include <utility>

#include "callback_guard.h"
#include "dns_packet.h"
#include "unbound_query.h"

namespace portcullis {

namespace {

constexpr int dns_class_in = 1;

// libunbound serves these itself (RFC 6761 and the loopback reverse zones) and would never ask
// the forwarders; `nodefault` lets the configured resolvers answer them, as they answer any
// other name (the test DNS server serves them; a real resolver answers as it sees fit).
constexpr const char* forwarded_default_zones[] = {
    "test.",
    "localhost.",
    "invalid.",
    "127.in-addr.arpa.",
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
};

void check(int result, const char* call, std::string_view argument) {
  if (result != 0) {
    throw std::runtime_error(std::string(call) + "(" + std::string(argument) +
                             "): " + ub_strerror(result));
  }
}

DnsAnswer failure_answer(DnsOutcome outcome, std::string reason) {
  DnsAnswer answer;
  answer.outcome = outcome;
  answer.reason = std::move(reason);
  return answer;
}

// A presentation-form name libunbound can ask: labels of 1..63 bytes, 253 bytes in all.
bool askable_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return false;
  std::size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if (++label > 63 || c == '\0' || c == '\\') {
      return false;
    }
  }
  return label > 0;
}

}  // namespace

void UnboundContextFree::operator()(ub_ctx* context) const {
  ub_ctx_delete(context);
}

std::optional<std::string> unbound_forwarder(std::string_view host_port) {
  std::string_view host;
  std::string_view port;
  if (!host_port.empty() && host_port.front() == '[') {
    const auto close = host_port.find(']');
    if (close == std::string_view::npos || close + 1 >= host_port.size() ||
        host_port[close + 1] != ':') {
      return std::nullopt;
    }
    host = host_port.substr(1, close - 1);
    port = host_port.substr(close + 2);
    if (!IpAddress::parse(host) || IpAddress::parse(host)->is_v4()) return std::nullopt;
  } else {
    const auto colon = host_port.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = host_port.substr(0, colon);
    port = host_port.substr(colon + 1);
    if (!IpAddress::parse(host) || !IpAddress::parse(host)->is_v4()) return std::nullopt;
  }
  if (port.empty() || port.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return std::nullopt;
  return std::string(host) + "@" + std::to_string(value);
}

std::shared_ptr<UnboundResolver> UnboundResolver::create(event_base* base,
                                                         UnboundResolverOptions options) {
  std::shared_ptr<UnboundResolver> resolver(new UnboundResolver(base, std::move(options)));
  resolver->set_up();
  return resolver;
}

UnboundResolver::UnboundResolver(event_base* base, UnboundResolverOptions options)
    : base_(base), options_(std::move(options)) {}

UnboundResolver::~UnboundResolver() {
  // ub_ctx_delete() calls back the queries still in flight: their callbacks must not run (the
  // resolver's owner is going away), but their tickets must still be there to be read.
  for (auto& [id, pending] : pending_) {
    if (pending.ticket) abandoned_.emplace(id, std::move(pending.ticket));
  }
  pending_.clear();
  context_.reset();
}

void UnboundResolver::set_up() {
  if (options_.resolvers.empty()) throw std::runtime_error("no DNS resolver configured");
  context_.reset(ub_ctx_create_event(base_));
  if (!context_) throw std::runtime_error("ub_ctx_create_event failed");
  ready_event_.reset(event_new(base_, -1, 0, &UnboundResolver::on_ready, this));
  if (!ready_event_) throw std::runtime_error("event_new failed for the DNS answer queue");
  // Every setting before the first zone_add: that call finalizes the context, and a setting
  // after it fails with UB_AFTERFINAL (STACK-NOTES 4d).
  check(ub_ctx_set_option(context_.get(), "unblock-lan-zones:", "yes"), "ub_ctx_set_option",
        "unblock-lan-zones");
  check(ub_ctx_set_option(context_.get(), "insecure-lan-zones:", "yes"), "ub_ctx_set_option",
        "insecure-lan-zones");
  // Answers in the order the server gave them: the filters' results (fcrdns takes the first
  // confirmed PTR name) and explain's traces do not then change from one run to the next.
  // Rotating records is a server's load sharing, of no use to a client that only reads them.
  check(ub_ctx_set_option(context_.get(), "rrset-roundrobin:", "no"), "ub_ctx_set_option",
        "rrset-roundrobin");
  for (const auto& host_port : options_.resolvers) {
    const auto forwarder = unbound_forwarder(host_port);
    if (!forwarder) {
      throw std::runtime_error("DNS resolver \"" + host_port +
                               "\" is not an address and port (\"192.0.2.1:53\", "
                               "\"[2001:db8::1]:53\")");
    }
    check(ub_ctx_set_fwd(context_.get(), forwarder->c_str()), "ub_ctx_set_fwd", *forwarder);
  }
  for (const char* zone : forwarded_default_zones) {
    check(ub_ctx_zone_add(context_.get(), zone, "nodefault"), "ub_ctx_zone_add", zone);
  }
}

std::size_t UnboundResolver::pending_count() const {
  return pending_.size();
}

std::unique_ptr<DnsQuery> UnboundResolver::resolve(std::string_view name, DnsType type,
                                                   std::function<void(DnsAnswer)> callback) {
  const std::uint64_t id = next_id_++;
  Pending& pending = pending_[id];
  pending.name = std::string(name);
  pending.type = type;
  pending.callback = std::move(callback);
  pending.ticket = std::make_unique<Ticket>(Ticket{this, id});
  pending.started = std::chrono::steady_clock::now();
  auto handle = std::make_unique<UnboundQuery>(weak_from_this(), id);

  if (!askable_name(name)) {
    pending.early_answer = failure_answer(DnsOutcome::failure, "invalid name");
    deliver_soon(id);
    return handle;
  }
  resolving_id_ = id;
  int unbound_id = 0;
  const int result =
      ub_resolve_event(context_.get(), pending.name.c_str(), static_cast<int>(type), dns_class_in,
                       pending.ticket.get(), &UnboundResolver::on_unbound_answer, &unbound_id);
  resolving_id_.reset();
  // The entry may have been answered synchronously (from the cache); it is still there, since
  // delivery is deferred.
  Pending& after = pending_.at(id);
  if (result != 0) {
    // A name libunbound cannot parse is the asker's problem; anything else is the resolver's.
    after.early_answer =
        failure_answer(result == UB_SYNTAX ? DnsOutcome::failure : DnsOutcome::temporary_failure,
                       std::string("resolver error: ") + ub_strerror(result));
    deliver_soon(id);
    return handle;
  }
  if (after.early_answer) {
    deliver_soon(id);
    return handle;
  }
  after.unbound_id = unbound_id;
  after.unbound_active = true;
  // Only a query that has to wait gets a timer: a cache hit costs no timer at all.
  after.timer.reset(evtimer_new(base_, &UnboundResolver::on_timer, after.ticket.get()));
  if (!after.timer) {
    after.early_answer = failure_answer(DnsOutcome::temporary_failure, "no memory for a timer");
    deliver_soon(id);
    return handle;
  }
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(options_.timeout);
  const timeval timeout{
      static_cast<time_t>(seconds.count()),
      static_cast<suseconds_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(options_.timeout - seconds)
              .count())};
  evtimer_add(after.timer.get(), &timeout);
  return handle;
}

void UnboundResolver::deliver_soon(std::uint64_t id) {
  ready_.push_back(id);
  // One event for every answer known at once (cache hits, early failures): they are delivered
  // together on the next turn of the loop, never inside resolve().
  if (ready_.size() == 1) event_active(ready_event_.get(), EV_TIMEOUT, 1);
}

void UnboundResolver::on_ready(evutil_socket_t, short, void* data) {
  auto* resolver = static_cast<UnboundResolver*>(data);
  guard_callback("dns_ready", [&] { resolver->deliver_ready(); });
}

void UnboundResolver::deliver_ready() {
  // A callback may drop the last reference to this resolver (its session ends after SIGHUP
  // replaced the worker's resolver): stay alive until the batch is done.
  const auto self = shared_from_this();
  std::vector<std::uint64_t> batch;
  batch.swap(ready_);
  for (const std::uint64_t id : batch) {
    const auto found = pending_.find(id);
    if (found == pending_.end() || !found->second.early_answer) continue;  // cancelled
    DnsAnswer answer = std::move(*found->second.early_answer);
    finish(id, std::move(answer));
  }
}

void UnboundResolver::cancel(std::uint64_t id) {
  const auto found = pending_.find(id);
  if (found == pending_.end()) return;
  Pending& pending = found->second;
  if (pending.unbound_active && ub_cancel(context_.get(), pending.unbound_id) != 0) {
    // libunbound did not take the cancel: it may still answer, with this ticket.
    abandoned_.emplace(id, std::move(pending.ticket));
  }
  pending_.erase(found);
}

void UnboundResolver::on_unbound_answer(void* data, int rcode, void* packet, int packet_length,
                                        int /*sec*/, char* /*why_bogus*/, int /*was_ratelimited*/) {
  const auto* ticket = static_cast<const Ticket*>(data);
  UnboundResolver* resolver = ticket->resolver;
  const std::uint64_t id = ticket->id;
  guard_callback("dns_answer", [&] {
    resolver->answer_arrived(id, rcode, static_cast<const unsigned char*>(packet), packet_length);
  });
}

void UnboundResolver::on_timer(evutil_socket_t, short, void* data) {
  const auto* ticket = static_cast<const Ticket*>(data);
  UnboundResolver* resolver = ticket->resolver;
  const std::uint64_t id = ticket->id;
  guard_callback("dns_timer", [&] { resolver->timer_fired(id); });
}

void UnboundResolver::answer_arrived(std::uint64_t id, int rcode, const unsigned char* packet,
                                     int length) {
  if (abandoned_.erase(id) > 0) return;
  const auto found = pending_.find(id);
  if (found == pending_.end()) return;
  Pending& pending = found->second;
  pending.unbound_active = false;
  DnsAnswer answer =
      packet == nullptr || length <= 0
          ? failure_answer(DnsOutcome::temporary_failure,
                           "no answer packet (rcode " + std::to_string(rcode) + ")")
          : parse_dns_answer(packet, static_cast<std::size_t>(length), pending.name, pending.type);
  if (resolving_id_ == id) {
    pending.early_answer = std::move(answer);
    pending.from_cache = true;
    return;  // resolve() hands it to deliver_soon()
  }
  finish(id, std::move(answer));
}

void UnboundResolver::timer_fired(std::uint64_t id) {
  const auto found = pending_.find(id);
  if (found == pending_.end()) return;
  Pending& pending = found->second;
  if (pending.unbound_active) {
    if (ub_cancel(context_.get(), pending.unbound_id) != 0) {
      abandoned_.emplace(id, std::move(pending.ticket));
    }
    pending.unbound_active = false;
  }
  finish(id, failure_answer(DnsOutcome::temporary_failure, "timeout"));
}

void UnboundResolver::finish(std::uint64_t id, DnsAnswer answer) {
  auto node = pending_.extract(id);
  if (node.empty()) return;
  Pending pending = std::move(node.mapped());
  if (pending.unbound_active) {
    // An early end (an invalid name) while libunbound still works on it: keep its ticket.
    if (ub_cancel(context_.get(), pending.unbound_id) != 0) {
      abandoned_.emplace(id, std::move(pending.ticket));
    }
  }
  if (options_.observer != nullptr) {
    options_.observer->query_ended(pending.type, answer.outcome,
                                   std::chrono::steady_clock::now() - pending.started,
                                   pending.from_cache);
  }
  // The callback may ask new queries or destroy handles: the table no longer holds this one.
  auto callback = std::move(pending.callback);
  if (callback) callback(std::move(answer));
}

}  // namespace portcullis
