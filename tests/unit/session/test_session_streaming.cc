// A real Session on a worker loop in this process, with a test-only streaming filter in its
// chain, a client on loopback and a recording upstream: what the filter streams while DATA
// arrives is, byte for byte, what HookContext::message() reads at the data phase and what the
// relay sends — in memory and spilled to a file, with the client's writes split at odd places,
// across a refused message, RSET and several messages a session, and a filter that throws
// while streaming fails the data phase (451).
#define BOOST_TEST_MODULE session_streaming
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "config.h"
#include "recording_upstream.h"
#include "server_context.h"
#include "session_limits.h"
#include "test_support.h"
#include "upstream_status.h"
#include "worker.h"

using namespace portcullis;
namespace test = portcullis::test;
using namespace std::chrono_literals;

namespace {

// What the filter saw of one message at its data phase.
struct SeenMessage {
  std::string streamed;    // on_message_data, joined
  std::size_t chunks = 0;  // on_message_data calls
  std::string read;        // message()->read_from_start(), read to the end
  std::string reader_error;
  std::string header_section;  // message()->header_section()
  std::uint64_t size = 0;      // message()->size()
  bool spilled = false;        // a file of the spill directory was open at the data phase
};

// Shared between the worker thread (the filter) and the test.
struct Observations {
  std::mutex mutex;
  int begins = 0;
  std::vector<SeenMessage> messages;
  // Bytes of the current message streamed so far, for a client that waits for each byte.
  std::atomic<std::size_t> streamed_bytes{0};
};

// Open descriptors of this process that point into `dir` (an unlinked spill file shows as
// "DIR/#123 (deleted)").
bool has_open_file_in(const std::filesystem::path& dir) {
  const std::string prefix = dir.string() + "/";
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code error;
    const auto target = std::filesystem::read_symlink(entry.path(), error);
    if (!error && target.string().rfind(prefix, 0) == 0) return true;
  }
  return false;
}

// Streams the message, and at the data phase compares it with what message() gives; a
// difference fails the filter (the client then gets 451). Throws from on_message_data when a
// chunk holds `throw_marker`.
class ComparingFilter : public SessionFilter {
 public:
  ComparingFilter(std::shared_ptr<Observations> observations, std::filesystem::path spill_dir)
      : observations_(std::move(observations)), spill_dir_(std::move(spill_dir)) {}

  void on_message_begin(StreamContext& context) override {
    BOOST_TEST(context.session().session_id != 0u);
    current_ = SeenMessage{};
    observations_->streamed_bytes = 0;
    std::lock_guard lock(observations_->mutex);
    ++observations_->begins;
  }
  void on_message_data(StreamContext&, std::string_view bytes) override {
    if (bytes.find(throw_marker) != std::string_view::npos) {
      throw std::runtime_error("the test filter was told to throw");
    }
    current_.streamed += bytes;
    ++current_.chunks;
    observations_->streamed_bytes = current_.streamed.size();
  }
  HookStatus on_phase(HookContext& context) override {
    const MessageView* message = context.message();
    if (message == nullptr) {
      context.fail("no message at the data phase");
      return HookStatus::continue_chain;
    }
    SeenMessage seen = std::move(current_);
    current_ = SeenMessage{};
    seen.size = message->size();
    seen.header_section = std::string(message->header_section());
    auto reader = message->read_from_start();
    std::string chunk;
    while (reader->read(&chunk, 997))
      seen.read += chunk;
    seen.reader_error = reader->error();
    seen.spilled = has_open_file_in(spill_dir_);
    if (seen.read != seen.streamed) context.fail("streamed bytes differ from the message");
    std::lock_guard lock(observations_->mutex);
    observations_->messages.push_back(std::move(seen));
    return HookStatus::continue_chain;
  }

  static constexpr std::string_view throw_marker = "X-Throw-In-Stream";

 private:
  std::shared_ptr<Observations> observations_;
  std::filesystem::path spill_dir_;
  SeenMessage current_;
};

class ComparingFactory : public FilterFactory {
 public:
  ComparingFactory(std::shared_ptr<Observations> observations, std::filesystem::path spill_dir)
      : observations_(std::move(observations)), spill_dir_(std::move(spill_dir)) {}
  std::unique_ptr<SessionFilter> create() const override {
    return std::make_unique<ComparingFilter>(observations_, spill_dir_);
  }

 private:
  std::shared_ptr<Observations> observations_;
  std::filesystem::path spill_dir_;
};

// A listening socket on 127.0.0.1 whose connections are handed to a Worker, as the acceptor
// does.
class LoopbackListener {
 public:
  LoopbackListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BOOST_TEST_REQUIRE(fd_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_TEST_REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    BOOST_TEST_REQUIRE(::listen(fd_, 8) == 0);
    socklen_t length = sizeof address;
    BOOST_TEST_REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port_ = ntohs(address.sin_port);
  }
  ~LoopbackListener() { ::close(fd_); }
  std::uint16_t port() const { return port_; }

  // Accepts one pending connection.
  AcceptedConnection accept_one(std::shared_ptr<const ListenConfig> listen) {
    sockaddr_storage peer{};
    socklen_t peer_length = sizeof peer;
    const int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &peer_length,
                             SOCK_CLOEXEC | SOCK_NONBLOCK);
    BOOST_TEST_REQUIRE(fd >= 0);
    sockaddr_storage local{};
    socklen_t local_length = sizeof local;
    BOOST_TEST_REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length) == 0);
    auto peer_address = NetAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&peer), peer_length);
    auto local_address =
        NetAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&local), local_length);
    BOOST_TEST_REQUIRE(peer_address.has_value());
    BOOST_TEST_REQUIRE(local_address.has_value());
    return AcceptedConnection{fd, *peer_address, *local_address, std::move(listen), ""};
  }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// One worker with the comparing filter as its whole chain, relaying to a recording upstream.
struct Proxy {
  test::TempDir dir{"session-streaming"};
  test::RecordingUpstream upstream;
  std::shared_ptr<Observations> observations = std::make_shared<Observations>();
  ConfigHolder config_holder;
  SnapshotHolder<TlsServerContexts> tls_holder;
  SnapshotHolder<UpstreamTlsContext> upstream_tls_holder;
  UpstreamStatus upstream_status;
  SessionLimits session_limits{100, 100};
  std::shared_ptr<const ListenConfig> listen;
  LoopbackListener listener;
  std::unique_ptr<Worker> worker;

  explicit Proxy(std::size_t spill_threshold = 1024 * 1024) {
    // The test thread hands connections to the worker's loop, as the acceptor's thread does.
    evthread_use_pthreads();
    const std::string text = fmt::format(
        "[server]\nhostname = \"mx.streaming.test\"\nstate_dir = \"{}\"\n"
        "[[listen]]\naddress = \"127.0.0.1:{}\"\n"
        "[upstream]\naddress = \"127.0.0.1:{}\"\n"
        "[limits]\nspill_threshold = {}\n",
        dir.path().string(), listener.port(), upstream.port(), spill_threshold);
    ConfigResult loaded = load_config_text(text, "streaming.toml");
    for (const auto& error : loaded.errors)
      BOOST_TEST_MESSAGE(error.to_string());
    BOOST_TEST_REQUIRE(loaded.config.has_value());
    Config config = std::move(*loaded.config);
    FilterInstance instance;
    instance.name = "comparing";
    instance.hooks = {Phase::data};
    instance.streams_message = true;
    instance.factory = std::make_shared<ComparingFactory>(observations, dir.path());
    config.filters.chain = {instance};
    BOOST_TEST_REQUIRE(!config.listeners.empty());
    listen = std::make_shared<const ListenConfig>(config.listeners.front());
    config_holder.replace(std::make_shared<const Config>(std::move(config)));

    UpstreamCapabilities capabilities;
    capabilities.pipelining = true;
    capabilities.eightbitmime = true;
    capabilities.enhancedstatuscodes = true;
    capabilities.size = 52428800;
    upstream_status.set_reachable(capabilities);

    worker =
        std::make_unique<Worker>(ServerContext{&config_holder, &tls_holder, &upstream_tls_holder,
                                               &upstream_status, &session_limits, nullptr});
    worker->start(1, CpuScheduling::normal, false);
  }
  ~Proxy() {
    worker->stop(0);
    worker->join();
  }

  // A client whose connection the worker serves, greeted.
  test::SmtpTestClient connect() {
    test::SmtpTestClient client("127.0.0.1", listener.port());
    worker->hand_over(listener.accept_one(listen));
    const test::SmtpReply banner = client.read_reply();
    BOOST_TEST_REQUIRE(banner.code == 220, banner.describe());
    const test::SmtpReply ehlo = client.command("EHLO client.test");
    BOOST_TEST_REQUIRE(ehlo.code == 250, ehlo.describe());
    return client;
  }

  int begins() {
    std::lock_guard lock(observations->mutex);
    return observations->begins;
  }
  std::vector<SeenMessage> messages() {
    std::lock_guard lock(observations->mutex);
    return observations->messages;
  }
  // The messages the upstream acknowledged, as sent (dot-stuffed, with the final ".").
  std::vector<std::string> relayed() {
    std::vector<std::string> raw;
    for (const auto& connection : upstream.session_connections()) {
      for (const auto& message : connection.messages) {
        if (message.acknowledged) raw.push_back(message.raw);
      }
    }
    return raw;
  }
};

void start_transaction(test::SmtpTestClient& client) {
  const test::SmtpReply mail = client.command("MAIL FROM:<sender@example.org>");
  BOOST_TEST_REQUIRE(mail.code == 250, mail.describe());
  const test::SmtpReply rcpt = client.command("RCPT TO:<rcpt@example.net>");
  BOOST_TEST_REQUIRE(rcpt.code == 250, rcpt.describe());
  const test::SmtpReply data = client.command("DATA");
  BOOST_TEST_REQUIRE(data.code == 354, data.describe());
}

// Dot-stuffing (RFC 5321 4.5.2) of a message with CRLF line ends, and its final ".".
std::string stuffed(const std::string& message) {
  std::string out;
  bool line_start = true;
  for (const char c : message) {
    if (line_start && c == '.') out += '.';
    out += c;
    line_start = c == '\n';
  }
  return out + ".\r\n";
}

const std::string header =
    "From: Sender <sender@example.org>\r\nTo: rcpt@example.net\r\nSubject: streaming\r\n"
    "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel;\r\n\tbh=abc; b=def\r\n";

// How many content bytes the proxy can have passed on once it has the first `sent` bytes of
// `wire`: stuffing dots are dropped, and a CR waits for its LF.
std::size_t content_known_after(const std::string& wire, std::size_t sent) {
  std::size_t content = 0;
  bool line_start = true;
  for (std::size_t at = 0; at < sent; ++at) {
    const bool stuffing = line_start && wire[at] == '.';
    line_start = wire[at] == '\n';
    if (!stuffing) ++content;
  }
  if (sent > 0 && wire[sent - 1] == '\r') --content;
  return content;
}

std::string body_of(std::size_t size) {
  std::string body;
  for (std::size_t line = 0; body.size() < size; ++line) {
    // Lines that start with a dot, so that unstuffing is part of what is compared.
    body += line % 5 == 0 ? ".dotted line " : "plain line ";
    body += std::to_string(line) + "\r\n";
  }
  return body;
}

// The relay's copy of the message ends with the stored message: the proxy adds fields before
// it (Received), nothing else.
void check_relayed(const std::string& relayed, const std::string& message) {
  const std::string expected = stuffed(message);
  BOOST_TEST_REQUIRE(relayed.size() >= expected.size());
  BOOST_TEST(relayed.compare(relayed.size() - expected.size(), expected.size(), expected) == 0);
}

void check_seen(const SeenMessage& seen, const std::string& message, bool spilled) {
  BOOST_TEST(seen.streamed.size() == message.size());
  BOOST_TEST(seen.streamed == message);
  BOOST_TEST(seen.read == message);
  BOOST_TEST(seen.reader_error.empty());
  BOOST_TEST(seen.size == message.size());
  BOOST_TEST(seen.header_section == header);
  BOOST_TEST(seen.spilled == spilled);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_small_message_in_memory_streams_what_the_data_phase_reads) {
  Proxy proxy;
  auto client = proxy.connect();
  start_transaction(client);
  const std::string message = header + "\r\n" + body_of(2000);
  BOOST_TEST_REQUIRE(client.send(stuffed(message)));
  const test::SmtpReply end = client.read_reply();
  BOOST_TEST_REQUIRE(end.code == 250, end.describe());
  BOOST_TEST(proxy.begins() == 1);
  const auto seen = proxy.messages();
  BOOST_TEST_REQUIRE(seen.size() == 1u);
  check_seen(seen[0], message, false);
  BOOST_TEST(test::wait_until([&] { return proxy.relayed().size() == 1; }, 5000ms));
  check_relayed(proxy.relayed().at(0), message);
}

BOOST_AUTO_TEST_CASE(a_spilled_message_sent_a_byte_at_a_time_in_part_streams_it_all) {
  Proxy proxy(4096);
  auto client = proxy.connect();
  start_transaction(client);
  const std::string message = header + "\r\n" + body_of(300 * 1024);
  const std::string wire = stuffed(message);
  // The header and the start of the body a byte at a time, each waited for until the filter
  // has it (so chunks end everywhere a byte can be passed on: after a stuffing dot, inside a
  // folded field, just after CRLF), then the rest in a few large writes at odd offsets.
  const std::size_t trickled = header.size() + 200;
  std::size_t passed_on_alone = 0;  // trickled bytes that can reach the filter by themselves
  for (std::size_t at = 0; at < trickled; ++at) {
    BOOST_TEST_REQUIRE(client.send(wire.substr(at, 1)));
    const std::size_t known = content_known_after(wire, at + 1);
    if (known > content_known_after(wire, at)) ++passed_on_alone;
    BOOST_TEST_REQUIRE(test::wait_until(
        [&] { return proxy.observations->streamed_bytes.load() == known; }, 5000ms, 1ms));
  }
  for (std::size_t at = trickled; at < wire.size(); at += 65537)
    BOOST_TEST_REQUIRE(client.send(wire.substr(at, 65537)));
  const test::SmtpReply end = client.read_reply();
  BOOST_TEST_REQUIRE(end.code == 250, end.describe());
  const auto seen = proxy.messages();
  BOOST_TEST_REQUIRE(seen.size() == 1u);
  check_seen(seen[0], message, true);
  // The trickle reached the filter as it came, then the large writes.
  BOOST_TEST(seen[0].chunks > passed_on_alone);
  BOOST_TEST(test::wait_until([&] { return proxy.relayed().size() == 1; }, 5000ms));
  check_relayed(proxy.relayed().at(0), message);
}

BOOST_AUTO_TEST_CASE(a_refused_message_then_rset_then_new_messages_each_start_over) {
  Proxy proxy(4096);
  auto client = proxy.connect();
  // A transaction left before DATA.
  BOOST_TEST_REQUIRE(client.command("MAIL FROM:<sender@example.org>").code == 250);
  BOOST_TEST_REQUIRE(client.command("RSET").code == 250);
  BOOST_TEST(proxy.begins() == 0);

  // Streamed in part, then refused for a bare LF: no data phase.
  start_transaction(client);
  const std::string refused = header + "\r\nfirst message, streamed in part\r\nbare\nLF\r\n";
  BOOST_TEST_REQUIRE(client.send(refused + ".\r\n"));
  const test::SmtpReply bare = client.read_reply();
  BOOST_TEST_REQUIRE(bare.code == 550, bare.describe());
  BOOST_TEST(proxy.begins() == 1);
  BOOST_TEST(proxy.messages().empty());
  BOOST_TEST_REQUIRE(client.command("RSET").code == 250);

  // Two good messages, the second spilled.
  const std::string second = header + "\r\n" + body_of(500);
  const std::string third = header + "\r\n" + body_of(50 * 1024);
  start_transaction(client);
  BOOST_TEST_REQUIRE(client.send(stuffed(second)));
  const test::SmtpReply second_end = client.read_reply();
  BOOST_TEST_REQUIRE(second_end.code == 250, second_end.describe());
  start_transaction(client);
  BOOST_TEST_REQUIRE(client.send(stuffed(third)));
  const test::SmtpReply third_end = client.read_reply();
  BOOST_TEST_REQUIRE(third_end.code == 250, third_end.describe());

  BOOST_TEST(proxy.begins() == 3);
  const auto seen = proxy.messages();
  BOOST_TEST_REQUIRE(seen.size() == 2u);
  check_seen(seen[0], second, false);
  check_seen(seen[1], third, true);
  BOOST_TEST(test::wait_until([&] { return proxy.relayed().size() == 2; }, 5000ms));
  check_relayed(proxy.relayed().at(0), second);
  check_relayed(proxy.relayed().at(1), third);
}

BOOST_AUTO_TEST_CASE(a_filter_that_throws_while_streaming_fails_the_data_phase) {
  Proxy proxy;
  auto client = proxy.connect();
  start_transaction(client);
  const std::string message =
      header + std::string(ComparingFilter::throw_marker) + ": yes\r\n\r\n" + body_of(1000);
  BOOST_TEST_REQUIRE(client.send(stuffed(message)));
  const test::SmtpReply end = client.read_reply();
  BOOST_TEST(end.code == 451, end.describe());
  BOOST_TEST(end.enhanced() == "4.3.0");
  BOOST_TEST(proxy.messages().empty());  // its data hook was not called

  // The session goes on, and the next message is streamed and judged again.
  start_transaction(client);
  const std::string next = header + "\r\n" + body_of(1000);
  BOOST_TEST_REQUIRE(client.send(stuffed(next)));
  const test::SmtpReply next_end = client.read_reply();
  BOOST_TEST_REQUIRE(next_end.code == 250, next_end.describe());
  const auto seen = proxy.messages();
  BOOST_TEST_REQUIRE(seen.size() == 1u);
  check_seen(seen[0], next, false);
  BOOST_TEST(test::wait_until([&] { return proxy.relayed().size() == 1; }, 5000ms));
  check_relayed(proxy.relayed().at(0), next);
}
