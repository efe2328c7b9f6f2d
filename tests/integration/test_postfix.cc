// Portcullis in front of a real Postfix that trusts only 127.0.0.1 (the proxy) for XCLIENT and
// relaying. The test client is bound to 127.0.0.2: Postfix must see and log 127.0.0.2, write it
// into its Received header, and refuse to relay for it (the open-relay check), with its own
// refusal reaching the client unchanged.
#define BOOST_TEST_MODULE integration_postfix
#include <arpa/inet.h>

#include <fmt/core.h>
#include <boost/test/unit_test.hpp>
#include <memory>
#include <regex>

#include "fixtures.h"
#include "test_dns_server.h"
#include "test_support.h"

using namespace portcullis::test;

namespace {

constexpr const char* client_address = "127.0.0.2";
constexpr const char* client_helo = "client-helo.example.test";

struct PostfixEnvironment {
  PostfixEnvironment() {
    if (!running_as_root()) throw std::runtime_error("a private Postfix needs root");
    postfix = std::make_unique<PostfixFixture>("127.0.0.1/32");
    PortcullisOptions options;
    options.upstream_port = postfix->port();
    options.pass_client = "xclient";
    options.settings["upstream"]["reply_timeout"] = "30";
    // These cases read Postfix's per-connection log lines (disconnect counts), so each session
    // gets its own connection; reuse has its own case with its own proxy below.
    options.settings["upstream"]["idle_timeout"] = "0";
    proxy = std::make_unique<PortcullisFixture>(options);
    instance = this;
  }
  ~PostfixEnvironment() {
    instance = nullptr;
    proxy.reset();  // before Postfix, so no session is cut by Postfix going away
  }

  std::unique_ptr<PostfixFixture> postfix;
  std::unique_ptr<PortcullisFixture> proxy;
  size_t accepted_at_client = 0;

  static PostfixEnvironment* instance;
};
PostfixEnvironment* PostfixEnvironment::instance = nullptr;

BOOST_TEST_GLOBAL_FIXTURE(PostfixEnvironment);

PostfixEnvironment& env() {
  return *PostfixEnvironment::instance;
}

SmtpTestClient client_via_proxy() {
  return SmtpTestClient("127.0.0.1", env().proxy->port(),
                        {.source_address = client_address, .timeout = 30s});
}

// "2.0.0 Ok: queued as ABC123" -> "ABC123"
std::string postfix_queue_id(const SmtpReply& reply) {
  const std::string marker = "queued as ";
  const std::string text = reply.text();
  const size_t at = text.find(marker);
  return at == std::string::npos ? std::string() : text.substr(at + marker.size());
}

// The Received header Postfix wrote for queue id `queue_id`, unfolded; "" when absent.
std::string postfix_received_header(const std::string& dump, const std::string& queue_id) {
  const size_t id_at = dump.find("(Postfix) with ESMTP id " + queue_id);
  if (id_at == std::string::npos) return {};
  const size_t start = dump.rfind("Received: ", id_at);
  if (start == std::string::npos) return {};
  return dump.substr(start, id_at - start + queue_id.size() + 24);
}

std::string line_containing(const std::string& text, const std::string& needle) {
  for (const auto& line : split_lines(text)) {
    if (contains(line, needle)) return line;
  }
  return {};
}

void check_client_2xx_equals_sink_messages() {
  auto& sink = env().postfix->relay_sink();
  sink.wait_for_messages(env().accepted_at_client, 30s);
  BOOST_TEST(
      sink.message_count() == env().accepted_at_client,
      "2xx at the client: " << env().accepted_at_client
                            << ", messages at Postfix's relay sink: " << sink.message_count());
  BOOST_TEST(env().proxy->running(), env().proxy->diagnostics());
}

}  // namespace

BOOST_AUTO_TEST_CASE(postfix_sees_the_real_client_address) {
  auto client = client_via_proxy();
  BOOST_TEST(client.read_reply().code == 220);
  const SmtpReply ehlo = client.command(std::string("EHLO ") + client_helo);
  BOOST_TEST(ehlo.code == 250);
  BOOST_TEST(!contains(ehlo.text(), "XCLIENT"));
  BOOST_TEST(client.command("MAIL FROM:<sender@example.test>").code == 250);
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  BOOST_TEST(client.command("DATA").code == 354);
  client.send(dot_stuff(make_message(3000, "xclient", "XCLIENT-MARKER")) + ".\r\n");
  const SmtpReply queued = client.read_reply();
  BOOST_TEST(queued.code == 250, queued.describe());
  if (queued.code / 100 == 2) ++env().accepted_at_client;
  // Postfix's own final reply, unchanged: it names Postfix's queue id.
  BOOST_TEST(queued.enhanced() == "2.0.0");
  const std::string queue_id = postfix_queue_id(queued);
  BOOST_REQUIRE(!queue_id.empty());
  BOOST_TEST(client.command("QUIT").code == 221);

  check_client_2xx_equals_sink_messages();
  const std::string dump = env().postfix->relay_sink().message_with("XCLIENT-MARKER");
  const std::string received = postfix_received_header(dump, queue_id);
  BOOST_TEST_MESSAGE("Postfix's Received header: " << printable(received));
  BOOST_TEST(contains(received, "[127.0.0.2]"), printable(dump, 2000));
  BOOST_TEST(!contains(received, "127.0.0.1"), printable(received));
  // After XCLIENT the proxy says EHLO again with the client's own HELO name.
  BOOST_TEST(contains(received, std::string("from ") + client_helo + " "), printable(received));

  BOOST_TEST(env().postfix->wait_for_log(queue_id + ": client=", 10s));
  const std::string log = env().postfix->log();
  const std::string client_line = line_containing(log, queue_id + ": client=");
  BOOST_TEST(contains(client_line, "[127.0.0.2]"), client_line);
  BOOST_TEST(!contains(client_line, "127.0.0.1"), client_line);
  BOOST_TEST(env().postfix->wait_for_log("disconnect from unknown[127.0.0.2]", 10s), log);
}

BOOST_AUTO_TEST_CASE(open_relay_check_foreign_domain_refused_for_the_real_client) {
  // Control: the proxy's own address is in mynetworks and may relay anywhere, so a relay
  // refusal below can only come from Postfix judging 127.0.0.2.
  {
    SmtpTestClient direct("127.0.0.1", env().postfix->port());
    direct.read_reply();
    direct.command("EHLO control.example.test");
    direct.command("MAIL FROM:<sender@example.test>");
    BOOST_TEST(direct.command("RCPT TO:<victim@foreign.example>").code == 250);
    direct.command("QUIT");
  }
  // What Postfix itself tells 127.0.0.2.
  SmtpReply direct_refusal;
  {
    SmtpTestClient direct("127.0.0.1", env().postfix->port(), {.source_address = client_address});
    direct.read_reply();
    direct.command(std::string("EHLO ") + client_helo);
    direct.command("MAIL FROM:<sender@example.test>");
    direct_refusal = direct.command("RCPT TO:<victim@foreign.example>");
    direct.command("QUIT");
  }
  BOOST_TEST(direct_refusal.code == 554);
  BOOST_TEST(direct_refusal.enhanced() == "5.7.1");

  auto client = client_via_proxy();
  BOOST_TEST(client.read_reply().code == 220);
  BOOST_TEST(client.command(std::string("EHLO ") + client_helo).code == 250);
  BOOST_TEST(client.command("MAIL FROM:<sender@example.test>").code == 250);
  const SmtpReply refusal = client.command("RCPT TO:<victim@foreign.example>");
  BOOST_TEST(refusal.code == 554);
  BOOST_TEST(refusal.enhanced() == "5.7.1");
  BOOST_TEST(contains(refusal.text(), "Relay access denied"));
  BOOST_TEST(refusal.raw == direct_refusal.raw,
             "via Portcullis: " << refusal.describe() << "\ndirect: " << direct_refusal.describe());
  // No accepted recipient: DATA must not start a message.
  const SmtpReply data = client.command("DATA");
  BOOST_TEST(data.code == 554, data.describe());
  BOOST_TEST(data.enhanced() == "5.5.1", data.describe());
  BOOST_TEST(client.command("QUIT").code == 221);
  BOOST_TEST(env().postfix->wait_for_log(
      "reject: RCPT from unknown[127.0.0.2]: 554 5.7.1 <victim@foreign.example>", 10s));
  check_client_2xx_equals_sink_messages();
}

BOOST_AUTO_TEST_CASE(pipelined_session_with_a_refused_recipient) {
  auto client = client_via_proxy();
  BOOST_TEST(client.read_reply().code == 220);
  client.send(std::string("EHLO ") + client_helo +
              "\r\n"
              "MAIL FROM:<sender@example.test>\r\n"
              "RCPT TO:<b@example.test>\r\n"
              "RCPT TO:<victim@foreign.example>\r\n"
              "RCPT TO:<c@example.test>\r\n"
              "DATA\r\n" +
              dot_stuff(make_message(2000, "pipelined", "POSTFIX-PIPELINED-MARKER")) +
              ".\r\nQUIT\r\n");
  std::vector<SmtpReply> replies;
  for (int i = 0; i < 8; ++i)
    replies.push_back(client.read_reply());
  std::vector<int> codes;
  for (const auto& reply : replies)
    codes.push_back(reply.code);
  BOOST_TEST(codes == (std::vector<int>{250, 250, 250, 554, 250, 354, 250, 221}),
             boost::test_tools::per_element());
  BOOST_TEST(contains(replies[3].text(), "Relay access denied"));
  if (replies[6].code / 100 == 2) ++env().accepted_at_client;
  check_client_2xx_equals_sink_messages();
  const std::string dump = env().postfix->relay_sink().message_with("POSTFIX-PIPELINED-MARKER");
  BOOST_TEST(!dump.empty());
  BOOST_TEST(!contains(dump, "victim@foreign.example"));
}

BOOST_AUTO_TEST_CASE(several_transactions_one_postfix_session) {
  auto client = client_via_proxy();
  BOOST_TEST(client.read_reply().code == 220);
  BOOST_TEST(client.command(std::string("EHLO ") + client_helo).code == 250);
  for (int n = 1; n <= 3; ++n) {
    BOOST_TEST(client.command("MAIL FROM:<sender@example.test>").code == 250);
    BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
    BOOST_TEST(client.command("DATA").code == 354);
    client.send(dot_stuff(make_message(800, "multi", fmt::format("POSTFIX-MULTI-{}", n))) +
                ".\r\n");
    const SmtpReply reply = client.read_reply();
    BOOST_TEST(reply.code == 250, reply.describe());
    if (reply.code / 100 == 2) ++env().accepted_at_client;
  }
  BOOST_TEST(client.command("QUIT").code == 221);
  check_client_2xx_equals_sink_messages();
  // One Postfix session for the three messages: a single disconnect line counting 3 mails.
  BOOST_TEST(env().postfix->wait_for_log("mail=3 rcpt=3 data=3", 10s), env().postfix->log());
}

// A connection kept from one session serves the next with the next client's identity and
// nothing else: the first client (127.0.0.1, in mynetworks) may relay to a foreign domain, the
// second (127.0.0.2) on the same Postfix connection may not, and each message's Received
// header and log line name its own client.
namespace {

// A proxy in front of the shared Postfix that keeps connections, with one worker: one pool for
// every session.
PortcullisOptions keeping_one_pool() {
  PortcullisOptions options;
  options.upstream_port = env().postfix->port();
  options.pass_client = "xclient";
  options.settings["server"]["workers"] = "1";
  options.settings["upstream"]["reply_timeout"] = "30";
  options.settings["upstream"]["idle_timeout"] = "10";
  return options;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_kept_connection_carries_the_next_clients_identity_and_trust) {
  PortcullisFixture proxy(keeping_one_pool());

  struct Session {
    std::string source, helo, marker;
    int foreign_rcpt;  // the reply Postfix must give to RCPT TO:<victim@foreign.example>
    std::string queue_id;
  };
  std::vector<Session> sessions = {
      {"127.0.0.1", "trusted.example.test", "REUSE-TRUSTED", 250, {}},
      {"127.0.0.2", "untrusted.example.test", "REUSE-UNTRUSTED", 554, {}}};
  for (Session& session : sessions) {
    SmtpTestClient client("127.0.0.1", proxy.port(),
                          {.source_address = session.source, .timeout = 30s});
    BOOST_TEST(client.read_reply().code == 220);
    BOOST_TEST(client.command("EHLO " + session.helo).code == 250);
    BOOST_TEST(client.command("MAIL FROM:<sender@example.test>").code == 250);
    const SmtpReply foreign = client.command("RCPT TO:<victim@foreign.example>");
    BOOST_TEST(foreign.code == session.foreign_rcpt, session.source << ": " << foreign.describe());
    BOOST_TEST(client.command("RSET").code == 250);  // nothing goes to the foreign domain
    BOOST_TEST(client.command("MAIL FROM:<sender@example.test>").code == 250);
    BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
    BOOST_TEST(client.command("DATA").code == 354);
    client.send(dot_stuff(make_message(900, "reuse", session.marker)) + ".\r\n");
    const SmtpReply queued = client.read_reply();
    BOOST_TEST(queued.code == 250, queued.describe());
    if (queued.code / 100 == 2) ++env().accepted_at_client;
    session.queue_id = postfix_queue_id(queued);
    BOOST_TEST(client.command("QUIT").code == 221);
    BOOST_TEST(client.wait_closed(5s));
  }
  BOOST_REQUIRE(!sessions[0].queue_id.empty());
  BOOST_REQUIRE(!sessions[1].queue_id.empty());
  check_client_2xx_equals_sink_messages();

  for (const Session& session : sessions) {
    const std::string dump = env().postfix->relay_sink().message_with(session.marker);
    const std::string received = postfix_received_header(dump, session.queue_id);
    BOOST_TEST(contains(received, "from " + session.helo + " "), printable(received));
    BOOST_TEST(contains(received, "[" + session.source + "]"), printable(received));
  }
  const std::string untrusted_received = postfix_received_header(
      env().postfix->relay_sink().message_with("REUSE-UNTRUSTED"), sessions[1].queue_id);
  BOOST_TEST(!contains(untrusted_received, "127.0.0.1"), printable(untrusted_received));

  // One smtpd process, one connection: both queue ids were logged by the same smtpd, with no
  // disconnect from it in between.
  BOOST_REQUIRE(env().postfix->wait_for_log(sessions[1].queue_id + ": client=", 10s));
  const std::string log = env().postfix->log();
  const std::regex smtpd_pid(R"(postfix/smtpd\[(\d+)\])");
  auto pid_of = [&](const std::string& line) {
    std::smatch match;
    return std::regex_search(line, match, smtpd_pid) ? match[1].str() : std::string();
  };
  const std::string first_line = line_containing(log, sessions[0].queue_id + ": client=");
  const std::string second_line = line_containing(log, sessions[1].queue_id + ": client=");
  BOOST_TEST(contains(first_line, "[127.0.0.1]"), first_line);
  BOOST_TEST(contains(second_line, "[127.0.0.2]"), second_line);
  const std::string pid = pid_of(first_line);
  BOOST_REQUIRE(!pid.empty());
  BOOST_TEST(pid_of(second_line) == pid, first_line << "\n" << second_line);
  const size_t first_at = log.find(first_line);
  const size_t second_at = log.find(second_line);
  BOOST_REQUIRE(first_at < second_at);
  const std::string between = log.substr(first_at, second_at - first_at);
  BOOST_TEST(!contains(between, "postfix/smtpd[" + pid + "]: disconnect from"), between);
  // The relay refusal for the second client came from that same smtpd.
  const std::string refusal_line =
      line_containing(log.substr(first_at), "reject: RCPT from unknown[127.0.0.2]");
  BOOST_TEST(pid_of(refusal_line) == pid, refusal_line);
}

// Clients from the Internet are not in smtpd_authorized_xclient_hosts, and Postfix judges a
// second XCLIENT on a connection by the client the first one named: it answers 550 5.7.0. The
// proxy must then stop keeping connections (one failed attempt, one warning), and every message
// still goes through.
BOOST_AUTO_TEST_CASE(an_upstream_that_refuses_a_second_xclient_gets_no_more_kept_connections) {
  PortcullisFixture proxy(keeping_one_pool());

  const std::vector<std::string> sources = {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"};
  for (const std::string& source : sources) {
    SmtpTestClient client("127.0.0.1", proxy.port(), {.source_address = source, .timeout = 30s});
    BOOST_TEST(client.read_reply().code == 220);
    BOOST_TEST(client.command("EHLO untrusted.example.test").code == 250);
    BOOST_TEST(client.command("MAIL FROM:<sender@example.test>").code == 250, source);
    BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250, source);
    BOOST_TEST(client.command("DATA").code == 354);
    client.send(dot_stuff(make_message(500, "no-reuse", "NO-REUSE-" + source)) + ".\r\n");
    const SmtpReply queued = client.read_reply();
    BOOST_TEST(queued.code == 250, source << ": " << queued.describe());
    if (queued.code / 100 == 2) ++env().accepted_at_client;
    BOOST_TEST(client.command("QUIT").code == 221);
    BOOST_TEST(client.wait_closed(5s));
  }
  check_client_2xx_equals_sink_messages();
  // The second session tried the kept connection once; after that, nothing was kept.
  const auto failed = proxy.events_named("upstream_reuse_failed");
  BOOST_TEST(failed.size() == 1u, proxy.log_text());
  if (!failed.empty()) BOOST_TEST(contains(failed[0].field("reply"), "550"), failed[0].raw);
  BOOST_TEST(proxy.events_named("upstream_refuses_reuse").size() == 1u, proxy.log_text());
}

namespace {

std::string big_endian_16(unsigned value) {
  return {static_cast<char>((value >> 8) & 0xFF), static_cast<char>(value & 0xFF)};
}

std::string ipv6_bytes(const std::string& text) {
  unsigned char bytes[16] = {};
  if (inet_pton(AF_INET6, text.c_str(), bytes) != 1) throw std::invalid_argument(text);
  return std::string(reinterpret_cast<const char*>(bytes), sizeof bytes);
}

// A PROXY v2 header, command PROXY, AF_INET6 over STREAM.
std::string v2_proxy_ipv6(const std::string& source, const std::string& destination,
                          unsigned source_port, unsigned destination_port) {
  const std::string body = ipv6_bytes(source) + ipv6_bytes(destination) +
                           big_endian_16(source_port) + big_endian_16(destination_port);
  return std::string("\r\n\r\n\0\r\nQUIT\n", 12) + '\x21' + '\x21' + big_endian_16(body.size()) +
         body;
}

}  // namespace

// Issue 11 point 2: what dual-stack load balancers send, a client address ::ffff:127.0.0.9 in a
// v1 TCP6 or v2 AF_INET6 header, is the IPv4 client 127.0.0.9. This Postfix runs with
// inet_protocols = ipv4 (scripts/postfix-instance.sh) and refuses XCLIENT ADDR=IPV6:... with
// "501 5.5.4 Bad ADDR syntax": only an address normalised to IPv4 gets the message through,
// and Postfix must log and write 127.0.0.9.
BOOST_AUTO_TEST_CASE(an_ipv4_mapped_address_in_a_proxy_header_reaches_postfix_as_ipv4) {
  PortcullisOptions options;
  options.upstream_port = env().postfix->port();
  options.pass_client = "xclient";
  options.listen_settings = {{"proxy_protocol", "true"}};
  options.settings["trust"] = {{"proxy_peers", "[\"127.0.0.1/32\"]"}};
  options.settings["upstream"]["reply_timeout"] = "30";
  options.settings["upstream"]["idle_timeout"] = "0";
  // The fixture's readiness check sends no PROXY header and would be closed.
  options.wait_ready = false;
  PortcullisFixture proxy(options);
  BOOST_REQUIRE_MESSAGE(proxy.wait_for_event("upstream_reachable", 20s), proxy.diagnostics());

  struct Header {
    std::string name, bytes, marker;
  };
  const std::vector<Header> headers = {
      {"v1 TCP6", "PROXY TCP6 ::ffff:127.0.0.9 ::1 40000 25\r\n", "MAPPED-V1-MARKER"},
      {"v2 AF_INET6", v2_proxy_ipv6("::ffff:127.0.0.9", "::1", 40001, 25), "MAPPED-V2-MARKER"}};
  for (const Header& header : headers) {
    BOOST_TEST_CONTEXT(header.name) {
      // Sent from the trusted peer 127.0.0.1; the header names the client.
      SmtpTestClient client("127.0.0.1", proxy.port(),
                            {.source_address = "127.0.0.1", .timeout = 30s});
      BOOST_REQUIRE(client.send(header.bytes));
      const SmtpReply banner = client.read_reply(5s);
      BOOST_REQUIRE_MESSAGE(banner.code == 220, banner.describe() << "\n" << proxy.diagnostics());
      BOOST_REQUIRE(client.command("EHLO mapped.example.test").code == 250);
      const SmtpReply mail = client.command("MAIL FROM:<sender@example.test>");
      BOOST_TEST_REQUIRE(mail.code == 250, mail.describe() << "\n" << proxy.diagnostics());
      BOOST_TEST_REQUIRE(client.command("RCPT TO:<b@example.test>").code == 250);
      BOOST_TEST_REQUIRE(client.command("DATA").code == 354);
      client.send(dot_stuff(make_message(900, "mapped", header.marker)) + ".\r\n");
      const SmtpReply queued = client.read_reply();
      BOOST_TEST(queued.code == 250, queued.describe());
      if (queued.code / 100 == 2) ++env().accepted_at_client;
      const std::string queue_id = postfix_queue_id(queued);
      BOOST_TEST_REQUIRE(!queue_id.empty());
      BOOST_TEST(client.command("QUIT").code == 221);

      // Postfix's log and its Received header name the IPv4 client, never an IPv6 form.
      BOOST_TEST_REQUIRE(env().postfix->wait_for_log(queue_id + ": client=", 10s),
                         env().postfix->log());
      const std::string client_line = line_containing(env().postfix->log(), queue_id + ": client=");
      BOOST_TEST(contains(client_line, "client=unknown[127.0.0.9]"), client_line);
      BOOST_TEST(!contains(client_line, "ffff"), client_line);
      auto& sink = env().postfix->relay_sink();
      BOOST_TEST_REQUIRE(
          wait_until([&] { return !sink.message_with(header.marker).empty(); }, 30s));
      const std::string dump = sink.message_with(header.marker);
      const std::string received = postfix_received_header(dump, queue_id);
      BOOST_TEST_MESSAGE("Postfix's Received header: " << printable(received));
      BOOST_TEST(contains(received, "[127.0.0.9]"), printable(dump, 2000));
      for (const char* ipv6_form : {"IPV6:", "IPv6:", "ffff"}) {
        BOOST_TEST(!contains(received, ipv6_form), printable(received));
      }
    }
  }
  // The proxy itself said 127.0.0.9 too: the session's log names it as the client.
  BOOST_TEST(proxy.wait_for_event(
                 "proxy_header", 5s,
                 [](const LogEvent& event) { return event.field("client") == "127.0.0.9:40000"; }),
             proxy.diagnostics());
  BOOST_TEST(!contains(proxy.log_text(), "::ffff:"), proxy.diagnostics());
  check_client_2xx_equals_sink_messages();
}

// Issue 13: the fcrdns filter's confirmed name reaches Postfix as XCLIENT NAME, so Postfix logs
// and writes the client by that name without asking DNS itself (its own resolver knows nothing
// of client.test), and the unconfirmed PTR name only as the reverse name.
BOOST_AUTO_TEST_CASE(a_forward_confirmed_client_name_reaches_postfix_through_xclient) {
  TestDnsServer dns;
  dns.add_ptr("10.2.0.192.in-addr.arpa", "mail.client.test");
  dns.add_a("mail.client.test", "192.0.2.10");
  PortcullisOptions options;
  options.upstream_port = env().postfix->port();
  options.pass_client = "xclient";
  options.listen_settings = {{"proxy_protocol", "true"}};
  options.settings["trust"] = {{"proxy_peers", "[\"127.0.0.1/32\"]"}};
  options.settings["upstream"]["reply_timeout"] = "30";
  options.settings["upstream"]["idle_timeout"] = "0";
  options.settings["dns"] = {{"resolvers", fmt::format("[\"{}\"]", dns.address())},
                             {"timeout", "2"}};
  options.settings["filters"] = {{"chain", "[\"fcrdns\"]"}};
  options.settings["filter.fcrdns"] = {{"timeout", "5"}};
  // The fixture's readiness check sends no PROXY header and would be closed.
  options.wait_ready = false;
  PortcullisFixture proxy(options);
  BOOST_REQUIRE_MESSAGE(proxy.wait_for_event("upstream_reachable", 20s), proxy.diagnostics());

  SmtpTestClient client("127.0.0.1", proxy.port(), {.source_address = "127.0.0.1", .timeout = 30s});
  BOOST_REQUIRE(client.send("PROXY TCP4 192.0.2.10 127.0.0.1 40000 25\r\n"));
  const SmtpReply banner = client.read_reply();
  BOOST_REQUIRE_MESSAGE(banner.code == 220, banner.describe() << "\n" << proxy.diagnostics());
  BOOST_REQUIRE(client.command("EHLO helo.client.test").code == 250);
  const SmtpReply mail = client.command("MAIL FROM:<sender@example.test>");
  BOOST_TEST_REQUIRE(mail.code == 250, mail.describe() << "\n" << proxy.diagnostics());
  BOOST_TEST_REQUIRE(client.command("RCPT TO:<b@example.test>").code == 250);
  BOOST_TEST_REQUIRE(client.command("DATA").code == 354);
  client.send(dot_stuff(make_message(900, "fcrdns", "FCRDNS-POSTFIX-MARKER")) + ".\r\n");
  const SmtpReply queued = client.read_reply();
  BOOST_TEST(queued.code == 250, queued.describe());
  if (queued.code / 100 == 2) ++env().accepted_at_client;
  const std::string queue_id = postfix_queue_id(queued);
  BOOST_TEST_REQUIRE(!queue_id.empty());
  BOOST_TEST(client.command("QUIT").code == 221);

  BOOST_TEST_REQUIRE(env().postfix->wait_for_log(queue_id + ": client=", 10s),
                     env().postfix->log());
  const std::string client_line = line_containing(env().postfix->log(), queue_id + ": client=");
  BOOST_TEST(contains(client_line, "client=mail.client.test[192.0.2.10]"), client_line);
  auto& sink = env().postfix->relay_sink();
  BOOST_TEST_REQUIRE(
      wait_until([&] { return !sink.message_with("FCRDNS-POSTFIX-MARKER").empty(); }, 30s));
  const std::string received =
      postfix_received_header(sink.message_with("FCRDNS-POSTFIX-MARKER"), queue_id);
  BOOST_TEST(contains(received, "from helo.client.test (mail.client.test [192.0.2.10])"),
             printable(received));
  BOOST_TEST(dns.query_count("10.2.0.192.in-addr.arpa") >= 1u);
  check_client_2xx_equals_sink_messages();
}
