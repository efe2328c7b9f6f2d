// The proxy's DnsResolver: one libunbound context on one worker's event_base, forwarding to
// the configured resolvers, with libunbound's cache. Everything runs on the loop thread that
// owns the event_base; nothing waits.
//
// How the DnsResolver contract is kept:
//   - a query is known by its id (the pending table), never by a pointer libunbound holds:
//     libunbound is given a ticket owned by that table, and an answer whose query is gone is
//     dropped;
//   - libunbound answers local and cached names inside ub_resolve_event(): such an answer is
//     kept and delivered from the query's own timer, armed with no delay, so resolve() always
//     returns first;
//   - each query has a timer of `timeout`; when it fires the query is cancelled (ub_cancel)
//     and ends as temporary_failure "timeout";
//   - destroying the DnsQuery handle cancels the query; its callback never runs.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dns_query_observer.h"
#include "dns_resolver.h"
#include "event_handles.h"

struct ub_ctx;

namespace portcullis {

struct UnboundContextFree {
  void operator()(ub_ctx* context) const;
};
using UnboundContextPtr = std::unique_ptr<ub_ctx, UnboundContextFree>;

struct UnboundResolverOptions {
  // "host:port" ("192.0.2.1:53", "[2001:db8::1]:53"); at least one.
  std::vector<std::string> resolvers;
  std::chrono::milliseconds timeout{5000};
  // Told about every query that ends; may be null. Must outlive the resolver.
  DnsQueryObserver* observer = nullptr;
};

class UnboundResolver : public DnsResolver, public std::enable_shared_from_this<UnboundResolver> {
 public:
  // Throws std::runtime_error naming the libunbound call and its error when the context cannot
  // be set up (a resolver address libunbound refuses, out of memory).
  static std::shared_ptr<UnboundResolver> create(event_base* base, UnboundResolverOptions options);
  ~UnboundResolver() override;

  UnboundResolver(const UnboundResolver&) = delete;
  UnboundResolver& operator=(const UnboundResolver&) = delete;

  std::unique_ptr<DnsQuery> resolve(std::string_view name, DnsType type,
                                    std::function<void(DnsAnswer)> callback) override;

  // Queries asked and not yet ended or cancelled.
  std::size_t pending_count() const;

  // Called by the handle's destructor.
  void cancel(std::uint64_t id);

 private:
  struct Ticket {
    UnboundResolver* resolver;
    std::uint64_t id;
  };
  struct Pending {
    std::string name;
    DnsType type;
    std::function<void(DnsAnswer)> callback;
    std::unique_ptr<Ticket> ticket;
    EventPtr timer;  // the query's deadline; none when the answer was known at once
    int unbound_id = 0;
    bool unbound_active = false;
    std::optional<DnsAnswer> early_answer;
    bool from_cache = false;
    std::chrono::steady_clock::time_point started;
  };

  UnboundResolver(event_base* base, UnboundResolverOptions options);
  void set_up();

  static void on_unbound_answer(void* data, int rcode, void* packet, int packet_length, int sec,
                                char* why_bogus, int was_ratelimited);
  static void on_timer(evutil_socket_t, short, void* data);
  static void on_ready(evutil_socket_t, short, void* data);
  void deliver_soon(std::uint64_t id);
  void deliver_ready();
  void answer_arrived(std::uint64_t id, int rcode, const unsigned char* packet, int length);
  void timer_fired(std::uint64_t id);
  void finish(std::uint64_t id, DnsAnswer answer);

  event_base* base_;
  UnboundResolverOptions options_;
  UnboundContextPtr context_;
  std::unordered_map<std::uint64_t, Pending> pending_;
  // Tickets of queries cancelled when ub_cancel failed: libunbound may still answer them.
  std::unordered_map<std::uint64_t, std::unique_ptr<Ticket>> abandoned_;
  std::uint64_t next_id_ = 1;
  std::optional<std::uint64_t> resolving_id_;
  // Answers known before resolve() returned, delivered by ready_event_ in the next loop turn.
  std::vector<std::uint64_t> ready_;
  EventPtr ready_event_;
};

// "host:port" as libunbound's "host@port"; nullopt when it is not an address and a port.
std::optional<std::string> unbound_forwarder(std::string_view host_port);

}  // namespace portcullis
