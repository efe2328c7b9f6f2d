// FilterRunner: runs a session's filter chain phase by phase (DESIGN §4).
//
// Owns, per filter: the deadline (`timeout`), the failure mode (`tempfail`: the phase reports
// the filter as failed, the policy answers 451 4.3.0; `continue`: logged and counted, its facts
// stay absent — never a silent pass), and the counters. Hooks run in chain order; a parked hook
// (stop_iteration) holds the chain until its Completion arrives through deliver(), its deadline
// passes, or the runner is destroyed (the client left: cancel). Results for calls that are not
// pending (late, second, unknown) are dropped and counted. Exceptions from a hook are caught
// and treated as a failure.
//
// Streaming (filters/api/message_view.h): the session hands the runner the message as it
// arrives (begin_message, message_data), and the runner passes it to the chain's filters whose
// FilterInstance::streams_message is set. A filter that throws there is logged once and gets
// no more of that message; at the data phase it is not called and counts as failed
// ("exception"), so its failure_mode applies.
//
// Single-threaded: every method runs on the session's loop thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "event_handles.h"
#include "facts.h"
#include "filter.h"
#include "filter_instance.h"
#include "message_view.h"
#include "session_phase.h"

struct event_base;

namespace portcullis {

// The result kinds counted in portcullis_filter_results_total{filter,result}.
//   ok        the hook finished (at once or parked) without error
//   error     the filter reported an error
//   exception the hook threw
//   timeout   no result before the deadline
//   late      a result after the deadline or cancel (dropped)
//   duplicate a second result for the same call (dropped)
//   cancelled the session ended while the call was parked
//   gone      a result for a session that no longer exists (counted by the dispatcher)

// Where the runner reports what happened; the proxy's implementation feeds the metrics and the
// main log; tests record.
class FilterObserver {
 public:
  virtual ~FilterObserver() = default;
  virtual void filter_result(const std::string& filter, std::string_view result,
                             std::chrono::nanoseconds duration) = 0;
  // A failure (error, exception, timeout), a dropped fact, or one of a result's warnings
  // (what = "warning": FilterResult::warnings, reported before the result is applied), for the
  // main log.
  virtual void filter_problem(std::uint64_t session_id, const std::string& filter, Phase phase,
                              std::string_view what, const std::string& detail) = 0;
};

struct PhaseOutcome {
  Phase phase = Phase::connect;
  // Filters that failed at this phase with failure_mode = "tempfail" (PolicySession::evaluate's
  // `failed_filters`).
  std::vector<std::string> failed_filters;
  // Filters that failed with failure_mode = "continue" (logged; their facts are absent).
  std::vector<std::string> skipped_filters;
  // Authentication-Results entries the phase's filters gave (FilterResult::authentication), in
  // chain order.
  std::vector<AuthenticationEntry> authentication;
};

// A one-shot evtimer on `base` for FilterServices implementations: `callback` runs once after
// `delay`, unless the handle is destroyed first. The callback may destroy the handle (the
// function is moved out before it runs). An exception from the callback is caught (it must not
// cross libevent) and written to stderr. nullptr when libevent cannot allocate the timer.
std::unique_ptr<TimerHandle> start_loop_timer(event_base* base, std::chrono::milliseconds delay,
                                              std::function<void()> callback);

class FilterRunner {
 public:
  // `chain` and `observer` must outlive the runner; `target` routes Completions back here by
  // (session_id, call id) — see Worker / explain.
  FilterRunner(event_base* base, std::uint64_t session_id, const std::vector<FilterInstance>& chain,
               std::weak_ptr<CompletionTarget> target, FilterServices& services,
               FilterObserver& observer);
  ~FilterRunner();  // cancels a parked call (counted as cancelled)
  FilterRunner(const FilterRunner&) = delete;
  FilterRunner& operator=(const FilterRunner&) = delete;

  // Runs the hooks of `phase`. Facts recorded by the filters are merged into `facts` as each
  // call completes. `done` is called exactly once (never if session_end() or the destructor
  // comes first), possibly before run() returns, and as the runner's last action (it may run
  // the next phase or destroy the runner). `view` and `facts` must stay valid until then. Facts in
  // `overrides` (explain's --evidence) are written into `facts` first and never overwritten; a
  // filter whose every declared fact is overridden is not called (a filter that declares no facts
  // always is). explain goes further and leaves out of the chain a filter any of whose facts
  // is given, before it builds the runner. `message` is what HookContext::message() gives at
  // Phase::data (nullptr at any other phase, whatever is passed); it must stay valid until
  // `done`, or until session_end() or the destructor when a call is parked.
  //
  // run() while a phase is running, or after session_end(), is a programming error: it is
  // reported through observer.filter_problem (filter "", what "programming error"), the phase
  // in progress is left alone, and the new `done` is called at once with every filter that
  // hooks `phase` in failed_filters, whatever its failure_mode (fail closed).
  void run(Phase phase, const SessionView& view, Facts& facts,
           std::function<void(PhaseOutcome)> done, const Facts* overrides = nullptr,
           const MessageView* message = nullptr);

  // A parked call's result (from the CompletionTarget). A result for a call that is not
  // pending is counted (late, duplicate) and dropped; the runner remembers its last 64 calls
  // for that, an older or unknown call id is reported as a problem ("unknown call").
  void deliver(std::uint64_t call_id, FilterResult result);

  // The session ended: cancels a parked call (counted "cancelled"), then on_session_end for
  // every filter, once. A phase still running never calls its `done`.
  void session_end(const SessionView& view);

  bool running() const;
  bool empty() const;  // no filters in the chain

  // True when a chain filter streams the message; the session calls begin_message and
  // message_data only then, so a chain without one costs a check per chunk.
  bool streams_message() const;
  // DATA got its 354: on_message_begin for every streaming filter (what a filter kept of an
  // earlier message that never reached the data phase is its own to drop). Nothing after
  // session_end().
  void begin_message(const SessionView& view);
  // The next bytes of the message, exactly as the session stores them (dot-unstuffed, CRLF
  // line ends), in order; `view` as for begin_message.
  void message_data(const SessionView& view, std::string_view bytes);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace portcullis
