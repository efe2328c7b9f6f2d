// SMTP smuggling: every end-of-DATA variant of corpora/smtp/smuggling/eod-sequences.tsv, in both
// bare_lf modes, sent the way scanners send it:
//   ...line\r\n + SEQ + mail FROM:<smuggled@x.example>\r\nrcpt TO:<v@example.test>\r\ndata\r\n
//   second\r\n.\r\n
// Pass: exactly one transaction (one final reply, one MAIL at the upstream), and what reaches
// the upstream has no bare CR or LF, every line starting with '.' dot-stuffed, and exactly one
// CRLF.CRLF, at the end. The control row (the real CRLF.CRLF) must give two transactions:
// proof that the checks can see smuggling when it happens.
#define BOOST_TEST_MODULE integration_smuggling
#include <fmt/core.h>
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <memory>

#include "fixtures.h"
#include "recording_upstream.h"
#include "test_support.h"

using namespace portcullis::test;

namespace {

struct EodVector {
  std::string id;
  std::string bytes;
  bool is_end_of_data = false;
};

std::vector<EodVector> load_vectors() {
  const auto path = corpora_dir() / "smtp" / "smuggling" / "eod-sequences.tsv";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::vector<EodVector> vectors;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> columns;
    size_t start = 0;
    for (size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1) {
      columns.push_back(line.substr(start, tab - start));
    }
    columns.push_back(line.substr(start));
    if (columns.size() < 4) throw std::runtime_error("short row in " + path.string());
    vectors.push_back({columns[0], hex_decode(columns[2]), columns[3] == "yes"});
  }
  return vectors;
}

struct SmugglingEnvironment {
  SmugglingEnvironment() {
    upstream = std::make_unique<RecordingUpstream>();
    for (const char* mode : {"reject", "normalize"}) {
      PortcullisOptions options;
      options.upstream_port = upstream->port();
      options.pass_client = "xclient";
      options.settings["limits"]["bare_lf"] = std::string("\"") + mode + "\"";
      // One upstream connection per session, closed with it (reuse has its own case below):
      // each check reads its session's connection once it is closed.
      options.settings["upstream"]["idle_timeout"] = "0";
      (std::string(mode) == "reject" ? reject : normalize) =
          std::make_unique<PortcullisFixture>(options);
    }
    vectors = load_vectors();
    instance = this;
  }
  ~SmugglingEnvironment() { instance = nullptr; }

  std::unique_ptr<RecordingUpstream> upstream;
  std::unique_ptr<PortcullisFixture> reject;
  std::unique_ptr<PortcullisFixture> normalize;
  std::vector<EodVector> vectors;

  static SmugglingEnvironment* instance;
};
SmugglingEnvironment* SmugglingEnvironment::instance = nullptr;

BOOST_TEST_GLOBAL_FIXTURE(SmugglingEnvironment);

SmugglingEnvironment& env() {
  return *SmugglingEnvironment::instance;
}

std::string payload_for(const EodVector& vector) {
  return "From: <scanner@example.test>\r\n"
         "To: <v@example.test>\r\n"
         "Subject: smuggling probe " +
         vector.id +
         "\r\n"
         "\r\n"
         "first message line\r\n" +
         vector.bytes +
         "mail FROM:<smuggled@x.example>\r\n"
         "rcpt TO:<v@example.test>\r\n"
         "data\r\n"
         "second\r\n"
         ".\r\n";
}

// A CR not followed by LF, or an LF not preceded by CR.
bool has_bare_cr_or_lf(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] == '\r' && (i + 1 == bytes.size() || bytes[i + 1] != '\n')) return true;
    if (bytes[i] == '\n' && (i == 0 || bytes[i - 1] != '\r')) return true;
  }
  return false;
}

struct Outcome {
  std::vector<SmtpReply> after_payload;  // every reply to the message bytes
  SmtpReply quit;
  uint16_t client_port = 0;
};

Outcome run_scanner(PortcullisFixture& proxy, const EodVector& vector) {
  Outcome outcome;
  SmtpTestClient client("127.0.0.1", proxy.port(), {.source_address = "", .timeout = 10s});
  outcome.client_port = client.local_port();
  BOOST_TEST(client.read_reply().code == 220);
  client.send(
      "EHLO scanner.example.test\r\n"
      "MAIL FROM:<scanner@example.test>\r\n"
      "RCPT TO:<v@example.test>\r\n"
      "DATA\r\n");
  std::vector<int> opening;
  for (int i = 0; i < 4; ++i)
    opening.push_back(client.read_reply().code);
  BOOST_TEST(opening == (std::vector<int>{250, 250, 250, 354}), boost::test_tools::per_element());
  client.send(payload_for(vector));
  // Every reply the payload draws. Replies to smuggled commands would follow the first one
  // at once (their bytes are already there), so a short wait after it is enough.
  for (SmtpReply reply = client.read_reply(5s); reply.code != 0; reply = client.read_reply(300ms)) {
    outcome.after_payload.push_back(reply);
  }
  outcome.quit = client.command("QUIT");
  return outcome;
}

// `word` stands in `line` between spaces (or at its end).
bool has_word(std::string_view line, std::string_view word) {
  for (size_t at = line.find(word); at != std::string_view::npos; at = line.find(word, at + 1)) {
    const bool starts = at == 0 || line[at - 1] == ' ';
    const size_t end = at + word.size();
    if (starts && (end == line.size() || line[end] == ' ')) return true;
  }
  return false;
}

// The upstream connection that served the client on `client_port` (XCLIENT PORT=...).
std::optional<RecordedConnection> upstream_session_for(uint16_t client_port) {
  const std::string port_attribute = fmt::format("PORT={}", client_port);
  std::optional<RecordedConnection> found;
  env().upstream->wait_for(
      [&](const std::vector<RecordedConnection>& connections) {
        // The newest first: the upstream keeps every connection of the module, and the kernel
        // hands out a client port again once its earlier connection is gone. The attribute is
        // matched as a whole word (PORT=1234 is not PORT=12345).
        for (auto connection = connections.rbegin(); connection != connections.rend();
             ++connection) {
          for (const auto& command : connection->commands) {
            if (starts_with_nocase(command, "XCLIENT ") && has_word(command, port_attribute)) {
              // Wait for the session's end, so every byte is recorded.
              if (connection->open) return false;
              found = *connection;
              return true;
            }
          }
        }
        return false;
      },
      10s);
  return found;
}

// What the proxy must answer at the end of the message, reasoned from DESIGN §9 and the issue:
// NUL -> 550 5.6.0; a bare CR -> 550 5.5.2 (both modes); a bare LF -> 550 5.5.2 in reject mode,
// accepted (turned into CRLF) in normalize mode.
struct Expected {
  int code;
  std::string enhanced;
};
Expected expected_for(const EodVector& vector, bool normalize) {
  const std::string& bytes = vector.bytes;
  if (bytes.find('\0') != std::string::npos) return {550, "5.6.0"};
  bool bare_cr = false;
  bool bare_lf = false;
  // The sequence sits between "line\r\n" and "mail", so its own neighbours decide.
  const std::string in_context = "e\r\n" + bytes + "m";
  for (size_t i = 0; i < in_context.size(); ++i) {
    if (in_context[i] == '\r' && in_context[i + 1] != '\n') bare_cr = true;
    if (in_context[i] == '\n' && in_context[i - 1] != '\r') bare_lf = true;
  }
  if (bare_cr) return {550, "5.5.2"};
  if (bare_lf && !normalize) return {550, "5.5.2"};
  return {250, "2.0.0"};
}

void check_malformed_vector(PortcullisFixture& proxy, const EodVector& vector, bool normalize) {
  const Outcome outcome = run_scanner(proxy, vector);
  const Expected expected = expected_for(vector, normalize);

  // One transaction: exactly one reply to all those bytes, the final one.
  BOOST_TEST(outcome.after_payload.size() == 1u, [&] {
    std::string all;
    for (const auto& r : outcome.after_payload)
      all += r.describe() + " | ";
    return all;
  }());
  if (!outcome.after_payload.empty()) {
    const SmtpReply& final_reply = outcome.after_payload.front();
    BOOST_TEST(final_reply.code == expected.code, final_reply.describe());
    if (expected.code != 250) BOOST_TEST(final_reply.enhanced() == expected.enhanced);
  }
  // Still in step: the next reply is the one to QUIT.
  BOOST_TEST(outcome.quit.code == 221, outcome.quit.describe());

  const auto session = upstream_session_for(outcome.client_port);
  BOOST_REQUIRE_MESSAGE(session.has_value(), "no upstream connection for the session");
  BOOST_TEST(session->count_verb("MAIL") == 1u);
  for (const auto& command : session->commands) {
    BOOST_TEST(!contains(command, "smuggled"), "smuggled command at the upstream: " << command);
  }
  BOOST_TEST(!has_bare_cr_or_lf(session->received), printable(session->received, 2000));

  if (expected.code == 250) {
    BOOST_REQUIRE(session->messages.size() == 1u);
    const std::string& raw = session->messages[0].raw;
    BOOST_TEST(!has_bare_cr_or_lf(raw));
    BOOST_TEST(count_occurrences(raw, "\r\n.\r\n") == 1u, printable(raw, 2000));
    BOOST_TEST(raw.size() >= 5u);
    BOOST_TEST(raw.substr(raw.size() - 5) == "\r\n.\r\n");
    const std::string body = raw.substr(0, raw.size() - 3);  // without ".\r\n"
    for (const auto& line : split_lines(body)) {
      if (!line.empty() && line[0] == '.') {
        BOOST_TEST(line.rfind("..", 0) == 0u, "not dot-stuffed: " << printable(line));
      }
    }
    // Everything stayed inside the one message.
    const std::string content = dot_unstuff(body);
    BOOST_TEST(contains(content, "first message line\r\n"));
    BOOST_TEST(contains(content, "mail FROM:<smuggled@x.example>\r\n"));
    BOOST_TEST(contains(content, "second\r\n"));
  } else {
    BOOST_TEST(session->messages.empty());
    BOOST_TEST(session->count_verb("DATA") == 0u, "the upstream saw DATA for a refused message");
  }
}

void check_all(PortcullisFixture& proxy, bool normalize) {
  size_t checked = 0;
  for (const auto& vector : env().vectors) {
    if (vector.is_end_of_data) continue;
    BOOST_TEST_CONTEXT("vector " << vector.id << " (" << printable(vector.bytes)
                                 << "), bare_lf=" << (normalize ? "normalize" : "reject")) {
      check_malformed_vector(proxy, vector, normalize);
    }
    ++checked;
  }
  BOOST_TEST(checked == 12u);
  BOOST_TEST(proxy.running(), proxy.diagnostics());
}

}  // namespace

BOOST_AUTO_TEST_CASE(corpus_has_twelve_malformed_sequences_and_a_control) {
  size_t malformed = 0;
  size_t controls = 0;
  for (const auto& vector : env().vectors)
    (vector.is_end_of_data ? controls : malformed)++;
  BOOST_TEST(malformed == 12u);
  BOOST_TEST(controls == 1u);
}

BOOST_AUTO_TEST_CASE(control_sequence_is_a_real_end_of_data) {
  // The only legal end of DATA: the proxy must then see a second, pipelined transaction.
  // Without this, the checks above could pass by never looking.
  for (PortcullisFixture* proxy : {env().reject.get(), env().normalize.get()}) {
    for (const auto& vector : env().vectors) {
      if (!vector.is_end_of_data) continue;
      const Outcome outcome = run_scanner(*proxy, vector);
      std::vector<int> codes;
      for (const auto& reply : outcome.after_payload)
        codes.push_back(reply.code);
      BOOST_TEST(codes == (std::vector<int>{250, 250, 250, 354, 250}),
                 boost::test_tools::per_element());
      BOOST_TEST(outcome.quit.code == 221);
      const auto session = upstream_session_for(outcome.client_port);
      BOOST_REQUIRE(session.has_value());
      BOOST_TEST(session->count_verb("MAIL") == 2u);
      BOOST_TEST(session->messages.size() == 2u);
    }
  }
}

BOOST_AUTO_TEST_CASE(every_sequence_with_bare_lf_rejected) {
  check_all(*env().reject, false);
}

BOOST_AUTO_TEST_CASE(every_sequence_with_bare_lf_normalized) {
  check_all(*env().normalize, true);
}

namespace {

// Issue 11 point 2: every malformed vector again, one session after another, all on one upstream
// connection the proxy keeps (one worker, idle_timeout 60). A vector that desynchronised the
// proxy from its upstream would leave the next session's commands out of step on that
// connection; so per session (from its XCLIENT to the next) the upstream must see exactly one
// MAIL, nothing smuggled, DATA only for a message the proxy accepted, and the messages in order.
void check_back_to_back_on_one_connection(const char* mode, bool normalize) {
  PortcullisOptions options;
  options.upstream_port = env().upstream->port();
  options.pass_client = "xclient";
  options.settings["limits"]["bare_lf"] = std::string("\"") + mode + "\"";
  options.settings["server"]["workers"] = "1";
  options.settings["upstream"]["idle_timeout"] = "60";
  auto proxy = std::make_unique<PortcullisFixture>(options);

  std::vector<uint16_t> client_ports;
  std::vector<std::string> accepted_ids;  // the vectors whose message the proxy relayed
  std::vector<std::string> ids;
  std::vector<bool> accepted;  // per session: its message was relayed
  for (const auto& vector : env().vectors) {
    if (vector.is_end_of_data) continue;
    BOOST_TEST_CONTEXT("vector " << vector.id << ", bare_lf=" << mode) {
      const Outcome outcome = run_scanner(*proxy, vector);
      BOOST_TEST_REQUIRE(outcome.after_payload.size() == 1u);
      const Expected expected = expected_for(vector, normalize);
      BOOST_TEST(outcome.after_payload.front().code == expected.code,
                 outcome.after_payload.front().describe());
      BOOST_TEST(outcome.quit.code == 221);
      accepted.push_back(outcome.after_payload.front().code == 250);
      if (accepted.back()) accepted_ids.push_back(vector.id);
      client_ports.push_back(outcome.client_port);
      ids.push_back(vector.id);
    }
  }
  BOOST_REQUIRE(client_ports.size() == 12u);
  // Stopping the proxy closes the kept connection (QUIT), so its record is complete.
  proxy->stop();
  const auto connection = upstream_session_for(client_ports.front());
  BOOST_REQUIRE_MESSAGE(connection.has_value(), "no upstream connection for the first session");

  // Split its commands at each XCLIENT: one part per session, in the order the clients came.
  std::vector<std::vector<std::string>> sessions;
  for (const auto& command : connection->commands) {
    if (starts_with_nocase(command, "XCLIENT ")) sessions.emplace_back();
    if (!sessions.empty()) sessions.back().push_back(command);
  }
  BOOST_REQUIRE_MESSAGE(
      sessions.size() == client_ports.size(),
      "sessions on the kept connection: " << sessions.size() << " of " << client_ports.size());
  for (size_t k = 0; k < sessions.size(); ++k) {
    BOOST_TEST_CONTEXT("session " << k << " (vector " << ids[k] << "), bare_lf=" << mode) {
      const auto& commands = sessions[k];
      BOOST_TEST(has_word(commands.front(), fmt::format("PORT={}", client_ports[k])),
                 commands.front());
      size_t mail = 0, data = 0;
      for (const auto& command : commands) {
        if (starts_with_nocase(command, "MAIL ")) ++mail;
        if (starts_with_nocase(command, "DATA")) ++data;
        BOOST_TEST(!contains(command, "smuggled"), "smuggled command upstream: " << command);
      }
      BOOST_TEST(mail == 1u);
      BOOST_TEST(data == (accepted[k] ? 1u : 0u));
    }
  }
  BOOST_TEST(!has_bare_cr_or_lf(connection->received), printable(connection->received, 2000));
  BOOST_REQUIRE(connection->messages.size() == accepted_ids.size());
  for (size_t k = 0; k < accepted_ids.size(); ++k) {
    const std::string& raw = connection->messages[k].raw;
    BOOST_TEST(contains(raw, "Subject: smuggling probe " + accepted_ids[k] + "\r\n"),
               printable(raw, 600));
    BOOST_TEST(count_occurrences(raw, "\r\n.\r\n") == 1u, printable(raw, 2000));
  }
  if (normalize) BOOST_TEST(!accepted_ids.empty(), "normalize mode relayed no vector at all");
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_sequence_back_to_back_on_one_kept_upstream_connection) {
  check_back_to_back_on_one_connection("reject", false);
  check_back_to_back_on_one_connection("normalize", true);
}
