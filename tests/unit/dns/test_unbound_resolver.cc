// UnboundResolver against the test DNS server (tests/support/test_dns_server.h) through a real
// event_base: answers of each type parsed from the packet, the failure outcomes, the timeout,
// cancel, and queries completing while another one waits on the same loop.
#define BOOST_TEST_MODULE unbound_resolver
#include <boost/test/unit_test.hpp>

#include <event2/event.h>

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "dns_packet.h"
#include "event_handles.h"
#include "test_dns_server.h"
#include "unbound_resolver.h"

using namespace portcullis;
using namespace std::chrono_literals;
using portcullis::test::TestDnsServer;

namespace {

struct CountingObserver : DnsQueryObserver {
  void query_ended(DnsType, DnsOutcome outcome, std::chrono::nanoseconds,
                   bool from_cache) noexcept override {
    outcomes.push_back(outcome);
    if (from_cache) ++cache_hits;
  }
  std::vector<DnsOutcome> outcomes;
  int cache_hits = 0;
};

struct ResolverFixture {
  explicit ResolverFixture(std::chrono::milliseconds timeout = 3000ms) : base(event_base_new()) {
    resolver = UnboundResolver::create(base.get(), {{server.address()}, timeout, &observer});
  }

  // Runs the loop until `done` (every query ends: the resolver's timeout bounds this).
  template <typename Done>
  void run_until(Done done) {
    while (!done())
      event_base_loop(base.get(), EVLOOP_ONCE);
  }

  // Runs the loop until `done` turns true on the server's side: a short tick wakes the loop
  // to look, since nothing on the loop may happen meanwhile.
  template <typename Done>
  void run_until_server(Done done) {
    EventPtr tick(event_new(
        base.get(), -1, EV_PERSIST, [](evutil_socket_t, short, void*) {}, nullptr));
    const timeval interval{0, 5000};
    event_add(tick.get(), &interval);
    run_until(done);
  }

  DnsAnswer ask(const std::string& name, DnsType type) {
    std::optional<DnsAnswer> answer;
    bool returned = false;
    bool called_before_return = false;
    auto query = resolver->resolve(name, type, [&](DnsAnswer got) {
      called_before_return = !returned;
      answer = std::move(got);
    });
    returned = true;
    run_until([&] { return answer.has_value(); });
    BOOST_TEST(!called_before_return);
    return *answer;
  }

  TestDnsServer server;
  CountingObserver observer;
  EventBasePtr base;
  std::shared_ptr<UnboundResolver> resolver;
};

struct ShortTimeoutFixture : ResolverFixture {
  ShortTimeoutFixture() : ResolverFixture(300ms) {}
};

// The withheld query must still be waiting when the others are done, however loaded the
// machine: its timeout is far beyond what they take.
struct LongTimeoutFixture : ResolverFixture {
  LongTimeoutFixture() : ResolverFixture(60000ms) {}
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(a_and_aaaa_records, ResolverFixture) {
  server.add_a("host.example.test", "192.0.2.10", 600);
  server.add_a("host.example.test", "192.0.2.11", 120);
  server.add_aaaa("host.example.test", "2001:db8::25");
  auto a = ask("Host.Example.TEST.", DnsType::a);
  BOOST_TEST(dns_outcome_name(a.outcome) == "answer");
  BOOST_TEST_REQUIRE(a.records.size() == 2u);
  // libunbound rotates the records of a set (rrset-roundrobin): the order is not kept.
  std::set<std::string> addresses{a.records[0].address->to_string(),
                                  a.records[1].address->to_string()};
  BOOST_TEST((addresses == std::set<std::string>{"192.0.2.10", "192.0.2.11"}));
  BOOST_TEST(a.ttl == 120u);
  auto aaaa = ask("host.example.test", DnsType::aaaa);
  BOOST_TEST_REQUIRE(aaaa.records.size() == 1u);
  BOOST_TEST(aaaa.records[0].address->to_string() == "2001:db8::25");
}

BOOST_FIXTURE_TEST_CASE(txt_keeps_character_strings_apart, ResolverFixture) {
  server.add_txt("example.test", {"v=spf1 ", "ip4:192.0.2.0/24 -all"});
  server.add_txt("example.test", {"other"});
  auto txt = ask("example.test", DnsType::txt);
  BOOST_TEST_REQUIRE(txt.records.size() == 2u);
  std::set<std::vector<std::string>> records{txt.records[0].strings, txt.records[1].strings};
  const std::set<std::vector<std::string>> expected{{"v=spf1 ", "ip4:192.0.2.0/24 -all"},
                                                    {"other"}};
  BOOST_TEST((records == expected));
}

BOOST_FIXTURE_TEST_CASE(mx_preference_and_exchange, ResolverFixture) {
  server.add_mx("example.test", 20, "MX2.Example.TEST");
  server.add_mx("example.test", 10, "mx1.example.test");
  auto mx = ask("example.test", DnsType::mx);
  BOOST_TEST_REQUIRE(mx.records.size() == 2u);
  std::set<std::pair<int, std::string>> exchanges;
  for (const auto& record : mx.records)
    exchanges.emplace(record.preference, record.name);
  const std::set<std::pair<int, std::string>> expected{{10, "mx1.example.test"},
                                                       {20, "mx2.example.test"}};
  BOOST_TEST((exchanges == expected));
}

BOOST_FIXTURE_TEST_CASE(ptr_in_loopback_and_documentation_reverse_zones, ResolverFixture) {
  server.add_ptr(reverse_name(*IpAddress::parse("127.0.0.2")), "Mail.Example.test.");
  server.add_ptr(reverse_name(*IpAddress::parse("192.0.2.1")), "doc.example.test");
  server.add_ptr(reverse_name(*IpAddress::parse("2001:db8::1")), "six.example.test");
  auto loopback = ask(reverse_name(*IpAddress::parse("127.0.0.2")), DnsType::ptr);
  BOOST_TEST_REQUIRE(loopback.records.size() == 1u);
  BOOST_TEST(loopback.records[0].name == "mail.example.test");
  auto documentation = ask(reverse_name(*IpAddress::parse("192.0.2.1")), DnsType::ptr);
  BOOST_TEST_REQUIRE(documentation.records.size() == 1u);
  BOOST_TEST(documentation.records[0].name == "doc.example.test");
  auto six = ask(reverse_name(*IpAddress::parse("2001:db8::1")), DnsType::ptr);
  BOOST_TEST_REQUIRE(six.records.size() == 1u);
  BOOST_TEST(six.records[0].name == "six.example.test");
}

BOOST_FIXTURE_TEST_CASE(cname_chain_is_followed, ResolverFixture) {
  server.add_cname("alias.example.test", "middle.example.test");
  server.add_cname("middle.example.test", "real.example.test");
  server.add_a("real.example.test", "192.0.2.7");
  server.add_a("alias.example.test", "192.0.2.99");  // beside a CNAME: not served
  auto a = ask("alias.example.test", DnsType::a);
  BOOST_TEST(dns_outcome_name(a.outcome) == "answer");
  BOOST_TEST_REQUIRE(a.records.size() == 1u);
  BOOST_TEST(a.records[0].address->to_string() == "192.0.2.7");
}

BOOST_FIXTURE_TEST_CASE(cname_loop_ends_without_an_answer, ResolverFixture) {
  server.add_cname("loop1.example.test", "loop2.example.test");
  server.add_cname("loop2.example.test", "loop1.example.test");
  auto a = ask("loop1.example.test", DnsType::a);
  BOOST_TEST(a.records.empty());
  BOOST_TEST((a.outcome == DnsOutcome::failure || a.outcome == DnsOutcome::temporary_failure),
             dns_outcome_name(a.outcome) << " " << a.reason);
}

BOOST_FIXTURE_TEST_CASE(nxdomain_and_nodata, ResolverFixture) {
  server.add_a("exists.example.test", "192.0.2.1");
  auto missing = ask("missing.example.test", DnsType::a);
  BOOST_TEST(dns_outcome_name(missing.outcome) == "nxdomain");
  auto nodata = ask("exists.example.test", DnsType::txt);
  BOOST_TEST(dns_outcome_name(nodata.outcome) == "no_data");
  BOOST_TEST(nodata.records.empty());
}

BOOST_FIXTURE_TEST_CASE(servfail_is_a_temporary_failure, ResolverFixture) {
  server.set_behaviour("broken.example.test", TestDnsServer::Behaviour::servfail);
  auto answer = ask("broken.example.test", DnsType::txt);
  BOOST_TEST(dns_outcome_name(answer.outcome) == "temporary_failure");
  BOOST_TEST(server.query_count("broken.example.test") >= 1u);
}

BOOST_FIXTURE_TEST_CASE(silent_server_times_out, ShortTimeoutFixture) {
  server.set_behaviour("silent.example.test", TestDnsServer::Behaviour::withhold);
  auto answer = ask("silent.example.test", DnsType::txt);
  BOOST_TEST(dns_outcome_name(answer.outcome) == "temporary_failure");
  BOOST_TEST(answer.reason == "timeout");
  BOOST_TEST(server.query_count("silent.example.test") >= 1u);
  BOOST_TEST(resolver->pending_count() == 0u);
  BOOST_TEST(observer.outcomes.size() == 1u);
}

BOOST_FIXTURE_TEST_CASE(truncated_udp_answer_is_asked_again_over_tcp, ResolverFixture) {
  server.add_txt("big.example.test", {"over tcp"});
  server.set_behaviour("big.example.test", TestDnsServer::Behaviour::truncate);
  auto answer = ask("big.example.test", DnsType::txt);
  BOOST_TEST(dns_outcome_name(answer.outcome) == "answer");
  BOOST_TEST_REQUIRE(answer.records.size() == 1u);
  BOOST_TEST(answer.records[0].strings.front() == "over tcp");
  bool over_tcp = false;
  for (const auto& query : server.queries()) {
    over_tcp |=
        query.name == "big.example.test" && query.transport == TestDnsServer::Transport::tcp;
  }
  BOOST_TEST(over_tcp);
}

BOOST_FIXTURE_TEST_CASE(late_answer_within_the_timeout_is_an_answer, ResolverFixture) {
  server.add_a("slowish.example.test", "192.0.2.4");
  server.set_behaviour("slowish.example.test", TestDnsServer::Behaviour::delay, 100ms);
  auto answer = ask("slowish.example.test", DnsType::a);
  BOOST_TEST(dns_outcome_name(answer.outcome) == "answer");
  BOOST_TEST(server.late_answers_sent() == 1u);
}

BOOST_FIXTURE_TEST_CASE(resolver_gone_before_the_handle_calls_nothing, ResolverFixture) {
  server.set_behaviour("never.example.test", TestDnsServer::Behaviour::withhold);
  bool called = false;
  auto query =
      resolver->resolve("never.example.test", DnsType::a, [&](DnsAnswer) { called = true; });
  run_until_server([&] { return server.query_count("never.example.test") >= 1; });
  resolver.reset();  // ub_ctx_delete with the query in flight
  query.reset();     // the handle finds no resolver: nothing to cancel
  event_base_loop(base.get(), EVLOOP_NONBLOCK);
  BOOST_TEST(!called);
}

BOOST_FIXTURE_TEST_CASE(destroyed_handle_is_never_called_back, ResolverFixture) {
  server.add_a("late.example.test", "192.0.2.5");
  server.add_a("after.example.test", "192.0.2.6");
  server.set_behaviour("late.example.test", TestDnsServer::Behaviour::delay, 200ms);
  bool called = false;
  auto query = resolver->resolve("late.example.test", DnsType::a, [&](DnsAnswer answer) {
    BOOST_TEST_MESSAGE("late query called back: " << dns_outcome_name(answer.outcome) << " "
                                                  << answer.reason);
    called = true;
  });
  run_until_server([&] { return server.query_count("late.example.test") >= 1; });
  BOOST_TEST_REQUIRE(!called);
  query.reset();
  BOOST_TEST(resolver->pending_count() == 0u);
  // The late answer goes out; a query asked after it completes only once the loop has read
  // everything that arrived before.
  run_until_server([&] { return server.late_answers_sent() >= 1; });
  auto after = ask("after.example.test", DnsType::a);
  BOOST_TEST(dns_outcome_name(after.outcome) == "answer");
  BOOST_TEST(!called);
}

BOOST_FIXTURE_TEST_CASE(slow_name_does_not_hold_up_other_queries_on_the_loop, LongTimeoutFixture) {
  server.set_behaviour("slow.example.test", TestDnsServer::Behaviour::withhold);
  bool slow_called = false;
  auto slow =
      resolver->resolve("slow.example.test", DnsType::txt, [&](DnsAnswer) { slow_called = true; });
  run_until_server([&] { return server.query_count("slow.example.test") >= 1; });
  std::vector<std::unique_ptr<DnsQuery>> others;
  int completed = 0;
  for (int index = 0; index < 5; ++index) {
    const std::string name = "fast" + std::to_string(index) + ".example.test";
    server.add_txt(name, {"v=spf1 -all"});
    others.push_back(resolver->resolve(name, DnsType::txt, [&](DnsAnswer answer) {
      if (answer.outcome == DnsOutcome::answer) ++completed;
    }));
  }
  run_until([&] { return completed == 5 || slow_called; });
  BOOST_TEST(completed == 5);
  BOOST_TEST(!slow_called);
  BOOST_TEST(resolver->pending_count() == 1u);
}

BOOST_FIXTURE_TEST_CASE(cached_answer_still_arrives_after_resolve_returns, ResolverFixture) {
  server.add_a("cached.example.test", "192.0.2.8");
  ask("cached.example.test", DnsType::a);
  const auto queries_before = server.query_count("cached.example.test");
  auto again = ask("cached.example.test", DnsType::a);  // ask() checks the order
  BOOST_TEST(dns_outcome_name(again.outcome) == "answer");
  BOOST_TEST(server.query_count("cached.example.test") == queries_before);
  BOOST_TEST(observer.cache_hits == 1);
  BOOST_TEST(observer.outcomes.size() == 2u);
}

BOOST_FIXTURE_TEST_CASE(name_that_cannot_be_asked_is_a_failure, ResolverFixture) {
  auto answer = ask("bad..example.test", DnsType::a);
  BOOST_TEST(dns_outcome_name(answer.outcome) == "failure");
  BOOST_TEST(answer.reason == "invalid name");
  auto too_long = ask(std::string(64, 'a') + ".example.test", DnsType::a);
  BOOST_TEST(dns_outcome_name(too_long.outcome) == "failure");
}

BOOST_AUTO_TEST_CASE(resolver_addresses_are_checked) {
  BOOST_TEST(unbound_forwarder("127.0.0.1:5353").value() == "127.0.0.1@5353");
  BOOST_TEST(unbound_forwarder("[::1]:53").value() == "::1@53");
  BOOST_TEST(!unbound_forwarder("127.0.0.1"));
  BOOST_TEST(!unbound_forwarder("127.0.0.1:0"));
  BOOST_TEST(!unbound_forwarder("127.0.0.1:65536"));
  BOOST_TEST(!unbound_forwarder("resolver.example:53"));
  BOOST_TEST(!unbound_forwarder("::1:53"));
  EventBasePtr base(event_base_new());
  BOOST_CHECK_THROW(UnboundResolver::create(base.get(), {{"nonsense"}, 1000ms, nullptr}),
                    std::runtime_error);
  BOOST_CHECK_THROW(UnboundResolver::create(base.get(), {{}, 1000ms, nullptr}), std::runtime_error);
}
