// The spf filter's hook through a fake HookContext and FilterServices on a ZoneResolver: the
// parked check and its facts, the HELO identity for the null sender, the missing resolver
// (an error, so failure_mode applies), cancellation, and the phases it ignores.
#define BOOST_TEST_MODULE spf_filter
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "spf_filter.h"
#include "zone_resolver.h"

using namespace portcullis;

namespace {

class FakeServices : public FilterServices {
 public:
  explicit FakeServices(DnsResolver* resolver) : resolver_(resolver) {}
  DnsResolver* resolver() override { return resolver_; }
  std::unique_ptr<TimerHandle> start_timer(std::chrono::milliseconds,
                                           std::function<void()>) override {
    return nullptr;
  }
  void send_to_client(std::string_view) override {}

 private:
  DnsResolver* resolver_;
};

class RecordingTarget : public CompletionTarget {
 public:
  void deliver(std::uint64_t session_id, std::uint64_t call_id, FilterResult result) override {
    BOOST_TEST(session_id == 9u);
    BOOST_TEST(call_id == 41u);
    results.push_back(std::move(result));
  }
  std::vector<FilterResult> results;
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

struct Session {
  Facts facts;
  SessionView view;
  explicit Session(const std::string& sender, const std::string& helo = "mail.example.org") {
    facts.set("sender", sender);
    facts.set("helo", helo);
    view.session_id = 9;
    view.hostname = "proxy.example.net";
    view.client_ip = IpAddress::parse("192.0.2.9");
    view.facts = &facts;
  }
};

std::unique_ptr<SessionFilter> make_filter() {
  std::vector<SettingError> errors;
  auto factory = build_spf_filter({}, errors);
  BOOST_REQUIRE(factory != nullptr);
  BOOST_REQUIRE(errors.empty());
  return factory->create();
}

ZoneResolver example_zone() {
  ZoneResolver zone;
  zone.add_txt("example.com", {"v=spf1 ip4:192.0.2.0/24 -all"});
  zone.add_txt("mail.example.org", {"v=spf1 -all"});
  return zone;
}

}  // namespace

BOOST_AUTO_TEST_CASE(parks_at_mail_and_finishes_with_the_facts) {
  ZoneResolver zone = example_zone();
  FakeServices services(&zone);
  auto target = std::make_shared<RecordingTarget>();
  Session session("alice@example.com");
  FakeContext context(Phase::mail, session.view, services, target);
  auto filter = make_filter();
  BOOST_TEST((filter->on_phase(context) == HookStatus::stop_iteration));
  BOOST_TEST(context.parks == 1);
  BOOST_TEST(target->results.empty());
  zone.run();
  BOOST_REQUIRE_EQUAL(target->results.size(), 1u);
  const Facts& facts = target->results[0].facts;
  BOOST_TEST(*facts.string("spf") == "pass");
  BOOST_TEST(*facts.string("spf.domain") == "example.com");
  BOOST_TEST(!target->results[0].error.has_value());
}

BOOST_AUTO_TEST_CASE(null_sender_checks_the_helo_identity) {
  ZoneResolver zone = example_zone();
  FakeServices services(&zone);
  auto target = std::make_shared<RecordingTarget>();
  Session session("");
  FakeContext context(Phase::mail, session.view, services, target);
  auto filter = make_filter();
  BOOST_TEST((filter->on_phase(context) == HookStatus::stop_iteration));
  zone.run();
  BOOST_REQUIRE_EQUAL(target->results.size(), 1u);
  BOOST_TEST(*target->results[0].facts.string("spf") == "fail");
  BOOST_TEST(*target->results[0].facts.string("spf.domain") == "mail.example.org");
  BOOST_TEST(zone.asked().front() == "mail.example.org TXT");
}

BOOST_AUTO_TEST_CASE(no_resolver_is_an_error) {
  FakeServices services(nullptr);
  auto target = std::make_shared<RecordingTarget>();
  Session session("alice@example.com");
  FakeContext context(Phase::mail, session.view, services, target);
  auto filter = make_filter();
  BOOST_TEST((filter->on_phase(context) == HookStatus::continue_chain));
  BOOST_TEST(context.failure.value() == "no resolver");
  BOOST_TEST(context.recorded.empty());
  BOOST_TEST(context.parks == 0);
}

BOOST_AUTO_TEST_CASE(an_identity_without_a_domain_is_recorded_at_once) {
  ZoneResolver zone = example_zone();
  FakeServices services(&zone);
  auto target = std::make_shared<RecordingTarget>();
  Session session("", "localhost");
  FakeContext context(Phase::mail, session.view, services, target);
  auto filter = make_filter();
  BOOST_TEST((filter->on_phase(context) == HookStatus::continue_chain));
  BOOST_TEST(context.parks == 0);
  BOOST_TEST(*context.recorded.string("spf") == "none");
  BOOST_TEST(*context.recorded.string("spf.domain") == "localhost");
  BOOST_TEST(zone.queries() == 0u);
}

BOOST_AUTO_TEST_CASE(cancel_drops_the_queries) {
  ZoneResolver zone = example_zone();
  FakeServices services(&zone);
  auto target = std::make_shared<RecordingTarget>();
  Session session("alice@example.com");
  FakeContext context(Phase::mail, session.view, services, target);
  auto filter = make_filter();
  BOOST_TEST((filter->on_phase(context) == HookStatus::stop_iteration));
  BOOST_TEST(zone.pending() == 1u);
  filter->cancel();
  BOOST_TEST(zone.pending() == 0u);
  zone.run();
  BOOST_TEST(target->results.empty());
}

BOOST_AUTO_TEST_CASE(other_phases_are_ignored) {
  ZoneResolver zone = example_zone();
  FakeServices services(&zone);
  auto target = std::make_shared<RecordingTarget>();
  Session session("alice@example.com");
  FakeContext context(Phase::rcpt, session.view, services, target);
  auto filter = make_filter();
  BOOST_TEST((filter->on_phase(context) == HookStatus::continue_chain));
  BOOST_TEST(context.recorded.empty());
  BOOST_TEST(zone.queries() == 0u);
}
