// [store] backend = "redis" in running portcullis processes, on a redis-server started here:
// two nodes that share one Redis count one rate limit together (a limit of N messages admits N
// in total across both), and a Redis that is killed makes the filter's failure_mode apply
// (451) without a crash or a hang, until Redis is back and the same process counts again.
#define BOOST_TEST_MODULE integration_redis_store
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "fixtures.h"
#include "recording_upstream.h"
#include "test_redis_server.h"
#include "test_support.h"

using namespace portcullis::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// Messages per client address, at most `limit` an hour; over it the policy refuses MAIL FROM.
PortcullisOptions redis_node(const RecordingUpstream& upstream, const TestRedisServer& redis,
                             const fs::path& policy, int limit) {
  std::ofstream(policy) << "[[rule]]\nname = \"too many messages\"\n"
                           "when = \"rate.msgs.exceeded\"\n"
                           "then = \"tempfail 451 4.7.1 Too many messages\"\n";
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  options.settings["store"] = {{"backend", "\"redis\""}};
  options.settings["store.redis"] = {
      {"address", "\"" + redis.address() + "\""}, {"prefix", "\"it:\""}, {"timeout_ms", "1000"}};
  options.settings["filters"] = {{"chain", "[\"ratelimit\"]"}};
  options.settings["filter.ratelimit"] = {
      {"limit", "[{ name = \"msgs\", key = \"client.ip\", counter = \"messages\", limit = " +
                    std::to_string(limit) + ", per = 3600 }]"}};
  options.settings["policy"] = {{"files", "[\"" + policy.string() + "\"]"}};
  return options;
}

SmtpReply mail_from(const PortcullisFixture& proxy) {
  SmtpTestClient client("127.0.0.1", proxy.port(), {.timeout = 10s});
  BOOST_TEST(client.read_reply().code == 220);
  BOOST_TEST(client.command("EHLO client.example.test").code == 250);
  const SmtpReply reply = client.command("MAIL FROM:<a@example.test>");
  client.command("QUIT");
  return reply;
}

}  // namespace

BOOST_AUTO_TEST_CASE(two_nodes_on_one_redis_admit_the_limit_in_total) {
  TestRedisServer redis;
  RecordingUpstream upstream;
  TempDir dir("portcullis-redis-it");
  constexpr int limit = 3;
  const auto options = redis_node(upstream, redis, dir / "rate.toml", limit);
  PortcullisFixture first(options);
  PortcullisFixture second(options);
  int admitted = 0;
  int refused = 0;
  for (int i = 0; i < 8; ++i) {
    const SmtpReply reply = mail_from(i % 2 == 0 ? first : second);
    if (reply.code == 250) ++admitted;
    if (reply.code == 451 && contains(reply.text(), "Too many messages")) ++refused;
    BOOST_TEST_MESSAGE("node " << (i % 2 + 1) << ": " << reply.describe());
  }
  BOOST_TEST(admitted == limit);
  BOOST_TEST(refused == 8 - limit);
  BOOST_TEST(first.events_named("store_down").empty());
  BOOST_TEST(first.stop().success());
  BOOST_TEST(second.stop().success());
}

BOOST_AUTO_TEST_CASE(redis_killed_the_failure_mode_applies_and_redis_back_counts_again) {
  TestRedisServer redis;
  RecordingUpstream upstream;
  TempDir dir("portcullis-redis-it");
  PortcullisFixture proxy(redis_node(upstream, redis, dir / "rate.toml", 100));
  BOOST_TEST(mail_from(proxy).code == 250);

  redis.kill();
  const auto start = Clock::now();
  const SmtpReply down = mail_from(proxy);
  BOOST_TEST(down.code == 451, down.describe());
  BOOST_TEST(starts_with_nocase(down.enhanced(), "4.3.0"), down.describe());
  BOOST_TEST(elapsed_ms(start) < 5000);
  BOOST_TEST(proxy.running(), proxy.diagnostics());

  redis.start();  // the same port, empty (no persistence)
  BOOST_TEST(wait_until([&] { return mail_from(proxy).code == 250; }, 15s, 100ms));
  BOOST_TEST(!proxy.events_named("store_down").empty());
  BOOST_TEST(!proxy.events_named("store_connected").empty());
  BOOST_TEST(proxy.stop().success());
}
