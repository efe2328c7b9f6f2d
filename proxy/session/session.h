// One client's SMTP session: the server side of the protocol, driven by SmtpParser, relaying
// accepted commands through its own UpstreamConnection.
// SECURITY: every byte from the client passes through SmtpParser (bounded lines, bounded
// message via MessageStore and the size limit). While the session waits (for filters, the
// policy or the upstream) pipelined input is buffered up to kInputHighWater and not processed;
// while more than kClientOutputHighWater of replies wait for the client, input is not read.
// Where the session is, and which moves it may make, is SessionState (session_state.h).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "authentication_results.h"
#include "capabilities.h"
#include "decision_log.h"
#include "event_handles.h"
#include "facts.h"
#include "filter.h"
#include "filter_runner.h"
#include "message_store.h"
#include "net_address.h"
#include "policy_session.h"
#include "server_context.h"
#include "session_state.h"
#include "smtp_parser.h"
#include "smtp_reply.h"
#include "stored_message_view.h"
#include "tls_context.h"
#include "upstream_connection.h"

namespace portcullis {

class PlainSocketReader;
class Worker;
struct AcceptedConnection;

// Filters see the session through FilterServices (pregreet's teaser and timers).
class Session final : public FilterServices {
 public:
  Session(Worker& worker, uint64_t id, AcceptedConnection connection);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start();
  uint64_t id() const { return id_; }
  // SIGTERM: an idle session is closed with 421 at once, one in a transaction once it ends.
  void shut_down();
  // Stress mode started or ended (SessionLimits): the command timeout in force is re-armed.
  void stress_changed();
  // A parked filter's result, routed here by the worker.
  void deliver_filter_result(uint64_t call_id, FilterResult result);

 private:
  enum class EndReason {
    quit,
    proxy_header_refused,
    session_limit,
    tls_failed,
    client_closed,
    timeout,
    too_many_errors,
    forbidden_command,
    upstream_unavailable,
    upstream_closed_session,  // the upstream's 421
    xclient_refused,
    write_failed,
    shutdown,
    policy,          // a policy refusal that ends the session (disconnect, 421)
    internal_error,  // an exception reached a callback: this session ends, the process lives
  };

  // Runs a libevent callback's body: an exception ends this session with a log line and never
  // crosses into libevent.
  template <typename Body>
  void guarded(const char* where, Body&& body) noexcept;

  // Moves to `next`; a move session_state.cc does not list is a defect, logged as
  // session_state_invalid, and ends the session (internal_error).
  void enter(SessionState next);
  // Command lines (or message content) are taken from the input only in these states.
  bool reads_commands() const {
    return state_ == SessionState::command || state_ == SessionState::data;
  }

  // connection set-up
  void open_connection();
  void shut_down_now();
  // [timeouts] command, or stress_command while in stress mode (the smaller of the two).
  unsigned command_timeout_seconds() const;
  unsigned junk_command_limit() const;
  bool stressed() const;
  const ListenConfig& listener() const;
  void on_proxy_header_bytes();
  void on_proxy_header_timeout();
  void begin_smtp();
  // The banner, or the connect phase's judgement first (after the handshake on smtps).
  void open_smtp();
  void compute_offer();
  bool start_tls();
  void on_tls_established();
  void on_starttls(const Command& command);

  // input
  void on_read();
  void process_input();
  void handle_command(Command command);
  void handle_data_end(const DataEnd& end);
  void deliver_message(uint64_t size);
  void update_reading();
  void start_reading(const timeval* timeout);
  void stop_reading();
  // Replies waiting unwritten for the client (over TLS: plaintext and records).
  size_t client_output_pending() const;
  bool client_output_full() const;
  void on_client_output_drained();

  // Deadlines that trickling bytes do not extend (the idle timeouts are re-armed by every read).
  enum class Deadline { none, command_line, tls_handshake, data };
  void arm_deadline(Deadline kind, std::chrono::milliseconds after);
  void cancel_deadline();
  void on_deadline();
  void update_command_line_deadline();
  void tls_handshake_failed(const std::string& reason);

  // commands
  void on_helo(const Command& command, bool extended);
  void on_mail(const Command& command);
  void on_rcpt(const Command& command);
  void on_data(const Command& command);
  void on_rset(const Command& command);
  void on_quit(const Command& command);
  void refuse_command_error(const Command& command);
  // NOOP, RSET, VRFY, HELP and repeated HELO/EHLO past [limits] max_junk_commands count as
  // errors (Postfix's smtpd_junk_command_limit); false when that closed the session.
  bool note_junk_command();
  // One more error; false when max_errors was reached and the session is closing.
  bool note_error();

  // upstream
  template <typename Then>
  void with_upstream(const Command& command, Then then);
  void relay_command(const Command& command, std::string line,
                     void (Session::*on_positive)(const Command&));
  void mail_accepted(const Command& command);
  void rcpt_accepted(const Command& command);
  void upstream_failed(const Command& command, const UpstreamResult& result);
  // Gives a reusable upstream connection to the worker's pool; closes any other.
  void drop_upstream();
  template <typename Then>
  void open_upstream(const Command& command, Then then);
  UpstreamGreeting upstream_greeting() const;
  void end_transaction();
  void reset_transaction(std::function<void()> then);
  void resume();

  // screening: filters then policy, per phase
  using VerdictThen = std::function<void(const policy::Verdict&)>;
  void screen(Phase phase, VerdictThen then);
  // Answers a refusal that is due now; false when the verdict lets the command through.
  bool answer_refusal(const policy::Verdict& verdict, const Command* command);
  void send_banner();
  const FactCatalog* catalog() const;
  DecisionScene scene() const;
  std::string message_headers() const;
  std::vector<AuthenticationMethodResult> authentication_results() const;
  std::unique_ptr<TimerHandle> start_timer(std::chrono::milliseconds delay,
                                           std::function<void()> callback) override;
  void send_to_client(std::string_view bytes) override;
  DnsResolver* resolver() override;
  StateStore* store() override;

  // output
  void reply(const SmtpReply& reply, const Command* command = nullptr, bool from_upstream = false);
  void reply(int code, std::string_view text, const Command* command = nullptr);
  void write_to_client(std::string_view bytes);
  void close_session(EndReason reason);
  void finish();
  void log_end();
  std::string received_header() const;
  static const char* end_reason_name(EndReason reason);
  void count(Verb verb, bool ok);

  static void read_cb(bufferevent* bev, void* self);
  static void write_cb(bufferevent* bev, void* self);
  static void event_cb(bufferevent* bev, short what, void* self);
  void on_client_event(bufferevent* bev, short what);

  Worker& worker_;
  uint64_t id_;
  std::shared_ptr<const Config> config_;
  // The worker's resolver for config_'s [dns], taken on the first DNS filter's call and kept
  // for the session's life (a reload makes the worker a new one for new sessions). Declared
  // before the filters, so it outlives their queries.
  std::shared_ptr<DnsResolver> resolver_;
  bool resolver_taken_ = false;
  NetAddress peer_;
  NetAddress local_;
  std::string client_key_;
  std::string client_text_;                       // "ip:port" for logs
  std::shared_ptr<const ListenConfig> listener_;  // as bound, whatever a reload says
  BufferEventPtr client_;
  std::shared_ptr<const TlsServerContexts> tls_contexts_;
  EventPtr proxy_deadline_;
  // Reads a plain connection until TLS starts (then the bufferevent reads).
  std::unique_ptr<PlainSocketReader> plain_reader_;
  timeval read_timeout_{};  // kept while the session uses TLS
  SmtpParser parser_;
  std::shared_ptr<const UpstreamCapabilities> upstream_offer_;
  ClientOffer offer_;

  // session state
  SessionState state_ = SessionState::accepted;
  std::string helo_;
  bool esmtp_ = false;
  bool tls_active_ = false;
  std::string tls_description_;  // "TLSv1.3 with cipher … (256/256 bits)"
  bool processing_ = false;      // inside process_input (guards re-entry)
  bool shutting_down_ = false;
  bool client_eof_ = false;  // the client half-closed while a command was in flight
  bool timeouts_set_ = false;
  bool timeouts_for_data_ = false;
  // More than kClientOutputHighWater bytes of replies wait for the client: its input is
  // neither read nor processed until they drain.
  bool output_paused_ = false;
  EventPtr deadline_;
  Deadline deadline_kind_ = Deadline::none;
  std::chrono::steady_clock::time_point data_started_{};
  uint64_t data_bytes_ = 0;  // DATA bytes read so far, for the minimum data rate
  unsigned junk_commands_ = 0;
  EndReason end_reason_ = EndReason::client_closed;
  unsigned errors_ = 0;

  // transaction
  bool in_transaction_ = false;
  std::string sender_;
  std::vector<std::string> recipients_;
  std::unique_ptr<MessageStore> message_;
  // The transaction's Authentication-Results entries from the filters (one per DKIM
  // signature); cleared with the transaction.
  std::vector<AuthenticationEntry> authentication_entries_;
  // The filters' view of message_ from end of data until the transaction ends (after message_
  // so that it goes first; the relay reads the header section from it too).
  std::unique_ptr<StoredMessageView> message_view_;
  std::string content_scratch_;
  bool message_store_failed_ = false;

  // screening
  bool screening_ = false;  // filters or policy rules configured
  Facts facts_;
  std::unique_ptr<policy::PolicySession> policy_;
  std::unique_ptr<FilterRunner> filters_;
  // A chain filter streams the message (FilterRunner::streams_message): only then is each
  // stored chunk handed to the runner too.
  bool streams_message_ = false;
  SessionView view_;
  bool in_filter_run_ = false;
  bool banner_sent_ = false;
  std::optional<SmtpReply> greeting_refusal_;  // a 554 greeting: every command gets it

  // upstream
  std::unique_ptr<UpstreamConnection> upstream_;
  bool holds_upstream_slot_ = false;

  // per-command counts for the session-end log: [verb] = {accepted, total}
  std::array<std::array<unsigned, 2>, static_cast<size_t>(Verb::unknown) + 1> counts_{};
  unsigned messages_delivered_ = 0;
};

}  // namespace portcullis
