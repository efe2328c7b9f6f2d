// An in-process SMTP server standing where Postfix would be: it records every byte it receives
// per connection and can be told to fail in chosen ways.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace portcullis::test {

struct RecordedMessage {
  std::string raw;            // the bytes after 354, as received, up to and including CRLF.CRLF
  bool acknowledged = false;  // a 2xx final reply for it was written to the socket
  std::string queue_id;       // "QIDn" from the default final reply
};

struct RecordedConnection {
  size_t index = 0;          // 0-based, in accept order
  std::string peer_address;  // e.g. "127.0.0.1"
  uint16_t peer_port = 0;
  std::string proxy_header;           // a PROXY v2 header received first (when expected)
  std::string received;               // every byte received, in order (header included)
  std::vector<std::string> commands;  // command lines, line end removed
  std::vector<RecordedMessage> messages;
  bool open = true;
  bool closed_by_peer = false;
  bool closed_by_us = false;  // an injected failure, a 421 or QUIT

  // Commands whose verb (first word, case-insensitive) is `verb`.
  size_t count_verb(const std::string& verb) const;
  // True for the proxy's start-up probe: no command beyond EHLO/HELO/NOOP/RSET/QUIT.
  bool looks_like_probe() const;
};

// "replace the reply to commands starting with `prefix`" and "delay it". `prefix` is matched
// case-insensitively against the command line; the prefix "." stands for the end of DATA.
struct ReplyRule {
  std::string prefix;
  std::string reply;  // lines separated by "\r\n", no final CRLF; a 421 closes after it
};
struct DelayRule {
  std::string prefix;
  Millis delay;
};

struct UpstreamBehaviour {
  std::string greeting = "220 upstream.test ESMTP RecordingUpstream";
  std::vector<std::string> ehlo_keywords = default_keywords();
  bool close_on_mail = false;                    // close without a reply when MAIL arrives
  bool close_after_rcpt_reply = false;           // answer RCPT 250, then close
  std::optional<size_t> close_after_data_bytes;  // close once this much message content came
  std::vector<ReplyRule> replies;
  std::vector<DelayRule> delays;
  // Wait up to proxy_header_wait for a PROXY v2 header before the greeting; a connection that
  // sends none in that time (the proxy's probe) gets the greeting anyway.
  bool expect_proxy_v2 = false;
  Millis proxy_header_wait = 500ms;

  static std::vector<std::string> default_keywords() {
    return {"PIPELINING", "SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES",
            "XCLIENT ADDR PORT NAME REVERSE_NAME HELO PROTO DESTADDR DESTPORT"};
  }
};

class RecordingUpstream {
 public:
  // Listens on 127.0.0.1:`port` (0: a free port) and serves from its own thread.
  explicit RecordingUpstream(UpstreamBehaviour behaviour = {}, uint16_t port = 0);
  ~RecordingUpstream();
  RecordingUpstream(const RecordingUpstream&) = delete;
  RecordingUpstream& operator=(const RecordingUpstream&) = delete;

  uint16_t port() const { return port_; }
  // Applies to commands that arrive from now on, on every connection.
  void set_behaviour(UpstreamBehaviour behaviour);
  UpstreamBehaviour behaviour() const;

  std::vector<RecordedConnection> connections() const;
  // Connections that are not the start-up probe (see looks_like_probe).
  std::vector<RecordedConnection> session_connections() const;
  size_t acknowledged_messages() const;  // in the records kept (see clear())
  size_t recorded_messages() const;
  // Every message acknowledged since start, clear() or not.
  size_t total_acknowledged() const;
  // Waits until `done(connections())` holds.
  bool wait_for(const std::function<bool(const std::vector<RecordedConnection>&)>& done,
                Millis timeout) const;
  // Forget what was recorded so far (open connections keep being recorded under new records).
  void clear();
  // clear(), and open connections start their records again too: index, peer and open state
  // stay, commands, messages and bytes are forgotten. For a test that runs on a connection an
  // earlier delivery left open (a proxy's kept connection). Call it when no reply is pending.
  void clear_including_open();
  // Stops listening and closes every connection, as a crashed MTA would. Idempotent.
  void stop();

 private:
  struct Connection;
  void serve();
  void accept_connections();
  void on_readable(Connection& connection);
  void process_input(Connection& connection);
  void handle_command(Connection& connection, const std::string& line);
  void handle_data(Connection& connection);
  void queue_reply(Connection& connection, const std::string& trigger, std::string reply,
                   bool close_after, std::optional<size_t> message_index = std::nullopt);
  void send_greeting(Connection& connection);
  void flush_due(Connection& connection);
  void close_connection(Connection& connection, bool by_peer);
  RecordedConnection& record(Connection& connection);

  uint16_t port_ = 0;
  int listen_fd_ = -1;
  int wake_read_fd_ = -1;
  int wake_write_fd_ = -1;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;  // guards behaviour_, records_, and next_queue_id_
  UpstreamBehaviour behaviour_;
  std::vector<RecordedConnection> records_;
  size_t record_base_ = 0;  // index of records_[0] after clear()
  size_t next_queue_id_ = 1;
  size_t total_acknowledged_ = 0;
  size_t accepted_ = 0;
  std::vector<std::unique_ptr<Connection>> live_;  // only touched by the server thread
  std::thread thread_;
};

// A PROXY protocol v2 header, decoded for assertions.
struct ProxyV2Header {
  bool valid = false;
  std::string error;
  unsigned version = 0;
  unsigned command = 0;    // 1 = PROXY, 0 = LOCAL
  unsigned family = 0;     // 1 = INET, 2 = INET6
  unsigned transport = 0;  // 1 = STREAM
  std::string source_address;
  std::string destination_address;
  uint16_t source_port = 0;
  uint16_t destination_port = 0;
  size_t length = 0;  // total bytes, 16 + the length field
};
ProxyV2Header parse_proxy_v2(std::string_view bytes);
// The 12-byte signature every PROXY v2 header starts with.
std::string_view proxy_v2_signature();

}  // namespace portcullis::test
