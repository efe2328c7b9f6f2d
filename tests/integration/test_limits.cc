// Limits and protocol errors end to end, against the recording upstream: the reply list of
// the core relay issue (sequence errors, bad paths and parameters, SIZE, line lengths, NUL,
// bare LF, HTTP/header lines, max_errors, max_recipients, timeouts, message problems), the
// unreachable-upstream banner, session limits, a missing XCLIENT, the PROXY v2 header, and
// spilling a large message to an unlinked 0600 file.
#define BOOST_TEST_MODULE integration_limits
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "fixtures.h"
#include "recording_upstream.h"
#include "test_support.h"

using namespace portcullis::test;
using namespace std::string_literals;  // "..."s keeps embedded NUL bytes
namespace fs = std::filesystem;

namespace {

constexpr size_t max_message_size = 100000;
constexpr size_t max_line_length = 1000;
constexpr size_t max_header_size = 2048;
constexpr size_t spill_threshold = 4096;
constexpr int max_errors = 10;
constexpr int max_recipients = 3;
constexpr int command_timeout_seconds = 3;
constexpr int data_block_timeout_seconds = 3;

PortcullisOptions limited_options(uint16_t upstream_port) {
  PortcullisOptions options;
  options.upstream_port = upstream_port;
  options.pass_client = "xclient";
  auto& limits = options.settings["limits"];
  limits["max_errors"] = std::to_string(max_errors);
  limits["max_recipients"] = std::to_string(max_recipients);
  limits["max_message_size"] = std::to_string(max_message_size);
  limits["max_line_length"] = std::to_string(max_line_length);
  limits["max_header_size"] = std::to_string(max_header_size);
  limits["spill_threshold"] = std::to_string(spill_threshold);
  options.settings["timeouts"]["command"] = std::to_string(command_timeout_seconds);
  options.settings["timeouts"]["data_block"] = std::to_string(data_block_timeout_seconds);
  // Each case checks that its sessions' upstream connections end with them; kept connections
  // (integration/upstream_reuse) would outlive them by design.
  options.settings["upstream"]["idle_timeout"] = "0";
  return options;
}

struct LimitsEnvironment {
  LimitsEnvironment() {
    upstream = std::make_unique<RecordingUpstream>();
    proxy = std::make_unique<PortcullisFixture>(limited_options(upstream->port()));
    instance = this;
  }
  ~LimitsEnvironment() { instance = nullptr; }

  std::unique_ptr<RecordingUpstream> upstream;
  std::unique_ptr<PortcullisFixture> proxy;

  static LimitsEnvironment* instance;
};
LimitsEnvironment* LimitsEnvironment::instance = nullptr;

BOOST_TEST_GLOBAL_FIXTURE(LimitsEnvironment);

LimitsEnvironment& env() {
  return *LimitsEnvironment::instance;
}

// Each test on the shared proxy starts with a well-behaved upstream and ends with the proxy
// still alive.
struct SharedProxy {
  SharedProxy() {
    env().upstream->set_behaviour({});
    // Sessions of earlier tests have ended; so must their upstream connections.
    BOOST_TEST(env().upstream->wait_for(
                   [](const std::vector<RecordedConnection>& connections) {
                     return std::none_of(connections.begin(), connections.end(),
                                         [](const auto& c) { return c.open; });
                   },
                   5s),
               "an upstream connection outlived its session");
    env().upstream->clear();
  }
  ~SharedProxy() { BOOST_TEST(env().proxy->running(), env().proxy->diagnostics()); }
};

SmtpTestClient connect_to(const PortcullisFixture& proxy, const std::string& source = "") {
  return SmtpTestClient("127.0.0.1", proxy.port(), {.source_address = source, .timeout = 10s});
}

SmtpTestClient connect_client() {
  return connect_to(*env().proxy);
}

// Greeted and EHLO'd.
SmtpTestClient ready_client(const PortcullisFixture& proxy) {
  SmtpTestClient client = connect_to(proxy);
  BOOST_TEST(client.read_reply().code == 220);
  BOOST_TEST(client.command("EHLO client.example.test").code == 250);
  return client;
}

bool reply_is(const SmtpReply& reply, int code, const std::string& enhanced) {
  return reply.code == code && reply.enhanced() == enhanced;
}

#define CHECK_REPLY(reply_expression, code, enhanced)                                           \
  do {                                                                                          \
    const SmtpReply checked_reply = (reply_expression);                                         \
    BOOST_TEST(reply_is(checked_reply, code, enhanced),                                         \
               #reply_expression << " -> " << checked_reply.describe() << ", expected " << code \
                                 << " " << enhanced);                                           \
  } while (false)

// Starts a transaction and sends DATA; true when 354 came.
bool open_data(SmtpTestClient& client) {
  return client.command("MAIL FROM:<a@example.test>").code == 250 &&
         client.command("RCPT TO:<b@example.test>").code == 250 &&
         client.command("DATA").code == 354;
}

std::set<std::string> ehlo_keywords(const SmtpReply& ehlo) {
  std::set<std::string> keywords;
  for (size_t i = 1; i < ehlo.lines.size(); ++i)
    keywords.insert(ehlo.lines[i]);
  return keywords;
}

// Every open file of `pid` that points into `dir`, as "fd -> target".
std::vector<std::pair<fs::path, std::string>> open_files_under(pid_t pid, const fs::path& dir) {
  std::vector<std::pair<fs::path, std::string>> found;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(fmt::format("/proc/{}/fd", pid), error)) {
    std::error_code link_error;
    const fs::path target = fs::read_symlink(entry.path(), link_error);
    // The [store] file and its lock file are open for the whole run; spill files are the rest.
    if (!link_error && target.string().rfind(dir.string() + "/", 0) == 0 &&
        target.filename() != "store.mdb" && target.filename() != "store.mdb-lock") {
      found.emplace_back(entry.path(), target.string());
    }
  }
  return found;
}

// The names in `dir` besides the [store] file and its lock file.
std::vector<std::string> names_besides_the_store(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name != "store.mdb" && name != "store.mdb-lock") names.push_back(name);
  }
  return names;
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(shared_proxy, SharedProxy)

BOOST_AUTO_TEST_CASE(banner_and_simple_commands) {
  auto client = connect_client();
  const SmtpReply banner = client.read_reply();
  BOOST_TEST(banner.code == 220);
  BOOST_TEST(banner.lines.at(0).rfind("portcullis.test ESMTP", 0) == 0u, banner.describe());
  BOOST_TEST(client.command("HELO helo.example.test").code == 250);
  const SmtpReply ehlo = client.command("EHLO ehlo.example.test");
  BOOST_TEST(ehlo.code == 250);
  const auto keywords = ehlo_keywords(ehlo);
  // SIZE is the smaller of max_message_size and the upstream's 52428800.
  const std::set<std::string> expected = {"PIPELINING", fmt::format("SIZE {}", max_message_size),
                                          "ENHANCEDSTATUSCODES", "8BITMIME"};
  BOOST_TEST(keywords == expected, ehlo.describe());
  CHECK_REPLY(client.command("NOOP"), 250, "2.0.0");
  CHECK_REPLY(client.command("RSET"), 250, "2.0.0");
  BOOST_TEST(client.command("VRFY postmaster").code == 252);
  BOOST_TEST(client.command("HELP").code == 214);
  CHECK_REPLY(client.command("FROBNICATE"), 500, "5.5.2");
  CHECK_REPLY(client.command("QUIT"), 221, "2.0.0");
  BOOST_TEST(client.wait_closed(5s));
  // Nothing here needed the upstream.
  BOOST_TEST(env().upstream->session_connections().empty());
}

BOOST_AUTO_TEST_CASE(commands_out_of_sequence) {
  auto client = connect_client();
  BOOST_TEST(client.read_reply().code == 220);
  CHECK_REPLY(client.command("MAIL FROM:<a@example.test>"), 503, "5.5.1");
  BOOST_TEST(client.command("EHLO client.example.test").code == 250);
  CHECK_REPLY(client.command("RCPT TO:<b@example.test>"), 503, "5.5.1");
  CHECK_REPLY(client.command("DATA"), 503, "5.5.1");
  BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
  CHECK_REPLY(client.command("MAIL FROM:<a@example.test>"), 503, "5.5.1");
  // A transaction is open (the first MAIL was taken) but has no recipient.
  CHECK_REPLY(client.command("DATA"), 554, "5.5.1");
  const uint16_t client_port = client.local_port();
  BOOST_TEST(client.command("QUIT").code == 221);
  // Each refusal is logged with its reply.
  const std::string client_id = fmt::format(":{}", client_port);
  BOOST_TEST(wait_until(
                 [&] {
                   size_t refused = 0;
                   for (const auto& event : env().proxy->events_named("refused")) {
                     if (contains(event.field("client"), client_id) &&
                         event.field("reply").rfind("503 5.5.1", 0) == 0) {
                       ++refused;
                     }
                   }
                   return refused >= 4;
                 },
                 5s),
             env().proxy->log_text());
}

BOOST_AUTO_TEST_CASE(data_after_only_refused_recipients) {
  UpstreamBehaviour behaviour;
  behaviour.replies = {{"RCPT TO:<unknown@", "550 5.1.1 <unknown@example.test>: User unknown"}};
  env().upstream->set_behaviour(behaviour);
  auto client = ready_client(*env().proxy);
  BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
  CHECK_REPLY(client.command("RCPT TO:<unknown@example.test>"), 550, "5.1.1");
  CHECK_REPLY(client.command("DATA"), 554, "5.5.1");
  BOOST_TEST(client.command("QUIT").code == 221);
}

BOOST_AUTO_TEST_CASE(bad_paths_and_parameters) {
  auto client = ready_client(*env().proxy);
  CHECK_REPLY(client.command("MAIL FROM:<a@example.test"), 501, "5.1.7");
  CHECK_REPLY(client.command("MAIL FROM:a@example.test"), 501, "5.1.7");
  CHECK_REPLY(client.command("MAIL FROM:<a b@example.test>"), 501, "5.1.7");
  CHECK_REPLY(client.command("MAIL FROM:<a@example.test> SIZE=abc"), 501, "5.5.4");
  CHECK_REPLY(client.command("MAIL FROM:<a@example.test> =novalue"), 501, "5.5.4");
  BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
  CHECK_REPLY(client.command("RCPT TO:<b@example.test"), 501, "5.1.3");
  CHECK_REPLY(client.command("RCPT TO:<b@>"), 501, "5.1.3");
  CHECK_REPLY(client.command("RCPT TO:b@example.test"), 501, "5.1.3");
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  BOOST_TEST(client.command("QUIT").code == 221);
  // None of the refused commands reached the upstream.
  const auto sessions = env().upstream->session_connections();
  BOOST_REQUIRE(sessions.size() == 1u);
  BOOST_TEST(sessions[0].count_verb("MAIL") == 1u);
  BOOST_TEST(sessions[0].count_verb("RCPT") == 1u);
}

BOOST_AUTO_TEST_CASE(declared_size_above_the_limit) {
  auto client = ready_client(*env().proxy);
  CHECK_REPLY(
      client.command(fmt::format("MAIL FROM:<a@example.test> SIZE={}", max_message_size + 1)), 552,
      "5.3.4");
  BOOST_TEST(
      client.command(fmt::format("MAIL FROM:<a@example.test> SIZE={}", max_message_size)).code ==
      250);
  BOOST_TEST(client.command("QUIT").code == 221);
}

BOOST_AUTO_TEST_CASE(command_line_lengths) {
  auto client = ready_client(*env().proxy);
  // 512 octets including CRLF is the limit for a command (RFC 5321 4.5.3.1.4).
  const auto padded = [](std::string start, size_t total_with_crlf) {
    start.resize(total_with_crlf - 2, 'x');
    return start;
  };
  BOOST_TEST(client.command(padded("NOOP ", 512)).code == 250);
  CHECK_REPLY(client.command(padded("NOOP ", 513)), 500, "5.5.2");
  // MAIL may be 26 octets longer because SIZE is offered (RFC 1870); RCPT may not (no DSN).
  BOOST_TEST(client.command(padded("MAIL FROM:<a@example.test> X-PAD=", 512 + 26)).code == 250);
  BOOST_TEST(client.command(padded("RCPT TO:<b@example.test> X-PAD=", 512)).code == 250);
  CHECK_REPLY(client.command(padded("RCPT TO:<c@example.test> X-PAD=", 513)), 500, "5.5.2");
  BOOST_TEST(client.command("RSET").code == 250);
  CHECK_REPLY(client.command(padded("MAIL FROM:<a@example.test> X-PAD=", 512 + 27)), 500, "5.5.2");
  // A huge line is discarded, not buffered, and the session stays in step.
  CHECK_REPLY(client.command(padded("NOOP ", 200000)), 500, "5.5.2");
  CHECK_REPLY(client.command("NOOP"), 250, "2.0.0");
  BOOST_TEST(client.command("QUIT").code == 221);
}

BOOST_AUTO_TEST_CASE(nul_in_a_command) {
  auto client = ready_client(*env().proxy);
  client.send("NOOP\0x\r\n"s);
  CHECK_REPLY(client.read_reply(), 500, "5.5.2");
  client.send("MAIL FROM:<a\0@example.test>\r\n"s);
  CHECK_REPLY(client.read_reply(), 500, "5.5.2");
  CHECK_REPLY(client.command("NOOP"), 250, "2.0.0");
  BOOST_TEST(client.command("QUIT").code == 221);
  BOOST_TEST(env().upstream->session_connections().empty());
}

BOOST_AUTO_TEST_CASE(bare_lf_command_rejected_by_default) {
  auto client = ready_client(*env().proxy);
  client.send("NOOP\n");
  CHECK_REPLY(client.read_reply(), 500, "5.5.2");
  client.send("MAIL FROM:<a@example.test>\n");
  CHECK_REPLY(client.read_reply(), 500, "5.5.2");
  CHECK_REPLY(client.command("NOOP"), 250, "2.0.0");
  BOOST_TEST(client.command("QUIT").code == 221);
  BOOST_TEST(env().upstream->session_connections().empty());
}

BOOST_AUTO_TEST_CASE(http_and_header_lines_end_the_session) {
  for (const std::string line :
       {"GET / HTTP/1.1", "POST /submit HTTP/1.0", "CONNECT mx.example.test:25 HTTP/1.1",
        "Host: mx.example.test", "User-Agent: curl/7.88"}) {
    BOOST_TEST_CONTEXT(line) {
      auto client = connect_client();
      BOOST_TEST(client.read_reply().code == 220);
      CHECK_REPLY(client.command(line), 221, "2.7.0");
      BOOST_TEST(client.wait_closed(5s));
    }
  }
  // Also in the middle of a session.
  auto client = ready_client(*env().proxy);
  CHECK_REPLY(client.command("GET /index.html HTTP/1.1"), 221, "2.7.0");
  BOOST_TEST(client.wait_closed(5s));
}

BOOST_AUTO_TEST_CASE(too_many_errors_close_the_session) {
  auto client = ready_client(*env().proxy);
  int errors_before_421 = 0;
  SmtpReply reply;
  for (int i = 0; i < max_errors + 3; ++i) {
    reply = client.command("FROBNICATE");
    if (reply.code != 500) break;
    ++errors_before_421;
  }
  // The max_errors-th error is answered, and the 421 follows it at once.
  BOOST_TEST(errors_before_421 == max_errors,
             errors_before_421 << " error replies before " << reply.describe());
  CHECK_REPLY(reply, 421, "4.7.0");
  BOOST_TEST(client.wait_closed(5s));
}

BOOST_AUTO_TEST_CASE(too_many_recipients) {
  auto client = ready_client(*env().proxy);
  BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
  for (int i = 1; i <= max_recipients; ++i) {
    BOOST_TEST(client.command(fmt::format("RCPT TO:<r{}@example.test>", i)).code == 250);
  }
  CHECK_REPLY(client.command("RCPT TO:<one-too-many@example.test>"), 452, "4.5.3");
  BOOST_TEST(client.command("DATA").code == 354);
  client.send(dot_stuff(make_message(500, "rcpts", "RCPTS")) + ".\r\n");
  BOOST_TEST(client.read_reply().code == 250);
  BOOST_TEST(client.command("QUIT").code == 221);
  const auto sessions = env().upstream->session_connections();
  BOOST_REQUIRE(sessions.size() == 1u);
  BOOST_TEST(sessions[0].count_verb("RCPT") == static_cast<size_t>(max_recipients));
  BOOST_TEST(!contains(sessions[0].received, "one-too-many"));
}

BOOST_AUTO_TEST_CASE(command_timeout) {
  auto client = connect_client();
  BOOST_TEST(client.read_reply().code == 220);
  const auto started = Clock::now();
  const SmtpReply reply = client.read_reply(Millis((command_timeout_seconds + 5) * 1000));
  const long long waited = elapsed_ms(started);
  CHECK_REPLY(reply, 421, "4.4.2");
  BOOST_TEST(waited >= (command_timeout_seconds - 1) * 1000LL);
  BOOST_TEST(waited <= (command_timeout_seconds + 3) * 1000LL);
  BOOST_TEST(client.wait_closed(5s));
}

BOOST_AUTO_TEST_CASE(data_block_timeout) {
  const size_t ended_before = env().proxy->events_named("disconnect").size();
  auto client = ready_client(*env().proxy);
  BOOST_REQUIRE(open_data(client));
  client.send("Subject: stalled\r\n\r\nhalf a messa");
  const SmtpReply reply = client.read_reply(Millis((data_block_timeout_seconds + 5) * 1000));
  BOOST_TEST(reply.code == 421, reply.describe());
  BOOST_TEST(reply.enhanced().rfind("4.", 0) == 0u);
  BOOST_TEST(client.wait_closed(5s));
  // Once the proxy has logged the session's end, nothing of it can still reach the upstream.
  BOOST_TEST(wait_until(
      [&] { return env().proxy->events_named("disconnect").size() > ended_before; }, 5s));
  BOOST_TEST(env().upstream->recorded_messages() == 0u);
}

BOOST_AUTO_TEST_CASE(message_problems_are_refused_and_the_session_goes_on) {
  struct Case {
    std::string name;
    std::string message;  // sent as is (already stuffed), without the terminator
    int code;
    std::string enhanced;
  };
  const std::string long_line(max_line_length + 10, 'L');
  std::string big_header = "Subject: header size\r\n";
  while (big_header.size() <= max_header_size + 100)
    big_header += "X-Filler: 0123456789abcdef\r\n";
  const std::vector<Case> cases = {
      {"bare CR", "Subject: cr\r\n\r\nbare\rcarriage return\r\n", 550, "5.5.2"},
      {"bare LF", "Subject: lf\r\n\r\nbare\nline feed\r\n", 550, "5.5.2"},
      {"NUL", "Subject: nul\r\n\r\nnul\0byte\r\n"s, 550, "5.6.0"},
      {"line longer than max_line_length", "Subject: long\r\n\r\n" + long_line + "\r\n", 552,
       "5.3.4"},
      {"header above max_header_size", big_header + "\r\nbody\r\n", 552, "5.3.4"},
      {"message above max_message_size",
       dot_stuff(make_message(max_message_size + 5000, "big", "BIG")), 552, "5.3.4"},
  };
  auto client = ready_client(*env().proxy);
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.name) {
      BOOST_REQUIRE(open_data(client));
      client.send(c.message + ".\r\n");
      CHECK_REPLY(client.read_reply(), c.code, c.enhanced);
      CHECK_REPLY(client.command("RSET"), 250, "2.0.0");
    }
  }
  // A line just under the limit passes byte-exact (never re-wrapped).
  const std::string near_limit =
      "Subject: near\r\n\r\n" + std::string(max_line_length - 10, 'N') + "\r\nend\r\n";
  BOOST_REQUIRE(open_data(client));
  client.send(near_limit + ".\r\n");
  BOOST_TEST(client.read_reply().code == 250);
  BOOST_TEST(client.command("QUIT").code == 221);
  BOOST_TEST(client.wait_closed(5s));

  const auto sessions = env().upstream->session_connections();
  BOOST_REQUIRE(sessions.size() == 1u);
  // Only the good message reached the upstream.
  BOOST_TEST(sessions[0].count_verb("DATA") == 1u);
  BOOST_REQUIRE(sessions[0].messages.size() == 1u);
  const std::string& raw = sessions[0].messages[0].raw;
  const std::string expected_tail = near_limit + ".\r\n";
  BOOST_TEST(
      (raw.size() >= expected_tail.size() &&
       raw.compare(raw.size() - expected_tail.size(), expected_tail.size(), expected_tail) == 0),
      printable(raw, 200));
}

BOOST_AUTO_TEST_CASE(large_message_spills_to_an_unlinked_private_file) {
  const std::string message = make_message(60000, "spill", "SPILL-END");
  BOOST_REQUIRE(message.size() > 10 * spill_threshold);
  BOOST_REQUIRE(message.size() < max_message_size);
  const std::string stuffed = dot_stuff(message);
  auto client = ready_client(*env().proxy);
  BOOST_REQUIRE(open_data(client));
  client.send(stuffed.substr(0, 40000));
  // Mid-message: the proxy holds a file under state_dir that no name points to.
  std::vector<std::pair<fs::path, std::string>> spill_files;
  const auto spilled_enough = [&] {
    spill_files = open_files_under(env().proxy->pid(), env().proxy->state_dir());
    struct stat info {};
    return spill_files.size() == 1 && ::stat(spill_files[0].first.c_str(), &info) == 0 &&
           info.st_size >= static_cast<off_t>(spill_threshold);
  };
  BOOST_TEST(wait_until(spilled_enough, 5s), "no spill file of at least spill_threshold bytes");
  BOOST_TEST(spill_files.size() == 1u);
  for (const auto& [fd_path, target] : spill_files) {
    BOOST_TEST(contains(target, "(deleted)"), target);
    struct stat info {};
    BOOST_REQUIRE(::stat(fd_path.c_str(), &info) == 0);
    BOOST_TEST((info.st_mode & 0777) == 0600u, std::oct << (info.st_mode & 0777));
    BOOST_TEST(info.st_nlink == 0u);
    BOOST_TEST(info.st_size >= static_cast<off_t>(spill_threshold));
  }
  BOOST_TEST(names_besides_the_store(env().proxy->state_dir()).empty(),
             "a name is visible in state_dir");
  client.send(stuffed.substr(40000) + ".\r\n");
  BOOST_TEST(client.read_reply().code == 250);
  BOOST_TEST(client.command("QUIT").code == 221);
  BOOST_TEST(names_besides_the_store(env().proxy->state_dir()).empty());
  BOOST_TEST(wait_until(
      [&] { return open_files_under(env().proxy->pid(), env().proxy->state_dir()).empty(); }, 3s));
  const auto sessions = env().upstream->session_connections();
  BOOST_REQUIRE(sessions.size() == 1u);
  BOOST_REQUIRE(sessions[0].messages.size() == 1u);
  const std::string& raw = sessions[0].messages[0].raw;
  const std::string expected_tail = stuffed + ".\r\n";
  BOOST_TEST(
      (raw.size() >= expected_tail.size() &&
       raw.compare(raw.size() - expected_tail.size(), expected_tail.size(), expected_tail) == 0),
      "spilled message changed on its way");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(bare_lf_accepted_with_normalize) {
  RecordingUpstream upstream;
  PortcullisOptions options = limited_options(upstream.port());
  options.settings["limits"]["bare_lf"] = "\"normalize\"";
  PortcullisFixture proxy(options);
  auto client = connect_to(proxy);
  BOOST_TEST(client.read_reply().code == 220);
  client.send("EHLO lf.example.test\nMAIL FROM:<a@example.test>\nRCPT TO:<b@example.test>\nDATA\n");
  BOOST_TEST(client.read_reply().code == 250);
  BOOST_TEST(client.read_reply().code == 250);
  BOOST_TEST(client.read_reply().code == 250);
  BOOST_TEST(client.read_reply().code == 354);
  // In the message too, a bare LF becomes CRLF; DATA still ends only on CRLF.CRLF. The
  // lone "." line is then dot-unstuffed like any other (DESIGN §9: normalize, then unstuff),
  // which leaves it empty.
  // ".two" is a stuffed "two", as with CRLF.
  client.send("Subject: lf\n\nline one\n.\n.two\nline three\r\n.\r\n");
  BOOST_TEST(client.read_reply().code == 250);
  client.send("QUIT\n");
  CHECK_REPLY(client.read_reply(), 221, "2.0.0");
  const auto sessions = upstream.session_connections();
  BOOST_REQUIRE(sessions.size() == 1u);
  BOOST_REQUIRE(sessions[0].messages.size() == 1u);
  const std::string& raw = sessions[0].messages[0].raw;
  const std::string expected_tail = "Subject: lf\r\n\r\nline one\r\n\r\ntwo\r\nline three\r\n.\r\n";
  BOOST_TEST(
      (raw.size() >= expected_tail.size() &&
       raw.compare(raw.size() - expected_tail.size(), expected_tail.size(), expected_tail) == 0),
      printable(raw));
  BOOST_TEST(proxy.running(), proxy.diagnostics());
}

BOOST_AUTO_TEST_CASE(unreachable_upstream_gets_421_banner_until_it_comes_up) {
  const uint16_t upstream_port = free_loopback_port();
  PortcullisOptions options = limited_options(upstream_port);
  options.wait_ready = false;
  PortcullisFixture proxy(options);
  {
    auto client = connect_to(proxy);
    const SmtpReply banner = client.read_reply();
    CHECK_REPLY(banner, 421, "4.4.1");
    BOOST_TEST(client.wait_closed(5s));
  }
  // It probes again every 2 s: once the upstream exists, sessions get their 220.
  RecordingUpstream upstream({}, upstream_port);
  const auto started = Clock::now();
  const bool recovered = wait_until(
      [&] {
        auto client = connect_to(proxy);
        const bool greeted = client.read_reply().code == 220;
        if (greeted) client.command("QUIT");
        return greeted;
      },
      10s, 250ms);
  BOOST_TEST(recovered, proxy.diagnostics());
  BOOST_TEST(elapsed_ms(started) < 6000);
  BOOST_TEST(proxy.running(), proxy.diagnostics());
}

BOOST_AUTO_TEST_CASE(sessions_per_ip_and_in_total) {
  RecordingUpstream upstream;
  PortcullisOptions options = limited_options(upstream.port());
  options.settings["limits"]["max_sessions_per_ip"] = "2";
  options.settings["limits"]["max_sessions"] = "4";
  PortcullisFixture proxy(options);
  // The fixture's readiness session must be gone before counting.
  BOOST_TEST(proxy.wait_for_event("disconnect", 5s));

  std::vector<std::unique_ptr<SmtpTestClient>> open;
  auto open_session = [&](const std::string& source) {
    auto client = std::make_unique<SmtpTestClient>(
        "127.0.0.1", proxy.port(), SmtpTestClient::Options{.source_address = source});
    SmtpReply banner = client->read_reply();
    open.push_back(std::move(client));
    return banner;
  };
  BOOST_TEST(open_session("127.0.0.1").code == 220);
  BOOST_TEST(open_session("127.0.0.1").code == 220);
  CHECK_REPLY(open_session("127.0.0.1"), 421, "4.7.0");
  BOOST_TEST(open.back()->wait_closed(5s));
  BOOST_TEST(open_session("127.0.0.2").code == 220);     // per address
  BOOST_TEST(open_session("127.0.0.3").code == 220);     // 4 sessions now
  CHECK_REPLY(open_session("127.0.0.4"), 421, "4.7.0");  // max_sessions
  BOOST_TEST(open.back()->wait_closed(5s));

  // A session that ends frees its slot.
  BOOST_TEST(open[0]->command("QUIT").code == 221);
  open[0]->wait_closed(5s);
  const bool freed = wait_until(
      [&] {
        SmtpTestClient client("127.0.0.1", proxy.port());
        const bool greeted = client.read_reply().code == 220;
        if (greeted) client.command("QUIT");
        return greeted;
      },
      5s, 100ms);
  BOOST_TEST(freed);
  BOOST_TEST(proxy.running(), proxy.diagnostics());
}

BOOST_AUTO_TEST_CASE(upstream_without_xclient_refuses_transactions_and_says_why) {
  UpstreamBehaviour behaviour;
  behaviour.ehlo_keywords = {"PIPELINING", "SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES"};
  RecordingUpstream upstream(behaviour);
  PortcullisFixture proxy(limited_options(upstream.port()));
  auto client = ready_client(proxy);
  CHECK_REPLY(client.command("MAIL FROM:<a@example.test>"), 421, "4.3.0");
  BOOST_TEST(client.wait_closed(5s));
  // Never relayed without the client's identity: that would make the proxy the client.
  for (const auto& connection : upstream.connections()) {
    BOOST_TEST(connection.count_verb("MAIL") == 0u);
  }
  BOOST_TEST(
      wait_until([&] { return contains(proxy.log_text(), "smtpd_authorized_xclient_hosts"); }, 5s),
      proxy.log_text());
  BOOST_TEST(proxy.running(), proxy.diagnostics());
}

BOOST_AUTO_TEST_CASE(xclient_refused_by_the_upstream_is_never_relayed) {
  UpstreamBehaviour behaviour;
  behaviour.replies = {{"XCLIENT", "550 5.7.0 Error: insufficient authorization"}};
  RecordingUpstream upstream(behaviour);
  PortcullisFixture proxy(limited_options(upstream.port()));
  auto client = ready_client(proxy);
  const SmtpReply mail = client.command("MAIL FROM:<a@example.test>");
  BOOST_TEST(mail.code / 100 == 4, mail.describe());
  for (const auto& connection : upstream.connections()) {
    BOOST_TEST(connection.count_verb("MAIL") == 0u);
  }
  BOOST_TEST(
      wait_until([&] { return contains(proxy.log_text(), "smtpd_authorized_xclient_hosts"); }, 5s),
      proxy.log_text());
}

BOOST_AUTO_TEST_CASE(proxy_v2_header_first_on_each_session_connection) {
  UpstreamBehaviour behaviour;
  behaviour.expect_proxy_v2 = true;
  behaviour.proxy_header_wait = 300ms;
  RecordingUpstream upstream(behaviour);
  PortcullisOptions options = limited_options(upstream.port());
  options.pass_client = "proxy-v2";
  PortcullisFixture proxy(options);
  auto client = connect_to(proxy, "127.0.0.2");
  BOOST_TEST(client.read_reply().code == 220);
  BOOST_TEST(client.command("EHLO v2.example.test").code == 250);
  BOOST_REQUIRE(open_data(client));
  client.send(dot_stuff(make_message(800, "v2", "PROXY-V2")) + ".\r\n");
  BOOST_TEST(client.read_reply().code == 250);
  const uint16_t client_port = client.local_port();
  BOOST_TEST(client.command("QUIT").code == 221);

  const auto connections = upstream.connections();
  size_t sessions = 0;
  for (const auto& connection : connections) {
    if (connection.looks_like_probe()) {
      // The probe speaks for Portcullis itself: a LOCAL header (an upstream in PROXY mode,
      // such as Postfix with smtpd_upstream_proxy_protocol = haproxy, needs one every time).
      BOOST_REQUIRE(!connection.proxy_header.empty());
      const ProxyV2Header local = parse_proxy_v2(connection.proxy_header);
      BOOST_TEST(local.valid, local.error);
      BOOST_TEST(local.command == 0u);  // LOCAL
      BOOST_TEST(local.family == 0u);   // AF_UNSPEC
      continue;
    }
    ++sessions;
    BOOST_REQUIRE(!connection.proxy_header.empty());
    // The very first bytes on the connection.
    BOOST_TEST(connection.received.rfind(connection.proxy_header, 0) == 0u);
    const ProxyV2Header header = parse_proxy_v2(connection.proxy_header);
    BOOST_TEST(header.valid, header.error);
    BOOST_TEST(header.version == 2u);
    BOOST_TEST(header.command == 1u);    // PROXY
    BOOST_TEST(header.family == 1u);     // AF_INET
    BOOST_TEST(header.transport == 1u);  // STREAM
    BOOST_TEST(header.source_address == "127.0.0.2");
    BOOST_TEST(header.source_port == client_port);
    BOOST_TEST(header.destination_address == "127.0.0.1");
    BOOST_TEST(header.destination_port == proxy.port());
    BOOST_TEST(connection.count_verb("XCLIENT") == 0u);
    BOOST_TEST(connection.messages.size() == 1u);
  }
  BOOST_TEST(sessions == 1u);
  BOOST_TEST(proxy.running(), proxy.diagnostics());
}

BOOST_AUTO_TEST_CASE(rich_upstream_capabilities_and_dsn_line_limits) {
  UpstreamBehaviour behaviour;
  behaviour.ehlo_keywords = {"PIPELINING",
                             "SIZE 20000",
                             "VRFY",
                             "ETRN",
                             "STARTTLS",
                             "AUTH PLAIN LOGIN",
                             "ENHANCEDSTATUSCODES",
                             "8BITMIME",
                             "DSN",
                             "SMTPUTF8",
                             "CHUNKING",
                             "XFORWARD NAME ADDR PROTO HELO",
                             "XCLIENT ADDR PORT NAME REVERSE_NAME HELO PROTO DESTADDR DESTPORT"};
  RecordingUpstream upstream(behaviour);
  PortcullisFixture proxy(limited_options(upstream.port()));
  auto client = connect_to(proxy);
  BOOST_TEST(client.read_reply().code == 220);
  const SmtpReply ehlo = client.command("EHLO rich.example.test");
  // The upstream's smaller SIZE wins; 8BITMIME, SMTPUTF8 and DSN pass; nothing else does.
  const std::set<std::string> expected = {"PIPELINING", "SIZE 20000", "ENHANCEDSTATUSCODES",
                                          "8BITMIME",   "SMTPUTF8",   "DSN"};
  BOOST_TEST(ehlo_keywords(ehlo) == expected, ehlo.describe());

  const auto padded = [](std::string start, size_t total_with_crlf) {
    start.resize(total_with_crlf - 2, 'x');
    return start;
  };
  // With SIZE and DSN offered: MAIL may have 512 + 26 + 100 octets, RCPT 512 + 500.
  BOOST_TEST(client.command(padded("MAIL FROM:<a@example.test> ENVID=", 638)).code == 250);
  BOOST_TEST(client.command(padded("RCPT TO:<b@example.test> ORCPT=rfc822;", 1012)).code == 250);
  CHECK_REPLY(client.command(padded("RCPT TO:<c@example.test> ORCPT=rfc822;", 1013)), 500, "5.5.2");
  BOOST_TEST(client.command("RSET").code == 250);
  CHECK_REPLY(client.command(padded("MAIL FROM:<a@example.test> ENVID=", 639)), 500, "5.5.2");
  // DSN and SMTPUTF8 parameters pass through unchanged.
  BOOST_TEST(client.command("MAIL FROM:<a@example.test> RET=HDRS ENVID=abc+2Bdef SMTPUTF8").code ==
             250);
  BOOST_TEST(client
                 .command("RCPT TO:<b@example.test> NOTIFY=SUCCESS,FAILURE "
                          "ORCPT=rfc822;b@example.test")
                 .code == 250);
  BOOST_TEST(client.command("QUIT").code == 221);
  const auto sessions = upstream.session_connections();
  BOOST_REQUIRE(sessions.size() == 1u);
  const auto& commands = sessions[0].commands;
  BOOST_TEST(std::count(commands.begin(), commands.end(),
                        "MAIL FROM:<a@example.test> RET=HDRS ENVID=abc+2Bdef SMTPUTF8") == 1);
  BOOST_TEST(std::count(commands.begin(), commands.end(),
                        "RCPT TO:<b@example.test> NOTIFY=SUCCESS,FAILURE "
                        "ORCPT=rfc822;b@example.test") == 1);
  BOOST_TEST(proxy.running(), proxy.diagnostics());
}
