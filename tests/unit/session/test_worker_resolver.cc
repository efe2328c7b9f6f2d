// Worker::resolver_for: one resolver per loop for the same [dns] settings, a new one when a
// reload changes them while the old one keeps serving whoever holds it, and the metrics its
// queries count in.
#define BOOST_TEST_MODULE worker_resolver
#include <boost/test/unit_test.hpp>

#include <event2/event.h>

#include <memory>
#include <optional>

#include "metrics.h"
#include "test_dns_server.h"
#include "worker.h"

using namespace portcullis;
using portcullis::test::TestDnsServer;

namespace {

DnsAnswer ask(Worker& worker, DnsResolver& resolver, const std::string& name) {
  std::optional<DnsAnswer> answer;
  auto query = resolver.resolve(name, DnsType::a, [&](DnsAnswer got) { answer = std::move(got); });
  while (!answer)
    event_base_loop(worker.base(), EVLOOP_ONCE);
  return *answer;
}

}  // namespace

BOOST_AUTO_TEST_CASE(same_settings_share_a_resolver_and_a_reload_makes_a_new_one) {
  TestDnsServer server;
  server.add_a("host.example.test", "192.0.2.1");
  Worker worker(ServerContext{});
  DnsConfig first;
  first.resolvers = {server.address()};
  first.timeout = 2;
  auto resolver = worker.resolver_for(first);
  BOOST_TEST_REQUIRE(resolver != nullptr);
  BOOST_TEST(worker.resolver_for(first) == resolver);

  DnsConfig reloaded = first;
  reloaded.timeout = 3;
  auto newer = worker.resolver_for(reloaded);
  BOOST_TEST_REQUIRE(newer != nullptr);
  BOOST_TEST(newer != resolver);
  BOOST_TEST(worker.resolver_for(reloaded) == newer);

  // The session that took the first one before the reload still gets answers from it.
  const auto answers_before = metrics().dns_queries_total.with({"A", "answer"}).value();
  BOOST_TEST(dns_outcome_name(ask(worker, *resolver, "host.example.test").outcome) == "answer");
  BOOST_TEST(dns_outcome_name(ask(worker, *newer, "host.example.test").outcome) == "answer");
  BOOST_TEST(metrics().dns_queries_total.with({"A", "answer"}).value() == answers_before + 2);
  BOOST_TEST(metrics().dns_query_duration_seconds.with({}).count() >= 2u);
}

BOOST_AUTO_TEST_CASE(settings_libunbound_refuses_give_no_resolver) {
  Worker worker(ServerContext{});
  DnsConfig broken;
  broken.resolvers = {"not an address"};
  BOOST_TEST(worker.resolver_for(broken) == nullptr);
  BOOST_TEST(worker.resolver_for(broken) == nullptr);
}
