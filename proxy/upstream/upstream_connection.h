// The SMTP client side of one session (or of the start-up probe): one TCP connection to the
// upstream MTA, strictly one command in flight at a time.
// SECURITY: replies from the upstream are read through SmtpReplyParser (bounded lines and
// line count); a malformed reply drops the connection.
#pragma once

#include <event2/event.h>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "authentication_results.h"
#include "capabilities.h"
#include "config.h"
#include "dot_stuffer.h"
#include "event_handles.h"
#include "message_store.h"
#include "net_address.h"
#include "smtp_reply.h"
#include "tls_context.h"
#include "xclient.h"

namespace portcullis {

class PlainSocketReader;

enum class UpstreamError {
  none,
  connect_failed,   // no address accepted the connection
  closed,           // the connection closed or failed while a reply was awaited
  timeout,          // [upstream] reply_timeout passed
  protocol,         // the upstream did not speak SMTP
  refused,          // greeting or EHLO refused: `reply` says how
  xclient_refused,  // no XCLIENT offered, or XCLIENT answered with an error
  tls_failed,       // STARTTLS required but not offered, or the TLS handshake failed
};

const char* to_string(UpstreamError error);

struct UpstreamResult {
  UpstreamError error = UpstreamError::none;
  SmtpReply reply;     // the upstream's reply, when one was read
  std::string detail;  // for the log
  bool ok() const { return error == UpstreamError::none; }
};

// How to greet the upstream.
struct UpstreamGreeting {
  PassClient pass_client = PassClient::none;
  bool proxy_v2_local = false;  // send a PROXY v2 LOCAL header (connections for ourselves)
  std::string our_hostname;     // EHLO name before XCLIENT
  std::string client_helo;      // HELO/EHLO name the upstream finally sees
  bool client_esmtp = true;     // the client said EHLO (else the upstream gets HELO too)
  ClientIdentity identity;      // XCLIENT attributes
  NetAddress client_address;    // PROXY v2 source
  NetAddress local_address;     // PROXY v2 destination
  UpstreamTls tls = UpstreamTls::none;
  std::shared_ptr<const UpstreamTlsContext> tls_context;  // set unless tls is none
  std::string verify_name;  // checked against the certificate when tls is required
};

class UpstreamConnection {
 public:
  using Callback = std::function<void(UpstreamResult)>;

  UpstreamConnection(event_base* base, const std::vector<NetAddress>& addresses,
                     unsigned reply_timeout_seconds);
  ~UpstreamConnection();
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  // Connects (addresses in order) and greets: banner, [EHLO ours, XCLIENT…,] EHLO client.
  // `done` gets the final EHLO reply. Callbacks may destroy this object.
  void open(UpstreamGreeting greeting, Callback done);
  // Sends one command line (no CRLF) and reports its reply.
  void command(const std::string& line, Callback done);
  // DATA; on 354 the message (prefix first, dot-stuffed, one terminator); reports the final
  // reply, or the reply to DATA when it was not 354.
  void send_message(MessageStore* message, std::string prefix, Callback done);
  // The same, leaving out the message bytes in `skip` (message offsets, in any order; overlaps
  // and bytes past the end are fine), e.g. forged Authentication-Results fields. Dot-stuffing
  // applies to the bytes actually sent, so a line that starts after a skipped whole line is
  // still stuffed as a line start.
  void send_message(MessageStore* message, std::string prefix, std::vector<ByteRange> skip,
                    Callback done);
  // Sends QUIT without waiting and closes once it is written.
  void quit();

  // Connection reuse (see upstream_pool.h). A connection may serve another session when it is
  // idle, every reply it gave was positive (Postfix counts errors per connection, and a later
  // client must not inherit them), no transaction is open at the upstream, and the client's
  // identity did not travel in a PROXY header (that is sent once per connection).
  bool reusable() const;
  // Whether `greeting` needs commands on this (reusable) connection: always with XCLIENT; with
  // pass_client = none only when the HELO/EHLO the upstream last saw differs.
  bool needs_regreet(const UpstreamGreeting& greeting) const;
  // Greets a reused connection for a new session: XCLIENT… (the attributes this upstream
  // offered when the connection opened), then the client's HELO/EHLO. `done` as for open().
  void regreet(UpstreamGreeting greeting, Callback done);

  // Connected, greeted, nothing failed and no reply awaited.
  bool idle_and_usable() const { return ready_ && !failed_ && !pending_; }
  bool tls_active() const { return tls_active_; }
  const UpstreamCapabilities& capabilities() const { return capabilities_; }
  const NetAddress& connected_address() const { return connected_to_; }

 private:
  void try_next_address();
  void on_connected();
  void greet_step(UpstreamResult result);
  std::string final_greeting() const;
  void after_tls_decision(const SmtpReply& ehlo_reply);
  void start_upstream_tls();
  void on_tls_connected();
  void expect_reply(Callback handler);
  void send_line(const std::string& line);
  void send_bytes(std::string_view bytes);
  void on_read();
  void on_event(short what);
  void on_write();
  void on_timeout();
  void fail(UpstreamError error, std::string detail);
  template <typename Body>
  void guarded(const char* where, Body&& body) noexcept;
  void arm_timer();
  void pump_message();
  void close_connection();
  void send_xclient(const std::set<std::string>& offered_attrs);

  static void read_cb(bufferevent* bev, void* self);
  static void write_cb(bufferevent* bev, void* self);
  static void event_cb(bufferevent* bev, short what, void* self);
  static void timeout_cb(evutil_socket_t fd, short what, void* self);
  static void linger_write_cb(bufferevent* bev, void* unused);
  static void linger_event_cb(bufferevent* bev, short what, void* unused);

  event_base* base_;
  const std::vector<NetAddress>& addresses_;
  unsigned reply_timeout_;
  size_t next_address_ = 0;
  NetAddress connected_to_;

  BufferEventPtr bev_;
  std::unique_ptr<PlainSocketReader> plain_reader_;  // destroyed before bev_
  EventPtr timer_;
  SmtpReplyParser reply_parser_;
  Callback pending_;
  bool ready_ = false;
  bool failed_ = false;

  // greeting
  enum class GreetStage { banner, ehlo_ours, starttls, tls_handshake, xclient, ehlo_client, done };
  GreetStage stage_ = GreetStage::banner;
  UpstreamGreeting greeting_;
  std::vector<std::string> xclient_lines_;
  size_t xclient_sent_ = 0;
  Callback open_done_;
  UpstreamCapabilities capabilities_;
  std::set<std::string> xclient_offered_;  // from our own EHLO, for XCLIENT on reuse
  std::string greeted_as_;                 // the last HELO/EHLO line the upstream accepted
  bool clean_ = true;                      // no reply but 2xx/3xx since the connection opened
  bool transaction_open_ = false;          // MAIL accepted, no final reply or RSET since
  bool tls_active_ = false;

  // message streaming
  MessageStore* message_ = nullptr;
  std::string message_prefix_;
  std::vector<ByteRange> message_skip_;  // sorted, disjoint, within the message
  size_t next_skip_ = 0;                 // the first range not yet passed
  uint64_t message_position_ = 0;        // next message offset to read
  bool streaming_ = false;
  std::string chunk_;
  std::string stuffed_;
  DotStuffer stuffer_;

  // Lets a callback that may have destroyed this object be detected by its caller.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace portcullis
