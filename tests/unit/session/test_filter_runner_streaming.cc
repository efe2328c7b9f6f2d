// FilterRunner's side of the message contract (filters/api/message_view.h): streaming only to
// filters whose instance streams, HookContext::message() only at the data phase, an exception
// while streaming logged once and turned into a data-phase failure under the filter's
// failure_mode, begin_message starting over, nothing after session_end.
#define BOOST_TEST_MODULE filter_runner_streaming
#include <boost/test/unit_test.hpp>

#include <event2/event.h>

#include <chrono>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "event_handles.h"
#include "filter_runner.h"

using namespace portcullis;
using namespace std::chrono_literals;

namespace portcullis {
std::ostream& operator<<(std::ostream& out, Phase phase) {
  return out << phase_name(phase);
}
}  // namespace portcullis

namespace {

constexpr std::uint64_t session_id = 11;

struct Problem {
  std::string filter;
  Phase phase;
  std::string what;
  std::string detail;
};

class RecordingObserver : public FilterObserver {
 public:
  void filter_result(const std::string& filter, std::string_view result,
                     std::chrono::nanoseconds) override {
    results.emplace_back(filter, std::string(result));
  }
  void filter_problem(std::uint64_t, const std::string& filter, Phase phase, std::string_view what,
                      const std::string& detail) override {
    problems.push_back(Problem{filter, phase, std::string(what), detail});
  }
  std::vector<std::pair<std::string, std::string>> results;
  std::vector<Problem> problems;
};

class NoServices : public FilterServices {
 public:
  std::unique_ptr<TimerHandle> start_timer(std::chrono::milliseconds,
                                           std::function<void()>) override {
    return nullptr;
  }
  void send_to_client(std::string_view) override {}
};

class NoTarget : public CompletionTarget {
 public:
  void deliver(std::uint64_t, std::uint64_t, FilterResult) override {}
};

// A fake message for the data phase.
class FixedMessage : public MessageView {
 public:
  std::uint64_t size() const override { return 3; }
  std::string_view header_section() const override { return "A: b\r\n"; }
  std::unique_ptr<MessageReader> read_from_start() const override { return nullptr; }
};

// What one filter saw.
struct Seen {
  int begins = 0;
  std::string streamed;
  int data_calls = 0;                        // on_message_data calls
  std::vector<const MessageView*> messages;  // HookContext::message() at each hook call
  std::vector<Phase> phases;
  const FilterServices* stream_services = nullptr;
  std::uint64_t stream_session = 0;
  bool throw_on_data = false;  // from the next on_message_data on
  bool throw_on_begin = false;
};

class SeeingFilter : public SessionFilter {
 public:
  explicit SeeingFilter(std::shared_ptr<Seen> seen) : seen_(std::move(seen)) {}
  HookStatus on_phase(HookContext& context) override {
    seen_->phases.push_back(context.phase());
    seen_->messages.push_back(context.message());
    return HookStatus::continue_chain;
  }
  void on_message_begin(StreamContext& context) override {
    ++seen_->begins;
    seen_->streamed.clear();
    seen_->stream_services = &context.services();
    seen_->stream_session = context.session().session_id;
    if (seen_->throw_on_begin) throw std::runtime_error("begin went wrong");
  }
  void on_message_data(StreamContext&, std::string_view bytes) override {
    ++seen_->data_calls;
    if (seen_->throw_on_data) throw std::runtime_error("hashing went wrong");
    seen_->streamed += bytes;
  }

 private:
  std::shared_ptr<Seen> seen_;
};

class SeeingFactory : public FilterFactory {
 public:
  explicit SeeingFactory(std::shared_ptr<Seen> seen) : seen_(std::move(seen)) {}
  std::unique_ptr<SessionFilter> create() const override {
    return std::make_unique<SeeingFilter>(seen_);
  }

 private:
  std::shared_ptr<Seen> seen_;
};

struct Harness {
  EventBasePtr base{event_base_new()};
  RecordingObserver observer;
  NoServices services;
  std::shared_ptr<NoTarget> target = std::make_shared<NoTarget>();
  std::vector<FilterInstance> chain;
  std::vector<std::shared_ptr<Seen>> seen;
  Facts facts;
  SessionView view;
  std::unique_ptr<FilterRunner> runner;
  std::optional<PhaseOutcome> outcome;
  FixedMessage message;

  Harness() {
    view.session_id = session_id;
    view.facts = &facts;
  }

  Seen& add(std::string name, bool streams, FailureMode mode = FailureMode::tempfail,
            std::vector<Phase> hooks = {Phase::rcpt, Phase::data}) {
    auto filter_seen = std::make_shared<Seen>();
    seen.push_back(filter_seen);
    FilterInstance instance;
    instance.name = std::move(name);
    instance.failure_mode = mode;
    instance.hooks = std::move(hooks);
    instance.streams_message = streams;
    instance.factory = std::make_shared<SeeingFactory>(filter_seen);
    chain.push_back(std::move(instance));
    return *filter_seen;
  }
  void start() {
    runner =
        std::make_unique<FilterRunner>(base.get(), session_id, chain, target, services, observer);
  }
  void run(Phase phase) {
    outcome.reset();
    runner->run(
        phase, view, facts, [this](PhaseOutcome result) { outcome = std::move(result); }, nullptr,
        &message);
    BOOST_TEST_REQUIRE(outcome.has_value());
  }
  int problems(const std::string& filter, const std::string& what) const {
    int count = 0;
    for (const auto& problem : observer.problems)
      count += problem.filter == filter && problem.what == what ? 1 : 0;
    return count;
  }
  int results(const std::string& filter, const std::string& result) const {
    int count = 0;
    for (const auto& [name, kind] : observer.results)
      count += name == filter && kind == result ? 1 : 0;
    return count;
  }
};

using Names = std::vector<std::string>;

}  // namespace

BOOST_AUTO_TEST_CASE(only_streaming_filters_get_the_bytes_in_order) {
  Harness h;
  Seen& streamer = h.add("streamer", true);
  Seen& plain = h.add("plain", false);
  h.start();
  BOOST_TEST(h.runner->streams_message());
  h.runner->begin_message(h.view);
  h.runner->message_data(h.view, "Subject: x\r");
  h.runner->message_data(h.view, "\n\r\nbo");
  h.runner->message_data(h.view, "");  // nothing to pass on
  h.runner->message_data(h.view, "dy\r\n");
  BOOST_TEST(streamer.begins == 1);
  BOOST_TEST(streamer.data_calls == 3);
  BOOST_TEST(streamer.streamed == "Subject: x\r\n\r\nbody\r\n");
  BOOST_TEST(streamer.stream_services == &h.services);
  BOOST_TEST(streamer.stream_session == session_id);
  BOOST_TEST(plain.begins == 0);
  BOOST_TEST(plain.data_calls == 0);
}

BOOST_AUTO_TEST_CASE(a_chain_without_a_streaming_filter_does_not_stream) {
  Harness h;
  Seen& plain = h.add("plain", false);
  h.start();
  BOOST_TEST(!h.runner->streams_message());
  h.runner->begin_message(h.view);
  h.runner->message_data(h.view, "bytes");
  BOOST_TEST(plain.begins == 0);
  BOOST_TEST(plain.data_calls == 0);
}

BOOST_AUTO_TEST_CASE(the_message_is_given_at_the_data_phase_only) {
  Harness h;
  Seen& filter = h.add("filter", false);
  h.start();
  h.run(Phase::rcpt);
  h.run(Phase::data);
  BOOST_TEST_REQUIRE(filter.messages.size() == 2u);
  BOOST_TEST(filter.messages[0] == nullptr);
  BOOST_TEST(filter.messages[1] == &h.message);
  BOOST_TEST(filter.messages[1]->header_section() == "A: b\r\n");
}

BOOST_AUTO_TEST_CASE(an_exception_while_streaming_fails_the_filter_at_the_data_phase) {
  Harness h;
  Seen& broken = h.add("broken", true, FailureMode::tempfail);
  Seen& fine = h.add("fine", true);
  h.start();
  h.runner->begin_message(h.view);
  h.runner->message_data(h.view, "first ");
  broken.throw_on_data = true;
  h.runner->message_data(h.view, "second ");
  h.runner->message_data(h.view, "third");
  // Logged once, as a data-phase problem; no more bytes after the throw.
  BOOST_TEST(h.problems("broken", "exception") == 1);
  BOOST_TEST(h.observer.problems.at(0).phase == Phase::data);
  BOOST_TEST(h.observer.problems.at(0).detail == "in on_message_data(): hashing went wrong");
  BOOST_TEST(broken.data_calls == 2);
  BOOST_TEST(fine.streamed == "first second third");

  h.run(Phase::data);
  BOOST_TEST(h.outcome->failed_filters == Names{"broken"});
  BOOST_TEST(h.outcome->skipped_filters.empty());
  BOOST_TEST(broken.phases.empty());  // its data hook is not called
  BOOST_TEST(fine.phases == std::vector<Phase>{Phase::data});
  BOOST_TEST(h.results("broken", "exception") == 1);
  BOOST_TEST(h.results("fine", "ok") == 1);
  BOOST_TEST(h.problems("broken", "exception") == 1);  // not logged a second time
}

BOOST_AUTO_TEST_CASE(
    an_exception_in_begin_with_continue_skips_the_filter_and_the_next_message_starts_over) {
  Harness h;
  Seen& broken = h.add("broken", true, FailureMode::continue_session);
  h.start();
  broken.throw_on_begin = true;
  h.runner->begin_message(h.view);
  h.runner->message_data(h.view, "lost");
  BOOST_TEST(broken.data_calls == 0);
  h.run(Phase::data);
  BOOST_TEST(h.outcome->failed_filters.empty());
  BOOST_TEST(h.outcome->skipped_filters == Names{"broken"});
  BOOST_TEST(h.problems("broken", "exception") == 1);

  // The next message: streamed again, and its data phase calls the hook.
  broken.throw_on_begin = false;
  h.runner->begin_message(h.view);
  h.runner->message_data(h.view, "kept");
  BOOST_TEST(broken.begins == 2);
  BOOST_TEST(broken.streamed == "kept");
  h.run(Phase::data);
  BOOST_TEST(h.outcome->skipped_filters.empty());
  BOOST_TEST(broken.phases == std::vector<Phase>{Phase::data});
}

BOOST_AUTO_TEST_CASE(a_failed_stream_of_an_abandoned_message_does_not_fail_the_next_one) {
  Harness h;
  Seen& filter = h.add("filter", true);
  h.start();
  h.runner->begin_message(h.view);
  filter.throw_on_data = true;
  h.runner->message_data(h.view, "boom");
  // The transaction ended before its data phase (RSET, a refused message); a new one starts.
  filter.throw_on_data = false;
  h.runner->begin_message(h.view);
  h.runner->message_data(h.view, "fresh");
  h.run(Phase::data);
  BOOST_TEST(h.outcome->failed_filters.empty());
  BOOST_TEST(filter.streamed == "fresh");
  BOOST_TEST(filter.phases == std::vector<Phase>{Phase::data});
}

BOOST_AUTO_TEST_CASE(a_streaming_filter_without_a_data_hook_that_threw_still_fails_the_data_phase) {
  Harness h;
  Seen& filter = h.add("filter", true, FailureMode::tempfail, {Phase::rcpt});
  h.start();
  h.runner->begin_message(h.view);
  filter.throw_on_data = true;
  h.runner->message_data(h.view, "boom");
  h.run(Phase::data);
  BOOST_TEST(h.outcome->failed_filters == Names{"filter"});
  BOOST_TEST(filter.phases.empty());
}

BOOST_AUTO_TEST_CASE(nothing_streams_after_the_session_ended) {
  Harness h;
  Seen& filter = h.add("filter", true);
  h.start();
  h.runner->session_end(h.view);
  h.runner->begin_message(h.view);
  h.runner->message_data(h.view, "late");
  BOOST_TEST(filter.begins == 0);
  BOOST_TEST(filter.data_calls == 0);
}
