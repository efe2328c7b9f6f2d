// Portcullis in front of smtp-sink (pass_client = "none"): a swaks delivery, a pipelined
// session in one write, several transactions per session, a 20 MB message, and the EHLO
// capabilities. Throughout: every 2xx final reply at the client is a message at the sink.
#define BOOST_TEST_MODULE integration_smtp_sink
#include <fmt/core.h>
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "fixtures.h"
#include "test_support.h"

using namespace portcullis::test;

namespace {

struct SinkEnvironment {
  SinkEnvironment() {
    PortcullisOptions options;
    options.upstream_port = sink.port();
    options.pass_client = "none";
    // A 20 MB message takes longer than the 5 s the other tests use.
    options.settings["timeouts"]["data_block"] = "30";
    options.settings["upstream"]["reply_timeout"] = "30";
    proxy = std::make_unique<PortcullisFixture>(options);
    instance = this;
  }
  ~SinkEnvironment() { instance = nullptr; }

  SmtpSinkFixture sink;
  std::unique_ptr<PortcullisFixture> proxy;
  size_t accepted_at_client = 0;  // 2xx replies to end of data, over the whole module

  static SinkEnvironment* instance;
};
SinkEnvironment* SinkEnvironment::instance = nullptr;

BOOST_TEST_GLOBAL_FIXTURE(SinkEnvironment);

SinkEnvironment& env() {
  return *SinkEnvironment::instance;
}

SmtpTestClient connect_client() {
  return SmtpTestClient("127.0.0.1", env().proxy->port(), {.source_address = "", .timeout = 30s});
}

// Every message the client saw accepted is at the sink, and no other.
void check_client_2xx_equals_sink_messages() {
  env().sink.wait_for_messages(env().accepted_at_client, 10s);
  BOOST_TEST(env().sink.message_count() == env().accepted_at_client,
             "2xx at the client: " << env().accepted_at_client
                                   << ", messages at the sink: " << env().sink.message_count());
  BOOST_TEST(env().proxy->running(), env().proxy->diagnostics());
}

std::string lf_lines(const std::string& crlf) {
  std::string out;
  out.reserve(crlf.size());
  for (size_t i = 0; i < crlf.size(); ++i) {
    if (crlf[i] == '\r' && i + 1 < crlf.size() && crlf[i + 1] == '\n') continue;
    out.push_back(crlf[i]);
  }
  return out;
}

std::set<std::string> ehlo_keywords(const SmtpReply& ehlo) {
  std::set<std::string> keywords;
  for (size_t i = 1; i < ehlo.lines.size(); ++i) {
    std::string keyword = ehlo.lines[i].substr(0, ehlo.lines[i].find(' '));
    for (auto& c : keyword)
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (!keyword.empty()) keywords.insert(keyword);
  }
  return keywords;
}

std::string keyword_line(const SmtpReply& ehlo, const std::string& keyword) {
  for (size_t i = 1; i < ehlo.lines.size(); ++i) {
    if (starts_with_nocase(ehlo.lines[i], keyword)) return ehlo.lines[i];
  }
  return {};
}

}  // namespace

BOOST_AUTO_TEST_CASE(banner_and_ehlo_capabilities_follow_the_upstream) {
  // What smtp-sink itself offers, asked directly.
  SmtpTestClient direct("127.0.0.1", env().sink.port());
  BOOST_TEST(direct.read_reply().code == 220);
  const SmtpReply sink_ehlo = direct.command("EHLO harness.test");
  BOOST_REQUIRE(sink_ehlo.code == 250);
  const auto upstream = ehlo_keywords(sink_ehlo);
  direct.command("QUIT");

  auto client = connect_client();
  const SmtpReply banner = client.read_reply();
  BOOST_TEST(banner.code == 220);
  BOOST_TEST(banner.lines.at(0).rfind("portcullis.test ESMTP", 0) == 0u, banner.describe());
  const SmtpReply ehlo = client.command("EHLO client.example.test");
  BOOST_REQUIRE(ehlo.code == 250);
  const auto offered = ehlo_keywords(ehlo);

  // DESIGN §2: PIPELINING, SIZE, ENHANCEDSTATUSCODES always; 8BITMIME, SMTPUTF8, DSN only
  // when the upstream has them; never what would expose or bypass the upstream.
  for (const char* always : {"PIPELINING", "SIZE", "ENHANCEDSTATUSCODES"}) {
    BOOST_TEST(offered.count(always) == 1u, always << " missing: " << ehlo.describe());
  }
  for (const char* conditional : {"8BITMIME", "SMTPUTF8", "DSN"}) {
    BOOST_TEST(offered.count(conditional) == upstream.count(conditional),
               conditional << ": upstream " << upstream.count(conditional) << ", offered "
                           << offered.count(conditional));
  }
  for (const char* never : {"XCLIENT", "AUTH", "XFORWARD", "CHUNKING", "STARTTLS"}) {
    BOOST_TEST(offered.count(never) == 0u, never << " offered: " << ehlo.describe());
  }
  // smtp-sink states no SIZE, so the limit is max_message_size (default 52428800).
  BOOST_TEST(upstream.count("SIZE") == 0u);
  BOOST_TEST(keyword_line(ehlo, "SIZE") == "SIZE 52428800");
  BOOST_TEST(client.command("QUIT").code == 221);
  BOOST_TEST(client.wait_closed(5s));
  check_client_2xx_equals_sink_messages();
}

BOOST_AUTO_TEST_CASE(swaks_delivery) {
  const size_t before = env().sink.message_count();
  auto result =
      run_command({"swaks", "--server", "127.0.0.1", "--port", std::to_string(env().proxy->port()),
                   "--from", "a@example.test", "--to", "b@example.test", "--helo",
                   "swaks.example.test", "--body", "swaks-through-portcullis"},
                  60s);
  BOOST_TEST(result.status.success(), result.status.describe() << "\n" << result.out);
  BOOST_TEST(contains(result.out, "<-  250 "));
  if (result.status.success()) ++env().accepted_at_client;
  BOOST_TEST(env().sink.wait_for_messages(before + 1, 10s));
  const std::string dump = env().sink.message_with("swaks-through-portcullis");
  BOOST_TEST(contains(dump, "X-Mail-Args: <a@example.test>"));
  BOOST_TEST(contains(dump, "X-Rcpt-Args: <b@example.test>"));
  check_client_2xx_equals_sink_messages();
}

BOOST_AUTO_TEST_CASE(pipelined_session_in_one_write) {
  auto client = connect_client();
  BOOST_TEST(client.read_reply().code == 220);
  const std::string message = make_message(4000, "pipelined", "PIPELINED-MARKER");
  // Everything in one write, message and QUIT included.
  client.send(
      "EHLO pipeliner.example.test\r\n"
      "MAIL FROM:<a@example.test>\r\n"
      "RCPT TO:<b@example.test>\r\n"
      "RCPT TO:<c@example.test>\r\n"
      "DATA\r\n" +
      dot_stuff(message) + ".\r\nQUIT\r\n");
  std::vector<int> codes;
  for (int i = 0; i < 7; ++i)
    codes.push_back(client.read_reply().code);
  BOOST_TEST(codes == (std::vector<int>{250, 250, 250, 250, 354, 250, 221}),
             boost::test_tools::per_element());
  if (codes[5] == 250) ++env().accepted_at_client;
  BOOST_TEST(client.wait_closed(5s));
  check_client_2xx_equals_sink_messages();
  const std::string dump = env().sink.message_with("PIPELINED-MARKER");
  BOOST_TEST(contains(dump, "X-Rcpt-Args: <b@example.test>"));
  BOOST_TEST(contains(dump, "X-Rcpt-Args: <c@example.test>"));
  BOOST_TEST(contains(dump, lf_lines(message)), "the message did not arrive byte for byte");
}

BOOST_AUTO_TEST_CASE(several_transactions_per_session) {
  auto client = connect_client();
  BOOST_TEST(client.read_reply().code == 220);
  BOOST_TEST(client.command("EHLO multi.example.test").code == 250);
  for (int n = 1; n <= 3; ++n) {
    BOOST_TEST_CONTEXT("transaction " << n) {
      BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
      BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
      BOOST_TEST(client.command("DATA").code == 354);
      client.send(dot_stuff(make_message(1500, "multi", fmt::format("MULTI-MARKER-{}", n))) +
                  ".\r\n");
      const SmtpReply reply = client.read_reply();
      BOOST_TEST(reply.code == 250, reply.describe());
      if (reply.code / 100 == 2) ++env().accepted_at_client;
      if (n == 2) BOOST_TEST(client.command("RSET").code == 250);
    }
  }
  // An abandoned transaction in between delivers nothing.
  BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  BOOST_TEST(client.command("RSET").code == 250);
  BOOST_TEST(client.command("QUIT").code == 221);
  check_client_2xx_equals_sink_messages();
  for (int n = 1; n <= 3; ++n) {
    BOOST_TEST(!env().sink.message_with(fmt::format("MULTI-MARKER-{}", n)).empty(), n);
  }
}

BOOST_AUTO_TEST_CASE(twenty_megabyte_message) {
  const std::string message = make_message(20 * 1024 * 1024, "twenty", "TWENTY-MB-END-MARKER");
  auto client = connect_client();
  BOOST_TEST(client.read_reply().code == 220);
  BOOST_TEST(client.command("EHLO big.example.test").code == 250);
  BOOST_TEST(
      client.command(fmt::format("MAIL FROM:<a@example.test> SIZE={}", message.size())).code ==
      250);
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  BOOST_TEST(client.command("DATA").code == 354);
  const auto started = Clock::now();
  BOOST_TEST(client.send(dot_stuff(message) + ".\r\n"));
  const SmtpReply reply = client.read_reply(60s);
  BOOST_TEST_MESSAGE("20 MB through Portcullis to smtp-sink: " << elapsed_ms(started) << " ms");
  BOOST_TEST(reply.code == 250, reply.describe());
  if (reply.code / 100 == 2) ++env().accepted_at_client;
  BOOST_TEST(client.command("QUIT").code == 221);
  check_client_2xx_equals_sink_messages();
  const std::string dump = env().sink.message_with("TWENTY-MB-END-MARKER");
  BOOST_TEST(dump.size() >= message.size() - message.size() / 38);  // LF instead of CRLF
  BOOST_TEST(contains(dump, lf_lines(message)), "the 20 MB message did not arrive intact");
  // Spilled to a file under state_dir while it was read; nothing is left there but the
  // [store] file and its lock file.
  std::vector<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator(env().proxy->state_dir())) {
    left.push_back(entry.path().filename().string());
  }
  std::sort(left.begin(), left.end());
  BOOST_TEST(left == (std::vector<std::string>{"store.mdb", "store.mdb-lock"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(oversized_message_is_refused_and_not_delivered) {
  auto client = connect_client();
  BOOST_TEST(client.read_reply().code == 220);
  BOOST_TEST(client.command("EHLO big.example.test").code == 250);
  const SmtpReply size_refused = client.command("MAIL FROM:<a@example.test> SIZE=52428801");
  BOOST_TEST(size_refused.code == 552);
  BOOST_TEST(size_refused.enhanced() == "5.3.4");
  BOOST_TEST(client.command("QUIT").code == 221);
  check_client_2xx_equals_sink_messages();
}
