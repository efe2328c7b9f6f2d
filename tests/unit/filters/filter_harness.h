// The filters' tests' HookContext: the session's view (with its own `facts`), FilterServices
// offering a FakeDnsResolver (or another resolver given with use_resolver, or none) and a
// FakeStateStore when given one (its clock is then the session's clock), and a
// CompletionTarget that records what the filter delivers. It is also the StreamContext of the
// streaming calls; `hook_phase` and `message_view` (the data phase's message) are the test's to
// set.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fake_dns_resolver.h"
#include "fake_state_store.h"
#include "filter.h"

namespace portcullis::test {

class FilterHarness : public HookContext,
                      public StreamContext,
                      public FilterServices,
                      public CompletionTarget {
 public:
  explicit FilterHarness(std::string client_ip, bool with_resolver = true)
      : resolver_available(with_resolver) {
    view_.session_id = 7;
    view_.client_ip = IpAddress::parse(client_ip);
    view_.facts = &facts;
  }
  FilterHarness(const FilterHarness&) = delete;
  FilterHarness& operator=(const FilterHarness&) = delete;

  // The view the filter reads; `facts` are the session's facts it sees.
  SessionView& view() { return view_; }
  // Asks `resolver` (which must outlive the harness) instead of `dns`.
  void use_resolver(DnsResolver* resolver) { other_resolver_ = resolver; }
  void use_store(std::shared_ptr<FakeStateStore> store) { store_ = std::move(store); }

  // HookContext
  Phase phase() const override { return hook_phase; }
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
    return Completion(self_, view_.session_id, 3);
  }
  FilterServices& services() override { return *this; }
  const MessageView* message() const override { return message_view; }

  // FilterServices
  StateStore* store() override { return store_.get(); }
  StoreClock::time_point now() override {
    return store_ ? store_->now : StoreClock::time_point(std::chrono::seconds(1'800'000'000));
  }
  DnsResolver* resolver() override {
    if (!resolver_available) return nullptr;
    return other_resolver_ != nullptr ? other_resolver_ : &dns;
  }
  // Timers are kept until the test runs them (run_timers), whatever their delay.
  std::unique_ptr<TimerHandle> start_timer(std::chrono::milliseconds,
                                           std::function<void()> callback) override {
    auto timer = std::make_shared<std::function<void()>>(std::move(callback));
    timers_.push_back(timer);
    return std::make_unique<Timer>(timer);
  }
  // Runs the timers whose handles still exist; the number run.
  int run_timers() {
    int ran = 0;
    auto due = std::move(timers_);
    timers_.clear();
    for (const auto& weak : due) {
      if (auto timer = weak.lock()) {
        auto callback = std::move(*timer);
        ++ran;
        callback();
      }
    }
    return ran;
  }
  void send_to_client(std::string_view bytes) override { sent_to_client.append(bytes); }

  // CompletionTarget
  void deliver(std::uint64_t, std::uint64_t, FilterResult result) override {
    results.push_back(std::move(result));
    if (on_deliver) on_deliver();
  }

  // Completions hold a weak_ptr to their target; this shares the harness without owning it.
  void bind(std::shared_ptr<CompletionTarget> self) { self_ = self; }

  FakeDnsResolver dns;
  bool resolver_available;  // false: FilterServices::resolver() is nullptr
  Facts facts;
  Phase hook_phase = Phase::connect;
  const MessageView* message_view = nullptr;
  Facts recorded;
  std::string sent_to_client;  // FilterServices::send_to_client, in order
  std::optional<std::string> failure;
  std::vector<std::string> warned;
  std::vector<AuthenticationEntry> authentication;
  int parks = 0;
  std::vector<FilterResult> results;
  // Runs after each delivery, e.g. to destroy the filter as an ending session does.
  std::function<void()> on_deliver;

 private:
  // Destroying the handle drops the callback, so a cancelled timer never runs.
  class Timer : public TimerHandle {
   public:
    explicit Timer(std::shared_ptr<std::function<void()>> callback)
        : callback_(std::move(callback)) {}

   private:
    std::shared_ptr<std::function<void()>> callback_;
  };

  SessionView view_;
  DnsResolver* other_resolver_ = nullptr;
  std::shared_ptr<FakeStateStore> store_;
  std::vector<std::weak_ptr<std::function<void()>>> timers_;
  std::weak_ptr<CompletionTarget> self_;
};

// The harness owned by a shared_ptr, so that Completions can reach it.
inline std::shared_ptr<FilterHarness> make_harness(std::string client_ip,
                                                   bool with_resolver = true) {
  auto harness = std::make_shared<FilterHarness>(std::move(client_ip), with_resolver);
  harness->bind(harness);
  return harness;
}

// A harness whose filter keeps its state in `store` (no resolver).
inline std::shared_ptr<FilterHarness> make_store_harness(std::shared_ptr<FakeStateStore> store,
                                                         std::string client_ip = "192.0.2.10") {
  auto harness = make_harness(std::move(client_ip), false);
  harness->use_store(std::move(store));
  return harness;
}

}  // namespace portcullis::test
