// TLS towards the upstream ([upstream] tls = none | opportunistic | required, ca_file,
// verify_name), end to end: a plaintext client sends through the real binary to an in-process
// upstream that offers STARTTLS and records which commands came before and after its
// handshake. The upstream offers XCLIENT only over TLS, so a session that delivers proves that
// Portcullis read the capabilities again after STARTTLS.
#define BOOST_TEST_MODULE integration_upstream_tls
#include <fmt/core.h>
#include <boost/test/unit_test.hpp>
#include <memory>

#include "fixtures.h"
#include "test_support.h"
#include "tls_support.h"

using namespace portcullis::test;

namespace {

constexpr const char* kUpstreamName = "upstream.example.test";

struct Certificates {
  Certificates() {
    dir.chmod(0755);
    upstream = make_self_signed_certificate(dir.path(), "upstream", kUpstreamName);
    stranger = make_self_signed_certificate(dir.path(), "stranger", "stranger.example.test");
  }
  TempDir dir{"portcullis-upstream-tls"};
  CertificatePair upstream;
  CertificatePair stranger;  // a CA that did not sign the upstream's certificate
};

Certificates& certificates() {
  static Certificates made;
  return made;
}

PortcullisOptions options_for(const TlsUpstream& upstream, const std::string& tls,
                              const std::string& ca_file = "",
                              const std::string& verify_name = "") {
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  options.settings["upstream"]["tls"] = toml_quoted(tls);
  if (!ca_file.empty()) options.settings["upstream"]["ca_file"] = toml_quoted(ca_file);
  if (!verify_name.empty()) {
    options.settings["upstream"]["verify_name"] = toml_quoted(verify_name);
  }
  return options;
}

struct Transaction {
  SmtpReply mail;
  SmtpReply final_reply;  // the reply to the end of data (code 0 when MAIL was refused)
};

// A plaintext client session through `proxy`: EHLO, MAIL, RCPT, DATA with `marker`, QUIT.
Transaction send_through(PortcullisFixture& proxy, const std::string& marker) {
  SmtpTestClient client("127.0.0.1", proxy.port());
  Transaction result;
  BOOST_REQUIRE(client.read_reply().code == 220);
  BOOST_REQUIRE(client.command("EHLO plain-client.example.test").code == 250);
  result.mail = client.command("MAIL FROM:<s@example.test>");
  if (result.mail.code != 250) {
    client.command("QUIT");
    return result;
  }
  const SmtpReply rcpt = client.command("RCPT TO:<r@example.test>");
  BOOST_REQUIRE_MESSAGE(rcpt.code == 250, rcpt.describe());
  const SmtpReply data = client.command("DATA");
  BOOST_REQUIRE_MESSAGE(data.code == 354, data.describe());
  client.send(dot_stuff(make_message(2000, "upstream tls", marker)) + ".\r\n");
  result.final_reply = client.read_reply();
  client.command("QUIT");
  return result;
}

// The one session connection the upstream saw (the start-up probe left out).
TlsUpstreamConnection only_session(const TlsUpstream& upstream) {
  upstream.wait_for(
      [&](const std::vector<TlsUpstreamConnection>&) {
        return !upstream.session_connections().empty();
      },
      5s);
  const auto sessions = upstream.session_connections();
  BOOST_REQUIRE_EQUAL(sessions.size(), 1u);
  return sessions.front();
}

bool has_message_with(const TlsUpstreamConnection& connection, const std::string& marker) {
  for (const auto& message : connection.messages) {
    if (contains(message, marker)) return true;
  }
  return false;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& line : lines)
    text += line + " | ";
  return text;
}

}  // namespace

BOOST_AUTO_TEST_CASE(opportunistic_starttls_comes_before_xclient) {
  TlsUpstream upstream(certificates().upstream, {});
  PortcullisFixture proxy(options_for(upstream, "opportunistic"));
  const Transaction sent = send_through(proxy, "OPPORTUNISTIC-MARKER");
  BOOST_TEST(sent.mail.code == 250, sent.mail.describe() << "\n" << proxy.diagnostics());
  BOOST_TEST(sent.final_reply.code == 250, sent.final_reply.describe());

  const TlsUpstreamConnection session = only_session(upstream);
  BOOST_TEST(session.tls, session.tls_error);
  const std::vector<std::string> expected_plain = {"EHLO portcullis.test", "STARTTLS"};
  BOOST_TEST(session.plain_commands == expected_plain, joined(session.plain_commands));
  BOOST_REQUIRE(session.tls_commands.size() >= 3u);
  // Over TLS: our EHLO again (capabilities read anew), then XCLIENT, then the client's EHLO.
  BOOST_TEST(session.tls_commands[0] == "EHLO portcullis.test");
  BOOST_TEST(starts_with_nocase(session.tls_commands[1], "XCLIENT "), joined(session.tls_commands));
  BOOST_TEST(session.count_verb("MAIL") == 1u);
  BOOST_TEST(has_message_with(session, "OPPORTUNISTIC-MARKER"));
}

// CVE-2021-38371 class: bytes the upstream (or a man in the middle) sends after its 220 to
// STARTTLS are plaintext and must be dropped; the reply that counts is the EHLO over TLS.
BOOST_AUTO_TEST_CASE(plaintext_after_the_upstreams_starttls_220_is_discarded) {
  for (const std::string injected : {"250-FAKE\r\n", "250 FAKE-COMPLETE-REPLY\r\n"}) {
    BOOST_TEST_CONTEXT("injected " << printable(injected)) {
      TlsUpstreamBehaviour behaviour;
      behaviour.injected_after_starttls = injected;
      TlsUpstream upstream(certificates().upstream, behaviour);
      PortcullisFixture proxy(options_for(upstream, "opportunistic"));
      const Transaction sent = send_through(proxy, "INJECTION-MARKER");
      BOOST_TEST(sent.mail.code == 250, sent.mail.describe() << "\n" << proxy.diagnostics());
      BOOST_TEST(sent.final_reply.code == 250, sent.final_reply.describe());

      const TlsUpstreamConnection session = only_session(upstream);
      BOOST_TEST(session.tls, session.tls_error);
      BOOST_REQUIRE(!session.tls_commands.empty());
      BOOST_TEST(session.tls_commands[0] == "EHLO portcullis.test");
      BOOST_TEST(has_message_with(session, "INJECTION-MARKER"));
      BOOST_TEST(proxy.wait_for_event("upstream_starttls_plaintext_discarded", 5s,
                                      [&](const LogEvent& event) {
                                        return event.field("bytes") ==
                                               std::to_string(injected.size());
                                      }),
                 proxy.diagnostics());
    }
  }
}

BOOST_AUTO_TEST_CASE(tls_none_never_sends_starttls) {
  TlsUpstreamBehaviour behaviour;
  behaviour.plain_keywords = behaviour.tls_keywords;  // XCLIENT in plaintext too
  TlsUpstream upstream(certificates().upstream, behaviour);
  PortcullisFixture proxy(options_for(upstream, "none"));
  const Transaction sent = send_through(proxy, "NO-TLS-MARKER");
  BOOST_TEST(sent.final_reply.code == 250, sent.final_reply.describe() << proxy.diagnostics());
  const TlsUpstreamConnection session = only_session(upstream);
  BOOST_TEST(!session.tls);
  BOOST_TEST(session.count_verb("STARTTLS") == 0u, joined(session.plain_commands));
  BOOST_TEST(has_message_with(session, "NO-TLS-MARKER"));
}

BOOST_AUTO_TEST_CASE(required_tls_refuses_an_upstream_without_starttls) {
  TlsUpstreamBehaviour behaviour;
  behaviour.offer_starttls = false;
  behaviour.plain_keywords = behaviour.tls_keywords;
  TlsUpstream upstream(certificates().upstream, behaviour);
  PortcullisFixture proxy(options_for(upstream, "required",
                                      certificates().upstream.certificate.string(), kUpstreamName));
  const Transaction sent = send_through(proxy, "REQUIRED-NO-STARTTLS-MARKER");
  BOOST_TEST(sent.mail.code / 100 == 4, sent.mail.describe());
  // The probe and the session's own attempt.
  BOOST_TEST(upstream.connections().size() >= 2u);
  for (const auto& connection : upstream.connections()) {
    BOOST_TEST(connection.count_verb("XCLIENT") == 0u, joined(connection.all_commands()));
    BOOST_TEST(connection.count_verb("MAIL") == 0u, joined(connection.all_commands()));
  }
}

BOOST_AUTO_TEST_CASE(required_tls_verifies_the_upstream_certificate_and_name) {
  {
    TlsUpstream upstream(certificates().upstream, {});
    PortcullisFixture proxy(options_for(
        upstream, "required", certificates().upstream.certificate.string(), kUpstreamName));
    const Transaction sent = send_through(proxy, "REQUIRED-VERIFIED-MARKER");
    BOOST_TEST(sent.final_reply.code == 250,
               sent.mail.describe() << sent.final_reply.describe() << proxy.diagnostics());
    const TlsUpstreamConnection session = only_session(upstream);
    BOOST_TEST(session.tls, session.tls_error);
    BOOST_TEST(has_message_with(session, "REQUIRED-VERIFIED-MARKER"));
  }
  struct Mismatch {
    std::string what, ca_file, verify_name;
  };
  const std::vector<Mismatch> mismatches = {
      {"wrong name", certificates().upstream.certificate.string(), "other.example.test"},
      {"unknown CA", certificates().stranger.certificate.string(), kUpstreamName},
  };
  for (const auto& mismatch : mismatches) {
    BOOST_TEST_CONTEXT(mismatch.what) {
      TlsUpstream upstream(certificates().upstream, {});
      PortcullisFixture proxy(
          options_for(upstream, "required", mismatch.ca_file, mismatch.verify_name));
      const Transaction sent = send_through(proxy, "REQUIRED-MISMATCH-MARKER");
      BOOST_TEST(sent.mail.code / 100 == 4, sent.mail.describe());
      const auto sessions = upstream.session_connections();
      BOOST_TEST(sessions.size() == 1u, "the session never tried STARTTLS");
      for (const auto& session : sessions)
        BOOST_TEST(session.count_verb("STARTTLS") == 1u, joined(session.all_commands()));
      for (const auto& connection : upstream.connections()) {
        BOOST_TEST(connection.tls_commands.empty(), joined(connection.tls_commands));
        BOOST_TEST(connection.count_verb("MAIL") == 0u);
      }
    }
  }
}
