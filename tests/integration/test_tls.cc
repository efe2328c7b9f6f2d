// The TLS front door, end to end: the real binary with certificates made at run time, driven by
// openssl s_client, swaks and a client that does its own handshakes, relaying to a recording
// upstream. Covers STARTTLS and implicit TLS delivery with Portcullis's Received header,
// STARTTLS command injection, SNI, resumption, renegotiation, submission rules, handshake
// failures and certificate reloads.
#define BOOST_TEST_MODULE integration_tls
#include <signal.h>

#include <fmt/core.h>
#include <boost/test/unit_test.hpp>
#include <memory>
#include <regex>

#include "fixtures.h"
#include "recording_upstream.h"
#include "test_support.h"
#include "tls_support.h"

using namespace portcullis::test;

namespace {

constexpr const char* kDefaultName = "a.example.test";
constexpr const char* kSniName = "b.example.test";

std::map<std::string, std::string> tls_block(const CertificatePair& pair) {
  return {{"certificate", toml_quoted(pair.certificate.string())},
          {"key", toml_quoted(pair.key.string())}};
}

// The first listener with TLS block "default" in `mode`; [tls.sni] serves kSniName and
// *.wild.example.test with its own certificate and asks for client certificates.
PortcullisOptions tls_options(uint16_t upstream_port, const std::string& mode,
                              const CertificatePair& default_pair,
                              const CertificatePair& sni_pair) {
  PortcullisOptions options;
  options.upstream_port = upstream_port;
  options.listen_settings = {{"mode", toml_quoted(mode)}, {"tls", toml_quoted("default")}};
  options.settings["tls.default"] = tls_block(default_pair);
  options.settings["tls.sni"] = tls_block(sni_pair);
  options.settings["tls.sni"]["sni"] =
      fmt::format("[{}, {}]", toml_quoted(kSniName), toml_quoted("*.wild.example.test"));
  options.settings["tls.sni"]["request_client_certificate"] = "true";
  // An smtps listener gives no plaintext banner: readiness is checked below instead.
  options.wait_ready = mode != "smtps";
  return options;
}

// A 220 over implicit TLS, retried until the first upstream probe has enabled the listener.
void wait_until_tls_banner(PortcullisFixture& proxy) {
  BOOST_REQUIRE_MESSAGE(proxy.wait_for_event("upstream_reachable", 15s), proxy.diagnostics());
  std::string last;
  const bool ready = wait_until(
      [&] {
        try {
          TlsSmtpClient client("127.0.0.1", proxy.port(), {.source_address = "", .timeout = 5s});
          std::string error;
          if (!client.start_tls({}, &error)) {
            last = error;
            return false;
          }
          const SmtpReply banner = client.read_reply();
          last = banner.describe();
          client.command("QUIT");
          return banner.code == 220;
        } catch (const std::exception& error) {
          last = error.what();
          return false;
        }
      },
      15s, 200ms);
  BOOST_REQUIRE_MESSAGE(ready, "no 220 over implicit TLS (last: " << last << ")\n"
                                                                  << proxy.diagnostics());
}

struct TlsEnvironment {
  TlsEnvironment() {
    certificates.chmod(0755);
    default_pair = make_self_signed_certificate(certificates.path(), "a", kDefaultName, "rsa");
    sni_pair = make_self_signed_certificate(certificates.path(), "b", kSniName, "ec");
    smtp = std::make_unique<PortcullisFixture>(
        tls_options(upstream.port(), "smtp", default_pair, sni_pair));
    submission = std::make_unique<PortcullisFixture>(
        tls_options(upstream.port(), "submission", default_pair, sni_pair));
    smtps = std::make_unique<PortcullisFixture>(
        tls_options(upstream.port(), "smtps", default_pair, sni_pair));
    wait_until_tls_banner(*smtps);
    instance = this;
  }
  ~TlsEnvironment() { instance = nullptr; }

  TempDir certificates{"portcullis-tls-certs"};
  CertificatePair default_pair;
  CertificatePair sni_pair;
  RecordingUpstream upstream;
  std::unique_ptr<PortcullisFixture> smtp;
  std::unique_ptr<PortcullisFixture> submission;
  std::unique_ptr<PortcullisFixture> smtps;

  static TlsEnvironment* instance;
};
TlsEnvironment* TlsEnvironment::instance = nullptr;

BOOST_TEST_GLOBAL_FIXTURE(TlsEnvironment);

TlsEnvironment& env() {
  return *TlsEnvironment::instance;
}

// The message the upstream received whose bytes contain `marker`; "" when none arrived in time.
std::string upstream_message_with(RecordingUpstream& upstream, const std::string& marker) {
  std::string found;
  upstream.wait_for(
      [&](const std::vector<RecordedConnection>& connections) {
        for (const auto& connection : connections) {
          for (const auto& message : connection.messages) {
            if (contains(message.raw, marker)) {
              found = message.raw;
              return true;
            }
          }
        }
        return false;
      },
      10s);
  return found;
}

struct ReceivedHeader {
  bool found = false;
  std::string helo, protocol, cipher, bits;
};

// Portcullis's own trace header, which must open the message (issue 3, item 3):
//   Received: from HELO (unknown [IP])\r\n\tby HOSTNAME (Portcullis) with ESMTPS id N\r\n
//   \t(using TLSv1.3 with cipher NAME (B/B bits));\r\n\tDATE\r\n
ReceivedHeader portcullis_received(const std::string& message, const std::string& with) {
  static const std::regex header(
      R"(^Received: from ([^ \r\n]+) \(unknown \[127\.0\.0\.1\]\)\r\n)"
      R"(\tby portcullis\.test \(Portcullis\) with ([A-Z]+) id [0-9]+\r\n)"
      R"(\t\(using (TLSv1\.[23]) with cipher ([A-Za-z0-9_-]+) \(([0-9]+)/[0-9]+ bits\)\);\r\n)"
      R"(\t[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} \+0000\r\n)");
  std::smatch match;
  ReceivedHeader parsed;
  if (!std::regex_search(message, match, header) || match[2].str() != with) return parsed;
  parsed.found = true;
  parsed.helo = match[1].str();
  parsed.protocol = match[3].str();
  parsed.cipher = match[4].str();
  parsed.bits = match[5].str();
  return parsed;
}

// Connects, reads the banner and EHLO reply and completes STARTTLS; fails the test otherwise.
void starttls(TlsSmtpClient& client, const TlsHandshakeOptions& handshake = {}) {
  const SmtpReply banner = client.read_reply();
  BOOST_REQUIRE_MESSAGE(banner.code == 220, banner.describe());
  const SmtpReply ehlo = client.command("EHLO tls-client.example.test");
  BOOST_REQUIRE_MESSAGE(ehlo.code == 250, ehlo.describe());
  BOOST_REQUIRE_MESSAGE(contains(ehlo.text(), "STARTTLS"), ehlo.describe());
  const SmtpReply ready = client.command("STARTTLS");
  BOOST_REQUIRE_MESSAGE(ready.code == 220, ready.describe());
  std::string error;
  BOOST_REQUIRE_MESSAGE(client.start_tls(handshake, &error), error);
}

bool offers_starttls(const SmtpReply& ehlo) {
  for (const auto& line : ehlo.lines) {
    if (starts_with_nocase(line, "STARTTLS")) return true;
  }
  return false;
}

size_t upstream_commands_containing(const std::string& needle) {
  size_t found = 0;
  for (const auto& connection : env().upstream.connections()) {
    for (const auto& command : connection.commands) {
      if (contains(command, needle)) ++found;
    }
  }
  return found;
}

void sighup(PortcullisFixture& proxy) {
  BOOST_REQUIRE(::kill(proxy.pid(), SIGHUP) == 0);
}

}  // namespace

BOOST_AUTO_TEST_CASE(s_client_starttls_delivers_with_tls_in_the_received_header) {
  const CommandResult run =
      run_s_client(env().smtp->port(), {"-starttls", "smtp"},
                   {"EHLO tls-client.example.test\r\n",
                    "MAIL FROM:<s@example.test>\r\nRCPT TO:<r@example.test>\r\nDATA\r\n",
                    "Subject: s_client\r\n\r\nS-CLIENT-MARKER\r\n.\r\n", "QUIT\r\n"});
  BOOST_TEST_MESSAGE("s_client: " << run.status.describe());
  std::smatch negotiated;
  const bool handshake = std::regex_search(
      run.out, negotiated, std::regex(R"(New, (TLSv1\.[23]), Cipher is ([A-Za-z0-9_-]+))"));
  BOOST_REQUIRE_MESSAGE(handshake, printable(run.out + run.err, 3000));
  BOOST_TEST(contains(run.out, "354 "), printable(run.out, 3000));
  BOOST_TEST(contains(run.out, "250 2.0.0 Ok: queued as QID"), printable(run.out, 3000));

  const std::string message = upstream_message_with(env().upstream, "S-CLIENT-MARKER");
  BOOST_REQUIRE_MESSAGE(!message.empty(), "the message did not reach the upstream\n"
                                              << env().smtp->diagnostics());
  const ReceivedHeader received = portcullis_received(message, "ESMTPS");
  BOOST_REQUIRE_MESSAGE(received.found, printable(message, 600));
  BOOST_TEST(received.helo == "tls-client.example.test");
  BOOST_TEST(received.protocol == negotiated[1].str());
  BOOST_TEST(received.cipher == negotiated[2].str());
  BOOST_TEST(env().smtp->running(), env().smtp->diagnostics());
}

BOOST_AUTO_TEST_CASE(swaks_starttls_delivers) {
  const CommandResult run = run_command(
      {"swaks", "--server", "127.0.0.1", "--port", std::to_string(env().smtp->port()), "--tls",
       "--from", "s@example.test", "--to", "r@example.test", "--helo", "swaks-tls.example.test",
       "--header", "Subject: swaks --tls", "--body", "SWAKS-STARTTLS-MARKER"},
      30s);
  const std::string output = run.out + run.err;
  BOOST_TEST(contains(output, "=== TLS started with cipher TLSv1."), printable(output, 3000));
  BOOST_TEST(contains(output, "<~  250 2.0.0 Ok: queued as QID"), printable(output, 3000));
  // swaks checks every reply up to the 221 to QUIT.
  BOOST_TEST(run.status.success(), run.status.describe() << "\n" << printable(output, 3000));

  const std::string message = upstream_message_with(env().upstream, "SWAKS-STARTTLS-MARKER");
  BOOST_REQUIRE_MESSAGE(!message.empty(), "the message did not reach the upstream\n"
                                              << env().smtp->diagnostics());
  const ReceivedHeader received = portcullis_received(message, "ESMTPS");
  BOOST_REQUIRE_MESSAGE(received.found, printable(message, 600));
  BOOST_TEST(received.helo == "swaks-tls.example.test");
  BOOST_TEST(contains(output, received.protocol + ":" + received.cipher + ":" + received.bits),
             "swaks negotiated something else than " << received.cipher << "\n"
                                                     << printable(output, 3000));
}

BOOST_AUTO_TEST_CASE(swaks_implicit_tls_on_an_smtps_listener_delivers) {
  const CommandResult run = run_command(
      {"swaks", "--server", "127.0.0.1", "--port", std::to_string(env().smtps->port()), "--tlsc",
       "--from", "s@example.test", "--to", "r@example.test", "--helo", "swaks-tlsc.example.test",
       "--header", "Subject: swaks --tlsc", "--body", "SWAKS-SMTPS-MARKER"},
      30s);
  const std::string output = run.out + run.err;
  BOOST_TEST(contains(output, "=== TLS started with cipher TLSv1."), printable(output, 3000));
  BOOST_TEST(contains(output, "<~  220 portcullis.test ESMTP"), printable(output, 3000));
  BOOST_TEST(contains(output, "<~  250 2.0.0 Ok: queued as QID"), printable(output, 3000));
  BOOST_TEST(run.status.success(), run.status.describe() << "\n" << printable(output, 3000));

  const std::string message = upstream_message_with(env().upstream, "SWAKS-SMTPS-MARKER");
  BOOST_REQUIRE_MESSAGE(!message.empty(), "the message did not reach the upstream\n"
                                              << env().smtps->diagnostics());
  const ReceivedHeader received = portcullis_received(message, "ESMTPS");
  BOOST_REQUIRE_MESSAGE(received.found, printable(message, 600));
  BOOST_TEST(received.helo == "swaks-tlsc.example.test");
  BOOST_TEST(contains(output, received.protocol + ":" + received.cipher + ":" + received.bits),
             printable(output, 3000));
}

// The last replies of a TLS session are written before the connection closes, as they are in
// plaintext: the 221 to QUIT (and a final 250 pipelined with it) must reach the client.
BOOST_AUTO_TEST_CASE(replies_before_the_close_reach_a_tls_client) {
  TlsSmtpClient client("127.0.0.1", env().smtp->port());
  starttls(client);
  BOOST_REQUIRE(client.command("EHLO tls-client.example.test").code == 250);
  const SmtpReply bye = client.command("QUIT");
  BOOST_TEST(bye.code == 221, "reply to QUIT over TLS: " << bye.describe());
  BOOST_TEST(client.wait_closed(5s));

  TlsSmtpClient pipelining("127.0.0.1", env().smtp->port());
  starttls(pipelining);
  BOOST_REQUIRE(pipelining.command("EHLO tls-client.example.test").code == 250);
  BOOST_REQUIRE(pipelining.send("NOOP\r\nQUIT\r\n"));
  const SmtpReply noop = pipelining.read_reply(5s);
  const SmtpReply quit = pipelining.read_reply(5s);
  BOOST_TEST(noop.code == 250, noop.describe());
  BOOST_TEST(quit.code == 221, quit.describe());
}

// CVE-2011-0411 class: a command pipelined after STARTTLS in the same segment is plaintext
// that an attacker could have inserted; it must never be answered, neither before the
// handshake nor after it.
BOOST_AUTO_TEST_CASE(starttls_injection_of_rset_is_never_answered) {
  TlsSmtpClient client("127.0.0.1", env().smtp->port());
  BOOST_REQUIRE(client.read_reply().code == 220);
  BOOST_REQUIRE(client.command("EHLO injector.example.test").code == 250);
  const std::string injected = "RSET\r\n";
  BOOST_REQUIRE(client.send("STARTTLS\r\n" + injected));  // one write: one segment
  const SmtpReply ready = client.read_reply();
  BOOST_REQUIRE_MESSAGE(ready.code == 220, ready.describe());
  BOOST_TEST(client.silent_for(300ms), "plaintext after the 220: " << printable(client.buffered()));

  std::string error;
  BOOST_REQUIRE_MESSAGE(client.start_tls({}, &error), error);
  BOOST_TEST(client.silent_for(500ms), "unasked TLS bytes: " << printable(client.buffered()));
  const SmtpReply ehlo = client.command("EHLO injector.example.test");
  BOOST_TEST(ehlo.code == 250, ehlo.describe());
  BOOST_TEST(!ehlo.lines.empty());
  if (!ehlo.lines.empty()) BOOST_TEST(ehlo.lines.front() == "portcullis.test");
  BOOST_TEST(env().smtp->wait_for_event("starttls_plaintext_discarded", 5s,
                                        [&](const LogEvent& event) {
                                          return event.field("bytes") ==
                                                 std::to_string(injected.size());
                                        }),
             env().smtp->diagnostics());
}

BOOST_AUTO_TEST_CASE(starttls_injection_of_mail_is_never_executed) {
  TlsSmtpClient client("127.0.0.1", env().smtp->port());
  BOOST_REQUIRE(client.read_reply().code == 220);
  BOOST_REQUIRE(client.command("EHLO injector.example.test").code == 250);
  const std::string injected = "MAIL FROM:<a@b.example>\r\n";
  BOOST_REQUIRE(client.send("STARTTLS\r\n" + injected));
  const SmtpReply ready = client.read_reply();
  BOOST_REQUIRE_MESSAGE(ready.code == 220, ready.describe());
  BOOST_TEST(client.silent_for(300ms), "plaintext after the 220: " << printable(client.buffered()));

  std::string error;
  BOOST_REQUIRE_MESSAGE(client.start_tls({}, &error), error);
  BOOST_TEST(client.silent_for(500ms), "unasked TLS bytes: " << printable(client.buffered()));
  const SmtpReply ehlo = client.command("EHLO injector.example.test");
  BOOST_TEST(ehlo.code == 250, ehlo.describe());
  if (!ehlo.lines.empty()) BOOST_TEST(ehlo.lines.front() == "portcullis.test");
  // Had the injected MAIL been executed, a transaction would be open now.
  const SmtpReply rcpt = client.command("RCPT TO:<r@example.test>");
  BOOST_TEST(rcpt.code == 503, rcpt.describe());
  client.send_line("QUIT");
  BOOST_TEST(upstream_commands_containing("a@b.example") == 0u);
  BOOST_TEST(env().smtp->wait_for_event("starttls_plaintext_discarded", 5s,
                                        [&](const LogEvent& event) {
                                          return event.field("bytes") ==
                                                 std::to_string(injected.size());
                                        }),
             env().smtp->diagnostics());
}

BOOST_AUTO_TEST_CASE(sni_picks_the_certificate_by_name) {
  const std::vector<std::pair<std::string, std::string>> expected = {
      {kDefaultName, kDefaultName},
      {kSniName, kSniName},
      {"B.Example.Test", kSniName},  // names compare case-insensitively
      {"mx.wild.example.test", kSniName},
      {"unknown.example.test", kDefaultName},  // no block serves it: the listener's block
  };
  for (const auto& [server_name, common_name] : expected) {
    const CommandResult run = run_s_client(
        env().smtp->port(), {"-starttls", "smtp", "-servername", server_name}, {"QUIT\r\n"}, 300ms);
    BOOST_TEST(s_client_subject_cn(run.out) == common_name,
               "-servername " << server_name << ": " << printable(run.out, 2000));
  }
  // Without SNI, the listener's block.
  const CommandResult plain =
      run_s_client(env().smtp->port(), {"-starttls", "smtp", "-noservername"}, {"QUIT\r\n"}, 300ms);
  BOOST_TEST(s_client_subject_cn(plain.out) == kDefaultName, printable(plain.out, 2000));
  BOOST_TEST(env().smtp->wait_for_event(
      "tls", 5s, [](const LogEvent& event) { return event.field("sni") == kSniName; }));
}

// SNI picks a whole [tls.NAME] block, not only its certificate: [tls.sni] asks for a client
// certificate, [tls.default] does not.
BOOST_AUTO_TEST_CASE(sni_block_settings_follow_the_name) {
  TlsSmtpClient by_default("127.0.0.1", env().smtp->port());
  starttls(by_default, {.server_name = kDefaultName});
  BOOST_TEST(by_default.peer_common_name() == kDefaultName);
  BOOST_TEST(!by_default.certificate_requested());
  BOOST_TEST(by_default.command("NOOP").code == 250);

  TlsSmtpClient by_sni("127.0.0.1", env().smtp->port());
  starttls(by_sni, {.server_name = kSniName});
  BOOST_TEST(by_sni.peer_common_name() == kSniName);
  BOOST_TEST(by_sni.certificate_requested(),
             "[tls.sni] has request_client_certificate = true, but no certificate was requested");
  // Requested, never required: the session goes on without one.
  BOOST_TEST(by_sni.command("NOOP").code == 250);
}

BOOST_AUTO_TEST_CASE(session_resumption_with_tls12_and_tls13) {
  TempDir scratch("portcullis-tls-sessions");
  for (const std::string version : {"-tls1_2", "-tls1_3"}) {
    const std::string session_file = (scratch / ("session" + version + ".pem")).string();
    const CommandResult first =
        run_s_client(env().smtp->port(), {"-starttls", "smtp", version, "-sess_out", session_file},
                     {"NOOP\r\n", "QUIT\r\n"});
    BOOST_TEST(contains(first.out, "New, TLSv1."), version << ": " << printable(first.out, 2000));
    BOOST_REQUIRE_MESSAGE(!read_file(session_file).empty(), version << ": no session saved");
    const CommandResult second =
        run_s_client(env().smtp->port(), {"-starttls", "smtp", version, "-sess_in", session_file},
                     {"NOOP\r\n", "QUIT\r\n"});
    BOOST_TEST(contains(second.out, "Reused, TLSv1."),
               version << ": " << printable(second.out, 2000));
  }
  for (const std::string protocol : {"TLSv1.2", "TLSv1.3"}) {
    BOOST_TEST(env().smtp->wait_for_event("tls", 5s,
                                          [&](const LogEvent& event) {
                                            return event.field("resumed") == "yes" &&
                                                   event.field("tls").rfind(protocol, 0) == 0;
                                          }),
               "no resumed " << protocol << " session in the log");
  }
}

BOOST_AUTO_TEST_CASE(client_renegotiation_is_refused) {
  TlsSmtpClient client("127.0.0.1", env().smtp->port());
  TlsHandshakeOptions tls12;
  tls12.max_version = TLS1_2_VERSION;
  starttls(client, tls12);
  BOOST_REQUIRE(client.protocol() == "TLSv1.2");
  BOOST_REQUIRE(client.command("EHLO tls-client.example.test").code == 250);
  std::string error;
  const bool renegotiated = client.renegotiate(&error);
  BOOST_TEST(!renegotiated, "the server went through with a client-initiated renegotiation");
  BOOST_TEST_MESSAGE("renegotiation: " << error);
  BOOST_TEST(env().smtp->running(), env().smtp->diagnostics());
}

BOOST_AUTO_TEST_CASE(submission_refuses_mail_before_starttls) {
  TlsSmtpClient client("127.0.0.1", env().submission->port());
  BOOST_REQUIRE(client.read_reply().code == 220);
  const SmtpReply ehlo = client.command("EHLO submitter.example.test");
  BOOST_REQUIRE(ehlo.code == 250);
  BOOST_TEST(offers_starttls(ehlo), ehlo.describe());
  const SmtpReply refused = client.command("MAIL FROM:<s@example.test>");
  BOOST_TEST(refused.code == 530, refused.describe());
  BOOST_TEST(refused.enhanced() == "5.7.0", refused.describe());
  BOOST_REQUIRE(client.command("STARTTLS").code == 220);
  std::string error;
  BOOST_REQUIRE_MESSAGE(client.start_tls({}, &error), error);
  BOOST_REQUIRE(client.command("EHLO submitter.example.test").code == 250);
  const SmtpReply accepted = client.command("MAIL FROM:<s@example.test>");
  BOOST_TEST(accepted.code == 250, accepted.describe());
  BOOST_TEST(client.command("RSET").code == 250);
}

BOOST_AUTO_TEST_CASE(starttls_is_neither_offered_nor_accepted_twice) {
  TlsSmtpClient client("127.0.0.1", env().smtp->port());
  starttls(client);
  const SmtpReply ehlo = client.command("EHLO tls-client.example.test");
  BOOST_REQUIRE(ehlo.code == 250);
  BOOST_TEST(!offers_starttls(ehlo), ehlo.describe());
  const SmtpReply again = client.command("STARTTLS");
  BOOST_TEST(again.code == 554, again.describe());
  BOOST_TEST(again.enhanced() == "5.5.1", again.describe());
  BOOST_TEST(client.command("NOOP").code == 250);  // the TLS session goes on
}

// RFC 3207 4.2: after the handshake the session starts over; nothing said before counts.
BOOST_AUTO_TEST_CASE(the_session_starts_over_after_starttls) {
  TlsSmtpClient client("127.0.0.1", env().smtp->port());
  starttls(client);
  const SmtpReply mail = client.command("MAIL FROM:<s@example.test>");
  BOOST_TEST(mail.code == 503, "MAIL without a new EHLO: " << mail.describe());
  BOOST_REQUIRE(client.command("EHLO tls-client.example.test").code == 250);
  BOOST_TEST(client.command("MAIL FROM:<s@example.test>").code == 250);
  BOOST_TEST(client.command("RSET").code == 250);
}

BOOST_AUTO_TEST_CASE(a_failed_handshake_is_logged_and_closes) {
  TlsSmtpClient client("127.0.0.1", env().smtp->port());
  BOOST_REQUIRE(client.read_reply().code == 220);
  BOOST_REQUIRE(client.command("EHLO garbage.example.test").code == 250);
  BOOST_REQUIRE(client.command("STARTTLS").code == 220);
  BOOST_REQUIRE(client.send("this is not a TLS ClientHello\r\nEHLO x\r\n"));
  BOOST_TEST(client.wait_closed(10s), "still open after a failed handshake");
  BOOST_TEST(!contains(client.buffered(), "250"), printable(client.buffered()));
  const bool logged = env().smtp->wait_for_event(
      "tls_handshake_failed", 5s,
      [](const LogEvent& event) { return !event.field("reason").empty(); });
  BOOST_TEST(logged, env().smtp->diagnostics());
  BOOST_TEST(env().smtp->wait_for_event("disconnect", 5s, [](const LogEvent& event) {
    return event.field("reason") == "tls_failed";
  }));
}

// SIGHUP reloads certificates: a session in TLS across the reload still delivers, a new one
// gets the new certificate, and a broken key keeps the certificate in force.
BOOST_AUTO_TEST_CASE(reload_replaces_certificates_and_keeps_them_when_broken) {
  TempDir dir("portcullis-tls-reload");
  dir.chmod(0755);
  const CertificatePair live =
      make_self_signed_certificate(dir.path(), "live", "before.example.test");
  const CertificatePair next =
      make_self_signed_certificate(dir.path(), "next", "after.example.test");
  const CertificatePair unused =
      make_self_signed_certificate(dir.path(), "unused", "never-served.example.test");
  PortcullisOptions options;
  options.upstream_port = env().upstream.port();
  options.listen_settings = {{"tls", toml_quoted("reloadable")}};
  options.settings["tls.reloadable"] = tls_block(live);
  PortcullisFixture proxy(options);

  TlsSmtpClient across("127.0.0.1", proxy.port());
  starttls(across);
  BOOST_TEST(across.peer_common_name() == "before.example.test");
  BOOST_REQUIRE(across.command("EHLO across.example.test").code == 250);
  BOOST_REQUIRE(across.command("MAIL FROM:<s@example.test>").code == 250);
  BOOST_REQUIRE(across.command("RCPT TO:<r@example.test>").code == 250);

  write_file(live.certificate, read_file(next.certificate));
  write_file(live.key, read_file(next.key));
  hand_to_proxy_user(live.certificate, 0644);
  hand_to_proxy_user(live.key, 0600);
  sighup(proxy);
  BOOST_REQUIRE_MESSAGE(proxy.wait_for_event("reloaded", 10s), proxy.diagnostics());

  BOOST_REQUIRE(across.command("DATA").code == 354);
  BOOST_REQUIRE(
      across.send(dot_stuff(make_message(2000, "across", "RELOAD-ACROSS-MARKER")) + ".\r\n"));
  const SmtpReply delivered = across.read_reply();
  BOOST_TEST(delivered.code == 250, delivered.describe() << "\n" << proxy.diagnostics());
  BOOST_TEST(!upstream_message_with(env().upstream, "RELOAD-ACROSS-MARKER").empty());

  {
    TlsSmtpClient after("127.0.0.1", proxy.port());
    starttls(after);
    BOOST_TEST(after.peer_common_name() == "after.example.test");
  }

  write_file(live.certificate, read_file(unused.certificate));
  write_file(live.key, "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n");
  hand_to_proxy_user(live.certificate, 0644);
  hand_to_proxy_user(live.key, 0600);
  sighup(proxy);
  const bool explained = proxy.wait_for_event("tls_load_failed", 10s, [&](const LogEvent& event) {
    return contains(event.field("error"), live.key.string());
  });
  BOOST_TEST(explained, proxy.diagnostics());
  BOOST_TEST(proxy.wait_for_event("reload_failed", 10s), proxy.diagnostics());
  {
    TlsSmtpClient kept("127.0.0.1", proxy.port());
    starttls(kept);
    BOOST_TEST(kept.peer_common_name() == "after.example.test");
  }
  BOOST_TEST(across.command("NOOP").code == 250);
  BOOST_TEST(proxy.running(), proxy.diagnostics());
}
