// [store] backend = "redis" in running portcullis processes, on a redis-server started here:
// two nodes that share one Redis count one rate limit together (a limit of N messages admits N
// in total across both), and see one greylist (a triplet made new on one node is early on the
// other before the delay and passes there after it); a Redis that is killed makes the filter's
// failure_mode apply (451) without a crash or a hang, until Redis is back and the same process
// counts again; 60 sessions at once on both nodes update one counter without losing or
// refusing an update. `portcullis store` on the same Redis: a running node's triplet listed (text
// and JSON, as on LMDB), passed by the command so the next retry is accepted, and a rate
// counter deleted so the limit counts from zero. Both nodes are reached from 127.0.0.1, as a load
// balancer's clients would be with PROXY v2 giving each node the same client address.
#define BOOST_TEST_MODULE integration_redis_store
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fixtures.h"
#include "json_value.h"
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

// The greylist filter alone, `delay` seconds; the policy tempfails new and early triplets
// with the state in the text.
PortcullisOptions greylist_node(const RecordingUpstream& upstream, const TestRedisServer& redis,
                                const fs::path& policy, int delay) {
  std::ofstream(policy) << "[[rule]]\nname = \"greylisted\"\n"
                           "when = \"greylist == 'new' or greylist == 'early'\"\n"
                           "then = \"tempfail 451 4.7.1 Greylisted: {greylist}\"\n";
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  options.settings["store"] = {{"backend", "\"redis\""}};
  options.settings["store.redis"] = {
      {"address", "\"" + redis.address() + "\""}, {"prefix", "\"it:\""}, {"timeout_ms", "1000"}};
  options.settings["filters"] = {{"chain", "[\"greylist\"]"}};
  options.settings["filter.greylist"] = {{"delay", std::to_string(delay)}};
  options.settings["policy"] = {{"files", "[\"" + policy.string() + "\"]"}};
  return options;
}

// One attempt of the same triplet: the reply to RCPT TO.
SmtpReply rcpt_to(const PortcullisFixture& proxy) {
  SmtpTestClient client("127.0.0.1", proxy.port(), {.timeout = 10s});
  BOOST_TEST(client.read_reply().code == 220);
  BOOST_TEST(client.command("EHLO client.example.test").code == 250);
  BOOST_TEST(client.command("MAIL FROM:<alice@example.test>").code == 250);
  const SmtpReply reply = client.command("RCPT TO:<bob@example.net>");
  client.command("QUIT");
  return reply;
}

// `portcullis store ARGS...` with the node's config (so its [store.redis]).
CommandResult store_command(const PortcullisFixture& node, std::vector<std::string> arguments) {
  std::vector<std::string> argv{portcullis_binary(), "store", "--config",
                                node.config_path().string()};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  return run_command(argv, 30s);
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

// A hot key: 60 sessions at once (12 clients in parallel, alternating between the nodes, so
// four workers' connections update one counter together) against a limit of 40. Every update
// must be applied exactly once: 40 admitted, 20 refused by the limit, and not one answered by
// the store's failure (451 4.3.0, e.g. an update given up as "contended").
BOOST_AUTO_TEST_CASE(two_nodes_updating_one_counter_at_once_lose_and_refuse_no_update) {
  TestRedisServer redis;
  RecordingUpstream upstream;
  TempDir dir("portcullis-redis-it");
  constexpr int limit = 40;
  constexpr int clients = 12;
  constexpr int sessions_each = 5;
  const auto options = redis_node(upstream, redis, dir / "rate.toml", limit);
  PortcullisFixture first(options);
  PortcullisFixture second(options);
  std::vector<std::vector<SmtpReply>> replies(clients);
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (int i = 0; i < sessions_each; ++i)
        replies[c].push_back(mail_from((c + i) % 2 == 0 ? first : second));
    });
  }
  for (auto& thread : threads)
    thread.join();
  int admitted = 0;
  int refused = 0;
  for (const auto& client : replies) {
    for (const SmtpReply& reply : client) {
      if (reply.code == 250) {
        ++admitted;
      } else if (reply.code == 451 && contains(reply.text(), "Too many messages")) {
        ++refused;
      } else {
        BOOST_TEST_MESSAGE("unexpected: " << reply.describe());
      }
    }
  }
  BOOST_TEST(admitted == limit);
  BOOST_TEST(refused == clients * sessions_each - limit);
  BOOST_TEST(first.events_named("store_down").empty());
  BOOST_TEST(first.stop().success());
  BOOST_TEST(second.stop().success());
}

// The sender's retries land on the other node, as they do behind a load balancer: node 2
// knows the triplet node 1 made (early before the delay, with what is left of it) and lets
// the retry after the delay through.
BOOST_AUTO_TEST_CASE(a_triplet_greylisted_on_one_node_passes_its_retry_on_the_other) {
  TestRedisServer redis;
  RecordingUpstream upstream;
  TempDir dir("portcullis-redis-it");
  constexpr int delay = 2;
  const auto options = greylist_node(upstream, redis, dir / "greylist.toml", delay);
  PortcullisFixture first(options);
  PortcullisFixture second(options);

  const auto made = Clock::now();
  const SmtpReply fresh = rcpt_to(first);
  BOOST_TEST(fresh.code == 451, fresh.describe());
  BOOST_TEST(starts_with_nocase(fresh.enhanced(), "4.7.1"), fresh.describe());
  BOOST_TEST(contains(fresh.text(), "Greylisted: new"), fresh.describe());

  const SmtpReply early = rcpt_to(second);
  BOOST_REQUIRE_MESSAGE(elapsed_ms(made) < delay * 1000, "the early retry came too late");
  BOOST_TEST(early.code == 451, early.describe());
  BOOST_TEST(contains(early.text(), "Greylisted: early"), early.describe());

  std::this_thread::sleep_for(std::chrono::milliseconds(delay * 1000 + 300) -
                              std::chrono::milliseconds(elapsed_ms(made)));
  const SmtpReply retry = rcpt_to(second);
  BOOST_TEST(retry.code == 250, retry.describe());
  // And the pass is shared too: node 1 lets the next message of the triplet through at once.
  const SmtpReply next = rcpt_to(first);
  BOOST_TEST(next.code == 250, next.describe());
  BOOST_TEST(first.events_named("store_down").empty());
  BOOST_TEST(second.events_named("store_down").empty());
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

// A node greylists for an hour; the command finds its triplet in Redis (key without the
// [store.redis] prefix, decoded as on LMDB) and passes it, and the node takes the next retry.
BOOST_AUTO_TEST_CASE(the_store_command_lists_and_passes_a_nodes_triplet_in_redis) {
  TestRedisServer redis;
  RecordingUpstream upstream;
  TempDir dir("portcullis-redis-it");
  PortcullisFixture node(greylist_node(upstream, redis, dir / "greylist.toml", 3600));
  const std::string key = "gl:127.0.0.0/24:alice@example.test:bob@example.net";

  const SmtpReply fresh = rcpt_to(node);
  BOOST_TEST(contains(fresh.text(), "Greylisted: new"), fresh.describe());
  const CommandResult listed = store_command(node, {"list", "--prefix", "gl:"});
  BOOST_TEST(listed.status.success(), listed.err);
  BOOST_TEST(listed.out.find(key + " greylist first_seen=") == 0u, listed.out);
  BOOST_TEST(contains(listed.out, "passed=no"), listed.out);
  BOOST_TEST(std::count(listed.out.begin(), listed.out.end(), '\n') == 1, listed.out);
  BOOST_TEST(listed.err.empty(), listed.err);  // the store's connection logs stay quiet

  const CommandResult json = store_command(node, {"list", "--json"});
  BOOST_TEST(json.status.success(), json.err);
  const std::optional<JsonValue> entries = parse_json(json.out);
  BOOST_REQUIRE_MESSAGE(entries && entries->is_array(), json.out);
  BOOST_REQUIRE_MESSAGE(entries->as_array().size() == 1u, json.out);
  const JsonValue& entry = entries->as_array()[0];
  BOOST_TEST(entry.find("key")->to_text() == key);
  BOOST_TEST(entry.find("kind")->to_text() == "greylist");
  BOOST_TEST(entry.find("passed")->to_text() == "false");

  const SmtpReply early = rcpt_to(node);
  BOOST_TEST(contains(early.text(), "Greylisted: early"), early.describe());
  const CommandResult passed = store_command(node, {"pass", key});
  BOOST_TEST(passed.status.success(), passed.err);
  BOOST_TEST(passed.out == "passed " + key + "\n");
  const CommandResult shown = store_command(node, {"show", key});
  BOOST_TEST(shown.status.success(), shown.err);
  BOOST_TEST(contains(shown.out, "passed=yes"), shown.out);
  const SmtpReply through = rcpt_to(node);
  BOOST_TEST(through.code == 250, through.describe());

  const CommandResult missing = store_command(node, {"pass", "gl:192.0.2.0/24:x@y:z@w"});
  BOOST_TEST(missing.status.code == 1);
  BOOST_TEST(contains(missing.err, "no such key"), missing.err);
  BOOST_TEST(node.stop().success());
}

// A limit of one message an hour: the second is refused; the command deletes the node's
// counter and the next message is admitted again. With Redis gone the command fails (exit 1)
// at once, saying why.
BOOST_AUTO_TEST_CASE(the_store_command_deletes_a_rate_counter_in_redis) {
  TestRedisServer redis;
  RecordingUpstream upstream;
  TempDir dir("portcullis-redis-it");
  PortcullisFixture node(redis_node(upstream, redis, dir / "rate.toml", 1));
  const std::string key = "rl:msgs:127.0.0.1/32";

  BOOST_TEST(mail_from(node).code == 250);
  const SmtpReply over = mail_from(node);
  BOOST_TEST(over.code == 451, over.describe());
  const CommandResult shown = store_command(node, {"show", key, "--json"});
  BOOST_TEST(shown.status.success(), shown.err);
  const std::optional<JsonValue> record = parse_json(shown.out);
  BOOST_REQUIRE_MESSAGE(record && record->find("kind"), shown.out);
  BOOST_TEST(record->find("kind")->to_text() == "rate", shown.out);

  const CommandResult deleted = store_command(node, {"delete", key});
  BOOST_TEST(deleted.status.success(), deleted.err);
  BOOST_TEST(deleted.out == "deleted " + key + "\n");
  const CommandResult gone = store_command(node, {"show", key});
  BOOST_TEST(gone.status.code == 1);
  BOOST_TEST(contains(gone.err, "no such key"), gone.err);
  BOOST_TEST(mail_from(node).code == 250);
  BOOST_TEST(mail_from(node).code == 451);

  const CommandResult by_prefix = store_command(node, {"delete", "--prefix", "rl:"});
  BOOST_TEST(by_prefix.status.success(), by_prefix.err);
  BOOST_TEST(by_prefix.out == "deleted 1 entry with prefix rl:\n");
  BOOST_TEST(mail_from(node).code == 250);

  redis.kill();
  const auto start = Clock::now();
  const CommandResult down = store_command(node, {"list"});
  BOOST_TEST(down.status.code == 1);
  BOOST_TEST(contains(down.err, "cannot list the store"), down.err);
  BOOST_TEST(elapsed_ms(start) < 5000);
  BOOST_TEST(node.stop().success());
}
