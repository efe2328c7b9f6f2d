// Running for real (issue 16), end to end against the real binary:
// - SIGTERM drain through a real Postfix: a message in the middle of DATA is delivered (its
//   250 is Postfix's), an idle session gets 421 4.3.2, new connections are refused, exit 0
//   within [timeouts] drain; a transaction that does not finish by the deadline never gets a
//   2xx.
// - Stress mode: past [limits] stress_threshold the command timeout in force shrinks to
//   [timeouts] stress_command for new and for waiting sessions, the junk-command limit halves,
//   and portcullis_stress_active with the stress_started / stress_ended log lines say so, both
//   ways.
#define BOOST_TEST_MODULE integration_operation
#include <signal.h>

#include <fmt/core.h>
#include <boost/test/unit_test.hpp>
#include <memory>
#include <optional>
#include <thread>

#include "fixtures.h"
#include "test_support.h"

using namespace portcullis::test;

namespace {

struct PostfixEnvironment {
  PostfixEnvironment() {
    if (!running_as_root()) throw std::runtime_error("a private Postfix needs root");
    postfix = std::make_unique<PostfixFixture>("127.0.0.1/32");
    instance = this;
  }
  ~PostfixEnvironment() { instance = nullptr; }
  std::unique_ptr<PostfixFixture> postfix;
  static PostfixEnvironment* instance;
};
PostfixEnvironment* PostfixEnvironment::instance = nullptr;
BOOST_TEST_GLOBAL_FIXTURE(PostfixEnvironment);

PostfixFixture& postfix() {
  return *PostfixEnvironment::instance->postfix;
}

PortcullisOptions drain_options(unsigned drain_seconds) {
  PortcullisOptions options;
  options.upstream_port = postfix().port();
  options.settings["upstream"]["reply_timeout"] = "30";
  options.settings["timeouts"]["command"] = "30";
  options.settings["timeouts"]["data_block"] = "30";
  options.settings["timeouts"]["drain"] = std::to_string(drain_seconds);
  return options;
}

SmtpTestClient connect_to(const PortcullisFixture& proxy) {
  return SmtpTestClient("127.0.0.1", proxy.port(), {.timeout = 30s});
}

bool greet(SmtpTestClient& client) {
  return client.read_reply().code == 220 && client.command("EHLO client.example.test").code == 250;
}

// A session in the middle of DATA: its envelope accepted by Postfix, the first half of the
// message sent. Returns the second half (ending in the terminator).
std::string open_transaction(SmtpTestClient& client, const std::string& marker) {
  BOOST_REQUIRE(greet(client));
  BOOST_REQUIRE(client.command("MAIL FROM:<sender@example.test>").code == 250);
  BOOST_REQUIRE(client.command("RCPT TO:<drain@example.test>").code == 250);
  BOOST_REQUIRE(client.command("DATA").code == 354);
  const std::string message = dot_stuff(make_message(20000, "drain", marker)) + ".\r\n";
  const size_t half = message.size() / 2;
  BOOST_REQUIRE(client.send(message.substr(0, half)));
  return message.substr(half);
}

std::optional<ExitStatus> wait_for_exit(PortcullisFixture& proxy, Millis timeout) {
  if (!wait_until([&] { return !proxy.running(); }, timeout)) return std::nullopt;
  return proxy.exit_status();
}

}  // namespace

BOOST_AUTO_TEST_CASE(sigterm_mid_data_delivers_that_message_and_refuses_the_rest) {
  PortcullisFixture proxy(drain_options(20));
  const size_t delivered_before = postfix().relay_sink().message_count();

  auto in_data = connect_to(proxy);
  const std::string rest = open_transaction(in_data, "drained-message-1");
  auto idle = connect_to(proxy);
  BOOST_REQUIRE(greet(idle));

  const auto signalled = Clock::now();
  BOOST_REQUIRE(::kill(proxy.pid(), SIGTERM) == 0);

  // The idle session is told at once, and closed.
  const SmtpReply told = idle.read_reply(5s);
  BOOST_TEST(told.code == 421, told.describe());
  BOOST_TEST(contains(told.raw, "4.3.2"), told.describe());
  BOOST_TEST(idle.wait_closed(5s), proxy.diagnostics());

  // No new session is taken: the listeners are closed.
  BOOST_TEST(wait_until([&] { return !port_accepts("127.0.0.1", proxy.port()); }, 5s));

  // The transaction in flight finishes: Postfix's own 250 reaches the client, then the
  // session is closed with 421 at its next command.
  std::this_thread::sleep_for(1s);
  BOOST_REQUIRE(in_data.send(rest));
  const SmtpReply accepted = in_data.read_reply(30s);
  BOOST_TEST(accepted.code == 250, accepted.describe());
  BOOST_TEST(contains(accepted.raw, "queued as"), accepted.describe());
  const SmtpReply after = in_data.read_reply(10s);
  BOOST_TEST((after.code == 421 || after.closed), after.describe());

  const auto status = wait_for_exit(proxy, 25s);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "still running after SIGTERM\n" + proxy.diagnostics());
  BOOST_TEST(status->success(), status->describe() + "\n" + proxy.diagnostics());
  BOOST_TEST(elapsed_ms(signalled) < 20000 + 5000);

  BOOST_TEST(postfix().relay_sink().wait_for_messages(delivered_before + 1, 30s));
  BOOST_TEST(!postfix().relay_sink().message_with("drained-message-1").empty());
}

BOOST_AUTO_TEST_CASE(a_transaction_past_the_drain_deadline_never_gets_a_2xx) {
  PortcullisFixture proxy(drain_options(2));
  auto in_data = connect_to(proxy);
  const std::string rest = open_transaction(in_data, "never-finished-message");

  const auto signalled = Clock::now();
  BOOST_REQUIRE(::kill(proxy.pid(), SIGTERM) == 0);
  const auto status = wait_for_exit(proxy, 15s);
  BOOST_REQUIRE_MESSAGE(status.has_value(), "still running after SIGTERM\n" + proxy.diagnostics());
  BOOST_TEST(status->success(), status->describe() + "\n" + proxy.diagnostics());
  const long long took = elapsed_ms(signalled);
  BOOST_TEST(took >= 1500, took);
  BOOST_TEST(took < 10000, took);
  BOOST_TEST(contains(proxy.log_text(), "\"drain_deadline\""), proxy.diagnostics());

  // The rest of the message finds the session gone: no reply at all, or a 4xx; never a 2xx.
  in_data.send(rest);
  const SmtpReply reply = in_data.read_reply(5s);
  BOOST_TEST((reply.closed || (reply.code >= 400 && reply.code < 500)), reply.describe());
  BOOST_TEST(postfix().relay_sink().message_with("never-finished-message").empty());
}

namespace {

constexpr int normal_timeout_seconds = 5;
constexpr int stress_timeout_seconds = 1;

PortcullisOptions stress_options(uint16_t upstream_port, uint16_t metrics_port) {
  PortcullisOptions options;
  options.upstream_port = upstream_port;
  options.settings["limits"]["max_sessions"] = "4";
  options.settings["limits"]["stress_threshold"] = "50";  // from 2 sessions, until 1 is left
  options.settings["limits"]["max_junk_commands"] = "4";  // 2 under stress
  options.settings["limits"]["max_errors"] = "1";
  options.settings["timeouts"]["command"] = std::to_string(normal_timeout_seconds);
  options.settings["timeouts"]["stress_command"] = std::to_string(stress_timeout_seconds);
  options.settings["server"]["workers"] = "2";
  options.settings["metrics"]["address"] = fmt::format("\"127.0.0.1:{}\"", metrics_port);
  return options;
}

// The fixture's readiness probe is a session of its own; until the proxy has seen it close, a
// test's first session would be the second one and start stress early.
void wait_for_no_sessions(uint16_t metrics_port) {
  BOOST_REQUIRE(wait_until(
      [&] { return scrape_metric(metrics_port, "portcullis_sessions_active") == 0; }, 5s));
}

}  // namespace

BOOST_AUTO_TEST_CASE(stress_mode_shortens_the_command_timeout_both_ways) {
  SmtpSinkFixture sink;
  const uint16_t metrics_port = free_loopback_port();
  PortcullisFixture proxy(stress_options(sink.port(), metrics_port));
  wait_for_no_sessions(metrics_port);
  BOOST_TEST(scrape_metric(metrics_port, "portcullis_stress_active") == 0);
  const long long episodes_before = scrape_metric(metrics_port, "portcullis_stress_episodes_total");
  const auto past_stress_timeout = std::chrono::milliseconds(stress_timeout_seconds * 1000 + 1500);

  // One session: below the threshold. It stays open past the stress timeout.
  auto first = connect_to(proxy);
  BOOST_REQUIRE(greet(first));
  BOOST_TEST(first.silent_for(past_stress_timeout));
  BOOST_TEST(scrape_metric(metrics_port, "portcullis_stress_active") == 0);

  // A second one crosses it: the first, whose wait began under the normal timeout, now waits
  // at most the stress timeout. (The second speaks again a little later, so that the first is
  // the one to go.)
  auto second = connect_to(proxy);
  BOOST_REQUIRE(greet(second));
  const auto stress_seen = Clock::now();
  BOOST_TEST(proxy.wait_for_event("stress_started", 5s), proxy.diagnostics());
  BOOST_TEST(scrape_metric(metrics_port, "portcullis_stress_active") == 1);
  std::this_thread::sleep_for(400ms);
  BOOST_TEST(second.command("NOOP").code == 250);
  BOOST_TEST(first.wait_closed(std::chrono::seconds(normal_timeout_seconds - 2)),
             "the waiting session was not closed under stress");
  BOOST_TEST(elapsed_ms(stress_seen) < (normal_timeout_seconds - 1) * 1000);
  BOOST_TEST(contains(first.buffered(), "421 4.4.2"), printable(first.buffered()));

  // One session left: stress ends, and the one left is back on the normal timeout.
  BOOST_TEST(proxy.wait_for_event("stress_ended", 5s), proxy.diagnostics());
  BOOST_TEST(
      wait_until([&] { return scrape_metric(metrics_port, "portcullis_stress_active") == 0; }, 5s));
  BOOST_TEST(scrape_metric(metrics_port, "portcullis_stress_episodes_total") ==
             episodes_before + 1);
  BOOST_TEST(second.silent_for(past_stress_timeout), "closed on the stress timeout after it ended");
  // Not under stress: four junk commands in all are allowed (the NOOP above was the first).
  for (int i = 0; i < 3; ++i)
    BOOST_TEST(second.command("NOOP").code == 250);
  const auto idle_from = Clock::now();
  BOOST_TEST(second.wait_closed(std::chrono::seconds(normal_timeout_seconds + 3)));
  BOOST_TEST(elapsed_ms(idle_from) >= (normal_timeout_seconds - 1) * 1000, elapsed_ms(idle_from));

  const auto ended = proxy.events_named("stress_ended");
  BOOST_REQUIRE(!ended.empty());
  BOOST_TEST(ended.front().field("stress_start") == "2");
  BOOST_TEST(ended.front().field("stress_end") == "1");
  BOOST_TEST(ended.front().field("sessions") == "1");
}

BOOST_AUTO_TEST_CASE(stress_mode_halves_the_junk_command_limit) {
  SmtpSinkFixture sink;
  const uint16_t metrics_port = free_loopback_port();
  PortcullisFixture proxy(stress_options(sink.port(), metrics_port));
  wait_for_no_sessions(metrics_port);
  auto holder = connect_to(proxy);
  BOOST_REQUIRE(greet(holder));
  auto junk = connect_to(proxy);  // the second session: stress
  BOOST_REQUIRE(greet(junk));
  BOOST_REQUIRE(proxy.wait_for_event("stress_started", 5s));
  // Keeps the holder (and so stress) from ending on the stress timeout meanwhile.
  BOOST_TEST(holder.command("NOOP").code == 250);
  // Limit 4 halved: the third NOOP is past it, counts as an error, and max_errors = 1 ends it.
  BOOST_TEST(junk.command("NOOP").code == 250);
  BOOST_TEST(junk.command("NOOP").code == 250);
  const SmtpReply third = junk.command("NOOP");
  BOOST_TEST(third.code == 421, third.describe());
  BOOST_TEST(contains(third.raw, "too many errors"), third.describe());
}
