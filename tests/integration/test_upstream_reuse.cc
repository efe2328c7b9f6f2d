// Upstream connections kept between sessions ([upstream] idle_timeout): a connection a session
// left clean serves the worker's next session, re-greeted with XCLIENT and the new client's
// EHLO; one with a refused command or an open transaction is closed; one the upstream closes
// while kept is never used; a kept one that fails its re-greeting gives way to a new one; one
// past idle_timeout is closed with QUIT; idle_timeout = 0 closes at session end.
// Portcullis runs with one worker here, so consecutive sessions share one pool.
#define BOOST_TEST_MODULE integration_upstream_reuse
#include <fmt/core.h>
#include <boost/test/unit_test.hpp>
#include <memory>
#include <thread>

#include "fixtures.h"
#include "recording_upstream.h"
#include "test_support.h"

using namespace portcullis::test;

namespace {

struct Environment {
  explicit Environment(const std::string& idle_timeout = "5",
                       const std::string& max_connections = "100",
                       const std::string& pass_client = "xclient") {
    upstream = std::make_unique<RecordingUpstream>();
    PortcullisOptions options;
    options.upstream_port = upstream->port();
    options.pass_client = pass_client;
    options.settings["server"]["workers"] = "1";
    options.settings["upstream"]["idle_timeout"] = idle_timeout;
    options.settings["upstream"]["max_connections"] = max_connections;
    metrics_port = free_loopback_port();
    options.settings["metrics"]["address"] = fmt::format("\"127.0.0.1:{}\"", metrics_port);
    proxy = std::make_unique<PortcullisFixture>(options);
  }
  ~Environment() { proxy.reset(); }

  // One whole session from `source` with HELO `helo`: MAIL, RCPT `rcpt`, and a message when
  // the recipient is accepted. Returns the final reply (or the RCPT refusal).
  SmtpReply deliver(const std::string& source, const std::string& helo, const std::string& marker,
                    const std::string& rcpt = "b@example.test", bool send_data = true) {
    SmtpTestClient client("127.0.0.1", proxy->port(), {.source_address = source, .timeout = 20s});
    BOOST_REQUIRE(client.read_reply().code == 220);
    BOOST_REQUIRE(client.command("EHLO " + helo).code == 250);
    BOOST_REQUIRE(client.command("MAIL FROM:<a@example.test>").code == 250);
    SmtpReply rcpt_reply = client.command("RCPT TO:<" + rcpt + ">");
    SmtpReply result = rcpt_reply;
    if (rcpt_reply.code == 250 && send_data) {
      BOOST_REQUIRE(client.command("DATA").code == 354);
      client.send(dot_stuff(make_message(800, "reuse", marker)) + ".\r\n");
      result = client.read_reply();
    }
    BOOST_TEST(client.command("QUIT").code == 221);
    BOOST_TEST(client.wait_closed(5s));
    return result;
  }

  long long metric(const std::string& name) const { return scrape_metric(metrics_port, name); }
  long long reused_total() const { return metric("portcullis_upstream_connections_reused_total"); }

  std::unique_ptr<RecordingUpstream> upstream;
  std::unique_ptr<PortcullisFixture> proxy;
  uint16_t metrics_port = 0;
};

std::vector<std::string> commands_starting_with(const RecordedConnection& connection,
                                                const std::string& prefix) {
  std::vector<std::string> lines;
  for (const auto& command : connection.commands) {
    if (starts_with_nocase(command, prefix)) lines.push_back(command);
  }
  return lines;
}

std::vector<std::string> xclient_lines(const RecordedConnection& connection) {
  return commands_starting_with(connection, "XCLIENT ");
}

std::string all_commands(const RecordedConnection& connection) {
  std::string all;
  for (const auto& command : connection.commands)
    all += command + " | ";
  return all;
}

// The one connection the sessions used (the test stops if there were more), its commands logged.
RecordedConnection only_session_connection(const RecordingUpstream& upstream) {
  const auto sessions = upstream.session_connections();
  BOOST_REQUIRE(sessions.size() == 1u);
  BOOST_TEST_MESSAGE("upstream commands: " << all_commands(sessions[0]));
  return sessions[0];
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_next_session_reuses_the_connection_with_its_own_identity) {
  Environment env;
  BOOST_TEST(env.reused_total() == 0);
  BOOST_TEST(env.deliver("127.0.0.2", "first.example.test", "FIRST").code == 250);
  BOOST_TEST(env.deliver("127.0.0.3", "second.example.test", "SECOND").code == 250);

  const RecordedConnection connection = only_session_connection(*env.upstream);
  BOOST_TEST(connection.open);
  BOOST_TEST(connection.messages.size() == 2u);
  const auto xclients = xclient_lines(connection);
  BOOST_REQUIRE(xclients.size() == 2u);
  BOOST_TEST(contains(xclients[0], "ADDR=127.0.0.2"), xclients[0]);
  BOOST_TEST(contains(xclients[0], "HELO=first.example.test"), xclients[0]);
  BOOST_TEST(contains(xclients[1], "ADDR=127.0.0.3"), xclients[1]);
  BOOST_TEST(contains(xclients[1], "HELO=second.example.test"), xclients[1]);
  // The second client's commands follow its own XCLIENT and EHLO, after the first message.
  const auto second_xclient =
      std::find(connection.commands.begin(), connection.commands.end(), xclients[1]);
  BOOST_REQUIRE(second_xclient + 2 < connection.commands.end());
  BOOST_TEST(*(second_xclient + 1) == "EHLO second.example.test");
  BOOST_TEST(starts_with_nocase(*(second_xclient + 2), "MAIL FROM:<a@example.test>"));
  BOOST_TEST(contains(connection.messages[1].raw, "SECOND"));
  BOOST_TEST(env.reused_total() == 1);
}

BOOST_AUTO_TEST_CASE(a_refused_command_retires_the_connection) {
  Environment env;
  UpstreamBehaviour behaviour;
  behaviour.replies = {{"RCPT TO:<refused@", "550 5.1.1 <refused@example.test>: unknown user"}};
  env.upstream->set_behaviour(behaviour);
  const SmtpReply refused =
      env.deliver("127.0.0.2", "first.example.test", "UNUSED", "refused@example.test");
  BOOST_TEST(refused.code == 550, refused.describe());
  BOOST_TEST(env.deliver("127.0.0.3", "second.example.test", "AFTER-REFUSAL").code == 250);

  BOOST_TEST(env.upstream->wait_for(
      [](const std::vector<RecordedConnection>& all) {
        size_t sessions = 0;
        for (const auto& c : all)
          sessions += c.looks_like_probe() ? 0 : 1;
        return sessions == 2 && !all.empty();
      },
      5s));
  const auto sessions = env.upstream->session_connections();
  BOOST_REQUIRE(sessions.size() == 2u);
  // Postfix counts errors per connection: the refused one is closed, never handed on.
  BOOST_TEST(!sessions[0].open);
  BOOST_TEST(sessions[0].messages.empty());
  BOOST_TEST(xclient_lines(sessions[0]).size() == 1u);
  BOOST_TEST(xclient_lines(sessions[1]).size() == 1u);
  BOOST_TEST(sessions[1].messages.size() == 1u);
  BOOST_TEST(env.reused_total() == 0);
}

BOOST_AUTO_TEST_CASE(an_open_transaction_retires_the_connection) {
  Environment env;
  // MAIL and RCPT accepted, then QUIT without DATA: the upstream still holds a transaction.
  BOOST_TEST(
      env.deliver("127.0.0.2", "first.example.test", "UNUSED", "b@example.test", false).code ==
      250);
  BOOST_TEST(env.deliver("127.0.0.3", "second.example.test", "AFTER-OPEN").code == 250);
  const auto sessions = env.upstream->session_connections();
  BOOST_REQUIRE(sessions.size() == 2u);
  BOOST_TEST(sessions[0].count_verb("MAIL") == 1u);
  BOOST_TEST(sessions[0].count_verb("XCLIENT") == 1u);
  BOOST_TEST(sessions[1].count_verb("MAIL") == 1u);
  BOOST_TEST(sessions[1].messages.size() == 1u);
  BOOST_TEST(env.reused_total() == 0);
}

BOOST_AUTO_TEST_CASE(a_connection_the_upstream_closed_while_kept_is_not_used) {
  Environment env;
  BOOST_TEST(env.deliver("127.0.0.2", "first.example.test", "BEFORE-RESTART").code == 250);
  // Every connection dies, as when Postfix is restarted; a new upstream takes the port.
  const uint16_t port = env.upstream->port();
  env.upstream.reset();
  env.upstream = std::make_unique<RecordingUpstream>(UpstreamBehaviour{}, port);
  // The proxy sees the close of its kept connection.
  BOOST_TEST(
      wait_until([&] { return env.metric("portcullis_upstream_connections_active") == 0; }, 5s));
  BOOST_TEST(env.deliver("127.0.0.3", "second.example.test", "AFTER-RESTART").code == 250);
  const auto sessions = env.upstream->session_connections();
  BOOST_REQUIRE(sessions.size() == 1u);
  BOOST_TEST(sessions[0].messages.size() == 1u);
  BOOST_TEST(contains(sessions[0].messages[0].raw, "AFTER-RESTART"));
  BOOST_TEST(env.reused_total() == 0);
}

BOOST_AUTO_TEST_CASE(a_kept_connection_that_fails_its_regreeting_gives_way_to_a_new_one) {
  Environment env;
  BOOST_TEST(env.deliver("127.0.0.2", "first.example.test", "FIRST").code == 250);
  // The kept connection's XCLIENT for the next client meets a 421, as when the upstream's idle
  // timeout wins the race; the rule is lifted once that connection is closed, so the new
  // connection the proxy then opens is served normally.
  UpstreamBehaviour behaviour;
  behaviour.replies = {{"XCLIENT", "421 4.4.2 upstream.test Error: timeout exceeded"}};
  env.upstream->set_behaviour(behaviour);
  SmtpTestClient client("127.0.0.1", env.proxy->port(),
                        {.source_address = "127.0.0.3", .timeout = 20s});
  BOOST_REQUIRE(client.read_reply().code == 220);
  BOOST_REQUIRE(client.command("EHLO second.example.test").code == 250);
  std::thread lift([&] {
    env.upstream->wait_for(
        [](const std::vector<RecordedConnection>& all) {
          for (const auto& c : all)
            if (c.count_verb("XCLIENT") == 2 && !c.open) return true;
          return false;
        },
        10s);
    env.upstream->set_behaviour({});
  });
  // The proxy may race the lift: the MAIL is tried until the new connection is in place.
  SmtpReply mail = client.command("MAIL FROM:<a@example.test>");
  lift.join();
  if (mail.code == 421) {
    // The race went the other way: the new connection's XCLIENT got the 421 too, and an
    // upstream 421 to XCLIENT is passed on and ends the session (nothing may be relayed on
    // that connection). The client comes back, as a client would.
    BOOST_TEST(client.wait_closed(5s));
    client = SmtpTestClient("127.0.0.1", env.proxy->port(),
                            {.source_address = "127.0.0.3", .timeout = 20s});
    BOOST_REQUIRE(client.read_reply().code == 220);
    BOOST_REQUIRE(client.command("EHLO second.example.test").code == 250);
    mail = client.command("MAIL FROM:<a@example.test>");
  } else if (mail.code != 250) {
    mail = client.command("MAIL FROM:<a@example.test>");
  }
  BOOST_TEST(mail.code == 250, mail.describe());
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  BOOST_REQUIRE(client.command("DATA").code == 354);
  client.send(dot_stuff(make_message(800, "reuse", "SECOND")) + ".\r\n");
  BOOST_TEST(client.read_reply().code == 250);
  BOOST_TEST(client.command("QUIT").code == 221);

  const auto sessions = env.upstream->session_connections();
  BOOST_REQUIRE(sessions.size() >= 2u);
  BOOST_TEST(!sessions[0].open);
  BOOST_TEST(sessions[0].messages.size() == 1u);
  BOOST_TEST(sessions.back().messages.size() == 1u);
  BOOST_TEST(contains(sessions.back().messages[0].raw, "SECOND"));
  BOOST_TEST(env.proxy->wait_for_event("upstream_reuse_failed", 5s), env.proxy->diagnostics());
  BOOST_TEST(env.reused_total() == 0);  // a failed re-greeting served nobody
}

BOOST_AUTO_TEST_CASE(a_connection_past_idle_timeout_is_closed_with_quit) {
  Environment env("1");
  BOOST_TEST(env.deliver("127.0.0.2", "first.example.test", "FIRST").code == 250);
  BOOST_TEST(env.upstream->wait_for(
      [](const std::vector<RecordedConnection>& all) {
        for (const auto& c : all)
          if (!c.looks_like_probe() && !c.open) return true;
        return false;
      },
      5s));
  BOOST_TEST(env.deliver("127.0.0.3", "second.example.test", "SECOND").code == 250);
  const auto sessions = env.upstream->session_connections();
  BOOST_REQUIRE(sessions.size() == 2u);
  BOOST_TEST(sessions[0].commands.back() == "QUIT");
  BOOST_TEST(!sessions[0].open);
  BOOST_TEST(sessions[1].messages.size() == 1u);
  BOOST_TEST(env.reused_total() == 0);
}

BOOST_AUTO_TEST_CASE(idle_timeout_zero_closes_the_connection_at_session_end) {
  Environment env("0");
  BOOST_TEST(env.deliver("127.0.0.2", "first.example.test", "FIRST").code == 250);
  BOOST_TEST(env.deliver("127.0.0.3", "second.example.test", "SECOND").code == 250);
  const auto sessions = env.upstream->session_connections();
  BOOST_REQUIRE(sessions.size() == 2u);
  BOOST_TEST(sessions[0].commands.back() == "QUIT");
  BOOST_TEST(xclient_lines(sessions[1]).size() == 1u);
  BOOST_TEST(env.reused_total() == 0);
}

BOOST_AUTO_TEST_CASE(at_most_half_the_slots_wait_in_the_pool) {
  // max_connections = 2 with one worker: one connection may be kept.
  Environment env("5", "2");
  auto open_transaction = [&](const std::string& source, const std::string& helo) {
    auto client = std::make_unique<SmtpTestClient>(
        "127.0.0.1", env.proxy->port(),
        SmtpTestClient::Options{.source_address = source, .timeout = 20s});
    BOOST_REQUIRE(client->read_reply().code == 220);
    BOOST_REQUIRE(client->command("EHLO " + helo).code == 250);
    BOOST_REQUIRE(client->command("MAIL FROM:<a@example.test>").code == 250);
    BOOST_REQUIRE(client->command("RCPT TO:<b@example.test>").code == 250);
    BOOST_REQUIRE(client->command("DATA").code == 354);
    client->send(dot_stuff(make_message(500, "pool", helo)) + ".\r\n");
    BOOST_REQUIRE(client->read_reply().code == 250);
    return client;
  };
  // Two sessions hold both slots at once, then end.
  auto first = open_transaction("127.0.0.2", "one.example.test");
  auto second = open_transaction("127.0.0.3", "two.example.test");
  for (auto* client : {first.get(), second.get()}) {
    BOOST_TEST(client->command("QUIT").code == 221);
    BOOST_TEST(client->wait_closed(5s));
  }
  BOOST_TEST(env.upstream->wait_for(
      [](const std::vector<RecordedConnection>& all) {
        size_t closed = 0;
        for (const auto& c : all)
          closed += (!c.looks_like_probe() && !c.open) ? 1 : 0;
        return closed == 1;
      },
      5s));
  // The kept one serves the next session, so a third session fits under max_connections = 2
  // beside another new one.
  auto third = open_transaction("127.0.0.4", "three.example.test");
  auto fourth = open_transaction("127.0.0.5", "four.example.test");
  BOOST_TEST(third->command("QUIT").code == 221);
  BOOST_TEST(fourth->command("QUIT").code == 221);
  const auto sessions = env.upstream->session_connections();
  BOOST_REQUIRE(sessions.size() == 3u);
  size_t closed_with_quit = 0;
  size_t carried_two = 0;
  for (const auto& c : sessions) {
    if (!c.open && !c.commands.empty() && c.commands.back() == "QUIT") ++closed_with_quit;
    if (c.messages.size() == 2u) ++carried_two;
  }
  BOOST_TEST(closed_with_quit >= 1u);
  BOOST_TEST(carried_two == 1u, "one connection served two sessions");
  BOOST_TEST(env.reused_total() == 1);
}

BOOST_AUTO_TEST_CASE(without_xclient_only_a_changed_helo_is_said_again) {
  Environment env("5", "100", "none");
  BOOST_TEST(env.deliver("127.0.0.2", "same.example.test", "ONE").code == 250);
  BOOST_TEST(env.deliver("127.0.0.3", "same.example.test", "TWO").code == 250);
  BOOST_TEST(env.deliver("127.0.0.4", "other.example.test", "THREE").code == 250);
  const RecordedConnection connection = only_session_connection(*env.upstream);
  BOOST_TEST(connection.count_verb("XCLIENT") == 0u);
  BOOST_TEST(connection.messages.size() == 3u);
  // The same HELO line needs nothing before the next MAIL; a different one is said again.
  const std::vector<std::string> greetings = commands_starting_with(connection, "EHLO ");
  BOOST_TEST(
      greetings == (std::vector<std::string>{"EHLO same.example.test", "EHLO other.example.test"}),
      boost::test_tools::per_element());
  BOOST_TEST(env.reused_total() == 2);
}

BOOST_AUTO_TEST_CASE(portcullis_upstream_up_follows_the_probe_both_ways) {
  Environment env;
  BOOST_TEST(wait_until([&] { return env.metric("portcullis_upstream_up") == 1; }, 10s));
  // The upstream goes away: a session's connect fails, which asks for a probe, which fails.
  const uint16_t port = env.upstream->port();
  env.upstream.reset();
  {
    SmtpTestClient client("127.0.0.1", env.proxy->port(),
                          {.source_address = "127.0.0.2", .timeout = 20s});
    BOOST_REQUIRE(client.read_reply().code == 220);
    BOOST_REQUIRE(client.command("EHLO down.example.test").code == 250);
    const SmtpReply mail = client.command("MAIL FROM:<a@example.test>");
    BOOST_TEST(mail.code == 451, mail.describe());
    client.command("QUIT");
  }
  BOOST_TEST(wait_until([&] { return env.metric("portcullis_upstream_up") == 0; }, 10s));
  // Back on the same port: the probe's retry finds it.
  env.upstream = std::make_unique<RecordingUpstream>(UpstreamBehaviour{}, port);
  BOOST_TEST(wait_until([&] { return env.metric("portcullis_upstream_up") == 1; }, 15s));
}
