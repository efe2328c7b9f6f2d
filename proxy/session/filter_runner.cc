// SECURITY: filters judge untrusted input, and their results are untrusted too in the sense
// that a buggy filter must not corrupt a session: only facts a filter declared are merged,
// overridden facts are never overwritten, exceptions from filter code are caught, a result is
// applied at most once and only while its call is pending, and the memory of finished calls is
// a fixed-size ring (a session with many transactions cannot grow it).
//
// Re-entrancy: `done` may start the next phase or destroy the runner (the session ends), and a
// Completion may be finished from inside the hook that took it. So `done` is always the last
// thing a code path does, and a result delivered during its own hook is only stored; the
// chain goes on once the hook has returned.
#include "filter_runner.h"

#include <event2/event.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <optional>
#include <utility>

#include <fmt/format.h>

namespace portcullis {

namespace {

using Clock = std::chrono::steady_clock;

// How many finished calls are remembered to tell a late or duplicate result from an unknown
// one. Results normally arrive within a filter's timeout, a few calls later at most.
constexpr std::size_t remembered_calls = 64;

// How a finished call ended, to name a later result for it.
enum class CallEnd {
  completed,      // a later result is a duplicate
  abandoned,      // timed out or cancelled: the first later result is late
  answered_late,  // a late result arrived: any further one is a duplicate
};

struct FinishedCall {
  std::uint64_t id = 0;
  std::size_t filter = 0;
  Phase phase = Phase::connect;
  Clock::time_point started;
  CallEnd end = CallEnd::completed;
};

// The HookContext of one hook call: collects what the hook records synchronously and hands out
// the call's Completion.
class RunnerHookContext final : public HookContext {
 public:
  RunnerHookContext(Phase phase, const SessionView& view, FilterServices& services,
                    const std::weak_ptr<CompletionTarget>& target, std::uint64_t session_id,
                    std::uint64_t call_id, const MessageView* message)
      : phase_(phase),
        view_(view),
        services_(services),
        target_(target),
        session_id_(session_id),
        call_id_(call_id),
        message_(phase == Phase::data ? message : nullptr) {}

  Phase phase() const override { return phase_; }
  const SessionView& session() const override { return view_; }
  void record(std::string fact, FactValue value) override {
    staged_.facts.set(std::move(fact), std::move(value));
  }
  void fail(std::string error) override { staged_.error = std::move(error); }
  void warn(std::string warning) override { staged_.warnings.push_back(std::move(warning)); }
  void add_authentication(AuthenticationEntry entry) override {
    staged_.authentication.push_back(std::move(entry));
  }
  Completion park() override {
    parked_ = true;
    return Completion(target_, session_id_, call_id_);
  }
  FilterServices& services() override { return services_; }
  const MessageView* message() const override { return message_; }

  bool parked() const { return parked_; }
  FilterResult take_staged() { return std::move(staged_); }

 private:
  Phase phase_;
  const SessionView& view_;
  FilterServices& services_;
  const std::weak_ptr<CompletionTarget>& target_;
  std::uint64_t session_id_;
  std::uint64_t call_id_;
  const MessageView* message_;
  FilterResult staged_;
  bool parked_ = false;
};

// The StreamContext of one streaming call.
class RunnerStreamContext final : public StreamContext {
 public:
  RunnerStreamContext(const SessionView& view, FilterServices& services)
      : view_(view), services_(services) {}
  const SessionView& session() const override { return view_; }
  FilterServices& services() override { return services_; }

 private:
  const SessionView& view_;
  FilterServices& services_;
};

// What a hook recorded before it parked, completed by its Completion's result: the later facts
// win on a name both hold, and an error from either makes the call failed.
FilterResult merge_results(FilterResult staged, FilterResult completion) {
  for (const auto& [name, value] : completion.facts)
    staged.facts.set(name, value);
  if (completion.error) staged.error = std::move(completion.error);
  for (auto& warning : completion.warnings)
    staged.warnings.push_back(std::move(warning));
  for (auto& entry : completion.authentication)
    staged.authentication.push_back(std::move(entry));
  return staged;
}

bool has_phase(const FilterInstance& filter, Phase phase) {
  return std::find(filter.hooks.begin(), filter.hooks.end(), phase) != filter.hooks.end();
}

std::chrono::nanoseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start);
}

// The RAII evtimer behind start_loop_timer.
class LoopTimer final : public TimerHandle {
 public:
  explicit LoopTimer(std::function<void()> callback) : callback_(std::move(callback)) {}

  bool arm(event_base* base, std::chrono::milliseconds delay) {
    event_.reset(evtimer_new(base, &LoopTimer::on_fire, this));
    if (!event_) return false;
    const auto milliseconds = std::max<std::int64_t>(0, delay.count());
    timeval after{};
    after.tv_sec = static_cast<time_t>(milliseconds / 1000);
    after.tv_usec = static_cast<suseconds_t>((milliseconds % 1000) * 1000);
    return evtimer_add(event_.get(), &after) == 0;
  }

 private:
  static void on_fire(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<LoopTimer*>(arg);
    // Moved out first: the callback may destroy this handle.
    std::function<void()> callback = std::move(self->callback_);
    try {
      if (callback) callback();
    } catch (const std::exception& error) {
      std::fprintf(stderr, "portcullis: a loop timer callback threw: %s\n", error.what());
    } catch (...) {
      std::fprintf(stderr, "portcullis: a loop timer callback threw a non-standard exception\n");
    }
  }

  std::function<void()> callback_;
  EventPtr event_;
};

}  // namespace

std::unique_ptr<TimerHandle> start_loop_timer(event_base* base, std::chrono::milliseconds delay,
                                              std::function<void()> callback) {
  auto timer = std::make_unique<LoopTimer>(std::move(callback));
  if (!timer->arm(base, delay)) return nullptr;
  return timer;
}

struct FilterRunner::State {
  State(event_base* base_in, std::uint64_t session_id_in,
        const std::vector<FilterInstance>& chain_in, std::weak_ptr<CompletionTarget> target_in,
        FilterServices& services_in, FilterObserver& observer_in)
      : base(base_in),
        session_id(session_id_in),
        chain(chain_in),
        target(std::move(target_in)),
        services(services_in),
        observer(observer_in) {}

  // The hook call in progress: running its hook, or parked until its Completion arrives.
  struct PendingCall {
    std::uint64_t id = 0;
    std::size_t filter = 0;
    Clock::time_point started;
    bool in_hook = true;
    std::optional<FilterResult> finished_during_hook;
    FilterResult staged;  // what the hook recorded before it parked
    EventPtr deadline;
  };

  event_base* base;
  std::uint64_t session_id;
  const std::vector<FilterInstance>& chain;
  std::weak_ptr<CompletionTarget> target;
  FilterServices& services;
  FilterObserver& observer;

  // One per chain entry; nullptr when its factory threw (every call then counts as an
  // exception, so the failure mode applies instead of a silent pass).
  std::vector<std::unique_ptr<SessionFilter>> filters;
  std::uint64_t last_call_id = 0;
  bool ended = false;

  // Chain entries that stream the message, in chain order (a filter that could not be created
  // is left out: its data hook fails anyway).
  std::vector<std::size_t> streaming;
  // Per chain entry: it threw while streaming the current message (it gets no more of it and
  // fails at the data phase).
  std::vector<bool> stream_failed;
  const MessageView* message = nullptr;  // the data phase's, while it runs

  // The phase in progress.
  bool running = false;
  Phase phase = Phase::connect;
  const SessionView* view = nullptr;
  Facts* facts = nullptr;
  const Facts* overrides = nullptr;
  std::function<void(PhaseOutcome)> done;
  PhaseOutcome outcome;
  std::size_t next_filter = 0;
  std::optional<PendingCall> call;

  std::array<FinishedCall, remembered_calls> finished{};
  std::size_t finished_count = 0;  // total ever; the ring slot is count % size

  const std::string& name_of(std::size_t filter) const { return chain[filter].name; }

  void create_filters() {
    filters.reserve(chain.size());
    for (const auto& instance : chain) {
      std::unique_ptr<SessionFilter> filter;
      try {
        if (instance.factory) filter = instance.factory->create();
      } catch (const std::exception& error) {
        observer.filter_problem(session_id, instance.name, Phase::connect, "exception",
                                fmt::format("creating the session's filter: {}", error.what()));
      } catch (...) {
        observer.filter_problem(session_id, instance.name, Phase::connect, "exception",
                                "creating the session's filter: a non-standard exception");
      }
      if (filter && instance.streams_message) streaming.push_back(filters.size());
      filters.push_back(std::move(filter));
    }
    stream_failed.assign(chain.size(), false);
  }

  // Calls one streaming hook (`stream` calls it on the filter); an exception marks the filter
  // failed for this message and is logged, once, as a data-phase problem.
  template <typename Call>
  void stream_to(std::size_t filter, const char* hook_name, Call&& stream) {
    try {
      stream(*filters[filter]);
      return;
    } catch (const std::exception& error) {
      observer.filter_problem(session_id, name_of(filter), Phase::data, "exception",
                              fmt::format("in {}(): {}", hook_name, error.what()));
    } catch (...) {
      observer.filter_problem(session_id, name_of(filter), Phase::data, "exception",
                              fmt::format("in {}(): a non-standard exception", hook_name));
    }
    stream_failed[filter] = true;
  }

  void begin_message(const SessionView& stream_view) {
    if (ended) return;
    RunnerStreamContext context(stream_view, services);
    for (const std::size_t filter : streaming) {
      stream_failed[filter] = false;
      stream_to(filter, "on_message_begin",
                [&](SessionFilter& streamer) { streamer.on_message_begin(context); });
    }
  }

  void message_data(const SessionView& stream_view, std::string_view bytes) {
    if (ended || bytes.empty()) return;
    RunnerStreamContext context(stream_view, services);
    for (const std::size_t filter : streaming) {
      if (stream_failed[filter]) continue;
      stream_to(filter, "on_message_data",
                [&](SessionFilter& streamer) { streamer.on_message_data(context, bytes); });
    }
  }

  // At the data phase, a filter that threw while the message streamed is not called: it
  // counts as an exception (logged when it threw) and its failure_mode applies.
  void fail_streamed(std::size_t filter) {
    stream_failed[filter] = false;
    observer.filter_result(name_of(filter), "exception", std::chrono::nanoseconds(0));
    apply_failure_mode(filter);
  }

  void remember(const PendingCall& ended_call, CallEnd end) {
    finished[finished_count % remembered_calls] =
        FinishedCall{ended_call.id, ended_call.filter, phase, ended_call.started, end};
    ++finished_count;
  }

  FinishedCall* find_finished(std::uint64_t call_id) {
    const std::size_t kept = std::min(finished_count, remembered_calls);
    for (std::size_t i = 0; i < kept; ++i) {
      if (finished[i].id == call_id) return &finished[i];
    }
    return nullptr;
  }

  void apply_failure_mode(std::size_t filter) {
    if (chain[filter].failure_mode == FailureMode::tempfail) {
      outcome.failed_filters.push_back(name_of(filter));
    } else {
      outcome.skipped_filters.push_back(name_of(filter));
    }
  }

  bool declared(const FilterInstance& instance, std::string_view fact) const {
    if (std::find(instance.facts.begin(), instance.facts.end(), fact) != instance.facts.end()) {
      return true;
    }
    return fact.size() > instance.name.size() + 1 && fact.starts_with(instance.name) &&
           fact[instance.name.size()] == '.';
  }

  // explain --evidence: a filter whose every declared fact is given is not asked. A filter
  // that declares no facts is always asked (there is nothing to override).
  bool all_facts_overridden(const FilterInstance& instance) const {
    if (overrides == nullptr || instance.facts.empty()) return false;
    return std::all_of(instance.facts.begin(), instance.facts.end(),
                       [&](const std::string& fact) { return overrides->has(fact); });
  }

  void merge_facts(std::size_t filter, const Facts& recorded) {
    const FilterInstance& instance = chain[filter];
    for (const auto& [name, value] : recorded) {
      if (!declared(instance, name)) {
        observer.filter_problem(session_id, instance.name, phase, "undeclared fact",
                                fmt::format("dropped fact {}: not declared by the filter", name));
        continue;
      }
      if (overrides != nullptr && overrides->has(name)) continue;
      facts->set(name, value);
    }
  }

  // Ends the pending call with `result` (ok or error), counted and applied.
  void complete_call(FilterResult result) {
    PendingCall ended_call = std::move(*call);
    call.reset();
    ended_call.deadline.reset();
    remember(ended_call, CallEnd::completed);
    const std::size_t filter = ended_call.filter;
    const auto duration = since(ended_call.started);
    for (const auto& warning : result.warnings)
      observer.filter_problem(session_id, name_of(filter), phase, "warning", warning);
    if (result.error) {
      observer.filter_result(name_of(filter), "error", duration);
      observer.filter_problem(session_id, name_of(filter), phase, "error", *result.error);
      apply_failure_mode(filter);
      return;
    }
    merge_facts(filter, result.facts);
    for (auto& entry : result.authentication)
      outcome.authentication.push_back(std::move(entry));
    observer.filter_result(name_of(filter), "ok", duration);
  }

  // Ends the pending call as a failure of kind `result_word` ("exception", "error").
  void fail_call(std::string_view result_word, const std::string& detail) {
    PendingCall ended_call = std::move(*call);
    call.reset();
    ended_call.deadline.reset();
    remember(ended_call, CallEnd::completed);
    observer.filter_result(name_of(ended_call.filter), result_word, since(ended_call.started));
    observer.filter_problem(session_id, name_of(ended_call.filter), phase, result_word, detail);
    apply_failure_mode(ended_call.filter);
  }

  void cancel_filter(std::size_t filter) {
    if (!filters[filter]) return;
    try {
      filters[filter]->cancel();
    } catch (const std::exception& error) {
      observer.filter_problem(session_id, name_of(filter), phase, "exception",
                              fmt::format("in cancel(): {}", error.what()));
    } catch (...) {
      observer.filter_problem(session_id, name_of(filter), phase, "exception",
                              "in cancel(): a non-standard exception");
    }
  }

  // Gives up on the pending call: `timeout` (deadline) or `cancelled` (the session ended).
  // The call is marked abandoned before the filter's cancel() runs, so a result the filter
  // delivers from inside cancel() is counted late.
  void abandon_call(std::string_view result_word) {
    PendingCall ended_call = std::move(*call);
    call.reset();
    ended_call.deadline.reset();
    remember(ended_call, CallEnd::abandoned);
    cancel_filter(ended_call.filter);
    observer.filter_result(name_of(ended_call.filter), result_word, since(ended_call.started));
  }

  // Calls the hook of chain entry `filter`. True: the call is over (the chain goes on); false:
  // the call is parked.
  bool start_call(std::size_t filter) {
    call.emplace();
    call->id = ++last_call_id;
    call->filter = filter;
    call->started = Clock::now();
    if (!filters[filter]) {
      fail_call("exception", "the filter could not be created for this session");
      return true;
    }
    RunnerHookContext context(phase, *view, services, target, session_id, call->id, message);
    HookStatus status = HookStatus::continue_chain;
    try {
      status = filters[filter]->on_phase(context);
    } catch (const std::exception& error) {
      fail_call("exception", fmt::format("in the {} hook: {}", phase_name(phase), error.what()));
      cancel_filter(filter);  // release whatever it started before throwing
      return true;
    } catch (...) {
      fail_call("exception",
                fmt::format("in the {} hook: a non-standard exception", phase_name(phase)));
      cancel_filter(filter);
      return true;
    }
    call->in_hook = false;

    if (status == HookStatus::continue_chain) {
      // A Completion finished during the hook that then answered synchronously: the
      // synchronous answer is the call's result.
      if (call->finished_during_hook) {
        observer.filter_result(name_of(filter), "duplicate", since(call->started));
      }
      complete_call(context.take_staged());
      return true;
    }
    if (!context.parked()) {
      fail_call("error", "parked without a completion");
      return true;
    }
    if (call->finished_during_hook) {
      complete_call(merge_results(context.take_staged(), std::move(*call->finished_during_hook)));
      return true;
    }
    call->staged = context.take_staged();
    if (!arm_deadline()) {
      fail_call("error", "could not arm the deadline timer");
      cancel_filter(filter);
      return true;
    }
    return false;
  }

  bool arm_deadline() {
    call->deadline.reset(evtimer_new(base, &State::on_deadline, this));
    if (!call->deadline) return false;
    // The deadline counts from the start of the hook call.
    const auto spent =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - call->started);
    const auto left = std::max<std::int64_t>(0, (chain[call->filter].timeout - spent).count());
    timeval after{};
    after.tv_sec = static_cast<time_t>(left / 1000);
    after.tv_usec = static_cast<suseconds_t>((left % 1000) * 1000);
    return evtimer_add(call->deadline.get(), &after) == 0;
  }

  static void on_deadline(evutil_socket_t, short, void* arg) {
    // No exception may cross libevent. After `done` the runner may be gone, so nothing here
    // touches it after advance().
    try {
      static_cast<State*>(arg)->deadline_passed();
    } catch (const std::exception& error) {
      std::fprintf(stderr, "portcullis: filter deadline handling threw: %s\n", error.what());
    } catch (...) {
      std::fprintf(stderr, "portcullis: filter deadline handling threw\n");
    }
  }

  void deadline_passed() {
    if (!call || call->in_hook) return;
    const std::size_t filter = call->filter;
    const auto timeout = chain[filter].timeout;
    abandon_call("timeout");
    observer.filter_problem(session_id, name_of(filter), phase, "timeout",
                            fmt::format("no result within {} ms", timeout.count()));
    apply_failure_mode(filter);
    advance();
  }

  // Runs the rest of the chain for this phase until a hook parks or the chain ends; ends the
  // phase (`done`) in the latter case, as its very last action.
  void advance() {
    while (next_filter < chain.size()) {
      const std::size_t filter = next_filter++;
      const FilterInstance& instance = chain[filter];
      const bool failed_streaming = phase == Phase::data && stream_failed[filter];
      if (!(has_phase(instance, phase) || failed_streaming) || all_facts_overridden(instance)) {
        continue;
      }
      if (failed_streaming) {
        fail_streamed(filter);
        continue;
      }
      if (!start_call(filter)) return;
    }
    finish_phase();
  }

  void finish_phase() {
    running = false;
    view = nullptr;
    facts = nullptr;
    overrides = nullptr;
    message = nullptr;
    std::function<void(PhaseOutcome)> callback = std::move(done);
    done = nullptr;
    PhaseOutcome result = std::move(outcome);
    outcome = PhaseOutcome{};
    // Last: the callback may run the next phase or destroy the runner.
    if (callback) callback(std::move(result));
  }

  void deliver(std::uint64_t call_id, FilterResult result) {
    if (call && call->id == call_id) {
      if (call->in_hook) {
        if (call->finished_during_hook) {
          observer.filter_result(name_of(call->filter), "duplicate", since(call->started));
        } else {
          call->finished_during_hook = std::move(result);
        }
        return;
      }
      complete_call(merge_results(std::move(call->staged), std::move(result)));
      advance();
      return;
    }
    FinishedCall* past = find_finished(call_id);
    if (past == nullptr) {
      observer.filter_problem(
          session_id, "", phase, "unknown call",
          fmt::format("dropped a result for call {}, which is not pending or recent", call_id));
      return;
    }
    if (past->end == CallEnd::abandoned) {
      past->end = CallEnd::answered_late;
      observer.filter_result(name_of(past->filter), "late", since(past->started));
    } else {
      observer.filter_result(name_of(past->filter), "duplicate", since(past->started));
    }
  }

  // A programming error in the caller (run() while a phase runs, or after session_end): the
  // phase in progress goes on untouched, and the new request fails closed at once: every filter
  // that hooks its phase is reported failed (tempfail), whatever its failure_mode.
  void refuse_run(Phase requested, const std::function<void(PhaseOutcome)>& callback,
                  std::string_view why) {
    observer.filter_problem(session_id, "", requested, "programming error",
                            fmt::format("run({}) {}", phase_name(requested), why));
    PhaseOutcome refused;
    refused.phase = requested;
    for (const auto& instance : chain) {
      if (has_phase(instance, requested)) refused.failed_filters.push_back(instance.name);
    }
    if (callback) callback(std::move(refused));
  }

  void session_end(const SessionView& end_view) {
    if (ended) return;
    ended = true;
    if (call && !call->in_hook) abandon_call("cancelled");
    // A phase still running never reports: the session is over.
    running = false;
    done = nullptr;
    for (std::size_t filter = 0; filter < filters.size(); ++filter) {
      if (!filters[filter]) continue;
      try {
        filters[filter]->on_session_end(end_view);
      } catch (const std::exception& error) {
        observer.filter_problem(session_id, name_of(filter), phase, "exception",
                                fmt::format("in on_session_end(): {}", error.what()));
      } catch (...) {
        observer.filter_problem(session_id, name_of(filter), phase, "exception",
                                "in on_session_end(): a non-standard exception");
      }
    }
  }
};

FilterRunner::FilterRunner(event_base* base, std::uint64_t session_id,
                           const std::vector<FilterInstance>& chain,
                           std::weak_ptr<CompletionTarget> target, FilterServices& services,
                           FilterObserver& observer)
    : state_(
          std::make_unique<State>(base, session_id, chain, std::move(target), services, observer)) {
  state_->create_filters();
}

FilterRunner::~FilterRunner() {
  // The client left while a call was parked: cancel it; `done` is never called.
  if (state_->call && !state_->call->in_hook) state_->abandon_call("cancelled");
}

void FilterRunner::run(Phase phase, const SessionView& view, Facts& facts,
                       std::function<void(PhaseOutcome)> done, const Facts* overrides,
                       const MessageView* message) {
  State& state = *state_;
  if (state.running) {
    state.refuse_run(phase, done, "while a phase is running");
    return;
  }
  if (state.ended) {
    state.refuse_run(phase, done, "after the session ended");
    return;
  }
  state.running = true;
  state.phase = phase;
  state.view = &view;
  state.facts = &facts;
  state.overrides = overrides;
  state.message = phase == Phase::data ? message : nullptr;
  state.done = std::move(done);
  state.outcome = PhaseOutcome{};
  state.outcome.phase = phase;
  state.next_filter = 0;
  if (overrides != nullptr) {
    for (const auto& [name, value] : *overrides)
      facts.set(name, value);
  }
  state.advance();
}

void FilterRunner::deliver(std::uint64_t call_id, FilterResult result) {
  state_->deliver(call_id, std::move(result));
}

void FilterRunner::session_end(const SessionView& view) {
  state_->session_end(view);
}

bool FilterRunner::running() const {
  return state_->running;
}

bool FilterRunner::empty() const {
  return state_->chain.empty();
}

bool FilterRunner::streams_message() const {
  return !state_->streaming.empty();
}

void FilterRunner::begin_message(const SessionView& view) {
  state_->begin_message(view);
}

void FilterRunner::message_data(const SessionView& view, std::string_view bytes) {
  state_->message_data(view, bytes);
}

}  // namespace portcullis
