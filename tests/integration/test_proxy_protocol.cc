// PROXY protocol intake, end to end: a listener with proxy_protocol = true in front of a real
// Postfix (XCLIENT). Headers from the trusted peer 127.0.0.1 make their address the client's
// everywhere (Portcullis's log and Received header, Postfix's log); an untrusted peer and every
// malformed or missing header are closed without a banner.
// Spec: http://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
#define BOOST_TEST_MODULE integration_proxy_protocol
#include <arpa/inet.h>

#include <fmt/core.h>
#include <boost/test/unit_test.hpp>
#include <memory>

#include "fixtures.h"
#include "test_support.h"
#include "tls_support.h"

using namespace portcullis::test;

namespace {

constexpr int kProxyTimeoutSeconds = 1;

// scripts/postfix-instance.sh writes inet_protocols = ipv4, and with it Postfix answers
// "501 5.5.4 Bad ADDR syntax" to XCLIENT ADDR=IPV6:…, so no IPv6 client could reach it. This
// private instance is restarted with both protocols (its smtpd still listens on 127.0.0.1
// only: master.cf names the address).
void accept_ipv6_xclient(const PostfixFixture& postfix) {
  const std::string config_dir = (postfix.dir() / "etc").string();
  for (const std::vector<std::string>& step :
       {std::vector<std::string>{"postconf", "-c", config_dir, "-e", "inet_protocols = all"},
        std::vector<std::string>{"postfix", "-c", config_dir, "stop"},
        std::vector<std::string>{"postfix", "-c", config_dir, "start"}}) {
    const CommandResult result = run_command(step, 30s);
    if (!result.status.success()) {
      throw std::runtime_error(
          fmt::format("{} {}: {}{}", step[0], step.back(), result.out, result.err));
    }
  }
  if (!wait_until_listens(postfix.port(), 15s)) {
    throw std::runtime_error("Postfix did not listen again after the restart");
  }
}

struct ProxyEnvironment {
  ProxyEnvironment() {
    if (!running_as_root()) throw std::runtime_error("a private Postfix needs root");
    postfix = std::make_unique<PostfixFixture>("127.0.0.1/32");
    accept_ipv6_xclient(*postfix);
    PortcullisOptions options;
    options.upstream_port = postfix->port();
    options.pass_client = "xclient";
    options.listen_settings = {{"proxy_protocol", "true"}};
    options.settings["trust"] = {{"proxy_peers", "[\"127.0.0.1/32\"]"},
                                 {"proxy_timeout", std::to_string(kProxyTimeoutSeconds)}};
    options.settings["upstream"]["reply_timeout"] = "30";
    // Well above proxy_timeout, so a close at the command timeout cannot pass for it.
    options.settings["timeouts"]["command"] = "10";
    // The fixture's own readiness check would send no header and be closed.
    options.wait_ready = false;
    proxy = std::make_unique<PortcullisFixture>(options);
    if (!proxy->wait_for_event("upstream_reachable", 20s)) {
      throw std::runtime_error("portcullis never reached Postfix\n" + proxy->diagnostics());
    }
    instance = this;
  }
  ~ProxyEnvironment() {
    instance = nullptr;
    proxy.reset();  // before Postfix, so no session is cut by Postfix going away
  }

  std::unique_ptr<PostfixFixture> postfix;
  std::unique_ptr<PortcullisFixture> proxy;

  static ProxyEnvironment* instance;
};
ProxyEnvironment* ProxyEnvironment::instance = nullptr;

BOOST_TEST_GLOBAL_FIXTURE(ProxyEnvironment);

ProxyEnvironment& env() {
  return *ProxyEnvironment::instance;
}

SmtpTestClient connect_from(const std::string& source) {
  return SmtpTestClient("127.0.0.1", env().proxy->port(),
                        {.source_address = source, .timeout = 30s});
}

std::string v2_signature() {
  return std::string("\r\n\r\n\0\r\nQUIT\n", 12);
}

std::string big_endian_16(unsigned value) {
  return {static_cast<char>((value >> 8) & 0xFF), static_cast<char>(value & 0xFF)};
}

std::string address_bytes(int family, const std::string& text) {
  unsigned char bytes[16] = {};
  if (inet_pton(family, text.c_str(), bytes) != 1) throw std::invalid_argument(text);
  return std::string(reinterpret_cast<const char*>(bytes), family == AF_INET ? 4 : 16);
}

// A v2 header: signature, version 2 and `command`, `family_transport`, then `body` with its
// length.
std::string v2_header(unsigned command, unsigned family_transport, const std::string& body) {
  return v2_signature() + static_cast<char>(0x20 | command) + static_cast<char>(family_transport) +
         big_endian_16(body.size()) + body;
}

std::string v2_proxy_ipv4(const std::string& source, const std::string& destination,
                          unsigned source_port, unsigned destination_port) {
  return v2_header(1, 0x11,
                   address_bytes(AF_INET, source) + address_bytes(AF_INET, destination) +
                       big_endian_16(source_port) + big_endian_16(destination_port));
}

// With a NOOP TLV (type 0x04) after the addresses: TLVs are skipped by their length.
std::string v2_proxy_ipv6_with_tlv(const std::string& source, const std::string& destination,
                                   unsigned source_port, unsigned destination_port) {
  const std::string tlv = std::string(1, '\x04') + big_endian_16(5) + "noop!";
  return v2_header(1, 0x21,
                   address_bytes(AF_INET6, source) + address_bytes(AF_INET6, destination) +
                       big_endian_16(source_port) + big_endian_16(destination_port) + tlv);
}

// "2.0.0 Ok: queued as ABC123" -> "ABC123"
std::string postfix_queue_id(const SmtpReply& reply) {
  const std::string marker = "queued as ";
  const std::string text = reply.text();
  const size_t at = text.find(marker);
  return at == std::string::npos ? std::string() : text.substr(at + marker.size());
}

std::string line_containing(const std::string& text, const std::string& needle) {
  for (const auto& line : split_lines(text)) {
    if (contains(line, needle)) return line;
  }
  return {};
}

// The line before the first one containing `needle` ("" when there is none).
std::string line_before(const std::string& text, const std::string& needle) {
  const std::vector<std::string> lines = split_lines(text);
  for (size_t i = 1; i < lines.size(); ++i) {
    if (contains(lines[i], needle)) return lines[i - 1];
  }
  return {};
}

struct ProxiedDelivery {
  std::string header;            // the PROXY header bytes
  std::string postfix_client;    // in Postfix's "client=" log line, e.g. "[192.0.2.55]"
  std::string received_address;  // in Portcullis's Received header, e.g. "[192.0.2.55]"
  std::string log_client;        // the proxy_header event's "client", e.g. "192.0.2.55:40001"
  std::string marker;
};

// Sends the header from the trusted 127.0.0.1, delivers a message to Postfix through Portcullis
// and checks that the header's address is the client in every place that names one.
void deliver_with_header(const ProxiedDelivery& expected) {
  auto client = connect_from("127.0.0.1");
  BOOST_REQUIRE(client.send(expected.header));
  const SmtpReply banner = client.read_reply(5s);
  BOOST_REQUIRE_MESSAGE(banner.code == 220,
                        "banner after a good header: " << banner.describe() << "\n"
                                                       << env().proxy->diagnostics());
  BOOST_REQUIRE(client.command("EHLO proxied.example.test").code == 250);
  const SmtpReply mail = client.command("MAIL FROM:<sender@example.test>");
  BOOST_REQUIRE_MESSAGE(mail.code == 250, mail.describe() << "\n" << env().proxy->diagnostics());
  const SmtpReply rcpt = client.command("RCPT TO:<rcpt@example.test>");
  BOOST_REQUIRE_MESSAGE(rcpt.code == 250, rcpt.describe());
  BOOST_REQUIRE(client.command("DATA").code == 354);
  client.send(dot_stuff(make_message(1500, "proxied", expected.marker)) + ".\r\n");
  const SmtpReply queued = client.read_reply();
  BOOST_REQUIRE_MESSAGE(queued.code == 250, queued.describe());
  const std::string queue_id = postfix_queue_id(queued);
  BOOST_REQUIRE(!queue_id.empty());
  BOOST_TEST(client.command("QUIT").code == 221);

  BOOST_TEST(env().proxy->wait_for_event("proxy_header", 5s,
                                         [&](const LogEvent& event) {
                                           return event.field("client") == expected.log_client;
                                         }),
             env().proxy->diagnostics());

  BOOST_REQUIRE_MESSAGE(env().postfix->wait_for_log(queue_id + ": client=", 15s),
                        env().postfix->log());
  const std::string client_line = line_containing(env().postfix->log(), queue_id + ": client=");
  BOOST_TEST(contains(client_line, expected.postfix_client), client_line);

  auto& sink = env().postfix->relay_sink();
  BOOST_REQUIRE(wait_until([&] { return !sink.message_with(expected.marker).empty(); }, 30s));
  const std::string relayed = sink.message_with(expected.marker);
  const std::string ours = line_before(relayed, "by portcullis.test (Portcullis)");
  BOOST_TEST(contains(ours, "(unknown " + expected.received_address + ")"),
             printable(relayed, 1500));
  BOOST_TEST(!contains(ours, "127.0.0.1"), ours);
}

// The peer must be closed without a single byte (no banner), within the proxy timeout plus a
// margin, and the refusal logged for its connection.
void expect_closed_without_banner(SmtpTestClient& client, const std::string& what,
                                  const std::string& log_event = "proxy_header_refused") {
  const std::string client_text = fmt::format("127.0.0.1:{}", client.local_port());
  const auto started = Clock::now();
  const std::string received = client.read_until_close(3s);
  const long long waited = elapsed_ms(started);
  BOOST_TEST(received.empty(), what << ": got " << printable(received));
  if (client.peer_closed()) {
    BOOST_TEST(waited <= kProxyTimeoutSeconds * 1000 + 1500,
               what << ": closed only after " << waited << " ms");
  } else {
    BOOST_TEST(client.peer_closed(), what << ": still open after " << waited << " ms");
  }
  // Logged before the close: no need to wait long.
  BOOST_TEST(env().proxy->wait_for_event(
                 log_event, 1s,
                 [&](const LogEvent& event) { return event.field("client") == client_text; }),
             what << ": no " << log_event << " event for " << client_text);
}

void expect_refused(const std::string& what, const std::string& bytes) {
  auto client = connect_from("127.0.0.1");
  if (!bytes.empty()) BOOST_REQUIRE(client.send(bytes));
  expect_closed_without_banner(client, what);
}

}  // namespace

BOOST_AUTO_TEST_CASE(v1_tcp4_header_makes_its_address_the_client) {
  deliver_with_header({"PROXY TCP4 192.0.2.55 127.0.0.1 40001 25\r\n", "[192.0.2.55]",
                       "[192.0.2.55]", "192.0.2.55:40001", "PROXY-V1-TCP4-MARKER"});
}

BOOST_AUTO_TEST_CASE(v1_tcp6_header_makes_its_address_the_client) {
  deliver_with_header({"PROXY TCP6 2001:db8::55 2001:db8::1 40002 25\r\n", "[2001:db8::55]",
                       "[IPv6:2001:db8::55]", "[2001:db8::55]:40002", "PROXY-V1-TCP6-MARKER"});
}

BOOST_AUTO_TEST_CASE(v2_ipv4_header_makes_its_address_the_client) {
  deliver_with_header({v2_proxy_ipv4("192.0.2.56", "127.0.0.1", 40003, 25), "[192.0.2.56]",
                       "[192.0.2.56]", "192.0.2.56:40003", "PROXY-V2-IPV4-MARKER"});
}

BOOST_AUTO_TEST_CASE(v2_ipv6_header_with_a_tlv_makes_its_address_the_client) {
  deliver_with_header({v2_proxy_ipv6_with_tlv("2001:db8::57", "2001:db8::1", 40004, 25),
                       "[2001:db8::57]", "[IPv6:2001:db8::57]", "[2001:db8::57]:40004",
                       "PROXY-V2-IPV6-MARKER"});
}

// v2 LOCAL and v1 UNKNOWN: the load balancer speaks for itself; the real endpoints stay.
BOOST_AUTO_TEST_CASE(local_and_unknown_headers_keep_the_real_peer) {
  for (const std::string& header : {v2_header(0, 0x00, ""), std::string("PROXY UNKNOWN\r\n")}) {
    auto client = connect_from("127.0.0.1");
    BOOST_REQUIRE(client.send(header));
    const SmtpReply banner = client.read_reply(5s);
    BOOST_TEST(banner.code == 220, printable(header) << ": " << banner.describe());
    if (banner.code != 220) continue;
    BOOST_TEST(client.command("EHLO local.example.test").code == 250);
    BOOST_TEST(client.command("QUIT").code == 221);
    const std::string client_text = fmt::format("127.0.0.1:{}", client.local_port());
    BOOST_TEST(env().proxy->wait_for_event("disconnect", 5s, [&](const LogEvent& event) {
      return event.field("client") == client_text;
    }));
  }
}

BOOST_AUTO_TEST_CASE(an_untrusted_peer_is_closed_without_a_banner) {
  auto client = connect_from("127.0.0.2");  // proxy_peers is 127.0.0.1/32
  BOOST_REQUIRE(client.send("PROXY TCP4 192.0.2.58 127.0.0.1 40005 25\r\n"));
  const std::string client_text = fmt::format("127.0.0.2:{}", client.local_port());
  const std::string received = client.read_until_close(3s);
  BOOST_TEST(client.peer_closed());
  BOOST_TEST(received.empty(), printable(received));
  BOOST_TEST(env().proxy->wait_for_event(
                 "proxy_untrusted", 5s,
                 [&](const LogEvent& event) { return event.field("client") == client_text; }),
             env().proxy->diagnostics());
  // The address in an untrusted header is never taken.
  BOOST_TEST(!contains(env().proxy->log_text(), "192.0.2.58"));
}

BOOST_AUTO_TEST_CASE(v1_without_crlf_in_107_octets_is_refused) {
  expect_refused("no CRLF in 107 octets", "PROXY UNKNOWN " + std::string(100, 'x') + "\r\n");
}

BOOST_AUTO_TEST_CASE(v1_with_a_lone_lf_is_refused) {
  expect_refused("lone LF", "PROXY TCP4 192.0.2.59 127.0.0.1 40006 25\n");
}

BOOST_AUTO_TEST_CASE(v2_with_a_bad_signature_is_refused) {
  std::string header = v2_proxy_ipv4("192.0.2.60", "127.0.0.1", 40007, 25);
  header[10] = 'X';  // "QUIT" -> "QUXT"
  expect_refused("bad v2 signature", header);
}

BOOST_AUTO_TEST_CASE(v2_with_version_other_than_2_is_refused) {
  std::string header = v2_proxy_ipv4("192.0.2.61", "127.0.0.1", 40008, 25);
  header[12] = '\x11';  // version 1, command PROXY
  expect_refused("v2 version 1", header);
}

BOOST_AUTO_TEST_CASE(v2_with_a_command_other_than_local_or_proxy_is_refused) {
  std::string header = v2_proxy_ipv4("192.0.2.62", "127.0.0.1", 40009, 25);
  header[12] = '\x22';  // version 2, command 2
  expect_refused("v2 command 2", header);
}

BOOST_AUTO_TEST_CASE(a_truncated_v2_header_is_closed_at_proxy_timeout) {
  const std::string header = v2_proxy_ipv4("192.0.2.63", "127.0.0.1", 40010, 25);
  expect_refused("truncated v2 header, then idle", header.substr(0, header.size() - 6));
}

BOOST_AUTO_TEST_CASE(no_header_at_all_is_closed_at_proxy_timeout) {
  expect_refused("no header (timeout)", "");
}

// Never guess whether a header is present: SMTP instead of a header is refused too.
BOOST_AUTO_TEST_CASE(smtp_instead_of_a_header_is_refused) {
  expect_refused("EHLO instead of a header", "EHLO client.example.test\r\n");
}
