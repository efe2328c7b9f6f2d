// FilterRunner against a real event_base and scripted filters: synchronous and parked results,
// deadlines, failure modes, late/duplicate/cancelled accounting, chain order, declared facts,
// explain's overrides, destruction while parked, and start_loop_timer.
#define BOOST_TEST_MODULE filter_runner
#include <boost/test/unit_test.hpp>

#include <event2/event.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "event_handles.h"
#include "filter_observer.h"
#include "filter_runner.h"
#include "metrics.h"

using namespace portcullis;
using namespace std::chrono_literals;

namespace portcullis {
std::ostream& operator<<(std::ostream& out, Phase phase) {
  return out << phase_name(phase);
}
}  // namespace portcullis

namespace {

constexpr std::uint64_t session_id = 7;

struct Problem {
  std::string filter;
  Phase phase;
  std::string what;
  std::string detail;
};

class RecordingObserver : public FilterObserver {
 public:
  void filter_result(const std::string& filter, std::string_view result,
                     std::chrono::nanoseconds duration) override {
    results.emplace_back(filter, std::string(result));
    durations.push_back(duration);
  }
  void filter_problem(std::uint64_t session, const std::string& filter, Phase phase,
                      std::string_view what, const std::string& detail) override {
    BOOST_TEST(session == session_id);
    problems.push_back(Problem{filter, phase, std::string(what), detail});
  }
  int count(const std::string& filter, const std::string& result) const {
    int n = 0;
    for (const auto& [f, r] : results)
      n += (f == filter && r == result) ? 1 : 0;
    return n;
  }
  bool has_problem(const std::string& filter, const std::string& what) const {
    for (const auto& problem : problems) {
      if (problem.filter == filter && problem.what == what) return true;
    }
    return false;
  }
  std::vector<std::pair<std::string, std::string>> results;
  std::vector<std::chrono::nanoseconds> durations;
  std::vector<Problem> problems;
};

class LoopServices : public FilterServices {
 public:
  explicit LoopServices(event_base* base) : base_(base) {}
  std::unique_ptr<TimerHandle> start_timer(std::chrono::milliseconds delay,
                                           std::function<void()> callback) override {
    return start_loop_timer(base_, delay, std::move(callback));
  }
  void send_to_client(std::string_view bytes) override { sent += bytes; }
  std::string sent;

 private:
  event_base* base_;
};

// Routes completions by session id to live runners, as a worker does; "gone" otherwise.
class RoutingTarget : public CompletionTarget {
 public:
  void deliver(std::uint64_t session, std::uint64_t call_id, FilterResult result) override {
    auto it = runners.find(session);
    if (it == runners.end()) {
      ++gone;
      return;
    }
    it->second->deliver(call_id, std::move(result));
  }
  std::map<std::uint64_t, FilterRunner*> runners;
  int gone = 0;
};

// A filter whose behaviour each test writes; counts what the runner did to it.
struct Script {
  std::function<HookStatus(HookContext&, Script&)> hook;
  int calls = 0;
  int cancels = 0;
  int session_ends = 0;
  bool drop_timer_on_cancel = true;
  std::vector<Completion> completions;
  std::unique_ptr<TimerHandle> timer;
};

class ScriptedFilter : public SessionFilter {
 public:
  explicit ScriptedFilter(std::shared_ptr<Script> script) : script_(std::move(script)) {}
  HookStatus on_phase(HookContext& context) override {
    ++script_->calls;
    return script_->hook(context, *script_);
  }
  void cancel() override {
    ++script_->cancels;
    if (script_->drop_timer_on_cancel) script_->timer.reset();
  }
  void on_session_end(const SessionView&) override { ++script_->session_ends; }

 private:
  std::shared_ptr<Script> script_;
};

class ScriptedFactory : public FilterFactory {
 public:
  explicit ScriptedFactory(std::shared_ptr<Script> script) : script_(std::move(script)) {}
  std::unique_ptr<SessionFilter> create() const override {
    return std::make_unique<ScriptedFilter>(script_);
  }

 private:
  std::shared_ptr<Script> script_;
};

// Parks, and finishes with `result` after `delay` through a timer the filter holds.
HookStatus park_and_finish_after(HookContext& context, Script& script,
                                 std::chrono::milliseconds delay, FilterResult result) {
  Completion completion = context.park();
  script.completions.push_back(completion);
  script.timer = context.services().start_timer(delay, [completion, result] {
    const Completion resume = completion;
    resume.finish(result);
  });
  return HookStatus::stop_iteration;
}

FilterResult facts_result(std::string name, FactValue value) {
  FilterResult result;
  result.facts.set(std::move(name), std::move(value));
  return result;
}

struct Harness {
  EventBasePtr base{event_base_new()};
  std::vector<std::shared_ptr<Script>> scripts;  // after base: their timers go first
  RecordingObserver observer;
  LoopServices services{base.get()};
  std::shared_ptr<RoutingTarget> target = std::make_shared<RoutingTarget>();
  std::vector<FilterInstance> chain;
  Facts facts;
  SessionView view;
  std::unique_ptr<FilterRunner> runner;
  std::optional<PhaseOutcome> outcome;
  int done_calls = 0;

  Harness() {
    view.session_id = session_id;
    view.hostname = "mx.example.org";
    view.facts = &facts;
  }
  ~Harness() { destroy_runner(); }

  Script& add(std::string name, std::vector<std::string> declared,
              std::vector<Phase> hooks = {Phase::connect},
              std::chrono::milliseconds timeout = 1000ms,
              FailureMode mode = FailureMode::tempfail) {
    auto script = std::make_shared<Script>();
    scripts.push_back(script);
    FilterInstance instance;
    instance.name = std::move(name);
    instance.timeout = timeout;
    instance.failure_mode = mode;
    instance.hooks = std::move(hooks);
    instance.facts = std::move(declared);
    instance.factory = std::make_shared<ScriptedFactory>(script);
    chain.push_back(std::move(instance));
    return *script;
  }

  void start() {
    runner =
        std::make_unique<FilterRunner>(base.get(), session_id, chain, target, services, observer);
    target->runners[session_id] = runner.get();
  }

  void destroy_runner() {
    target->runners.erase(session_id);
    runner.reset();
  }

  void run(Phase phase, const Facts* overrides = nullptr) {
    runner->run(
        phase, view, facts,
        [this](PhaseOutcome result) {
          ++done_calls;
          outcome = std::move(result);
        },
        overrides);
  }

  // Runs the loop for `duration` (timers due in that time fire).
  void loop_for(std::chrono::milliseconds duration) {
    timeval after{};
    after.tv_sec = duration.count() / 1000;
    after.tv_usec = (duration.count() % 1000) * 1000;
    event_base_loopexit(base.get(), &after);
    event_base_dispatch(base.get());
  }
};

using Names = std::vector<std::string>;

}  // namespace

BOOST_AUTO_TEST_CASE(synchronous_record_is_merged_and_done_is_called_before_run_returns) {
  Harness h;
  h.add("alpha", {"alpha.score"}).hook = [](HookContext& context, Script&) {
    BOOST_TEST(context.phase() == Phase::connect);
    BOOST_TEST(context.session().hostname == "mx.example.org");
    context.record("alpha.score", std::int64_t{5});
    return HookStatus::continue_chain;
  };
  h.start();
  h.run(Phase::connect);
  BOOST_TEST(h.done_calls == 1);
  BOOST_TEST(!h.runner->running());
  BOOST_TEST(h.facts.integer("alpha.score").value_or(-1) == 5);
  BOOST_TEST(h.outcome->phase == Phase::connect);
  BOOST_TEST(h.outcome->failed_filters.empty());
  BOOST_TEST(h.outcome->skipped_filters.empty());
  BOOST_TEST(h.observer.results.size() == 1u);
  BOOST_TEST(h.observer.count("alpha", "ok") == 1);
  BOOST_TEST(h.observer.problems.empty());
}

BOOST_AUTO_TEST_CASE(synchronous_failure_with_tempfail_reports_the_filter_failed) {
  Harness h;
  h.add("alpha", {"alpha"}).hook = [](HookContext& context, Script&) {
    context.record("alpha", true);  // facts of a failed call stay absent
    context.fail("store unreachable");
    return HookStatus::continue_chain;
  };
  h.start();
  h.run(Phase::connect);
  BOOST_TEST(h.done_calls == 1);
  BOOST_TEST(h.outcome->failed_filters == Names{"alpha"});
  BOOST_TEST(h.outcome->skipped_filters.empty());
  BOOST_TEST(!h.facts.has("alpha"));
  BOOST_TEST(h.observer.count("alpha", "error") == 1);
  BOOST_TEST(h.observer.count("alpha", "ok") == 0);
  BOOST_REQUIRE(h.observer.has_problem("alpha", "error"));
  BOOST_TEST(h.observer.problems[0].detail == "store unreachable");
}

BOOST_AUTO_TEST_CASE(synchronous_failure_with_continue_reports_the_filter_skipped) {
  Harness h;
  h.add("alpha", {"alpha"}, {Phase::connect}, 1000ms, FailureMode::continue_session).hook =
      [](HookContext& context, Script&) {
        context.fail("broken");
        return HookStatus::continue_chain;
      };
  h.start();
  h.run(Phase::connect);
  BOOST_TEST(h.outcome->failed_filters.empty());
  BOOST_TEST(h.outcome->skipped_filters == Names{"alpha"});
  BOOST_TEST(h.observer.count("alpha", "error") == 1);
}

BOOST_AUTO_TEST_CASE(parked_call_finishes_later_from_a_timer) {
  Harness h;
  h.add("alpha", {"alpha"}).hook = [](HookContext& context, Script& script) {
    return park_and_finish_after(context, script, 20ms, facts_result("alpha", std::string("x")));
  };
  h.start();
  h.run(Phase::connect);
  BOOST_TEST(h.done_calls == 0);
  BOOST_TEST(h.runner->running());
  BOOST_TEST(!h.facts.has("alpha"));
  h.loop_for(150ms);
  BOOST_TEST(h.done_calls == 1);
  BOOST_TEST(!h.runner->running());
  BOOST_TEST(*h.facts.string("alpha") == "x");
  BOOST_TEST(h.observer.count("alpha", "ok") == 1);
  BOOST_REQUIRE(h.observer.durations.size() == 1u);
  BOOST_TEST(h.observer.durations[0] >= std::chrono::nanoseconds(20ms));
  BOOST_TEST(h.outcome->failed_filters.empty());
}

BOOST_AUTO_TEST_CASE(warnings_are_reported_and_the_facts_still_apply) {
  Harness h;
  h.add("alpha", {"alpha"}).hook = [](HookContext& context, Script& script) {
    script.completions.push_back(context.park());
    return HookStatus::stop_iteration;
  };
  h.start();
  h.run(Phase::connect);
  BOOST_REQUIRE(h.scripts[0]->completions.size() == 1u);
  FilterResult result = facts_result("alpha", std::int64_t{2});
  result.warnings = {"zen.example: answered 127.255.255.254", "bl.example: timeout"};
  h.scripts[0]->completions[0].finish(result);
  BOOST_TEST(h.done_calls == 1);
  BOOST_TEST(h.facts.integer("alpha").value_or(-1) == 2);
  BOOST_TEST(h.outcome->failed_filters.empty());
  BOOST_TEST(h.observer.count("alpha", "ok") == 1);
  BOOST_REQUIRE(h.observer.problems.size() == 2u);
  BOOST_TEST(h.observer.problems[0].what == "warning");
  BOOST_TEST(h.observer.problems[0].detail == "zen.example: answered 127.255.255.254");
  BOOST_TEST(h.observer.problems[1].detail == "bl.example: timeout");
  BOOST_TEST((h.observer.problems[1].phase == Phase::connect));
}

BOOST_AUTO_TEST_CASE(the_proxy_observer_counts_warnings_by_filter) {
  Counter& warnings = metrics().filter_warnings_total.with({"warned"});
  const std::uint64_t before = warnings.value();
  MetricsFilterObserver::instance().filter_problem(session_id, "warned", Phase::connect, "warning",
                                                   "a list answered 127.255.255.254");
  MetricsFilterObserver::instance().filter_problem(session_id, "warned", Phase::connect, "error",
                                                   "not a warning");
  BOOST_TEST(warnings.value() == before + 1);
}

BOOST_AUTO_TEST_CASE(late_answer_counts_timeout_then_late_and_its_facts_stay_absent) {
  Harness h;
  Script& alpha = h.add("alpha", {"alpha"}, {Phase::connect}, 30ms);
  alpha.drop_timer_on_cancel = false;  // a filter that ignores cancel() and answers anyway
  alpha.hook = [](HookContext& context, Script& script) {
    return park_and_finish_after(context, script, 200ms, facts_result("alpha", true));
  };
  h.start();
  h.run(Phase::connect);
  h.loop_for(100ms);
  BOOST_TEST(h.done_calls == 1);
  BOOST_TEST(h.outcome->failed_filters == Names{"alpha"});
  BOOST_TEST(alpha.cancels == 1);
  BOOST_TEST(h.observer.count("alpha", "timeout") == 1);
  BOOST_TEST(h.observer.count("alpha", "late") == 0);
  BOOST_TEST(h.observer.has_problem("alpha", "timeout"));
  h.loop_for(250ms);
  BOOST_TEST(h.observer.count("alpha", "late") == 1);
  BOOST_TEST(!h.facts.has("alpha"));
  BOOST_TEST(h.done_calls == 1);
  BOOST_TEST((h.observer.results == std::vector<std::pair<std::string, std::string>>{
                                        {"alpha", "timeout"}, {"alpha", "late"}}));
}

BOOST_AUTO_TEST_CASE(timeout_with_continue_skips_and_goes_on_with_the_next_filter) {
  Harness h;
  h.add("alpha", {"alpha"}, {Phase::connect}, 20ms, FailureMode::continue_session).hook =
      [](HookContext& context, Script& script) {
        script.completions.push_back(context.park());  // never answers
        return HookStatus::stop_iteration;
      };
  Script& beta = h.add("beta", {"beta"});
  beta.hook = [](HookContext& context, Script&) {
    context.record("beta", true);
    return HookStatus::continue_chain;
  };
  h.start();
  h.run(Phase::connect);
  BOOST_TEST(beta.calls == 0);
  h.loop_for(100ms);
  BOOST_TEST(h.done_calls == 1);
  BOOST_TEST(beta.calls == 1);
  BOOST_TEST(h.outcome->skipped_filters == Names{"alpha"});
  BOOST_TEST(h.outcome->failed_filters.empty());
  BOOST_TEST(h.facts.boolean("beta").value_or(false));
  BOOST_TEST(h.observer.count("alpha", "timeout") == 1);
}

BOOST_AUTO_TEST_CASE(never_answering_filter_times_out_and_is_cancelled) {
  Harness h;
  Script& alpha = h.add("alpha", {"alpha"}, {Phase::connect}, 25ms);
  alpha.hook = [](HookContext& context, Script& script) {
    script.completions.push_back(context.park());
    return HookStatus::stop_iteration;
  };
  h.start();
  const auto started = std::chrono::steady_clock::now();
  h.run(Phase::connect);
  h.loop_for(100ms);
  BOOST_TEST(h.done_calls == 1);
  BOOST_TEST(alpha.cancels == 1);
  BOOST_TEST(h.outcome->failed_filters == Names{"alpha"});
  BOOST_TEST(h.observer.count("alpha", "timeout") == 1);
  BOOST_REQUIRE(h.observer.durations.size() == 1u);
  BOOST_TEST(h.observer.durations[0] >= std::chrono::nanoseconds(25ms));
  BOOST_TEST((std::chrono::steady_clock::now() - started) >= 25ms);
  // A result now is late, once; after that a duplicate.
  alpha.completions[0].finish(facts_result("alpha", true));
  alpha.completions[0].finish(facts_result("alpha", true));
  BOOST_TEST(h.observer.count("alpha", "late") == 1);
  BOOST_TEST(h.observer.count("alpha", "duplicate") == 1);
  BOOST_TEST(!h.facts.has("alpha"));
}

BOOST_AUTO_TEST_CASE(second_answer_is_a_duplicate_and_only_the_first_counts) {
  Harness h;
  h.add("alpha", {"alpha"}).hook = [](HookContext& context, Script& script) {
    Completion completion = context.park();
    script.timer = context.services().start_timer(10ms, [completion] {
      const Completion resume = completion;
      resume.finish(facts_result("alpha", std::int64_t{1}));
      resume.finish(facts_result("alpha", std::int64_t{2}));
    });
    return HookStatus::stop_iteration;
  };
  h.start();
  h.run(Phase::connect);
  h.loop_for(80ms);
  BOOST_TEST(h.done_calls == 1);
  BOOST_TEST(h.facts.integer("alpha").value_or(0) == 1);
  BOOST_TEST(h.observer.count("alpha", "ok") == 1);
  BOOST_TEST(h.observer.count("alpha", "duplicate") == 1);
}

BOOST_AUTO_TEST_CASE(throwing_hook_counts_an_exception_and_applies_the_failure_mode) {
  Harness h;
  h.add("alpha", {"alpha"}).hook = [](HookContext&, Script&) -> HookStatus {
    throw std::runtime_error("bad state");
  };
  h.add("beta", {"beta"}, {Phase::connect}, 1000ms, FailureMode::continue_session).hook =
      [](HookContext&, Script&) -> HookStatus { throw 42; };
  Script& gamma = h.add("gamma", {"gamma"});
  gamma.hook = [](HookContext& context, Script&) {
    context.record("gamma", true);
    return HookStatus::continue_chain;
  };
  h.start();
  h.run(Phase::connect);
  BOOST_TEST(h.done_calls == 1);
  BOOST_TEST(h.outcome->failed_filters == Names{"alpha"});
  BOOST_TEST(h.outcome->skipped_filters == Names{"beta"});
  BOOST_TEST(h.observer.count("alpha", "exception") == 1);
  BOOST_TEST(h.observer.count("beta", "exception") == 1);
  BOOST_TEST(h.observer.has_problem("alpha", "exception"));
  BOOST_TEST(gamma.calls == 1);  // the chain went on
  BOOST_TEST(h.facts.boolean("gamma").value_or(false));
}

BOOST_AUTO_TEST_CASE(completion_finished_during_the_hook_counts_and_the_chain_goes_on) {
  Harness h;
  h.add("alpha", {"alpha"}).hook = [](HookContext& context, Script&) {
    context.park().finish(facts_result("alpha", std::string("early")));
    return HookStatus::stop_iteration;
  };
  Script& beta = h.add("beta", {"beta"});
  beta.hook = [](HookContext& context, Script&) {
    const std::string* seen = context.session().facts->string("alpha");
    context.record("beta", std::string(seen ? *seen : "absent"));
    return HookStatus::continue_chain;
  };
  h.start();
  h.run(Phase::connect);
  BOOST_TEST(h.done_calls == 1);  // all synchronous: done before run() returned
  BOOST_TEST(*h.facts.string("alpha") == "early");
  BOOST_TEST(*h.facts.string("beta") == "early");
  BOOST_TEST(h.observer.count("alpha", "ok") == 1);
  BOOST_TEST(h.observer.count("alpha", "duplicate") == 0);
  BOOST_TEST(beta.calls == 1);
}

BOOST_AUTO_TEST_CASE(completion_finished_during_a_hook_that_continues_is_a_duplicate) {
  Harness h;
  h.add("alpha", {"alpha"}).hook = [](HookContext& context, Script&) {
    context.park().finish(facts_result("alpha", std::string("from completion")));
    context.record("alpha", std::string("synchronous"));
    return HookStatus::continue_chain;
  };
  h.start();
  h.run(Phase::connect);
  BOOST_TEST(h.done_calls == 1);
  BOOST_TEST(*h.facts.string("alpha") == "synchronous");
  BOOST_TEST(h.observer.count("alpha", "ok") == 1);
  BOOST_TEST(h.observer.count("alpha", "duplicate") == 1);
}

BOOST_AUTO_TEST_CASE(stop_iteration_without_park_is_an_error) {
  Harness h;
  h.add("alpha", {"alpha"}).hook = [](HookContext&, Script&) { return HookStatus::stop_iteration; };
  h.start();
  h.run(Phase::connect);
  BOOST_TEST(h.done_calls == 1);
  BOOST_TEST(h.outcome->failed_filters == Names{"alpha"});
  BOOST_TEST(h.observer.count("alpha", "error") == 1);
  BOOST_REQUIRE(h.observer.has_problem("alpha", "error"));
  BOOST_TEST(h.observer.problems[0].detail == "parked without a completion");
}

BOOST_AUTO_TEST_CASE(chain_runs_in_order_and_later_filters_see_earlier_facts) {
  Harness h;
  std::vector<std::string> order;
  h.add("alpha", {"alpha"}).hook = [&order](HookContext& context, Script& script) {
    order.push_back("alpha");
    return park_and_finish_after(context, script, 10ms, facts_result("alpha", std::int64_t{3}));
  };
  h.add("helo_only", {"helo_only"}, {Phase::helo}).hook = [&order](HookContext&, Script&) {
    order.push_back("helo_only");
    return HookStatus::continue_chain;
  };
  h.add("beta", {"beta"}).hook = [&order](HookContext& context, Script&) {
    order.push_back("beta");
    auto seen = context.session().facts->integer("alpha");
    context.record("beta", seen.value_or(-1) * 10);
    return HookStatus::continue_chain;
  };
  h.start();
  h.run(Phase::connect);
  BOOST_TEST(order == Names{"alpha"});
  h.loop_for(80ms);
  BOOST_TEST(h.done_calls == 1);
  BOOST_TEST((order == Names{"alpha", "beta"}));
  BOOST_TEST(h.facts.integer("beta").value_or(0) == 30);
  // The helo phase calls only the filter that hooks it.
  h.run(Phase::helo);
  BOOST_TEST(h.done_calls == 2);
  BOOST_TEST((order == Names{"alpha", "beta", "helo_only"}));
  BOOST_TEST(h.outcome->phase == Phase::helo);
}

BOOST_AUTO_TEST_CASE(call_ids_are_monotonic_per_runner) {
  Harness h;
  std::vector<std::uint64_t> ids;
  auto hook = [&ids](HookContext& context, Script&) {
    Completion completion = context.park();
    ids.push_back(completion.call_id());
    BOOST_TEST(completion.session_id() == session_id);
    completion.finish(FilterResult{});
    return HookStatus::stop_iteration;
  };
  h.add("alpha", {}, {Phase::connect, Phase::helo}).hook = hook;
  h.add("beta", {}, {Phase::connect, Phase::helo}).hook = hook;
  h.start();
  h.run(Phase::connect);
  h.run(Phase::helo);
  BOOST_TEST(h.done_calls == 2);
  BOOST_REQUIRE(ids.size() == 4u);
  for (std::size_t i = 1; i < ids.size(); ++i)
    BOOST_TEST(ids[i] > ids[i - 1]);
}

BOOST_AUTO_TEST_CASE(undeclared_facts_are_dropped_and_reported) {
  Harness h;
  h.add("alpha", {"alpha"}).hook = [](HookContext& context, Script&) {
    context.record("alpha", true);
    context.record("alpha.detail", std::string("under the filter's prefix"));
    context.record("spf", std::string("pass"));  // another filter's fact
    context.record("alphabet", true);            // not under "alpha."
    return HookStatus::continue_chain;
  };
  h.start();
  h.run(Phase::connect);
  BOOST_TEST(h.facts.has("alpha"));
  BOOST_TEST(h.facts.has("alpha.detail"));
  BOOST_TEST(!h.facts.has("spf"));
  BOOST_TEST(!h.facts.has("alphabet"));
  int dropped = 0;
  for (const auto& problem : h.observer.problems) {
    if (problem.what == "undeclared fact") {
      ++dropped;
      BOOST_TEST(problem.filter == "alpha");
    }
  }
  BOOST_TEST(dropped == 2);
  BOOST_TEST(h.observer.count("alpha", "ok") == 1);
}

BOOST_AUTO_TEST_CASE(overrides_skip_a_filter_and_are_never_overwritten) {
  Harness h;
  Script& alpha = h.add("alpha", {"alpha"});
  alpha.hook = [](HookContext& context, Script&) {
    context.record("alpha", false);
    return HookStatus::continue_chain;
  };
  Script& beta = h.add("beta", {"beta", "beta.extra"});
  beta.hook = [](HookContext& context, Script&) {
    context.record("beta", std::string("computed"));
    context.record("beta.extra", std::int64_t{9});
    return HookStatus::continue_chain;
  };
  Facts overrides;
  overrides.set("alpha", true);
  overrides.set("beta", std::string("given"));
  h.start();
  h.run(Phase::connect, &overrides);
  BOOST_TEST(h.done_calls == 1);
  BOOST_TEST(alpha.calls == 0);  // every fact of alpha is given
  BOOST_TEST(beta.calls == 1);   // beta.extra is not
  BOOST_TEST(h.facts.boolean("alpha").value_or(false) == true);
  BOOST_TEST(*h.facts.string("beta") == "given");
  BOOST_TEST(h.facts.integer("beta.extra").value_or(0) == 9);
  BOOST_TEST(h.observer.count("alpha", "ok") == 0);
  BOOST_TEST(h.observer.results.size() == 1u);
}

BOOST_AUTO_TEST_CASE(runner_destroyed_while_parked_cancels_and_never_calls_done) {
  Harness h;
  Script& alpha = h.add("alpha", {"alpha"});
  alpha.drop_timer_on_cancel = false;  // its timer still fires after the runner is gone
  alpha.hook = [](HookContext& context, Script& script) {
    return park_and_finish_after(context, script, 30ms, facts_result("alpha", true));
  };
  h.start();
  h.run(Phase::connect);
  h.destroy_runner();
  BOOST_TEST(alpha.cancels == 1);
  BOOST_TEST(h.observer.count("alpha", "cancelled") == 1);
  h.loop_for(80ms);  // the filter's own timer finishes through the target
  BOOST_TEST(h.target->gone == 1);
  alpha.completions[0].finish(FilterResult{});
  BOOST_TEST(h.target->gone == 2);
  BOOST_TEST(h.done_calls == 0);
  BOOST_TEST(!h.facts.has("alpha"));
  BOOST_TEST(alpha.session_ends == 0);
}

BOOST_AUTO_TEST_CASE(session_end_cancels_the_parked_call_and_ends_every_filter) {
  Harness h;
  Script& alpha = h.add("alpha", {"alpha"});
  alpha.hook = [](HookContext& context, Script& script) {
    return park_and_finish_after(context, script, 30ms, facts_result("alpha", true));
  };
  Script& beta = h.add("beta", {"beta"}, {Phase::helo});
  h.start();
  h.run(Phase::connect);
  h.runner->session_end(h.view);
  BOOST_TEST(alpha.cancels == 1);
  BOOST_TEST(alpha.session_ends == 1);
  BOOST_TEST(beta.session_ends == 1);
  BOOST_TEST(beta.cancels == 0);
  BOOST_TEST(h.observer.count("alpha", "cancelled") == 1);
  BOOST_TEST(!h.runner->running());
  alpha.completions[0].finish(facts_result("alpha", true));
  BOOST_TEST(h.observer.count("alpha", "late") == 1);
  BOOST_TEST(h.done_calls == 0);
  BOOST_TEST(!h.facts.has("alpha"));
  h.runner->session_end(h.view);  // once only
  BOOST_TEST(alpha.session_ends == 1);
}

BOOST_AUTO_TEST_CASE(run_while_running_fails_closed_and_leaves_the_running_phase_alone) {
  Harness h;
  h.add("alpha", {"alpha"}, {Phase::connect, Phase::helo}).hook = [](HookContext& context,
                                                                     Script& script) {
    return park_and_finish_after(context, script, 10ms, facts_result("alpha", true));
  };
  h.add("beta", {"beta"}, {Phase::connect}, 1000ms, FailureMode::continue_session).hook =
      [](HookContext&, Script&) { return HookStatus::continue_chain; };
  h.start();
  h.run(Phase::connect);
  std::optional<PhaseOutcome> refused;
  h.runner->run(Phase::connect, h.view, h.facts,
                [&refused](PhaseOutcome result) { refused = std::move(result); });
  BOOST_REQUIRE(refused.has_value());
  BOOST_TEST((refused->failed_filters == Names{"alpha", "beta"}));
  BOOST_TEST(h.observer.has_problem("", "programming error"));
  BOOST_TEST(h.runner->running());
  h.loop_for(60ms);
  BOOST_TEST(h.done_calls == 1);
  BOOST_TEST(h.outcome->failed_filters.empty());
  BOOST_TEST(h.facts.boolean("alpha").value_or(false));
}

BOOST_AUTO_TEST_CASE(facts_recorded_before_parking_are_kept_with_the_completion_result) {
  Harness h;
  h.add("alpha", {"alpha", "alpha.count"}).hook = [](HookContext& context, Script& script) {
    context.record("alpha.count", std::int64_t{1});
    return park_and_finish_after(context, script, 5ms, facts_result("alpha", true));
  };
  h.start();
  h.run(Phase::connect);
  h.loop_for(50ms);
  BOOST_TEST(h.done_calls == 1);
  BOOST_TEST(h.facts.integer("alpha.count").value_or(0) == 1);
  BOOST_TEST(h.facts.boolean("alpha").value_or(false));
}

BOOST_AUTO_TEST_CASE(empty_chain_finishes_at_once) {
  Harness h;
  h.start();
  BOOST_TEST(h.runner->empty());
  h.run(Phase::rcpt);
  BOOST_TEST(h.done_calls == 1);
  BOOST_TEST(h.outcome->phase == Phase::rcpt);
}

BOOST_AUTO_TEST_CASE(done_may_destroy_the_runner) {
  Harness h;
  h.add("alpha", {"alpha"}).hook = [](HookContext& context, Script& script) {
    return park_and_finish_after(context, script, 5ms, facts_result("alpha", true));
  };
  h.start();
  bool called = false;
  h.runner->run(Phase::connect, h.view, h.facts, [&](PhaseOutcome) {
    called = true;
    h.destroy_runner();  // the session ends from inside done
  });
  h.loop_for(50ms);
  BOOST_TEST(called);
  BOOST_TEST(!h.runner);
  BOOST_TEST(h.observer.count("alpha", "cancelled") == 0);
}

BOOST_AUTO_TEST_CASE(loop_timer_fires_once_and_not_after_its_handle_is_gone) {
  EventBasePtr base(event_base_new());
  int fired = 0;
  auto timer = start_loop_timer(base.get(), 5ms, [&fired] { ++fired; });
  BOOST_REQUIRE(timer);
  int never = 0;
  auto dropped = start_loop_timer(base.get(), 5ms, [&never] { ++never; });
  dropped.reset();
  std::unique_ptr<TimerHandle> self_destroying;
  int self_fired = 0;
  self_destroying = start_loop_timer(base.get(), 5ms, [&] {
    ++self_fired;
    self_destroying.reset();  // the callback may destroy its own handle
  });
  timeval after{0, 60000};
  event_base_loopexit(base.get(), &after);
  event_base_dispatch(base.get());
  BOOST_TEST(fired == 1);
  BOOST_TEST(never == 0);
  BOOST_TEST(self_fired == 1);
  BOOST_TEST(!self_destroying);
}
