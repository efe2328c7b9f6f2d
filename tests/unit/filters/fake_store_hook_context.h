// A HookContext for the state-store filters' tests: a session view whose client address and
// facts the test sets, FilterServices offering a FakeStateStore (or none) and a clock that is
// the store's, and a CompletionTarget that records what the filter delivers.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fake_state_store.h"
#include "filter.h"

namespace portcullis::test {

class StoreFilterHarness : public HookContext, public FilterServices, public CompletionTarget {
 public:
  StoreFilterHarness(std::shared_ptr<FakeStateStore> store, std::string client_ip)
      : store_(std::move(store)) {
    view.session_id = 11;
    view.client_ip = IpAddress::parse(client_ip);
    view.facts = &facts;
  }

  // HookContext
  Phase phase() const override { return hook_phase; }
  const SessionView& session() const override { return view; }
  void record(std::string fact, FactValue value) override {
    recorded.set(std::move(fact), std::move(value));
  }
  void fail(std::string error) override { failure = std::move(error); }
  void warn(std::string warning) override { warned.push_back(std::move(warning)); }
  void add_authentication(AuthenticationEntry) override {}
  Completion park() override {
    ++parks;
    return Completion(self_, view.session_id, 5);
  }
  FilterServices& services() override { return *this; }
  const MessageView* message() const override { return message_view; }

  // FilterServices: the store's clock is the session's clock.
  StateStore* store() override { return store_.get(); }
  StoreClock::time_point now() override {
    return store_ ? store_->now : StoreClock::time_point(std::chrono::seconds(1'800'000'000));
  }
  std::unique_ptr<TimerHandle> start_timer(std::chrono::milliseconds,
                                           std::function<void()>) override {
    return nullptr;
  }
  void send_to_client(std::string_view) override {}

  // CompletionTarget
  void deliver(std::uint64_t, std::uint64_t, FilterResult result) override {
    results.push_back(std::move(result));
  }

  void bind(std::shared_ptr<CompletionTarget> self) { self_ = self; }

  SessionView view;
  Facts facts;  // what the session recorded (helo, sender, rcpt, ...)
  Phase hook_phase = Phase::connect;
  const MessageView* message_view = nullptr;
  Facts recorded;
  std::optional<std::string> failure;
  std::vector<std::string> warned;
  int parks = 0;
  std::vector<FilterResult> results;

 private:
  std::shared_ptr<FakeStateStore> store_;
  std::weak_ptr<CompletionTarget> self_;
};

inline std::shared_ptr<StoreFilterHarness> make_store_harness(
    std::shared_ptr<FakeStateStore> store, std::string client_ip = "192.0.2.10") {
  auto harness = std::make_shared<StoreFilterHarness>(std::move(store), std::move(client_ip));
  harness->bind(harness);
  return harness;
}

}  // namespace portcullis::test
