// The pregreet filter's hooks through a fake HookContext and FilterServices: the teaser line,
// the parked wait and its cancellation, and the fact recorded at helo.
#define BOOST_TEST_MODULE pregreet_filter
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "filter_harness.h"
#include "pregreet_filter.h"

using namespace portcullis;
using namespace std::chrono_literals;

namespace {

class FakeServices : public FilterServices {
 public:
  class Handle : public TimerHandle {
   public:
    explicit Handle(std::shared_ptr<bool> alive) : alive_(std::move(alive)) {}
    ~Handle() override { *alive_ = false; }

   private:
    std::shared_ptr<bool> alive_;
  };

  std::unique_ptr<TimerHandle> start_timer(std::chrono::milliseconds delay,
                                           std::function<void()> callback) override {
    delays.push_back(delay);
    callbacks.push_back(std::move(callback));
    timer_alive = std::make_shared<bool>(true);
    return std::make_unique<Handle>(timer_alive);
  }
  void send_to_client(std::string_view bytes) override { sent += bytes; }

  std::vector<std::chrono::milliseconds> delays;
  std::vector<std::function<void()>> callbacks;
  std::shared_ptr<bool> timer_alive;
  std::string sent;
};

class RecordingTarget : public CompletionTarget {
 public:
  struct Delivery {
    std::uint64_t session_id;
    std::uint64_t call_id;
    FilterResult result;
  };
  void deliver(std::uint64_t session_id, std::uint64_t call_id, FilterResult result) override {
    deliveries.push_back(Delivery{session_id, call_id, std::move(result)});
  }
  std::vector<Delivery> deliveries;
};

class FakeContext : public HookContext {
 public:
  FakeContext(Phase phase, const SessionView& view, FakeServices& services,
              std::shared_ptr<RecordingTarget> target)
      : phase_(phase), view_(view), services_(services), target_(std::move(target)) {}
  Phase phase() const override { return phase_; }
  const SessionView& session() const override { return view_; }
  void record(std::string fact, FactValue value) override {
    recorded.set(std::move(fact), std::move(value));
  }
  void fail(std::string error) override { failure = std::move(error); }
  void warn(std::string warning) override { warned.push_back(std::move(warning)); }
  void add_authentication(AuthenticationEntry entry) override {
    authentication.push_back(std::move(entry));
  }
  Completion park() override {
    ++parks;
    return Completion(target_, view_.session_id, 41);
  }
  FilterServices& services() override { return services_; }

  Facts recorded;
  std::optional<std::string> failure;
  std::vector<std::string> warned;
  std::vector<AuthenticationEntry> authentication;
  int parks = 0;

 private:
  Phase phase_;
  const SessionView& view_;
  FakeServices& services_;
  std::shared_ptr<RecordingTarget> target_;
};

SessionView session_view() {
  SessionView view;
  view.session_id = 9;
  view.hostname = "mx.example.org";
  return view;
}

std::unique_ptr<SessionFilter> make_filter(SettingTable settings = {}) {
  std::vector<SettingError> errors;
  auto factory = build_pregreet_filter(settings, errors);
  BOOST_REQUIRE(factory != nullptr);
  BOOST_REQUIRE(errors.empty());
  return factory->create();
}

SettingValue integer(std::int64_t number) {
  return SettingValue{number};
}
SettingValue flag(bool value) {
  return SettingValue{value};
}

}  // namespace

BOOST_AUTO_TEST_CASE(defaults_send_the_teaser_and_wait_six_seconds) {
  auto target = std::make_shared<RecordingTarget>();
  FakeServices services;
  const SessionView view = session_view();
  auto filter = make_filter();
  FakeContext context(Phase::connect, view, services, target);
  BOOST_TEST((filter->on_phase(context) == HookStatus::stop_iteration));
  BOOST_TEST(services.sent == "220-mx.example.org ESMTP\r\n");
  BOOST_TEST(context.parks == 1);
  BOOST_REQUIRE(services.delays.size() == 1u);
  BOOST_TEST(services.delays[0].count() == 6000);
  BOOST_TEST(target->deliveries.empty());
  BOOST_TEST(context.recorded.empty());

  services.callbacks[0]();  // the wait is over
  BOOST_REQUIRE(target->deliveries.size() == 1u);
  BOOST_TEST(target->deliveries[0].session_id == 9u);
  BOOST_TEST(target->deliveries[0].call_id == 41u);
  BOOST_TEST(target->deliveries[0].result.facts.empty());
  BOOST_TEST(!target->deliveries[0].result.error.has_value());
}

BOOST_AUTO_TEST_CASE(settings_are_read_with_their_defaults) {
  std::vector<SettingError> errors;
  PregreetSettings defaults = read_pregreet_settings({}, errors);
  BOOST_TEST(defaults.wait.count() == 6000);
  BOOST_TEST(defaults.teaser == true);
  PregreetSettings given =
      read_pregreet_settings({{"wait_ms", integer(250)}, {"teaser", flag(false)}}, errors);
  BOOST_TEST(given.wait.count() == 250);
  BOOST_TEST(given.teaser == false);
  BOOST_TEST(errors.empty());
  BOOST_TEST(build_pregreet_filter({{"teaser", integer(1)}}, errors) == nullptr);
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].key == "teaser");
}

BOOST_AUTO_TEST_CASE(no_teaser_when_disabled) {
  auto target = std::make_shared<RecordingTarget>();
  FakeServices services;
  const SessionView view = session_view();
  auto filter = make_filter({{"teaser", flag(false)}, {"wait_ms", integer(1500)}});
  FakeContext context(Phase::connect, view, services, target);
  BOOST_TEST((filter->on_phase(context) == HookStatus::stop_iteration));
  BOOST_TEST(services.sent.empty());
  BOOST_REQUIRE(services.delays.size() == 1u);
  BOOST_TEST(services.delays[0].count() == 1500);
}

BOOST_AUTO_TEST_CASE(zero_wait_answers_at_once) {
  auto target = std::make_shared<RecordingTarget>();
  FakeServices services;
  const SessionView view = session_view();
  auto filter = make_filter({{"wait_ms", integer(0)}});
  FakeContext context(Phase::connect, view, services, target);
  BOOST_TEST((filter->on_phase(context) == HookStatus::continue_chain));
  BOOST_TEST(services.sent == "220-mx.example.org ESMTP\r\n");
  BOOST_TEST(context.parks == 0);
  BOOST_TEST(services.delays.empty());
  BOOST_TEST(context.recorded.empty());
}

BOOST_AUTO_TEST_CASE(cancel_drops_the_wait_timer) {
  auto target = std::make_shared<RecordingTarget>();
  FakeServices services;
  const SessionView view = session_view();
  auto filter = make_filter();
  FakeContext context(Phase::connect, view, services, target);
  filter->on_phase(context);
  BOOST_REQUIRE(services.timer_alive);
  BOOST_TEST(*services.timer_alive);
  filter->cancel();
  BOOST_TEST(!*services.timer_alive);
}

BOOST_AUTO_TEST_CASE(destroying_the_filter_drops_the_wait_timer) {
  auto target = std::make_shared<RecordingTarget>();
  FakeServices services;
  const SessionView view = session_view();
  auto filter = make_filter();
  FakeContext context(Phase::connect, view, services, target);
  filter->on_phase(context);
  filter.reset();
  BOOST_TEST(!*services.timer_alive);
}

BOOST_AUTO_TEST_CASE(helo_records_whether_the_client_spoke_first_every_time) {
  auto target = std::make_shared<RecordingTarget>();
  FakeServices services;
  SessionView view = session_view();
  auto filter = make_filter();

  FakeContext quiet(Phase::helo, view, services, target);
  BOOST_TEST((filter->on_phase(quiet) == HookStatus::continue_chain));
  BOOST_REQUIRE(quiet.recorded.boolean("pregreet").has_value());
  BOOST_TEST(*quiet.recorded.boolean("pregreet") == false);
  BOOST_TEST(quiet.recorded.size() == 1u);

  view.client_spoke_before_banner = true;
  // A second helo phase (after STARTTLS) records the fact again.
  FakeContext after_starttls(Phase::helo, view, services, target);
  BOOST_TEST((filter->on_phase(after_starttls) == HookStatus::continue_chain));
  BOOST_TEST(after_starttls.recorded.boolean("pregreet").value_or(false) == true);
  BOOST_TEST(services.sent.empty());  // no teaser at helo
  BOOST_TEST(services.delays.empty());
  BOOST_TEST(quiet.parks + after_starttls.parks == 0);
}

BOOST_AUTO_TEST_CASE(no_teaser_for_a_hostname_that_could_break_the_line) {
  auto target = std::make_shared<RecordingTarget>();
  FakeServices services;
  SessionView view = session_view();
  view.hostname = "mx.example.org\r\n250 injected";
  auto filter = make_filter({{"wait_ms", integer(0)}});
  FakeContext context(Phase::connect, view, services, target);
  filter->on_phase(context);
  BOOST_TEST(services.sent.empty());
}

// The pass cache, on the shared harness's fake store: a client that waited quietly is
// remembered for pass_ttl, and its next session skips the teaser and the wait.
BOOST_AUTO_TEST_CASE(a_quiet_client_is_remembered_and_not_delayed_again) {
  auto store = std::make_shared<test::FakeStateStore>();
  const SettingTable settings = {{"wait_ms", integer(500)}, {"pass_ttl", integer(3600)}};

  auto first = test::make_store_harness(store, "192.0.2.10");
  first->view().hostname = "mx.example.org";
  auto filter = make_filter(settings);
  BOOST_TEST((filter->on_phase(*first) == HookStatus::stop_iteration));
  BOOST_TEST(first->sent_to_client.empty());  // the cache is asked before the teaser
  BOOST_TEST(store->turn() == 1);             // not remembered: the test runs
  BOOST_TEST(first->sent_to_client == "220-mx.example.org ESMTP\r\n");
  BOOST_TEST(first->results.empty());
  BOOST_TEST(first->run_timers() == 1);
  BOOST_REQUIRE_EQUAL(first->results.size(), 1u);
  first->hook_phase = Phase::helo;
  BOOST_TEST((filter->on_phase(*first) == HookStatus::continue_chain));
  BOOST_TEST(first->recorded.boolean("pregreet").value_or(true) == false);
  const auto remembered = store->live("pass:pregreet:192.0.2.10");
  BOOST_REQUIRE(remembered.has_value());
  BOOST_TEST((remembered->expires == store->now + std::chrono::seconds(3600)));

  auto second = test::make_store_harness(store, "192.0.2.10");
  second->view().hostname = "mx.example.org";
  auto next = make_filter(settings);
  BOOST_TEST((next->on_phase(*second) == HookStatus::stop_iteration));
  store->turn();
  BOOST_REQUIRE_EQUAL(second->results.size(), 1u);  // no wait
  BOOST_TEST(second->sent_to_client.empty());       // no teaser
  BOOST_TEST(second->run_timers() == 0);

  // Once pass_ttl is over, the client is tested again.
  store->now += std::chrono::seconds(3601);
  auto later = test::make_store_harness(store, "192.0.2.10");
  auto again = make_filter(settings);
  again->on_phase(*later);
  store->turn();
  BOOST_TEST(later->results.empty());
  BOOST_TEST(later->run_timers() == 1);
}

BOOST_AUTO_TEST_CASE(a_pregreeting_client_or_a_failing_store_is_not_remembered) {
  auto store = std::make_shared<test::FakeStateStore>();
  const SettingTable settings = {{"wait_ms", integer(500)}, {"pass_ttl", integer(3600)}};
  auto harness = test::make_store_harness(store, "192.0.2.11");
  auto filter = make_filter(settings);
  filter->on_phase(*harness);
  store->turn();
  harness->run_timers();
  harness->hook_phase = Phase::helo;
  harness->view().client_spoke_before_banner = true;
  filter->on_phase(*harness);
  BOOST_TEST(harness->recorded.boolean("pregreet").value_or(false) == true);
  BOOST_TEST(store->updates == 0);

  // A store that fails costs only the cache: the wait runs, no failure.
  store->failing = StoreStatus::unavailable;
  auto down = test::make_store_harness(store, "192.0.2.12");
  auto tested = make_filter(settings);
  BOOST_TEST((tested->on_phase(*down) == HookStatus::stop_iteration));
  store->turn();
  BOOST_TEST(down->run_timers() == 1);
  BOOST_REQUIRE_EQUAL(down->results.size(), 1u);
  BOOST_TEST(!down->results[0].error.has_value());
  BOOST_TEST(!down->failure.has_value());
}
