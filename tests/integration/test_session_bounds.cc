// What a hostile or broken client can cost, end to end against the real binary: a client that
// pipelines commands and never reads (its replies must not pile up in memory), one that
// trickles a command line, a message or a TLS handshake a byte at a time (deadlines that reads
// do not extend), and junk commands past [limits] max_junk_commands.
#define BOOST_TEST_MODULE integration_session_bounds
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <fmt/core.h>
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <thread>

#include "fixtures.h"
#include "recording_upstream.h"
#include "test_support.h"
#include "tls_support.h"

using namespace portcullis::test;

namespace {

constexpr int command_timeout_seconds = 4;
constexpr int data_block_seconds = 2;

PortcullisOptions bounded_options(uint16_t upstream_port) {
  PortcullisOptions options;
  options.upstream_port = upstream_port;
  options.settings["timeouts"]["command"] = std::to_string(command_timeout_seconds);
  options.settings["timeouts"]["data_block"] = std::to_string(data_block_seconds);
  // The memory case sends millions of HELP: the junk limit has its own case below.
  options.settings["limits"]["max_junk_commands"] = "1000000000";
  options.settings["server"]["workers"] = "1";  // the second client shares the first's loop
  return options;
}

long rss_kib(pid_t pid) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// A raw non-blocking client that writes and never reads.
class WriteOnlyClient {
 public:
  explicit WriteOnlyClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      throw std::runtime_error("connect failed");
    }
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~WriteOnlyClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  uint16_t local_port() const {
    sockaddr_in address{};
    socklen_t length = sizeof address;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    return ntohs(address.sin_port);
  }
  // Writes `block` again and again until `limit` bytes went out, or no byte could be written
  // for `stall`, or the peer is gone. Returns the bytes written.
  size_t write_until_stalled(const std::string& block, size_t limit, Millis stall) {
    size_t written = 0;
    size_t offset = 0;
    while (written < limit) {
      const ssize_t sent =
          ::send(fd_, block.data() + offset, block.size() - offset, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (sent > 0) {
        written += static_cast<size_t>(sent);
        offset = (offset + static_cast<size_t>(sent)) % block.size();
        continue;
      }
      if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) break;
      pollfd waiting{fd_, POLLOUT, 0};
      if (::poll(&waiting, 1, static_cast<int>(stall.count())) <= 0) break;
      if (waiting.revents & (POLLERR | POLLHUP)) break;
    }
    return written;
  }

 private:
  int fd_ = -1;
};

struct BoundsEnvironment {
  BoundsEnvironment() {
    // Under AddressSanitizer freed memory waits in a quarantine (256 MiB by default) before it
    // is reused, which would show as RSS growth for every command processed; a small quarantine
    // keeps the memory case a measure of what the proxy holds (and means nothing elsewhere).
    const char* asan = std::getenv("ASAN_OPTIONS");
    const std::string asan_options =
        std::string(asan ? asan : "") + (asan && *asan ? ":" : "") + "quarantine_size_mb=1";
    ::setenv("ASAN_OPTIONS", asan_options.c_str(), 1);
    upstream = std::make_unique<RecordingUpstream>();
    proxy = std::make_unique<PortcullisFixture>(bounded_options(upstream->port()));
    instance = this;
  }
  ~BoundsEnvironment() { instance = nullptr; }
  std::unique_ptr<RecordingUpstream> upstream;
  std::unique_ptr<PortcullisFixture> proxy;
  static BoundsEnvironment* instance;
};
BoundsEnvironment* BoundsEnvironment::instance = nullptr;
BOOST_TEST_GLOBAL_FIXTURE(BoundsEnvironment);

PortcullisFixture& proxy() {
  return *BoundsEnvironment::instance->proxy;
}

bool disconnected(uint16_t client_port, const std::string& reason, Millis timeout) {
  const std::string client = fmt::format("127.0.0.1:{}", client_port);
  return proxy().wait_for_event("disconnect", timeout, [&](const LogEvent& event) {
    return event.field("client") == client && event.field("reason") == reason;
  });
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_client_that_never_reads_costs_bounded_memory) {
  {
    SmtpTestClient warm_up("127.0.0.1", proxy().port());
    BOOST_REQUIRE_EQUAL(warm_up.read_reply().code, 220);
    BOOST_REQUIRE_EQUAL(warm_up.command("EHLO warm.example").code, 250);
    BOOST_REQUIRE_EQUAL(warm_up.command("QUIT").code, 221);
  }
  const long rss_before = rss_kib(proxy().pid());
  BOOST_REQUIRE_GT(rss_before, 0);

  WriteOnlyClient hog(proxy().port());
  std::string block = "EHLO hog.example\r\n";
  while (block.size() < 64 * 1024)
    block += "HELP\r\n";
  const size_t attempted = 40u << 20;
  const size_t written = hog.write_until_stalled(block, attempted, 1500ms);
  const long rss_after = rss_kib(proxy().pid());
  BOOST_TEST_MESSAGE("wrote " << written << " bytes; proxy RSS " << rss_before << " -> "
                              << rss_after << " KiB");
  // The proxy stopped taking input: what went out fits in the two sockets' buffers.
  BOOST_TEST(written < attempted);
  // Each HELP would have cost 70 bytes of queued reply (284 MiB for 40 MiB before the bound).
  BOOST_TEST(rss_after - rss_before < 4 * 1024);

  // The loop is not held: another client on the same (only) worker is served meanwhile.
  SmtpTestClient other("127.0.0.1", proxy().port());
  BOOST_TEST(other.read_reply().code == 220);
  BOOST_TEST(other.command("EHLO other.example").code == 250);
  BOOST_TEST(other.command("QUIT").code == 221);

  // No progress writing to the hog for [timeouts] command: it is closed.
  BOOST_TEST(
      disconnected(hog.local_port(), "write_failed", Millis((command_timeout_seconds + 4) * 1000)),
      proxy().diagnostics());
  BOOST_TEST(rss_kib(proxy().pid()) - rss_before < 4 * 1024);
}

BOOST_AUTO_TEST_CASE(a_trickled_command_line_ends_at_its_deadline) {
  SmtpTestClient client("127.0.0.1", proxy().port());
  BOOST_REQUIRE_EQUAL(client.read_reply().code, 220);
  const auto started = Clock::now();
  client.send("EHLO ");
  // One byte every half second: each read would re-arm an idle timeout for ever.
  SmtpReply reply;
  while (elapsed_ms(started) < (command_timeout_seconds + 6) * 1000) {
    client.send("a");
    if (!client.silent_for(500ms)) {
      reply = client.read_reply(2s);
      break;
    }
  }
  const long long took = elapsed_ms(started);
  BOOST_TEST(reply.code == 421, reply.describe());
  BOOST_TEST(reply.enhanced() == "4.4.2");
  BOOST_TEST(took >= (command_timeout_seconds - 1) * 1000);
  BOOST_TEST(took < (command_timeout_seconds + 3) * 1000);
  BOOST_TEST(client.wait_closed(3s));
  BOOST_TEST(proxy().wait_for_event("command_line_timeout", 2s));
}

BOOST_AUTO_TEST_CASE(a_trickled_message_ends_at_the_minimum_data_rate) {
  SmtpTestClient client("127.0.0.1", proxy().port());
  BOOST_REQUIRE_EQUAL(client.read_reply().code, 220);
  BOOST_REQUIRE_EQUAL(client.command("EHLO slow.example").code, 250);
  BOOST_REQUIRE_EQUAL(client.command("MAIL FROM:<a@example.org>").code, 250);
  BOOST_REQUIRE_EQUAL(client.command("RCPT TO:<b@example.net>").code, 250);
  BOOST_REQUIRE_EQUAL(client.command("DATA").code, 354);
  const auto started = Clock::now();
  SmtpReply reply;
  // A byte every 700 ms stays inside data_block (2 s) for ever, but far below 500 bytes/s.
  while (elapsed_ms(started) < (data_block_seconds + 8) * 1000) {
    client.send("x");
    if (!client.silent_for(700ms)) {
      reply = client.read_reply(2s);
      break;
    }
  }
  const long long took = elapsed_ms(started);
  BOOST_TEST(reply.code == 421, reply.describe());
  BOOST_TEST(took < (data_block_seconds + 3) * 1000);
  BOOST_TEST(client.wait_closed(3s));
  BOOST_TEST(proxy().wait_for_event("data_rate_timeout", 2s));
}

BOOST_AUTO_TEST_CASE(junk_commands_past_the_limit_count_as_errors) {
  PortcullisOptions options = bounded_options(BoundsEnvironment::instance->upstream->port());
  options.settings["limits"]["max_junk_commands"] = "3";
  options.settings["limits"]["max_errors"] = "2";
  PortcullisFixture junk_proxy(options);
  SmtpTestClient client("127.0.0.1", junk_proxy.port());
  BOOST_REQUIRE_EQUAL(client.read_reply().code, 220);
  BOOST_TEST(client.command("EHLO junk.example").code == 250);  // the first HELO is not junk
  BOOST_TEST(client.command("NOOP").code == 250);               // junk 1
  BOOST_TEST(client.command("EHLO junk.example").code == 250);  // junk 2: a repeated EHLO
  BOOST_TEST(client.command("HELP").code == 214);               // junk 3
  BOOST_TEST(client.command("VRFY postmaster").code == 252);    // junk 4: error 1 of 2
  const SmtpReply last = client.command("RSET");                // junk 5: error 2 of 2
  BOOST_TEST(last.code == 421, last.describe());
  BOOST_TEST(last.text().find("too many errors") != std::string::npos);
  BOOST_TEST(client.wait_closed(3s));
}

// [timeouts] command counts from the reply the client waits for, not from its last read: a
// connect phase (here pregreet's wait) that took most of the timeout leaves the client the
// whole timeout for its first command. The client idles on purpose (that is the behaviour under
// test): 3 s of wait + 2 s idle is past 4 s from the connection, well inside 4 s from the banner.
BOOST_AUTO_TEST_CASE(the_command_timeout_counts_from_the_banner_after_a_slow_connect_phase) {
  PortcullisOptions options = bounded_options(BoundsEnvironment::instance->upstream->port());
  options.settings["filters"] = {{"chain", "[\"pregreet\"]"}};
  options.settings["filter.pregreet"] = {{"wait_ms", "3000"}, {"teaser", "false"}};
  options.wait_ready = false;
  PortcullisFixture slow_proxy(options);
  BOOST_REQUIRE(slow_proxy.wait_for_event("upstream_reachable", 20s));
  SmtpTestClient client("127.0.0.1", slow_proxy.port());
  BOOST_REQUIRE_EQUAL(client.read_reply().code, 220);
  std::this_thread::sleep_for(2s);
  const SmtpReply ehlo = client.command("EHLO patient.example");
  BOOST_TEST(ehlo.code == 250, ehlo.describe() << slow_proxy.diagnostics());
}

BOOST_AUTO_TEST_CASE(a_stalled_tls_handshake_is_logged_and_closed_when_it_times_out) {
  TempDir certificates("portcullis-bounds-tls");
  certificates.chmod(0755);
  const CertificatePair pair =
      make_self_signed_certificate(certificates.path(), "a", "a.example.test", "ec");
  PortcullisOptions options = bounded_options(BoundsEnvironment::instance->upstream->port());
  options.listen_settings = {{"mode", toml_quoted("smtps")}, {"tls", toml_quoted("default")}};
  options.settings["tls.default"] = {{"certificate", toml_quoted(pair.certificate.string())},
                                     {"key", toml_quoted(pair.key.string())}};
  options.wait_ready = false;
  PortcullisFixture tls_proxy(options);
  BOOST_REQUIRE_MESSAGE(tls_proxy.wait_for_event("upstream_reachable", 15s),
                        tls_proxy.diagnostics());

  SmtpTestClient client("127.0.0.1", tls_proxy.port());
  const auto started = Clock::now();
  client.send(std::string("\x16\x03\x01", 3));  // the start of a record, and then nothing
  BOOST_TEST(client.wait_closed(Millis((command_timeout_seconds + 4) * 1000)));
  const long long took = elapsed_ms(started);
  // Closed when the timeout passed, not a linger later.
  BOOST_TEST(took < (command_timeout_seconds + 2) * 1000);
  BOOST_TEST(tls_proxy.wait_for_event("tls_handshake_failed", 2s,
                                      [](const LogEvent& event) {
                                        return event.field("reason").rfind("timeout", 0) == 0;
                                      }),
             tls_proxy.diagnostics());
  BOOST_TEST(tls_proxy.events_named("disconnect").size() == 1u);
  for (const LogEvent& event : tls_proxy.events_named("disconnect")) {
    BOOST_TEST(event.field("reason") == "tls_failed");
  }
}
