// The harness proved on its own, without Portcullis: the SMTP client and the fixtures against
// smtp-sink and a real Postfix, the recording upstream against the test client, and the
// small helpers the integration tests lean on. If these fail, the other integration tests'
// results mean nothing.
#define BOOST_TEST_MODULE integration_harness
#include <signal.h>
#include <sys/stat.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>

#include "fixtures.h"
#include "recording_upstream.h"
#include "test_support.h"

using namespace portcullis::test;
namespace fs = std::filesystem;

namespace {

// The SMTP client side of a whole transaction; returns the final reply.
SmtpReply send_transaction(SmtpTestClient& client, const std::string& from,
                           const std::vector<std::string>& recipients, const std::string& message) {
  SmtpReply reply = client.command("MAIL FROM:<" + from + ">");
  if (reply.code != 250) return reply;
  bool any = false;
  for (const auto& to : recipients)
    any |= client.command("RCPT TO:<" + to + ">").code == 250;
  if (!any) return client.command("RSET");
  reply = client.command("DATA");
  if (reply.code != 354) return reply;
  client.send(dot_stuff(message) + ".\r\n");
  return client.read_reply();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(helpers)

BOOST_AUTO_TEST_CASE(free_port_is_bindable_and_listen_detection_sees_it) {
  const uint16_t port = free_loopback_port();
  BOOST_TEST(port > 0);
  BOOST_TEST(!port_listens(port));
  RecordingUpstream upstream({}, port);
  BOOST_TEST(upstream.port() == port);
  BOOST_TEST(wait_until_listens(port, 2s));
  BOOST_TEST(port_accepts("127.0.0.1", port));
  upstream.stop();
  BOOST_TEST(wait_until([&] { return !port_accepts("127.0.0.1", port); }, 2s));
}

BOOST_AUTO_TEST_CASE(hex_and_printable) {
  BOOST_TEST(hex_decode("0d0a2e0d0a") == std::string("\r\n.\r\n"));
  BOOST_TEST(hex_decode("0D0A002E") == std::string("\r\n\0.", 4));
  BOOST_CHECK_THROW(hex_decode("0d0"), std::invalid_argument);
  BOOST_CHECK_THROW(hex_decode("zz"), std::invalid_argument);
  BOOST_TEST(printable(std::string("a\r\n\0b", 5)) == "a\\r\\n\\x00b");
}

BOOST_AUTO_TEST_CASE(dot_stuffing_round_trip) {
  const std::string message = ".first\r\nmiddle\r\n..two\r\n.\r\nend\r\n";
  const std::string stuffed = dot_stuff(message);
  BOOST_TEST(stuffed == "..first\r\nmiddle\r\n...two\r\n..\r\nend\r\n");
  BOOST_TEST(dot_unstuff(stuffed) == message);
  const std::string big = make_message(100000, "size", "END-MARKER");
  BOOST_TEST(big.size() >= 100000u);
  BOOST_TEST(big.size() < 100200u);
  BOOST_TEST(contains(big, "\r\n.a line that starts with a dot\r\n"));
  BOOST_TEST(big.substr(big.size() - 12) == "END-MARKER\r\n");
}

BOOST_AUTO_TEST_CASE(json_lines) {
  auto value = parse_json(R"({"ts":"2026-11-30T01:02:03.456Z","level":"info","event":"disconnect",)"
                          R"("n":12,"x":1.5,"ok":true,"none":null,"list":[1,"a"],"obj":{"k":"v"},)"
                          R"("esc":"a\"b\\c\u0041\n"})");
  BOOST_REQUIRE(value.has_value());
  BOOST_TEST(value->find("event")->as_string() == "disconnect");
  BOOST_TEST(value->find("n")->to_text() == "12");
  BOOST_TEST(value->find("x")->to_text() == "1.5");
  BOOST_TEST(value->find("ok")->to_text() == "true");
  BOOST_TEST(value->find("none")->is_null());
  BOOST_TEST(value->find("list")->to_text() == R"([1,"a"])");
  BOOST_TEST(value->find("obj")->find("k")->as_string() == "v");
  BOOST_TEST(value->find("esc")->as_string() == "a\"b\\cA\n");
  BOOST_TEST(value->find("missing") == nullptr);
  std::string error;
  BOOST_TEST(!parse_json(R"({"a":1)", &error).has_value());
  BOOST_TEST(!error.empty());
  BOOST_TEST(!parse_json(R"({"a":1} x)").has_value());
  BOOST_TEST(!parse_json("not json").has_value());
}

BOOST_AUTO_TEST_CASE(child_process_exit_codes_and_stop) {
  auto ok = run_command({"sh", "-c", "echo out; echo err >&2; exit 3"}, 5s);
  BOOST_TEST(ok.status.exited);
  BOOST_TEST(ok.status.code == 3);
  BOOST_TEST(ok.out == "out\n");
  BOOST_TEST(ok.err == "err\n");

  auto env = run_command({"sh", "-c", "echo $PORTCULLIS_HARNESS_PROBE"}, 5s,
                         {"PORTCULLIS_HARNESS_PROBE=seen"});
  BOOST_TEST(env.out == "seen\n");

  auto slow = run_command({"sleep", "30"}, 200ms);
  BOOST_TEST(slow.timed_out);
  BOOST_TEST(slow.status.signal == SIGTERM);

  // A child that ignores SIGTERM is killed after the grace period.
  TempDir scratch("harness-trap");
  const std::string trapped = (scratch / "trapped").string();
  ChildProcess stubborn({{"sh", "-c", "trap '' TERM; : > \"$0\"; sleep 30", trapped}, {}, {}, {}});
  BOOST_TEST(stubborn.running());
  // The shell has its trap once it has written the file.
  BOOST_TEST(wait_until([&] { return std::filesystem::exists(trapped); }, 5s));
  const auto before = Clock::now();
  ExitStatus status = stubborn.stop(300ms);
  BOOST_TEST(status.signal == SIGKILL);
  BOOST_TEST(elapsed_ms(before) < 5000);
  BOOST_TEST(::kill(stubborn.pid(), 0) != 0);  // reaped: the pid is gone

  pid_t left_behind = -1;
  {
    ChildProcess scoped({{"sleep", "30"}, {}, {}, {}});
    left_behind = scoped.pid();
  }
  BOOST_TEST(::kill(left_behind, 0) != 0);
}

BOOST_AUTO_TEST_CASE(temp_dir_is_removed_and_owned_subdirs) {
  fs::path kept;
  {
    TempDir dir("portcullis-harness");
    kept = dir.path();
    BOOST_TEST(fs::is_directory(kept));
    write_file(dir / "f", "x");
    fs::path sub = dir.make_subdir("state", 0700, "nobody");
    struct stat info {};
    BOOST_REQUIRE(::stat(sub.c_str(), &info) == 0);
    BOOST_TEST((info.st_mode & 0777) == 0700u);
    if (running_as_root()) BOOST_TEST(info.st_uid == lookup_user("nobody").uid);
  }
  BOOST_TEST(!fs::exists(kept));
}

BOOST_AUTO_TEST_CASE(config_rendering) {
  PortcullisOptions options;
  options.upstream_port = 2525;
  options.pass_client = "none";
  options.settings["limits"]["max_errors"] = "7";
  options.settings["limits"]["bare_lf"] = "\"normalize\"";
  options.settings["timeouts"]["data_block"] = "";  // removed
  const std::string text = render_portcullis_config(options, 10025, "/tmp/s", "/tmp/l.log");
  BOOST_TEST(contains(text, "[[listen]]\naddress = \"127.0.0.1:10025\"\n"));
  BOOST_TEST(contains(text, "address = \"127.0.0.1:2525\"\npass_client = \"none\"\n"));
  BOOST_TEST(contains(text, "[limits]\nmax_errors = 7\nbare_lf = \"normalize\"\n"));
  BOOST_TEST(contains(text, "[timeouts]\ncommand = 5\n\n"));
  BOOST_TEST(contains(text, "main = \"/tmp/l.log\"\nformat = \"json\""));
  BOOST_TEST(contains(text, "user = \"nobody\"") == running_as_root());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(recording_upstream)

BOOST_AUTO_TEST_CASE(speaks_smtp_and_records_raw_bytes) {
  RecordingUpstream upstream;
  SmtpTestClient client("127.0.0.1", upstream.port());
  SmtpReply banner = client.read_reply();
  BOOST_TEST(banner.code == 220);
  SmtpReply ehlo = client.command("EHLO proxy.test");
  BOOST_TEST(ehlo.code == 250);
  BOOST_TEST(ehlo.lines.size() == 6u);
  BOOST_TEST(ehlo.lines.back() ==
             "XCLIENT ADDR PORT NAME REVERSE_NAME HELO PROTO DESTADDR DESTPORT");
  BOOST_TEST(client.command("XCLIENT ADDR=127.0.0.2 PORT=4000").code == 220);
  BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  BOOST_TEST(client.command("DATA").code == 354);
  const std::string body = "Subject: t\r\n\r\n..stuffed\r\nline\r\n.\r\n";
  client.send(body);
  SmtpReply final_reply = client.read_reply();
  BOOST_TEST(final_reply.code == 250);
  BOOST_TEST(final_reply.text() == "2.0.0 Ok: queued as QID1");
  BOOST_TEST(client.command("RSET").code == 250);
  // An empty message: the terminator's CRLF is the one ending DATA.
  client.send("MAIL FROM:<>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n");
  BOOST_TEST(client.read_reply().code == 250);
  BOOST_TEST(client.read_reply().code == 250);
  BOOST_TEST(client.read_reply().code == 354);
  client.send(".\r\n");
  BOOST_TEST(client.read_reply().text() == "2.0.0 Ok: queued as QID2");
  SmtpReply quit = client.command("QUIT");
  BOOST_TEST(quit.code == 221);
  BOOST_TEST(client.wait_closed(2s));

  auto connections = upstream.connections();
  BOOST_REQUIRE(connections.size() == 1u);
  const auto& recorded = connections[0];
  BOOST_TEST(recorded.peer_address == "127.0.0.1");
  BOOST_TEST(recorded.peer_port == client.local_port());
  BOOST_TEST(recorded.commands.front() == "EHLO proxy.test");
  BOOST_TEST(recorded.count_verb("MAIL") == 2u);
  BOOST_TEST(!recorded.looks_like_probe());
  BOOST_REQUIRE(recorded.messages.size() == 2u);
  BOOST_TEST(recorded.messages[0].raw == body);
  BOOST_TEST(recorded.messages[0].acknowledged);
  BOOST_TEST(recorded.messages[0].queue_id == "QID1");
  BOOST_TEST(recorded.messages[1].raw == ".\r\n");
  BOOST_TEST(contains(recorded.received, "\r\n..stuffed\r\n"));
  BOOST_TEST(recorded.received.substr(0, 17) == "EHLO proxy.test\r\n");
  BOOST_TEST(!recorded.open);
  BOOST_TEST(recorded.closed_by_us);
  BOOST_TEST(upstream.acknowledged_messages() == 2u);
}

BOOST_AUTO_TEST_CASE(pipelined_input_in_one_write) {
  RecordingUpstream upstream;
  SmtpTestClient client("127.0.0.1", upstream.port());
  BOOST_TEST(client.read_reply().code == 220);
  client.send(
      "EHLO p\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"
      "x\r\n.\r\nQUIT\r\n");
  std::vector<int> codes;
  for (int i = 0; i < 6; ++i)
    codes.push_back(client.read_reply().code);
  BOOST_TEST(codes == (std::vector<int>{250, 250, 250, 354, 250, 221}),
             boost::test_tools::per_element());
  BOOST_TEST(upstream.connections().at(0).messages.at(0).raw == "x\r\n.\r\n");
}

BOOST_AUTO_TEST_CASE(close_on_mail) {
  UpstreamBehaviour behaviour;
  behaviour.close_on_mail = true;
  RecordingUpstream upstream(behaviour);
  SmtpTestClient client("127.0.0.1", upstream.port());
  client.read_reply();
  BOOST_TEST(client.command("EHLO p").code == 250);
  SmtpReply reply = client.command("MAIL FROM:<a@example.test>");
  BOOST_TEST(reply.code == 0);
  BOOST_TEST(reply.closed);
  BOOST_TEST(upstream.connections().at(0).closed_by_us);
}

BOOST_AUTO_TEST_CASE(close_after_rcpt_reply) {
  UpstreamBehaviour behaviour;
  behaviour.close_after_rcpt_reply = true;
  RecordingUpstream upstream(behaviour);
  SmtpTestClient client("127.0.0.1", upstream.port());
  client.read_reply();
  client.command("EHLO p");
  client.command("MAIL FROM:<a@example.test>");
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  BOOST_TEST(client.wait_closed(2s));
}

BOOST_AUTO_TEST_CASE(close_in_the_middle_of_data) {
  UpstreamBehaviour behaviour;
  behaviour.close_after_data_bytes = 1000;
  RecordingUpstream upstream(behaviour);
  SmtpTestClient client("127.0.0.1", upstream.port());
  client.read_reply();
  client.send("EHLO p\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n");
  for (int i = 0; i < 4; ++i)
    client.read_reply();
  client.send(make_message(5000, "mid", "END") + ".\r\n");
  SmtpReply reply = client.read_reply();
  BOOST_TEST(reply.code == 0);
  BOOST_TEST(reply.closed);
  BOOST_TEST(upstream.recorded_messages() == 0u);
  BOOST_TEST(upstream.connections().at(0).received.size() >= 1000u);
}

BOOST_AUTO_TEST_CASE(reply_override_and_421_closes) {
  UpstreamBehaviour behaviour;
  behaviour.replies = {{"RCPT TO:<bad@", "550 5.1.1 <bad@example.test>: Recipient unknown"},
                       {"RCPT TO:<multi@", "550-5.7.1 first line\r\n550 5.7.1 second line"},
                       {"MAIL FROM:<shutdown@", "421 4.3.2 Shutting down"}};
  RecordingUpstream upstream(behaviour);
  SmtpTestClient client("127.0.0.1", upstream.port());
  client.read_reply();
  client.command("EHLO p");
  client.command("MAIL FROM:<a@example.test>");
  SmtpReply bad = client.command("RCPT TO:<bad@example.test>");
  BOOST_TEST(bad.code == 550);
  BOOST_TEST(bad.enhanced() == "5.1.1");
  SmtpReply multi = client.command("RCPT TO:<multi@example.test>");
  BOOST_TEST(multi.code == 550);
  BOOST_TEST(multi.lines == (std::vector<std::string>{"5.7.1 first line", "5.7.1 second line"}),
             boost::test_tools::per_element());
  BOOST_TEST(multi.raw == "550-5.7.1 first line\r\n550 5.7.1 second line\r\n");
  client.command("RSET");
  SmtpReply shutdown = client.command("MAIL FROM:<shutdown@example.test>");
  BOOST_TEST(shutdown.code == 421);
  BOOST_TEST(client.wait_closed(2s));
}

BOOST_AUTO_TEST_CASE(delayed_final_reply_not_acknowledged_when_peer_leaves) {
  UpstreamBehaviour behaviour;
  behaviour.delays = {{".", 600ms}};
  RecordingUpstream upstream(behaviour);
  {
    SmtpTestClient client("127.0.0.1", upstream.port());
    client.read_reply();
    client.send("EHLO p\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n");
    for (int i = 0; i < 4; ++i)
      client.read_reply();
    client.send("x\r\n.\r\n");
    BOOST_TEST(client.silent_for(300ms));  // the reply is held back
    SmtpReply late = client.read_reply(2s);
    BOOST_TEST(late.code == 250);
  }
  BOOST_TEST(upstream.acknowledged_messages() == 1u);
  {
    SmtpTestClient client("127.0.0.1", upstream.port());
    client.read_reply();
    client.send("EHLO p\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n");
    for (int i = 0; i < 4; ++i)
      client.read_reply();
    client.send("y\r\n.\r\n");
    BOOST_TEST(client.silent_for(100ms));
  }  // gone before the delayed 250
  // The upstream notices the close when it tries to write that 250.
  BOOST_TEST(upstream.wait_for(
      [](const std::vector<RecordedConnection>& connections) {
        return connections.size() == 2u && !connections[1].open;
      },
      5s));
  BOOST_TEST(upstream.recorded_messages() == 2u);
  BOOST_TEST(upstream.acknowledged_messages() == 1u);
}

BOOST_AUTO_TEST_CASE(proxy_v2_header_recorded_and_probe_still_greeted) {
  UpstreamBehaviour behaviour;
  behaviour.expect_proxy_v2 = true;
  behaviour.proxy_header_wait = 300ms;
  RecordingUpstream upstream(behaviour);
  // PROXY, TCP over IPv4, 127.0.0.2:40000 -> 127.0.0.1:25
  const std::string header =
      std::string(proxy_v2_signature()) + hex_decode("2111000c7f0000027f0000019c400019");
  {
    SmtpTestClient client("127.0.0.1", upstream.port());
    client.send(header + "EHLO p\r\n");
    BOOST_TEST(client.read_reply().code == 220);
    BOOST_TEST(client.read_reply().code == 250);
  }
  {
    SmtpTestClient probe("127.0.0.1", upstream.port());
    const auto before = Clock::now();
    BOOST_TEST(probe.read_reply(2s).code == 220);
    BOOST_TEST(elapsed_ms(before) >= 250);
    BOOST_TEST(probe.command("EHLO probe").code == 250);
  }
  BOOST_TEST(upstream.wait_for([](const auto& c) { return c.size() == 2 && !c[1].open; }, 2s));
  auto connections = upstream.connections();
  BOOST_REQUIRE(connections.size() == 2u);
  BOOST_TEST(connections[0].proxy_header == header);
  BOOST_TEST(connections[0].commands.at(0) == "EHLO p");
  BOOST_TEST(connections[1].proxy_header.empty());
  ProxyV2Header parsed = parse_proxy_v2(connections[0].proxy_header);
  BOOST_TEST(parsed.valid);
  BOOST_TEST(parsed.version == 2u);
  BOOST_TEST(parsed.command == 1u);
  BOOST_TEST(parsed.family == 1u);
  BOOST_TEST(parsed.transport == 1u);
  BOOST_TEST(parsed.source_address == "127.0.0.2");
  BOOST_TEST(parsed.destination_address == "127.0.0.1");
  BOOST_TEST(parsed.source_port == 40000);
  BOOST_TEST(parsed.destination_port == 25);
  BOOST_TEST(!parse_proxy_v2("PROXY TCP4 1.2.3.4").valid);
}

BOOST_AUTO_TEST_CASE(source_address_binding) {
  RecordingUpstream upstream;
  SmtpTestClient client("127.0.0.1", upstream.port(), {.source_address = "127.0.0.2"});
  BOOST_TEST(client.local_address() == "127.0.0.2");
  BOOST_TEST(client.read_reply().code == 220);
  BOOST_TEST(upstream.connections().at(0).peer_address == "127.0.0.2");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(real_peers)

BOOST_AUTO_TEST_CASE(smtp_sink_counts_and_dumps_messages) {
  SmtpSinkFixture sink;
  SmtpTestClient client("127.0.0.1", sink.port());
  BOOST_TEST(client.read_reply().code == 220);
  SmtpReply ehlo = client.command("EHLO harness.test");
  BOOST_TEST(ehlo.code == 250);
  // smtp-sink ends its EHLO reply with an empty "250 " line.
  BOOST_TEST(ehlo.lines.back().empty());
  BOOST_TEST(sink.message_count() == 0u);
  const std::string message = make_message(3000, "sink", "SINK-MARKER-1");
  BOOST_TEST(send_transaction(client, "a@example.test", {"b@example.test"}, message).code == 250);
  BOOST_TEST(client.command("RSET").code == 250);
  BOOST_TEST(send_transaction(client, "a@example.test", {"c@example.test"},
                              make_message(200, "second", "SINK-MARKER-2"))
                 .code == 250);
  BOOST_TEST(client.command("QUIT").code == 221);
  BOOST_TEST(sink.wait_for_messages(2, 5s));
  BOOST_TEST(sink.messages().size() == 2u);
  const std::string first = sink.message_with("SINK-MARKER-1");
  BOOST_TEST(contains(first, "\n.a line that starts with a dot\n"));  // unstuffed
  BOOST_TEST(contains(first, "X-Rcpt-Args: <b@example.test>"));
  BOOST_TEST(contains(sink.message_with("SINK-MARKER-2"), "X-Rcpt-Args: <c@example.test>"));
}

BOOST_AUTO_TEST_CASE(swaks_against_smtp_sink) {
  SmtpSinkFixture sink;
  auto result = run_command(
      {"swaks", "--server", "127.0.0.1", "--port", std::to_string(sink.port()), "--from",
       "a@example.test", "--to", "b@example.test", "--body", "swaks-harness-body"},
      30s);
  BOOST_TEST(result.status.success(), result.status.describe() << "\n" << result.out);
  BOOST_TEST(sink.wait_for_messages(1, 5s));
  BOOST_TEST(contains(sink.messages().at(0), "swaks-harness-body"));
}

BOOST_AUTO_TEST_CASE(postfix_with_xclient_relays_and_refuses_foreign_domains) {
  if (!running_as_root()) {
    BOOST_FAIL("the Postfix fixture needs root (CI runs as root)");
  }
  PostfixFixture postfix;
  BOOST_TEST(contains(postfix.start_output(), "listening on 127.0.0.1:"));

  // From 127.0.0.1 (in mynetworks): relaying anywhere is allowed.
  {
    SmtpTestClient client("127.0.0.1", postfix.port());
    BOOST_TEST(client.read_reply().code == 220);
    SmtpReply ehlo = client.command("EHLO proxy.test");
    BOOST_TEST(contains(ehlo.text(), "XCLIENT"));
    BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
    BOOST_TEST(client.command("RCPT TO:<x@foreign.example>").code == 250);
    client.command("QUIT");
  }
  // From 127.0.0.2 (not in mynetworks): a foreign domain is refused, and XCLIENT is not
  // allowed from there.
  {
    SmtpTestClient client("127.0.0.1", postfix.port(), {.source_address = "127.0.0.2"});
    BOOST_TEST(client.read_reply().code == 220);
    SmtpReply ehlo = client.command("EHLO client.test");
    BOOST_TEST(!contains(ehlo.text(), "XCLIENT"));
    BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
    SmtpReply refused = client.command("RCPT TO:<x@foreign.example>");
    BOOST_TEST(refused.code == 554);
    BOOST_TEST(refused.enhanced() == "5.7.1");
    BOOST_TEST(contains(refused.text(), "Relay access denied"));
    client.command("QUIT");
  }
  // XCLIENT from 127.0.0.1 makes Postfix judge and log the announced client.
  std::string queue_id;
  {
    SmtpTestClient client("127.0.0.1", postfix.port());
    client.read_reply();
    client.command("EHLO proxy.test");
    BOOST_TEST(client.command("XCLIENT ADDR=127.0.0.2 NAME=[UNAVAILABLE]").code == 220);
    BOOST_TEST(client.command("EHLO client.test").code == 250);
    BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
    BOOST_TEST(client.command("RCPT TO:<x@foreign.example>").code == 554);
    BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
    BOOST_TEST(client.command("DATA").code == 354);
    client.send(dot_stuff(make_message(500, "via postfix", "POSTFIX-MARKER")) + ".\r\n");
    SmtpReply queued = client.read_reply();
    BOOST_TEST(queued.code == 250);
    const std::string prefix = "2.0.0 Ok: queued as ";
    BOOST_REQUIRE(queued.text().rfind(prefix, 0) == 0);
    queue_id = queued.text().substr(prefix.size());
    client.command("QUIT");
  }
  BOOST_TEST(postfix.relay_sink().wait_for_messages(1, 20s));
  const auto dumps = postfix.relay_sink().messages();
  BOOST_REQUIRE(dumps.size() == 1u);
  BOOST_TEST(contains(dumps[0], "POSTFIX-MARKER"));
  BOOST_TEST(
      contains(dumps[0], "[127.0.0.2])\n\tby postfix.test (Postfix) with ESMTP id " + queue_id));
  BOOST_TEST(postfix.wait_for_log(queue_id + ": client=unknown[127.0.0.2]", 5s), postfix.log());
}

BOOST_AUTO_TEST_SUITE_END()
