// The filter interface (DESIGN §4): filters gather evidence, policies decide.
//
// A configured filter is a FilterFactory (immutable, shared by every worker; built by the
// registry from its [filter.NAME] block when the config is loaded). Each session gets its own
// SessionFilter from it. At each phase the runner (proxy/session/filter_runner.h) calls the hooks
// of the chain in `[filters] chain` order:
//
//   - a hook that can answer at once records its facts with HookContext::record (or reports an
//     error with HookContext::fail) and returns HookStatus::continue_chain;
//   - a hook that must wait (a timer, DNS, a store) takes HookContext::park(), returns
//     HookStatus::stop_iteration, and later calls Completion::finish exactly once, on its
//     session's loop thread. The completion routes the result by session id and call id, so a
//     result for a session that is gone, a call that timed out, or a second result is dropped
//     (and counted), never applied.
//
// The runner owns the deadline (`timeout`) and `failure_mode`; a filter never decides what its
// failure means.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dns_resolver.h"
#include "facts.h"
#include "ip_address.h"
#include "message_view.h"
#include "session_phase.h"
#include "state_store.h"

namespace portcullis {

enum class HookStatus { continue_chain, stop_iteration };

// What a hook may read about its session. Owned by the session; valid during the hook call.
struct SessionView {
  std::uint64_t session_id = 0;
  std::optional<IpAddress> client_ip;  // from the PROXY header when present
  std::uint16_t client_port = 0;
  std::optional<IpAddress> local_ip;  // the address the client connected to
  std::string hostname;               // [server] hostname
  // The core watched the connection until the banner went out: true when the client sent
  // anything before it (the pregreet filter reports it).
  bool client_spoke_before_banner = false;
  // The SMTP errors so far (the replies counted toward [limits] max_errors); the ratelimit
  // filter's `errors` counter reads it at session end.
  unsigned errors = 0;
  // The facts recorded so far this session (core facts: client.ip, helo, sender, rcpt, …).
  const Facts* facts = nullptr;
};

// One Authentication-Results entry (RFC 8601 resinfo) that the facts cannot carry, e.g. one per
// DKIM signature. The session writes those of the transaction in the order they came; values
// are escaped by the writer.
struct AuthenticationEntry {
  std::string method;                                           // "dkim"
  std::string result;                                           // "pass"
  std::vector<std::pair<std::string, std::string>> properties;  // {"header.d", "example.org"}
  std::string reason;  // written as reason="..." when not empty
};

// The outcome of one hook call.
struct FilterResult {
  Facts facts;                       // only the filter's own facts are kept by the runner
  std::optional<std::string> error;  // set: the filter failed; its failure_mode applies
  // Problems that are not a failure (a DNSBL that answered outside its documented codes, a
  // list that timed out): the facts stand; the runner logs each one and counts it in
  // portcullis_filter_warnings_total{filter}.
  std::vector<std::string> warnings;
  std::vector<AuthenticationEntry> authentication;
};

// Where parked results go: implemented by the proxy (a worker finds the session by id).
class CompletionTarget {
 public:
  virtual ~CompletionTarget() = default;
  virtual void deliver(std::uint64_t session_id, std::uint64_t call_id, FilterResult result) = 0;
};

// The one way to resume a parked hook. Cheap to copy; call finish() once, on the session's loop
// thread. Later calls (and calls after the runner gave up) are dropped by the runner and counted.
class Completion {
 public:
  Completion() = default;
  Completion(std::weak_ptr<CompletionTarget> target, std::uint64_t session_id,
             std::uint64_t call_id)
      : target_(std::move(target)), session_id_(session_id), call_id_(call_id) {}

  void finish(FilterResult result) const {
    if (auto target = target_.lock()) target->deliver(session_id_, call_id_, std::move(result));
  }
  std::uint64_t session_id() const { return session_id_; }
  std::uint64_t call_id() const { return call_id_; }

 private:
  std::weak_ptr<CompletionTarget> target_;
  std::uint64_t session_id_ = 0;
  std::uint64_t call_id_ = 0;
};

// A pending timer; destroying the handle cancels it.
class TimerHandle {
 public:
  virtual ~TimerHandle() = default;
};

// What the session's loop offers to filters.
class FilterServices {
 public:
  virtual ~FilterServices() = default;
  // The worker's state store ([store]); nullptr where none is configured (a filter that needs
  // one then reports an error, and its failure_mode applies).
  virtual StateStore* store() { return nullptr; }
  // Wall-clock time for windows and expiries (a test gives a fake clock).
  virtual StoreClock::time_point now() { return StoreClock::now(); }
  // The worker's resolver ([dns]); nullptr where none is configured (a filter that needs DNS
  // then reports an error, and its failure_mode applies).
  virtual DnsResolver* resolver() { return nullptr; }
  // Runs `callback` once after `delay` on the session's loop thread, unless the handle is
  // destroyed first.
  virtual std::unique_ptr<TimerHandle> start_timer(std::chrono::milliseconds delay,
                                                   std::function<void()> callback) = 0;
  // Writes bytes to the client at once. Only before the banner (pregreet's "220-" teaser);
  // ignored at any other time.
  virtual void send_to_client(std::string_view bytes) = 0;
};

// Given to one hook call; valid until the hook returns.
class HookContext {
 public:
  virtual ~HookContext() = default;
  virtual Phase phase() const = 0;
  virtual const SessionView& session() const = 0;
  // Synchronous results (HookStatus::continue_chain).
  virtual void record(std::string fact, FactValue value) = 0;
  virtual void fail(std::string error) = 0;
  // As FilterResult::warnings and ::authentication, for a hook that answers at once.
  virtual void warn(std::string warning) = 0;
  virtual void add_authentication(AuthenticationEntry entry) = 0;
  // Parks the chain: return HookStatus::stop_iteration after taking it.
  virtual Completion park() = 0;
  virtual FilterServices& services() = 0;
  // The transaction's message at the data phase; nullptr at every other phase.
  virtual const MessageView* message() const { return nullptr; }
};

// Given to the streaming calls (message_view.h); valid until the call returns. A streaming
// call records no facts: the filter keeps what it learns and reports it at the data phase.
class StreamContext {
 public:
  virtual ~StreamContext() = default;
  virtual const SessionView& session() const = 0;
  virtual FilterServices& services() = 0;
};

// One filter's state for one session. Created by its factory when the session starts;
// destroyed when the session ends.
class SessionFilter {
 public:
  virtual ~SessionFilter() = default;
  // Called only at the phases the filter's definition lists as hooks.
  virtual HookStatus on_phase(HookContext& context) = 0;
  // Streaming (only when the definition sets streams_message): a new message starts, then its
  // bytes as they arrive. Never throw from these; a problem is kept and reported at the data
  // phase.
  virtual void on_message_begin(StreamContext&) {}
  virtual void on_message_data(StreamContext&, std::string_view /*bytes*/) {}
  // The runner gave up on the parked call (deadline, or the client left): stop the work and
  // release timers; a later finish() is dropped anyway.
  virtual void cancel() {}
  // The session ended (after any cancel()). Synchronous; no results.
  virtual void on_session_end(const SessionView&) {}
};

// A configured filter: immutable, shared by all workers.
class FilterFactory {
 public:
  virtual ~FilterFactory() = default;
  virtual std::unique_ptr<SessionFilter> create() const = 0;
};

}  // namespace portcullis
