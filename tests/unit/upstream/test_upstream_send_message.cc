#define BOOST_TEST_MODULE upstream_send_message
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <netinet/in.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "authentication_results.h"
#include "event_handles.h"
#include "message_store.h"
#include "net_address.h"
#include "test_support.h"
#include "upstream_connection.h"

// UpstreamConnection::send_message: the stored message, dot-stuffed, with the ranges the session
// removes (forged Authentication-Results of ours) skipped, against a minimal SMTP server.

using portcullis::ByteRange;
using portcullis::MessageStore;
using TempDir = portcullis::test::TempDir;

namespace {

using portcullis::BufferEventPtr;
using portcullis::EventBasePtr;
using portcullis::EventPtr;
using portcullis::ListenerPtr;
using portcullis::NetAddress;
using portcullis::UpstreamConnection;
using portcullis::UpstreamGreeting;
using portcullis::UpstreamResult;

// A minimal SMTP server on the test's own event loop: 220, 250 to every command, 354 to DATA,
// and it records the DATA bytes exactly as they arrive (stuffed, with the terminator).
class FakeUpstream {
 public:
  explicit FakeUpstream(event_base* base) : base_(base) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listener_.reset(evconnlistener_new_bind(base, &FakeUpstream::accept_cb, this,
                                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                            reinterpret_cast<sockaddr*>(&address), sizeof address));
    BOOST_REQUIRE(listener_);
    sockaddr_in bound{};
    socklen_t length = sizeof bound;
    BOOST_REQUIRE(::getsockname(evconnlistener_get_fd(listener_.get()),
                                reinterpret_cast<sockaddr*>(&bound), &length) == 0);
    port_ = ntohs(bound.sin_port);
  }

  uint16_t port() const { return port_; }
  const std::string& data() const { return data_; }
  const std::vector<std::string>& commands() const { return commands_; }

 private:
  static void accept_cb(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* self) {
    auto* upstream = static_cast<FakeUpstream*>(self);
    upstream->connection_.reset(bufferevent_socket_new(upstream->base_, fd, BEV_OPT_CLOSE_ON_FREE));
    bufferevent_setcb(upstream->connection_.get(), &FakeUpstream::read_cb, nullptr, nullptr, self);
    bufferevent_enable(upstream->connection_.get(), EV_READ | EV_WRITE);
    upstream->reply("220 fake.test ESMTP\r\n");
  }

  static void read_cb(bufferevent* bev, void* self) {
    auto* upstream = static_cast<FakeUpstream*>(self);
    evbuffer* input = bufferevent_get_input(bev);
    while (evbuffer_get_length(input) > 0) {
      if (upstream->in_data_) {
        const size_t length = evbuffer_get_length(input);
        std::string bytes(length, '\0');
        evbuffer_remove(input, bytes.data(), length);
        upstream->data_ += bytes;
        const std::string& data = upstream->data_;
        if (data == ".\r\n" ||
            (data.size() >= 5 && data.compare(data.size() - 5, 5, "\r\n.\r\n") == 0)) {
          upstream->in_data_ = false;
          upstream->reply("250 2.0.0 Ok: queued as FAKE1\r\n");
        }
        continue;
      }
      size_t line_length = 0;
      char* line = evbuffer_readln(input, &line_length, EVBUFFER_EOL_CRLF_STRICT);
      if (line == nullptr) return;
      const std::string command(line, line_length);
      std::free(line);
      upstream->commands_.push_back(command);
      if (command == "DATA") {
        upstream->in_data_ = true;
        upstream->reply("354 go ahead\r\n");
      } else {
        upstream->reply("250 fake.test\r\n");
      }
    }
  }

  void reply(const std::string& text) {
    bufferevent_write(connection_.get(), text.data(), text.size());
  }

  event_base* base_;
  ListenerPtr listener_;
  BufferEventPtr connection_;
  uint16_t port_ = 0;
  bool in_data_ = false;
  std::string data_;
  std::vector<std::string> commands_;
};

struct SendOutcome {
  std::optional<UpstreamResult> result;
  std::string data;  // what the upstream received after 354
};

// Connects an UpstreamConnection to a FakeUpstream, sends `store` and returns what arrived.
// Without `skip`, the 3-argument send_message is used.
SendOutcome send_through_upstream(MessageStore& store, const std::string& prefix,
                                  std::optional<std::vector<ByteRange>> skip) {
  EventBasePtr base(event_base_new());
  BOOST_REQUIRE(base);
  FakeUpstream upstream(base.get());
  const std::vector<NetAddress> addresses{
      *NetAddress::parse_host_port("127.0.0.1:" + std::to_string(upstream.port()))};
  UpstreamConnection connection(base.get(), addresses, 10);
  UpstreamGreeting greeting;
  greeting.pass_client = portcullis::PassClient::none;
  greeting.our_hostname = "proxy.test";
  greeting.client_helo = "client.test";
  SendOutcome outcome;
  auto finished = [&](UpstreamResult result) {
    outcome.result = std::move(result);
    event_base_loopbreak(base.get());
  };
  connection.open(greeting, [&](UpstreamResult opened) {
    if (!opened.ok()) return finished(std::move(opened));
    if (skip) {
      connection.send_message(&store, prefix, *skip, finished);
    } else {
      connection.send_message(&store, prefix, finished);
    }
  });
  // A hang fails the test instead of blocking it.
  timeval limit{20, 0};
  event_base_loopexit(base.get(), &limit);
  event_base_dispatch(base.get());
  outcome.data = upstream.data();
  return outcome;
}

void require_delivered(const SendOutcome& outcome) {
  BOOST_REQUIRE(outcome.result.has_value());
  BOOST_REQUIRE_MESSAGE(outcome.result->ok(), outcome.result->detail);
  BOOST_TEST(outcome.result->reply.code == 250);
}

const std::string kPrefix =
    "Received: from client.test by proxy.test;\r\n\tdate\r\n"
    "Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=example.org\r\n";

}  // namespace

BOOST_AUTO_TEST_CASE(send_without_skips_keeps_the_three_argument_form) {
  TempDir dir;
  MessageStore store(1000, dir.path().string());
  BOOST_REQUIRE(store.append("Subject: t\r\n\r\n.dot\r\nbody\r\n"));
  const SendOutcome outcome = send_through_upstream(store, kPrefix, std::nullopt);
  require_delivered(outcome);
  BOOST_TEST(outcome.data == kPrefix + "Subject: t\r\n\r\n..dot\r\nbody\r\n.\r\n");
}

BOOST_AUTO_TEST_CASE(send_skips_our_forged_field_in_memory) {
  TempDir dir;
  MessageStore store(1000, dir.path().string());
  // The forged field is bytes 0-49: 24 + 14 (the id) + 10 ("; spf=pass") + 2.
  BOOST_REQUIRE(
      store.append("Authentication-Results: mx.example.org; spf=pass\r\n"
                   "Authentication-Results: other.example; spf=fail\r\n"
                   "Subject: test\r\n"
                   "\r\n"
                   ".leading dot\r\n"
                   "body\r\n"));
  BOOST_TEST(!store.spilled());
  const SendOutcome outcome = send_through_upstream(store, kPrefix, {{ByteRange{0, 50}}});
  require_delivered(outcome);
  BOOST_TEST(outcome.data == kPrefix +
                                 "Authentication-Results: other.example; spf=fail\r\n"
                                 "Subject: test\r\n"
                                 "\r\n"
                                 "..leading dot\r\n"
                                 "body\r\n"
                                 ".\r\n");
}

BOOST_AUTO_TEST_CASE(send_with_ranges_found_in_the_stored_header) {
  TempDir dir;
  MessageStore store(16, dir.path().string());  // spilled
  BOOST_REQUIRE(
      store.append("Received: from x\r\n"
                   "Authentication-Results: MX.example.org;\r\n\tdkim=pass\r\n"
                   "Authentication-Results: other.example; spf=fail\r\n"
                   "Authentication-Results: (forged) mx.example.org; spf=pass\r\n"
                   "Subject: test\r\n"
                   "\r\n"
                   "Authentication-Results: mx.example.org; body text stays\r\n"));
  BOOST_TEST(store.spilled());
  std::string header;
  BOOST_REQUIRE(store.read_header_section(102400, &header));
  const auto skip = portcullis::find_own_authentication_results(header, "mx.example.org");
  BOOST_TEST(skip.size() == 2u);
  const SendOutcome outcome = send_through_upstream(store, kPrefix, skip);
  require_delivered(outcome);
  BOOST_TEST(outcome.data == kPrefix +
                                 "Received: from x\r\n"
                                 "Authentication-Results: other.example; spf=fail\r\n"
                                 "Subject: test\r\n"
                                 "\r\n"
                                 "Authentication-Results: mx.example.org; body text stays\r\n"
                                 ".\r\n");
}

BOOST_AUTO_TEST_CASE(dot_stuffing_stays_right_across_a_skip) {
  TempDir dir;
  for (const size_t threshold : {size_t{1000}, size_t{3}}) {
    MessageStore store(threshold, dir.path().string());
    // "SKIP\r\n" is bytes 6-11; the line after it starts with '.'.
    BOOST_REQUIRE(store.append("A: 1\r\nSKIP\r\n.dot\r\n.\r\nB\r\n"));
    const SendOutcome outcome = send_through_upstream(store, "", {{ByteRange{6, 6}}});
    require_delivered(outcome);
    BOOST_TEST(outcome.data == "A: 1\r\n..dot\r\n..\r\nB\r\n.\r\n");
  }
}

BOOST_AUTO_TEST_CASE(a_skip_at_the_start_leaves_a_line_start) {
  TempDir dir;
  MessageStore store(1000, dir.path().string());
  BOOST_REQUIRE(store.append("X: gone\r\n.x\r\n"));
  const SendOutcome outcome = send_through_upstream(store, "", {{ByteRange{0, 9}}});
  require_delivered(outcome);
  BOOST_TEST(outcome.data == "..x\r\n.\r\n");
}

BOOST_AUTO_TEST_CASE(skips_in_any_order_overlapping_or_past_the_end) {
  TempDir dir;
  for (const size_t threshold : {size_t{1000}, size_t{5}}) {
    MessageStore store(threshold, dir.path().string());
    // 24 bytes: "0123456789\r\n" 0-11, "abcdefghij\r\n" 12-23.
    BOOST_REQUIRE(store.append("0123456789\r\nabcdefghij\r\n"));
    // Together: [0,4), [12,16), [22,24); the empty and the far ones change nothing.
    const std::vector<ByteRange> skip{{12, 3}, {0, 2}, {1, 3}, {14, 2}, {100, 5}, {22, 50}, {5, 0}};
    const SendOutcome outcome = send_through_upstream(store, "P\r\n", skip);
    require_delivered(outcome);
    // The message then ends without CRLF, so one is added before the terminator.
    BOOST_TEST(outcome.data == "P\r\n456789\r\nefghij\r\n.\r\n");
  }
}

BOOST_AUTO_TEST_CASE(skipping_everything_sends_only_the_prefix) {
  TempDir dir;
  MessageStore store(1000, dir.path().string());
  BOOST_REQUIRE(store.append("A: 1\r\n\r\nbody\r\n"));
  const SendOutcome outcome = send_through_upstream(store, kPrefix, {{ByteRange{0, 1000}}});
  require_delivered(outcome);
  BOOST_TEST(outcome.data == kPrefix + ".\r\n");
}

BOOST_AUTO_TEST_CASE(large_spilled_message_with_skips) {
  TempDir dir;
  MessageStore store(4096, dir.path().string());
  const std::string forged = "Authentication-Results: mx.example.org; dkim=pass\r\n";
  const std::string kept = "Authentication-Results: other.example; dkim=fail\r\n";
  std::string body;
  std::string stuffed_body;
  for (int line = 0; line < 20000; ++line) {
    // Every seventh line starts with a dot; lines are 40-odd bytes, so chunks of 64 KiB end
    // in the middle of lines.
    const std::string text = (line % 7 == 0 ? "." : "") + std::string("line ") +
                             std::to_string(line) + " of a long spilled body here\r\n";
    body += text;
    stuffed_body += (line % 7 == 0 ? "." : "") + text;
  }
  const std::string message = forged + kept + forged + "Subject: big\r\n\r\n" + body;
  BOOST_REQUIRE(store.append(message));
  BOOST_TEST(store.spilled());
  BOOST_REQUIRE(message.size() > 512u * 1024u);  // more than the output high-water mark
  const std::vector<ByteRange> skip{{0, forged.size()},
                                    {forged.size() + kept.size(), forged.size()}};
  const SendOutcome outcome = send_through_upstream(store, kPrefix, skip);
  require_delivered(outcome);
  const std::string expected = kPrefix + kept + "Subject: big\r\n\r\n" + stuffed_body + ".\r\n";
  BOOST_TEST(outcome.data.size() == expected.size());
  BOOST_TEST((outcome.data == expected));
}
