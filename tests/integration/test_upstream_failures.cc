// Portcullis in front of the recording upstream, which dies or stalls at chosen moments:
// before MAIL, after RCPT, in the middle of DATA, past reply_timeout, or answers 421. The
// promise under test (DESIGN §1.1): a 2xx for a message reaches the client only after the
// upstream's 2xx for it; otherwise the client gets a 4xx (451 4.4.2, or the upstream's 421).
// Also: replies pass through unchanged, one upstream connection serves several transactions,
// and the main log records deliveries, refusals and session ends.
//
// Built twice (tests/integration/meson.build). Without PORTCULLIS_REUSED_UPSTREAM every case runs
// on a fresh upstream connection (idle_timeout = 0). With it (integration/upstream_failures_reused,
// issue 11 point 2) the proxy keeps connections and has one worker, and before each case a
// well-behaved delivery leaves one connection in the pool: the case's session then runs on that
// kept connection (re-greeted with XCLIENT and the client's EHLO), and the fixture checks that it
// did, from the upstream's records and portcullis_upstream_connections_reused_total.
#ifdef PORTCULLIS_REUSED_UPSTREAM
#define BOOST_TEST_MODULE integration_upstream_failures_reused
#else
#define BOOST_TEST_MODULE integration_upstream_failures
#endif
#include <fmt/core.h>
#include <boost/test/unit_test.hpp>
#include <memory>
#include <optional>

#include "fixtures.h"
#include "recording_upstream.h"
#include "test_support.h"

using namespace portcullis::test;

namespace {

constexpr int reply_timeout_seconds = 3;
constexpr const char* client_address = "127.0.0.2";
#ifdef PORTCULLIS_REUSED_UPSTREAM
constexpr bool reused_upstream = true;
#else
constexpr bool reused_upstream = false;
#endif
// The priming delivery's client, so the upstream's records tell its XCLIENT from the case's.
constexpr const char* priming_address = "127.0.0.3";

struct FailureEnvironment {
  FailureEnvironment() {
    upstream = std::make_unique<RecordingUpstream>();
    PortcullisOptions options;
    options.upstream_port = upstream->port();
    options.pass_client = "xclient";
    options.settings["upstream"]["reply_timeout"] = std::to_string(reply_timeout_seconds);
    options.settings["limits"]["max_errors"] = "50";
    if (reused_upstream) {
      // One worker, so the connection the priming session leaves is in the pool the case's
      // session takes from; kept long enough for the slowest case.
      options.settings["server"]["workers"] = "1";
      options.settings["upstream"]["idle_timeout"] = "60";
      metrics_port = free_loopback_port();
      options.settings["metrics"]["address"] = fmt::format("\"127.0.0.1:{}\"", metrics_port);
    } else {
      // Each case judges what happened on its own sessions' connections: none is kept for the
      // next case (connection reuse has its own module, integration/upstream_reuse).
      options.settings["upstream"]["idle_timeout"] = "0";
    }
    proxy = std::make_unique<PortcullisFixture>(options);
    instance = this;
  }
  ~FailureEnvironment() { instance = nullptr; }

  // A fresh upstream on the same port with `behaviour` (the old one's acknowledged messages
  // are carried over into the running total).
  void restart_upstream(UpstreamBehaviour behaviour = {}) {
    const uint16_t port = upstream->port();
    retired_acknowledged += upstream->total_acknowledged();
    upstream.reset();
    upstream = std::make_unique<RecordingUpstream>(std::move(behaviour), port);
  }
  size_t upstream_acknowledged() const {
    return retired_acknowledged + upstream->total_acknowledged();
  }
  // portcullis_upstream_connections_reused_total from /metrics; -1 when absent.
  long long reused_total() const {
    SmtpTestClient http("127.0.0.1", metrics_port, {.source_address = "", .timeout = 5s});
    http.send("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    const std::string body = http.read_until_close(5s);
    const std::string name = "portcullis_upstream_connections_reused_total ";
    for (const auto& line : split_lines(body)) {
      if (line.rfind(name, 0) == 0) return std::stoll(line.substr(name.size()));
    }
    return -1;
  }

  std::unique_ptr<RecordingUpstream> upstream;
  std::unique_ptr<PortcullisFixture> proxy;
  size_t accepted_at_client = 0;  // 2xx final replies seen by clients
  size_t retired_acknowledged = 0;
  uint16_t metrics_port = 0;  // reused variant only

  static FailureEnvironment* instance;
};
FailureEnvironment* FailureEnvironment::instance = nullptr;

BOOST_TEST_GLOBAL_FIXTURE(FailureEnvironment);

FailureEnvironment& env() {
  return *FailureEnvironment::instance;
}

SmtpTestClient connect_client() {
  return SmtpTestClient("127.0.0.1", env().proxy->port(),
                        {.source_address = client_address, .timeout = 20s});
}

void note_final(const SmtpReply& reply);

// What a case's session does with the connection the fixture left in the pool (reused variant).
enum class KeptConnection {
  serves_the_session,      // re-greeted for the case's client, then carries its commands
  refuses_the_regreeting,  // answers the case client's XCLIENT with a refusal: never used
  cannot_be_used,          // dead before the session needs it (the upstream went away)
};

// Each test starts from a well-behaved upstream with nothing recorded (and, in the reused
// variant, one upstream connection kept by the proxy after a delivery).
struct FreshUpstream {
  FreshUpstream() {
    env().upstream->set_behaviour({});
    env().upstream->clear();
    // After an upstream failure the proxy re-probes; sessions get 421 4.4.1 until it is back.
    const bool ready = wait_until(
        [] {
          SmtpTestClient probe("127.0.0.1", env().proxy->port());
          const bool greeted = probe.read_reply(5s).code == 220;
          if (greeted) probe.command("QUIT");
          return greeted;
        },
        15s, 250ms);
    BOOST_TEST_REQUIRE(ready, "no 220 banner within 15 s\n" << env().proxy->diagnostics());
    if (reused_upstream) {
      prime_kept_connection();
    } else {
      env().upstream->clear();
    }
  }
  ~FreshUpstream() {
    if (reused_upstream) check_the_kept_connection_was_used();
    // The invariant of the whole module, checked after every test. The upstream marks a
    // message acknowledged just after writing its 250: wait for it to catch up (a real
    // difference still fails, after the wait).
    wait_until([] { return env().upstream_acknowledged() == env().accepted_at_client; }, 2s);
    BOOST_TEST(env().upstream_acknowledged() == env().accepted_at_client,
               "messages the upstream acknowledged: " << env().upstream_acknowledged()
                                                      << ", 2xx final replies at clients: "
                                                      << env().accepted_at_client);
    BOOST_TEST(env().proxy->running(), env().proxy->diagnostics());
  }

  // For a case whose session cannot run on the kept connection; `why` says what kills it.
  void expect_kept_connection_unusable(const std::string& why) {
    kept_connection = KeptConnection::cannot_be_used;
    BOOST_TEST_MESSAGE("the kept upstream connection cannot serve this case: " << why);
  }
  // For a case whose upstream refuses XCLIENT: the kept connection meets the refusal first.
  void expect_kept_connection_refuses_the_regreeting() {
    kept_connection = KeptConnection::refuses_the_regreeting;
  }

  KeptConnection kept_connection = KeptConnection::serves_the_session;
  size_t kept_index = 0;         // the upstream's index of the kept connection
  long long reused_before = -1;  // portcullis_upstream_connections_reused_total after priming

 private:
  // One complete, well-behaved delivery whose session ends cleanly, so the proxy keeps its
  // upstream connection; then the upstream forgets everything, that connection's past included.
  void prime_kept_connection() {
    const size_t acknowledged_before = env().upstream->total_acknowledged();
    {
      SmtpTestClient client("127.0.0.1", env().proxy->port(),
                            {.source_address = priming_address, .timeout = 20s});
      BOOST_TEST_REQUIRE(client.read_reply().code == 220);
      BOOST_TEST_REQUIRE(client.command("EHLO primer.example.test").code == 250);
      BOOST_TEST_REQUIRE(client.command("MAIL FROM:<primer@example.test>").code == 250);
      BOOST_TEST_REQUIRE(client.command("RCPT TO:<b@example.test>").code == 250);
      BOOST_TEST_REQUIRE(client.command("DATA").code == 354);
      client.send(dot_stuff(make_message(500, "primer", "PRIMER-MARKER")) + ".\r\n");
      const SmtpReply final_reply = client.read_reply();
      note_final(final_reply);
      BOOST_TEST_REQUIRE(final_reply.code == 250, final_reply.describe());
      BOOST_TEST_REQUIRE(client.command("QUIT").code == 221);
      BOOST_TEST_REQUIRE(client.wait_closed(5s));
    }
    // The upstream marks the message acknowledged just after writing its 250.
    BOOST_TEST_REQUIRE(wait_until(
        [&] { return env().upstream->total_acknowledged() > acknowledged_before; }, 5s, 10ms));
    std::optional<size_t> index;
    for (const auto& connection : env().upstream->session_connections()) {
      for (const auto& message : connection.messages) {
        if (contains(message.raw, "PRIMER-MARKER") && connection.open) index = connection.index;
      }
    }
    BOOST_TEST_REQUIRE(index.has_value(), "the priming delivery's upstream connection closed");
    kept_index = *index;
    reused_before = env().reused_total();
    BOOST_TEST_REQUIRE(reused_before >= 0, "no reuse counter in /metrics");
    env().upstream->clear_including_open();
  }

  void check_the_kept_connection_was_used() const {
    const long long reused_after = env().reused_total();
    if (kept_connection == KeptConnection::cannot_be_used) {
      // Nothing can have been served by a kept connection: the one the fixture left died.
      BOOST_TEST(reused_after == reused_before);
      return;
    }
    std::optional<RecordedConnection> kept;
    for (const auto& connection : env().upstream->connections()) {
      if (connection.index == kept_index) kept = connection;
    }
    // Not a REQUIRE: this runs in a destructor, where a thrown failure would abort the module.
    BOOST_TEST(kept.has_value(), "the kept connection's record is gone");
    if (!kept) return;
    std::string commands;
    std::string xclient;
    for (const auto& command : kept->commands) {
      commands += command + " | ";
      if (starts_with_nocase(command, "XCLIENT ")) xclient += command + " ";
    }
    // The case's session went to the kept connection first: its XCLIENT, before anything else.
    BOOST_TEST((!kept->commands.empty() && starts_with_nocase(kept->commands[0], "XCLIENT ")),
               "kept connection: " << commands);
    BOOST_TEST(contains(xclient, std::string("ADDR=") + client_address), commands);
    if (kept_connection == KeptConnection::serves_the_session) {
      BOOST_TEST(kept->count_verb("MAIL") >= 1u, commands);
      BOOST_TEST(reused_after > reused_before,
                 "reused " << reused_before << " -> " << reused_after);
    } else {
      // SECURITY: a connection whose XCLIENT was refused carries nothing of the client's.
      BOOST_TEST(kept->count_verb("MAIL") == 0u, commands);
      BOOST_TEST(reused_after == reused_before);
      BOOST_TEST(env().proxy->wait_for_event("upstream_reuse_failed", 5s),
                 env().proxy->diagnostics());
    }
  }
};

void note_final(const SmtpReply& reply) {
  if (reply.code / 100 == 2) ++env().accepted_at_client;
}

// Greets and says EHLO; true when both worked.
bool greet(SmtpTestClient& client, const std::string& helo = "client.example.test") {
  return client.read_reply().code == 220 && client.command("EHLO " + helo).code == 250;
}

// The reply to the end of a message, sent after DATA was answered `data_reply`; a DATA
// refused outright (4xx) stands for the final reply.
SmtpReply send_message_after(SmtpTestClient& client, const SmtpReply& data_reply,
                             const std::string& message) {
  if (data_reply.code != 354) return data_reply;
  client.send(dot_stuff(message) + ".\r\n");
  return client.read_reply();
}

bool is_451_4_4_2(const SmtpReply& reply) {
  return reply.code == 451 && reply.enhanced() == "4.4.2";
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(upstream_failures, FreshUpstream)

BOOST_AUTO_TEST_CASE(baseline_delivery_with_xclient) {
  auto client = connect_client();
  BOOST_REQUIRE(greet(client, "baseline.example.test"));
  BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  BOOST_TEST(client.command("DATA").code == 354);
  const std::string message = make_message(5000, "baseline", "BASELINE-MARKER");
  client.send(dot_stuff(message) + ".\r\n");
  const SmtpReply final_reply = client.read_reply();
  note_final(final_reply);
  BOOST_TEST(final_reply.code == 250);
  BOOST_TEST(contains(final_reply.text(), "queued as QID"), final_reply.describe());
  const uint16_t client_port = client.local_port();
  BOOST_TEST(client.command("QUIT").code == 221);

  auto sessions = env().upstream->session_connections();
  BOOST_REQUIRE(sessions.size() == 1u);
  const auto& session = sessions[0];
  BOOST_REQUIRE(session.commands.size() >= 4u);
#ifdef PORTCULLIS_REUSED_UPSTREAM
  // A kept connection is greeted already: XCLIENT first, never the proxy's own EHLO again.
  BOOST_TEST(starts_with_nocase(session.commands[0], "XCLIENT "), session.commands[0]);
  for (const auto& command : session.commands) {
    BOOST_TEST(command != "EHLO portcullis.test");
  }
#else
  BOOST_TEST(starts_with_nocase(session.commands[0], "EHLO "));
#endif
  // XCLIENT carries the client's address and port; the EHLO after it, the client's HELO.
  std::string xclient;
  for (const auto& command : session.commands) {
    if (starts_with_nocase(command, "XCLIENT ")) xclient += command + " ";
  }
  BOOST_TEST(contains(xclient, "ADDR=127.0.0.2"), xclient);
  BOOST_TEST(contains(xclient, fmt::format(" PORT={} ", client_port)), xclient);
  BOOST_TEST(contains(xclient, "HELO=baseline.example.test"), xclient);
  auto first_mail = std::find_if(session.commands.begin(), session.commands.end(),
                                 [](const auto& c) { return starts_with_nocase(c, "MAIL "); });
  BOOST_REQUIRE(first_mail != session.commands.end());
  BOOST_TEST(*(first_mail - 1) == "EHLO baseline.example.test");
  BOOST_REQUIRE(session.messages.size() == 1u);
  // Portcullis may prepend its own headers (Received); the client's message follows intact.
  const std::string& raw = session.messages[0].raw;
  const std::string expected_tail = dot_stuff(message) + ".\r\n";
  BOOST_TEST(
      (raw.size() >= expected_tail.size() &&
       raw.compare(raw.size() - expected_tail.size(), expected_tail.size(), expected_tail) == 0),
      printable(raw, 300));
}

BOOST_AUTO_TEST_CASE(upstream_gone_before_mail) {
  expect_kept_connection_unusable("the upstream's stop closes every connection, the kept one too");
  auto client = connect_client();
  BOOST_REQUIRE(greet(client));
  // The MTA dies between the session start and the first transaction: nothing listens.
  env().upstream->stop();
  const SmtpReply mail = client.command("MAIL FROM:<a@example.test>");
  BOOST_TEST(is_451_4_4_2(mail), mail.describe());
  if (mail.code == 250) {
    // Never reached if the proxy is right; finish the transaction to see what it would say.
    client.command("RCPT TO:<b@example.test>");
    note_final(send_message_after(client, client.command("DATA"), make_message(100, "x", "y")));
  }
  client.command("QUIT");
  env().restart_upstream();
}

BOOST_AUTO_TEST_CASE(upstream_closes_on_mail) {
  UpstreamBehaviour behaviour;
  behaviour.close_on_mail = true;
  env().upstream->set_behaviour(behaviour);
  auto client = connect_client();
  BOOST_REQUIRE(greet(client));
  const SmtpReply mail = client.command("MAIL FROM:<a@example.test>");
  BOOST_TEST(is_451_4_4_2(mail), mail.describe());
  if (mail.code == 250) {
    client.command("RCPT TO:<b@example.test>");
    note_final(send_message_after(client, client.command("DATA"), make_message(100, "x", "y")));
  }
  // The session survives; the next transaction opens a new upstream connection.
  env().upstream->set_behaviour({});
  BOOST_TEST(client.command("RSET").code == 250);
  BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  const SmtpReply final_reply =
      send_message_after(client, client.command("DATA"), make_message(300, "retry", "RETRY"));
  note_final(final_reply);
  BOOST_TEST(final_reply.code == 250, final_reply.describe());
  client.command("QUIT");
}

BOOST_AUTO_TEST_CASE(upstream_closes_after_rcpt) {
  UpstreamBehaviour behaviour;
  behaviour.close_after_rcpt_reply = true;
  env().upstream->set_behaviour(behaviour);
  auto client = connect_client();
  BOOST_REQUIRE(greet(client));
  BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  // The proxy reads the whole message before the upstream sees DATA, so it answers DATA itself.
  const SmtpReply data = client.command("DATA");
  BOOST_TEST(data.code == 354, data.describe());
  const SmtpReply final_reply =
      send_message_after(client, data, make_message(3000, "after rcpt", "AFTER-RCPT"));
  note_final(final_reply);
  BOOST_TEST(is_451_4_4_2(final_reply), final_reply.describe());
  BOOST_TEST(env().upstream->recorded_messages() == 0u);
  client.command("QUIT");
}

BOOST_AUTO_TEST_CASE(upstream_closes_in_the_middle_of_data) {
  UpstreamBehaviour behaviour;
  behaviour.close_after_data_bytes = 2000;
  env().upstream->set_behaviour(behaviour);
  auto client = connect_client();
  BOOST_REQUIRE(greet(client));
  BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  const SmtpReply data = client.command("DATA");
  BOOST_TEST(data.code == 354);
  const SmtpReply final_reply =
      send_message_after(client, data, make_message(60000, "mid data", "MID-DATA"));
  note_final(final_reply);
  BOOST_TEST(is_451_4_4_2(final_reply), final_reply.describe());
  BOOST_TEST(env().upstream->recorded_messages() == 0u);
  // The upstream did receive part of the message before it died.
  auto sessions = env().upstream->session_connections();
  BOOST_REQUIRE(sessions.size() == 1u);
  BOOST_TEST(sessions[0].count_verb("DATA") == 1u);
  BOOST_TEST(sessions[0].closed_by_us);
  client.command("QUIT");
}

BOOST_AUTO_TEST_CASE(client_2xx_only_after_the_upstream_2xx) {
  // The upstream takes its time (within reply_timeout): the client must hear nothing until
  // the upstream has answered, then exactly the upstream's reply.
  constexpr Millis upstream_delay{1500};
  UpstreamBehaviour behaviour;
  behaviour.delays = {{".", upstream_delay}};
  env().upstream->set_behaviour(behaviour);
  auto client = connect_client();
  BOOST_REQUIRE(greet(client));
  BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  BOOST_TEST(client.command("DATA").code == 354);
  const auto sent = Clock::now();
  client.send(dot_stuff(make_message(2000, "patient", "PATIENT")) + ".\r\n");
  BOOST_TEST(client.silent_for(1000ms),
             "a reply came before the upstream answered: " << printable(client.buffered()));
  const SmtpReply final_reply = client.read_reply();
  const long long waited = elapsed_ms(sent);
  note_final(final_reply);
  BOOST_TEST(final_reply.code == 250);
  BOOST_TEST(contains(final_reply.text(), "queued as QID"), final_reply.describe());
  BOOST_TEST(waited >= upstream_delay.count() - 50);
  BOOST_TEST(env().upstream->acknowledged_messages() == 1u);
  client.command("QUIT");
}

BOOST_AUTO_TEST_CASE(final_reply_delayed_past_reply_timeout) {
  UpstreamBehaviour behaviour;
  behaviour.delays = {{".", Millis((reply_timeout_seconds + 3) * 1000)}};
  env().upstream->set_behaviour(behaviour);
  auto client = connect_client();
  BOOST_REQUIRE(greet(client));
  BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  const SmtpReply data = client.command("DATA");
  BOOST_TEST(data.code == 354);
  const auto sent = Clock::now();
  const SmtpReply final_reply =
      send_message_after(client, data, make_message(2000, "slow", "SLOW-FINAL"));
  const long long waited = elapsed_ms(sent);
  note_final(final_reply);
  BOOST_TEST(is_451_4_4_2(final_reply), final_reply.describe());
  BOOST_TEST(waited >= (reply_timeout_seconds - 1) * 1000LL);
  BOOST_TEST(waited < (reply_timeout_seconds + 3) * 1000LL, "waited " << waited << " ms");
  client.command("QUIT");
  // The upstream got the bytes but never managed to say 250: not acknowledged. Its delayed 250
  // is due after the proxy gave up on the connection; once the proxy's side is closed, it can
  // no longer be acknowledged.
  BOOST_TEST(env().upstream->wait_for(
      [](const std::vector<RecordedConnection>& connections) {
        for (const auto& connection : connections)
          if (!connection.messages.empty() && connection.open) return false;
        return true;
      },
      Millis((reply_timeout_seconds + 5) * 1000)));
  BOOST_TEST(env().upstream->recorded_messages() == 1u);
  BOOST_TEST(env().upstream->acknowledged_messages() == 0u);
}

BOOST_AUTO_TEST_CASE(mail_reply_delayed_past_reply_timeout) {
  UpstreamBehaviour behaviour;
  behaviour.delays = {{"MAIL", Millis((reply_timeout_seconds + 3) * 1000)}};
  env().upstream->set_behaviour(behaviour);
  auto client = connect_client();
  BOOST_REQUIRE(greet(client));
  const SmtpReply mail = client.command("MAIL FROM:<a@example.test>");
  BOOST_TEST(is_451_4_4_2(mail), mail.describe());
  if (mail.code == 250) {
    client.command("RCPT TO:<b@example.test>");
    note_final(send_message_after(client, client.command("DATA"), make_message(100, "x", "y")));
  }
  client.command("QUIT");
}

BOOST_AUTO_TEST_CASE(upstream_421_at_mail_is_passed_on_and_closes) {
  UpstreamBehaviour behaviour;
  behaviour.replies = {{"MAIL", "421 4.3.2 upstream.test Service shutting down"}};
  env().upstream->set_behaviour(behaviour);
  auto client = connect_client();
  BOOST_REQUIRE(greet(client));
  const SmtpReply mail = client.command("MAIL FROM:<a@example.test>");
  BOOST_TEST(mail.code == 421);
  BOOST_TEST(mail.raw == "421 4.3.2 upstream.test Service shutting down\r\n", mail.describe());
  BOOST_TEST(client.wait_closed(5s));
}

// SECURITY: only 220/250 to XCLIENT means the upstream took the client's identity; a connection
// that got anything else must carry nothing of the client's, or the upstream would see it as the
// proxy's own (issue 11: a 2xx other than 250 was taken as success).
BOOST_AUTO_TEST_CASE(an_xclient_reply_other_than_220_or_250_relays_nothing) {
  UpstreamBehaviour behaviour;
  behaviour.replies = {{"XCLIENT", "251 2.0.0 odd but positive"}};
  env().upstream->set_behaviour(behaviour);
  expect_kept_connection_refuses_the_regreeting();
  auto client = connect_client();
  BOOST_REQUIRE(greet(client));
  const SmtpReply mail = client.command("MAIL FROM:<a@example.test>");
  BOOST_TEST(mail.code == 421, mail.describe());
  BOOST_TEST(mail.enhanced() == "4.3.0");
  // Not a matter of smtpd_authorized_xclient_hosts: the reply does not send the reader there.
  BOOST_TEST(mail.text().find("smtpd_authorized_xclient_hosts") == std::string::npos);
  BOOST_TEST(client.wait_closed(5s));
  for (const auto& connection : env().upstream->session_connections()) {
    BOOST_TEST(connection.count_verb("MAIL") == 0u);
  }
}

BOOST_AUTO_TEST_CASE(an_xclient_421_is_passed_on_and_nothing_is_relayed) {
  UpstreamBehaviour behaviour;
  behaviour.replies = {{"XCLIENT", "421 4.3.2 upstream.test Service shutting down"}};
  env().upstream->set_behaviour(behaviour);
  expect_kept_connection_refuses_the_regreeting();
  auto client = connect_client();
  BOOST_REQUIRE(greet(client));
  const SmtpReply mail = client.command("MAIL FROM:<a@example.test>");
  BOOST_TEST(mail.raw == "421 4.3.2 upstream.test Service shutting down\r\n", mail.describe());
  BOOST_TEST(client.wait_closed(5s));
  for (const auto& connection : env().upstream->session_connections()) {
    BOOST_TEST(connection.count_verb("MAIL") == 0u);
  }
}

BOOST_AUTO_TEST_CASE(upstream_421_at_end_of_data_is_never_2xx) {
  UpstreamBehaviour behaviour;
  behaviour.replies = {{".", "421 4.3.2 upstream.test Service shutting down"}};
  env().upstream->set_behaviour(behaviour);
  auto client = connect_client();
  BOOST_REQUIRE(greet(client));
  BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  const SmtpReply final_reply =
      send_message_after(client, client.command("DATA"), make_message(2000, "421", "FINAL-421"));
  note_final(final_reply);
  // The upstream's 421 is its answer to the message, read before its close: passed on
  // unchanged (DESIGN §2), and the session closes.
  BOOST_TEST(final_reply.raw == "421 4.3.2 upstream.test Service shutting down\r\n",
             final_reply.describe());
  BOOST_TEST(client.wait_closed(5s));
}

BOOST_AUTO_TEST_CASE(pipelined_transaction_with_upstream_dying_after_rcpt) {
  UpstreamBehaviour behaviour;
  behaviour.close_after_rcpt_reply = true;
  env().upstream->set_behaviour(behaviour);
  auto client = connect_client();
  BOOST_TEST(client.read_reply().code == 220);
  client.send(
      "EHLO pipeliner.example.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
      "DATA\r\n");
  BOOST_TEST(client.read_reply().code == 250);
  BOOST_TEST(client.read_reply().code == 250);
  BOOST_TEST(client.read_reply().code == 250);
  const SmtpReply final_reply =
      send_message_after(client, client.read_reply(), make_message(1000, "pipe", "PIPE-DIES"));
  note_final(final_reply);
  BOOST_TEST(is_451_4_4_2(final_reply), final_reply.describe());
  client.command("QUIT");
}

BOOST_AUTO_TEST_CASE(upstream_replies_pass_through_unchanged) {
  UpstreamBehaviour behaviour;
  behaviour.replies = {
      {"RCPT TO:<unknown@",
       "550 5.1.1 <unknown@example.test>: Recipient address rejected: "
       "User unknown in local recipient table"},
      {"RCPT TO:<multi@",
       "550-5.7.1 first line of a refusal\r\n550-5.7.1 second line\r\n550 5.7.1 third line"},
      {"RCPT TO:<later@", "450 4.2.0 <later@example.test>: Recipient address rejected: try later"},
      {"MAIL FROM:<refused@", "553 5.7.1 <refused@example.test>: Sender address rejected"},
      {".", "554-5.7.0 message refused\r\n554 5.7.0 by content policy"}};
  env().upstream->set_behaviour(behaviour);
  auto client = connect_client();
  BOOST_REQUIRE(greet(client));
  const SmtpReply sender = client.command("MAIL FROM:<refused@example.test>");
  BOOST_TEST(sender.raw == "553 5.7.1 <refused@example.test>: Sender address rejected\r\n");
  BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
  BOOST_TEST(client.command("RCPT TO:<unknown@example.test>").raw ==
             "550 5.1.1 <unknown@example.test>: Recipient address rejected: User unknown in "
             "local recipient table\r\n");
  BOOST_TEST(client.command("RCPT TO:<multi@example.test>").raw ==
             "550-5.7.1 first line of a refusal\r\n550-5.7.1 second line\r\n550 5.7.1 third "
             "line\r\n");
  BOOST_TEST(client.command("RCPT TO:<later@example.test>").raw ==
             "450 4.2.0 <later@example.test>: Recipient address rejected: try later\r\n");
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  const SmtpReply final_reply =
      send_message_after(client, client.command("DATA"), make_message(1000, "refused", "REFUSED"));
  note_final(final_reply);
  BOOST_TEST(final_reply.raw == "554-5.7.0 message refused\r\n554 5.7.0 by content policy\r\n");
  BOOST_TEST(client.command("QUIT").code == 221);
  // The upstream's refusals are logged as refused commands, each with its reply.
  BOOST_TEST(env().proxy->wait_for_event("refused", 5s, [](const LogEvent& event) {
    return contains(event.field("reply"), "550 5.1.1");
  }));
}

BOOST_AUTO_TEST_CASE(several_transactions_reuse_one_upstream_connection) {
  auto client = connect_client();
  BOOST_REQUIRE(greet(client, "reuse.example.test"));
  std::vector<std::string> queue_ids;
  for (int n = 1; n <= 3; ++n) {
    BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
    BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
    const SmtpReply final_reply = send_message_after(
        client, client.command("DATA"), make_message(700, "reuse", fmt::format("REUSE-{}", n)));
    note_final(final_reply);
    BOOST_TEST(final_reply.code == 250);
    const std::string marker = "queued as ";
    const size_t at = final_reply.text().find(marker);
    if (at != std::string::npos) queue_ids.push_back(final_reply.text().substr(at + marker.size()));
    if (n == 2) {
      // An abandoned transaction in between: the upstream's must be reset too.
      BOOST_TEST(client.command("MAIL FROM:<abandoned@example.test>").code == 250);
      BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
      BOOST_TEST(client.command("RSET").code == 250);
    }
  }
  BOOST_TEST(client.command("QUIT").code == 221);
  BOOST_TEST(client.wait_closed(5s));

  auto sessions = env().upstream->session_connections();
  BOOST_REQUIRE(sessions.size() == 1u);
  const auto& session = sessions[0];
  BOOST_TEST(session.count_verb("MAIL") == 4u);
  BOOST_TEST(session.count_verb("XCLIENT") >= 1u);
  BOOST_TEST(session.messages.size() == 3u);
  // Never a nested MAIL at the upstream: each MAIL after the first follows the end of a
  // message (DATA) or an RSET.
  BOOST_TEST_MESSAGE("upstream commands: " << [&] {
    std::string all;
    for (const auto& command : session.commands)
      all += command + " | ";
    return all;
  }());
  std::string last_closing_verb = "none";
  size_t mails = 0;
  size_t rsets_after_abandoned = 0;
  for (const auto& command : session.commands) {
    const std::string verb = command.substr(0, command.find(' '));
    if (verb == "MAIL") {
      if (++mails > 1) {
        BOOST_TEST((last_closing_verb == "DATA" || last_closing_verb == "RSET"),
                   "MAIL #" << mails << " after " << last_closing_verb);
      }
      last_closing_verb = "MAIL";
    } else if (verb == "DATA" || verb == "RSET") {
      if (verb == "RSET" && last_closing_verb == "MAIL") ++rsets_after_abandoned;
      last_closing_verb = verb;
    }
  }
  BOOST_TEST(rsets_after_abandoned == 1u);
  // Each delivery is logged with the upstream's queue id.
  BOOST_REQUIRE(queue_ids.size() == 3u);
  for (const auto& queue_id : queue_ids) {
    BOOST_TEST(env().proxy->wait_for_event(
                   "delivered", 5s,
                   [&](const LogEvent& event) { return event.field("queue_id") == queue_id; }),
               "no delivered event with queue_id " << queue_id);
  }
  // The session end is logged with the client, its HELO and per-command counts.
  BOOST_TEST(env().proxy->wait_for_event("disconnect", 5s,
                                         [](const LogEvent& event) {
                                           return contains(event.field("client"), "127.0.0.2") &&
                                                  event.field("helo") == "reuse.example.test" &&
                                                  event.field("mail") == "4" &&
                                                  event.field("rcpt") == "4" &&
                                                  event.field("data") == "3";
                                         }),
             env().proxy->log_text());
}

// DATA answered 250 before any message byte went out is no acceptance of the message.
BOOST_AUTO_TEST_CASE(data_answered_with_250_instead_of_354_is_never_2xx) {
  UpstreamBehaviour behaviour;
  behaviour.replies = {{"DATA", "250 2.0.0 Ok: queued as BOGUS"}};
  env().upstream->set_behaviour(behaviour);
  auto client = connect_client();
  BOOST_REQUIRE(greet(client));
  BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  const SmtpReply final_reply =
      send_message_after(client, client.command("DATA"), make_message(500, "early", "EARLY"));
  note_final(final_reply);
  BOOST_TEST(is_451_4_4_2(final_reply), final_reply.describe());
  BOOST_TEST(env().proxy->wait_for_event("upstream_failed", 5s, [](const LogEvent& event) {
    return event.field("error") == "protocol";
  }));
}

// Two replies to one MAIL: the second would otherwise be taken as the RCPT's reply.
BOOST_AUTO_TEST_CASE(more_replies_than_commands_retire_the_connection) {
  UpstreamBehaviour behaviour;
  behaviour.replies = {{"MAIL", "250 2.1.0 Ok\r\n550 5.1.1 stray second reply"}};
  env().upstream->set_behaviour(behaviour);
  auto client = connect_client();
  BOOST_REQUIRE(greet(client));
  const SmtpReply mail = client.command("MAIL FROM:<a@example.test>");
  BOOST_TEST(is_451_4_4_2(mail), mail.describe());
  const SmtpReply rcpt = client.command("RCPT TO:<b@example.test>");
  BOOST_TEST(rcpt.code == 503, rcpt.describe());  // no transaction: MAIL was not accepted
  BOOST_TEST(rcpt.text().find("stray") == std::string::npos);
}

// What is kept of a long reply is bounded; whether it counts as accepted is not.
BOOST_AUTO_TEST_CASE(a_2000_line_final_reply_is_passed_on_shortened_and_still_accepted) {
  std::string long_reply;
  for (int i = 0; i < 1999; ++i)
    long_reply += fmt::format("250-2.0.0 line {}\r\n", i);
  long_reply += "250 2.0.0 Ok: queued as QIDLONG";
  UpstreamBehaviour behaviour;
  behaviour.replies = {{".", long_reply}};
  env().upstream->set_behaviour(behaviour);
  auto client = connect_client();
  BOOST_REQUIRE(greet(client));
  BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  const SmtpReply final_reply =
      send_message_after(client, client.command("DATA"), make_message(500, "long", "LONG"));
  note_final(final_reply);
  BOOST_TEST(final_reply.code == 250, final_reply.describe());
  BOOST_TEST(final_reply.lines.size() == 200u);
  BOOST_TEST(final_reply.lines.front() == "2.0.0 line 0");
  BOOST_TEST(env().upstream->acknowledged_messages() == 1u);
  BOOST_TEST(client.command("QUIT").code == 221);
}

BOOST_AUTO_TEST_SUITE_END()
