#include "session.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <fmt/format.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <functional>
#include <utility>

#include "authentication_results.h"
#include "direct_write.h"
#include "filter_observer.h"
#include "log_sink.h"
#include "metrics.h"
#include "net_prefix.h"
#include "plain_socket_reader.h"
#include "proxy_header.h"
#include "session_facts.h"
#include "session_internal.h"
#include "worker.h"

namespace portcullis {

using namespace session_detail;

namespace {

constexpr size_t kInputHighWater = 256 * 1024;

// SECURITY: a client that pipelines commands and reads nothing must not make its replies pile
// up in memory: past this many unwritten bytes its input is neither read nor processed until
// it has read them (docs/configuration.md, "Memory per session").
constexpr size_t kClientOutputHighWater = 64 * 1024;

// Over TLS, at most this much ciphertext waits in the socket's bufferevent in each direction:
// the TLS layer stops encrypting replies, or decrypting input, until it has moved on.
constexpr size_t kTlsRecordHighWater = 64 * 1024;

// Once [timeouts] data_block has passed, DATA must have brought at least this many bytes a
// second on average (Postfix's smtpd_min_data_rate), so that a message trickled in a byte at a
// time cannot hold a session for long: at most data_block + max_message_size / kMinDataRate
// seconds in all.
constexpr uint64_t kMinDataRate = 500;

timeval to_timeval(std::chrono::milliseconds duration) {
  const auto ms = std::max<std::chrono::milliseconds::rep>(duration.count(), 0);
  return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
}

}  // namespace

void Session::enter(SessionState next) {
  if (session_transition_allowed(state_, next)) {
    state_ = next;
    return;
  }
  const SessionState from = state_;
  log_error("session_state_invalid", {{"session", std::to_string(id_)},
                                      {"from", std::string(to_string(from))},
                                      {"to", std::string(to_string(next))}});
  throw std::logic_error(
      fmt::format("session state {} cannot move to {}", to_string(from), to_string(next)));
}

Session::Session(Worker& worker, uint64_t id, AcceptedConnection connection)
    : worker_(worker),
      id_(id),
      config_(worker.context().config->current()),
      peer_(connection.peer),
      local_(connection.local),
      client_key_(std::move(connection.client_key)),
      client_text_(connection.peer.host_port()),
      listener_(std::move(connection.listener)),
      parser_(ParserLimits{}) {
  set_no_delay(connection.fd);
  client_.reset(bufferevent_socket_new(worker_.base(), connection.fd, BEV_OPT_CLOSE_ON_FREE));
  if (!client_) evutil_closesocket(connection.fd);
  screening_ = !config_->filters.chain.empty() ||
               (config_->policy.policy && !config_->policy.policy->rules().empty());
  metrics().sessions_total.increment();
  metrics().sessions_active.add(1);
}

Session::~Session() {
  metrics().sessions_active.add(-1);
  filters_.reset();
  drop_upstream();
  if (!client_key_.empty()) worker_.context().session_limits->release(client_key_);
}

void Session::start() {
  guarded("start", [this] { open_connection(); });
}

void Session::open_connection() {
  if (!client_) {
    log_error("session_failed", {{"session", std::to_string(id_)}, {"reason", "bufferevent"}});
    finish();
    return;
  }
  bufferevent_setcb(client_.get(), &Session::read_cb, &Session::write_cb, &Session::event_cb, this);
  bufferevent_setwatermark(client_.get(), EV_READ, 0, kInputHighWater);
  if (listener().mode != ListenMode::smtps) {
    // Until TLS starts, the session reads the socket itself: one recv per event, where the
    // bufferevent would add an ioctl(FIONREAD) to every read.
    plain_reader_ = std::make_unique<PlainSocketReader>(
        worker_.base(), client_.get(), kInputHighWater,
        [this] { guarded("read", [this] { on_read(); }); },
        [this](short what) {
          guarded("event", [this, what] { on_client_event(client_.get(), what); });
        });
  }
  log_info("connect", {{"session", std::to_string(id_)}, {"client", client_text_}});

  if (listener().proxy_protocol) {
    // SECURITY: only [trust] proxy_peers may speak for someone else; anyone else is closed
    // without a banner, and nobody is guessed to be a proxy.
    bool trusted = false;
    for (const auto& text : config_->trust.proxy_peers) {
      auto prefix = NetPrefix::parse(text);
      if (prefix && prefix->contains(peer_)) trusted = true;
    }
    if (!trusted) {
      log_warning("proxy_untrusted", {{"session", std::to_string(id_)}, {"client", client_text_}});
      end_reason_ = EndReason::proxy_header_refused;
      return finish();
    }
    enter(SessionState::proxy_header);
    // A deadline for the whole header, not an idle timeout: trickling bytes do not extend it.
    proxy_deadline_.reset(evtimer_new(
        worker_.base(),
        [](evutil_socket_t, short, void* self) {
          auto* session = static_cast<Session*>(self);
          session->guarded("proxy_header_deadline",
                           [session] { session->on_proxy_header_timeout(); });
        },
        this));
    timeval timeout{static_cast<time_t>(config_->trust.proxy_timeout), 0};
    evtimer_add(proxy_deadline_.get(), &timeout);
    start_reading(nullptr);
    return;
  }
  begin_smtp();
}

const ListenConfig& Session::listener() const {
  return *listener_;
}

void Session::on_proxy_header_bytes() {
  evbuffer* input = bufferevent_get_input(client_.get());
  const size_t available = std::min(evbuffer_get_length(input), ProxyHeaderParser::kMaxHeaderSize);
  const auto* bytes = reinterpret_cast<const char*>(evbuffer_pullup(input, available));
  ProxyHeaderParser::Result result =
      ProxyHeaderParser().feed(std::string_view(bytes ? bytes : "", bytes ? available : 0));
  if (result.status == ProxyHeaderParser::Status::need_more) return;
  if (result.status == ProxyHeaderParser::Status::error) {
    log_warning(
        "proxy_header_refused",
        {{"session", std::to_string(id_)}, {"client", client_text_}, {"error", result.error}});
    end_reason_ = EndReason::proxy_header_refused;
    return finish();
  }
  evbuffer_drain(input, result.consumed);
  proxy_deadline_.reset();
  if (!result.local && result.source && result.destination) {
    const std::string proxy_text = client_text_;
    // The limits count the real client, not the load balancer.
    worker_.context().session_limits->release(client_key_);
    client_key_.clear();
    peer_ = *result.source;
    local_ = *result.destination;
    client_text_ = peer_.host_port();
    log_info("proxy_header",
             {{"session", std::to_string(id_)}, {"client", client_text_}, {"proxy", proxy_text}});
    const std::string key = peer_.client_key();
    if (worker_.context().session_limits->try_admit(key) != SessionLimits::Outcome::admitted) {
      reply(421, fmt::format("4.7.0 {} Error: too many connections from your address",
                             config_->server.hostname));
      return close_session(EndReason::session_limit);
    }
    client_key_ = key;
  }
  begin_smtp();
  process_input();
}

void Session::on_proxy_header_timeout() {
  if (state_ != SessionState::proxy_header) return;
  log_warning("proxy_header_refused",
              {{"session", std::to_string(id_)}, {"client", client_text_}, {"error", "timeout"}});
  end_reason_ = EndReason::proxy_header_refused;
  finish();
}

void Session::begin_smtp() {
  if (listener().mode == ListenMode::smtps) {
    // Implicit TLS: the SMTP session (and the connect phase's judgement) starts once the
    // handshake is done (on_tls_established).
    if (!start_tls()) return close_session(EndReason::tls_failed);
    update_reading();
    return;
  }
  open_smtp();
}

void Session::open_smtp() {
  const Config& config = *config_;
  upstream_offer_ = worker_.context().upstream_status->capabilities();
  if (!upstream_offer_) {
    end_reason_ = EndReason::upstream_unavailable;
    reply(421, fmt::format("4.4.1 {} Service not available, upstream unreachable",
                           config.server.hostname));
    close_session(EndReason::upstream_unavailable);
    return;
  }
  compute_offer();
  if (!screening_) {
    enter(SessionState::command);
    send_banner();
    update_reading();
    return;
  }
  policy_ = std::make_unique<policy::PolicySession>(
      config.policy.policy, policy::SessionOptions{config.policy.delay_reject});
  view_.session_id = id_;
  view_.client_ip = IpAddress::parse(peer_.ip());
  view_.client_port = peer_.port();
  view_.local_ip = IpAddress::parse(local_.ip());
  view_.hostname = config.server.hostname;
  view_.facts = &facts_;
  record_connect_facts(facts_, view_.client_ip, peer_.port());
  if (!config.filters.chain.empty()) {
    filters_ = std::make_unique<FilterRunner>(worker_.base(), id_, config.filters.chain,
                                              worker_.filter_router(), *this,
                                              MetricsFilterObserver::instance());
    streams_message_ = filters_->streams_message();
  }
  // Reading stays on through the connect phase: the pregreet filter's evidence is what the
  // client sends before the banner.
  update_reading();
  screen(Phase::connect, [this](const policy::Verdict& verdict) {
    if (verdict.refused() && verdict.answer == policy::AnswerTime::now) {
      // RFC 5321 3.1: a 554 greeting; every later command but QUIT gets the refusal again.
      greeting_refusal_ = smtp_reply_for(*verdict.reply);
      banner_sent_ = true;
      return reply(*greeting_refusal_);
    }
    if (answer_refusal(verdict, nullptr)) return;
    send_banner();
  });
}

void Session::send_banner() {
  if (client_) {
    view_.client_spoke_before_banner =
        evbuffer_get_length(bufferevent_get_input(client_.get())) > 0;
  }
  banner_sent_ = true;
  // The first command's time starts at the banner, not at the connection (the connect phase's
  // filters may have taken most of [timeouts] command).
  timeouts_set_ = false;
  reply(220, fmt::format("{} ESMTP Portcullis", config_->server.hostname));
  update_reading();
}

void Session::compute_offer() {
  const Config& config = *config_;
  const bool starttls = !listener().tls.empty() && listener().mode != ListenMode::smtps &&
                        !tls_active_ && state_ != SessionState::tls_handshake;
  offer_ = compute_client_offer(*upstream_offer_, config.limits.max_message_size, starttls);
  ParserLimits limits;
  limits.command_line = 512;
  limits.mail_extra = 26 + (offer_.dsn ? 100 : 0);
  limits.rcpt_extra = offer_.dsn ? 500 : 0;
  limits.max_line_length = config.limits.max_line_length;
  limits.max_header_size = config.limits.max_header_size;
  limits.max_message_size = offer_.size_limit;
  limits.bare_lf = config.limits.bare_lf;
  parser_.set_limits(limits);
}

// Puts TLS under the client connection (implicit TLS, or after the 220 to STARTTLS).
bool Session::start_tls() {
  tls_contexts_ = worker_.context().tls->current();
  SslPtr ssl = tls_contexts_ ? tls_contexts_->new_ssl(listener().tls) : nullptr;
  if (!ssl) {
    log_error("tls_unavailable", {{"session", std::to_string(id_)}, {"tls", listener().tls}});
    return false;
  }
  // From here on the TLS filter reads the socket (through the plain bufferevent).
  stop_reading();
  plain_reader_.reset();
  bufferevent* plain = client_.release();
  bufferevent* wrapped = bufferevent_openssl_filter_new(
      worker_.base(), plain, ssl.release(), BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
  if (!wrapped) {
    client_.reset(plain);
    log_error("tls_unavailable", {{"session", std::to_string(id_)}, {"reason", "bufferevent"}});
    return false;
  }
  bufferevent_openssl_set_allow_dirty_shutdown(wrapped, 1);
  bufferevent_setwatermark(plain, EV_READ, 0, kTlsRecordHighWater);
  bufferevent_setwatermark(plain, EV_WRITE, 0, kTlsRecordHighWater);
  client_.reset(wrapped);
  timeouts_set_ = false;  // a new bufferevent, without the old one's timeouts
  bufferevent_setcb(wrapped, &Session::read_cb, &Session::write_cb, &Session::event_cb, this);
  bufferevent_setwatermark(wrapped, EV_READ, 0, kInputHighWater);
  enter(SessionState::tls_handshake);
  // From the first byte: a handshake that trickles or stalls ends when this passes.
  arm_deadline(Deadline::tls_handshake, std::chrono::seconds(command_timeout_seconds()));
  return true;
}

void Session::tls_handshake_failed(const std::string& reason) {
  log_warning("tls_handshake_failed",
              {{"session", std::to_string(id_)}, {"client", client_text_}, {"reason", reason}});
  metrics().tls_handshakes_total.with({"failed"}).increment();
  end_reason_ = EndReason::tls_failed;
  finish();
}

void Session::on_tls_established() {
  if (deadline_kind_ == Deadline::tls_handshake) cancel_deadline();
  tls_active_ = true;
  metrics().tls_handshakes_total.with({"ok"}).increment();
  SSL* ssl = bufferevent_openssl_get_ssl(client_.get());
  tls_description_ = ssl ? tls_description(ssl) : std::string("TLS");
  const char* server_name = ssl ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : nullptr;
  log_info("tls", {{"session", std::to_string(id_)},
                   {"client", client_text_},
                   {"tls", tls_description_},
                   {"sni", server_name ? server_name : "", true},
                   {"resumed", ssl && SSL_session_reused(ssl) ? "yes" : "no"}});
  if (!upstream_offer_) {
    open_smtp();  // implicit TLS: the banner comes now
  } else {
    enter(SessionState::command);  // STARTTLS: the client starts over with EHLO
    compute_offer();
  }
  if (!session_closing(state_)) process_input();
}

void Session::on_starttls(const Command& command) {
  if (tls_active_) {
    count(command.verb, false);
    return reply(554, "5.5.1 Error: TLS already active", &command);
  }
  if (listener().tls.empty() || listener().mode == ListenMode::smtps) {
    count(command.verb, false);
    return reply(502, "5.5.1 Error: command not implemented", &command);
  }
  count(command.verb, true);
  reply(220, "2.0.0 Ready to start TLS", &command);
  // SECURITY: plaintext the client sent after STARTTLS is never executed (CVE-2011-0411
  // class): it is dropped, and the session starts over after the handshake (RFC 3207 4.2).
  evbuffer* input = bufferevent_get_input(client_.get());
  if (const size_t pending = evbuffer_get_length(input); pending > 0) {
    evbuffer_drain(input, pending);
    log_warning("starttls_plaintext_discarded", {{"session", std::to_string(id_)},
                                                 {"client", client_text_},
                                                 {"bytes", std::to_string(pending)}});
  }
  parser_.reset();
  end_transaction();
  drop_upstream();
  helo_.clear();
  esmtp_ = false;
  if (policy_) {
    policy_->starttls();
    clear_facts_from(facts_, catalog(), Phase::helo);
  }
  if (!start_tls()) {
    return close_session(EndReason::tls_failed);
  }
  compute_offer();
}

// ---------------------------------------------------------------------------------------------
// input

void Session::on_read() {
  if (state_ == SessionState::proxy_header) return on_proxy_header_bytes();
  process_input();
}

void Session::process_input() {
  if (processing_ || state_ == SessionState::closed) return;
  processing_ = true;
  // Re-read each time: STARTTLS replaces the bufferevent in the middle of this loop.
  while (reads_commands() && !output_paused_ &&
         evbuffer_get_length(bufferevent_get_input(client_.get())) > 0) {
    evbuffer* input = bufferevent_get_input(client_.get());
    if (shutting_down_ && !in_transaction_) {
      processing_ = false;
      return shut_down_now();
    }
    if (client_output_full()) {
      // write_cb takes the input up again once the client has read its replies; meanwhile
      // the write timeout ([timeouts] command, time without progress) bounds the wait.
      output_paused_ = true;
      stop_reading();
      break;
    }
    const bool was_in_data = parser_.in_data();
    evbuffer_iovec vec;
    if (evbuffer_peek(input, -1, nullptr, &vec, 1) < 1) break;
    std::string_view chunk(static_cast<const char*>(vec.iov_base), vec.iov_len);
    Command command;
    DataEnd end;
    content_scratch_.clear();
    SmtpParser::Step step = parser_.feed(chunk, &command, &content_scratch_, &end);
    if (!content_scratch_.empty() && message_ && !message_store_failed_) {
      if (!message_->append(content_scratch_)) {
        message_store_failed_ = true;
        log_error("message_store_failed",
                  {{"session", std::to_string(id_)}, {"error", message_->error()}});
      } else if (streams_message_ && filters_) {
        // The same bytes as stored, so what a filter streamed is what it reads at end of data.
        filters_->message_data(view_, content_scratch_);
      }
    }
    evbuffer_drain(input, step.consumed);
    if (was_in_data) data_bytes_ += step.consumed;
    if (step.event == SmtpParser::Event::command) {
      handle_command(std::move(command));
    } else if (step.event == SmtpParser::Event::data_end) {
      handle_data_end(end);
    } else if (step.consumed == 0) {
      break;  // nothing more can be done with this input
    }
  }
  processing_ = false;
  if (session_closing(state_)) return;
  update_reading();
  update_command_line_deadline();
}

// A command line must be complete within [timeouts] command of the moment the session starts
// waiting for its rest, however slowly its bytes trickle in (each read re-arms the idle
// timeout, not this deadline).
void Session::update_command_line_deadline() {
  if (session_waits(state_) || output_paused_ || !parser_.mid_command_line()) {
    if (deadline_kind_ == Deadline::command_line) cancel_deadline();
    return;
  }
  if (deadline_kind_ == Deadline::none) {
    arm_deadline(Deadline::command_line, std::chrono::seconds(command_timeout_seconds()));
  }
}

void Session::arm_deadline(Deadline kind, std::chrono::milliseconds after) {
  if (!deadline_) {
    deadline_.reset(evtimer_new(
        worker_.base(),
        [](evutil_socket_t, short, void* self) {
          auto* session = static_cast<Session*>(self);
          session->guarded("deadline", [session] { session->on_deadline(); });
        },
        this));
  }
  if (!deadline_) return;
  deadline_kind_ = kind;
  const timeval timeout = to_timeval(after);
  evtimer_add(deadline_.get(), &timeout);
}

void Session::cancel_deadline() {
  if (deadline_) evtimer_del(deadline_.get());
  deadline_kind_ = Deadline::none;
}

void Session::on_deadline() {
  const Deadline kind = deadline_kind_;
  deadline_kind_ = Deadline::none;
  if (session_closing(state_)) return;
  const std::string timeout_text =
      fmt::format("4.4.2 {} Error: timeout exceeded", config_->server.hostname);
  switch (kind) {
    case Deadline::none:
      return;
    case Deadline::command_line:
      log_info("command_line_timeout", {{"session", std::to_string(id_)},
                                        {"client", client_text_},
                                        {"seconds", std::to_string(command_timeout_seconds())}});
      reply(421, timeout_text);
      return close_session(EndReason::timeout);
    case Deadline::tls_handshake:
      return tls_handshake_failed("timeout: the handshake did not complete within " +
                                  std::to_string(command_timeout_seconds()) + " s");
    case Deadline::data: {
      using namespace std::chrono;
      const auto elapsed = duration_cast<milliseconds>(steady_clock::now() - data_started_);
      const auto allowed = milliseconds(seconds(config_->timeouts.data_block)) +
                           milliseconds(data_bytes_ * 1000 / kMinDataRate);
      if (elapsed < allowed) return arm_deadline(Deadline::data, allowed - elapsed);
      log_info("data_rate_timeout", {{"session", std::to_string(id_)},
                                     {"client", client_text_},
                                     {"bytes", std::to_string(data_bytes_)},
                                     {"seconds", std::to_string(elapsed.count() / 1000)}});
      reply(421, timeout_text);
      return close_session(EndReason::timeout);
    }
  }
}

// Reading stays enabled while a command waits for the upstream (what the client pipelines is
// bounded by the input high-water mark), so there is no epoll_ctl per command; timeouts are
// set only when the state changes between commands and DATA.
void Session::update_reading() {
  if (!client_ || session_closing(state_) || session_waits(state_) || client_eof_ ||
      output_paused_) {
    return;
  }
  const bool data = parser_.in_data();
  if (!timeouts_set_ || timeouts_for_data_ != data) {
    const TimeoutsConfig& timeouts = config_->timeouts;
    const unsigned command_timeout = command_timeout_seconds();
    timeval read_timeout{static_cast<time_t>(data ? timeouts.data_block : command_timeout), 0};
    timeval write_timeout{static_cast<time_t>(command_timeout), 0};
    timeouts_set_ = true;
    timeouts_for_data_ = data;
    if (plain_reader_) {
      bufferevent_set_timeouts(client_.get(), nullptr, &write_timeout);
      read_timeout_ = read_timeout;
      plain_reader_->restart(&read_timeout_);
    } else {
      bufferevent_set_timeouts(client_.get(), &read_timeout, &write_timeout);
    }
  }
  start_reading(&read_timeout_);
}

void Session::start_reading(const timeval* timeout) {
  if (plain_reader_) return plain_reader_->start(timeout);
  if (!(bufferevent_get_enabled(client_.get()) & EV_READ)) {
    bufferevent_enable(client_.get(), EV_READ);
  }
}

size_t Session::client_output_pending() const {
  if (!client_) return 0;
  size_t pending = evbuffer_get_length(bufferevent_get_output(client_.get()));
  if (bufferevent* socket = bufferevent_get_underlying(client_.get())) {
    pending += evbuffer_get_length(bufferevent_get_output(socket));
  }
  return pending;
}

bool Session::client_output_full() const {
  return client_output_pending() > kClientOutputHighWater;
}

// The write callback: the client has read enough of its replies for its input to be taken up
// again.
void Session::on_client_output_drained() {
  if (!output_paused_ || client_output_full()) return;
  output_paused_ = false;
  process_input();
}

void Session::stop_reading() {
  if (plain_reader_) plain_reader_->stop();
  if (client_) bufferevent_disable(client_.get(), EV_READ);
}

void Session::resume() {
  if (session_closing(state_)) return;
  if (session_waits(state_)) {
    enter(SessionState::command);
    // The read timer kept running through the wait (no epoll_ctl per command): the client's
    // [timeouts] command counts from the reply it now gets, as Postfix's smtpd_timeout does.
    timeouts_set_ = false;
  }
  if (shutting_down_ && !in_transaction_) return shut_down_now();
  process_input();
  // The client closed while a command was in flight: its last commands are answered first.
  if (client_eof_ && state_ == SessionState::command) finish();
}

void Session::shut_down() {
  guarded("shut_down", [this] { shut_down_now(); });
}

void Session::stress_changed() {
  guarded("stress_changed", [this] {
    if (session_closing(state_)) return;
    timeouts_set_ = false;
    update_reading();
    if (deadline_kind_ == Deadline::command_line) {
      cancel_deadline();
      update_command_line_deadline();
    }
  });
}

bool Session::stressed() const {
  const SessionLimits* limits = worker_.context().session_limits;
  return limits && limits->stressed();
}

unsigned Session::command_timeout_seconds() const {
  const TimeoutsConfig& timeouts = config_->timeouts;
  return stressed() ? std::min(timeouts.command, timeouts.stress_command) : timeouts.command;
}

unsigned Session::junk_command_limit() const {
  const unsigned limit = config_->limits.max_junk_commands;
  return stressed() ? std::max(1u, limit / 2) : limit;
}

void Session::shut_down_now() {
  shutting_down_ = true;
  if (session_closing(state_) || session_waits(state_) || in_transaction_) return;
  reply(421,
        fmt::format("4.3.2 {} Service shutting down, try again later", config_->server.hostname));
  close_session(EndReason::shutdown);
}

// ---------------------------------------------------------------------------------------------
// output

void Session::reply(int code, std::string_view text, const Command* command) {
  reply(SmtpReply::make(code, text), command, false);
}

void Session::reply(const SmtpReply& smtp_reply, const Command* command, bool from_upstream) {
  if (!client_ || state_ == SessionState::closed) return;
  write_to_client(smtp_reply.wire);
  const int code = smtp_reply.code;
  if (code < 400 || code == 421 || session_closing(state_)) return;
  if (command) {
    log_info("refused",
             {{"session", std::to_string(id_)},
              {"client", client_text_},
              {"helo", helo_, true},
              {"command", command->line, true},
              {"source", from_upstream ? "upstream" : "portcullis"},
              {"reply",
               smtp_reply.lines.empty() ? std::to_string(code)
                                        : std::to_string(code) + " " + smtp_reply.lines.front(),
               true}});
  }
  note_error();
}

void Session::close_session(EndReason reason) {
  if (session_closing(state_)) return;
  enter(SessionState::draining);
  end_reason_ = reason;
  drop_upstream();
  if (!client_) return finish();
  stop_reading();
  if (evbuffer_get_length(bufferevent_get_output(client_.get())) == 0) return finish();
  // write_cb finishes once the last reply is written; the write timeout bounds the wait.
  bufferevent_setwatermark(client_.get(), EV_WRITE, 0, 0);
  bufferevent_enable(client_.get(), EV_WRITE);
}

void Session::finish() {
  if (state_ == SessionState::closed) return;
  enter(SessionState::closed);
  if (filters_) {
    view_.errors = errors_;  // the ratelimit filter counts them (counter "errors")
    filters_->session_end(view_);
    filters_.reset();
    streams_message_ = false;
  }
  log_end();
  proxy_deadline_.reset();
  cancel_deadline();
  drop_upstream();
  stop_reading();
  plain_reader_.reset();
  if (client_) {
    // Over TLS the last replies may still sit, encrypted, in the socket's own buffer: the
    // worker keeps the connection until they are written (bounded), then frees it.
    // A handshake that failed has nothing worth waiting for: its socket closes now.
    if (tls_active_ && client_output_pending() > 0) worker_.linger(std::move(client_));
  }
  worker_.session_finished(id_);
}

// ---------------------------------------------------------------------------------------------
// services the filters use (FilterServices) and writing to the client

std::unique_ptr<TimerHandle> Session::start_timer(std::chrono::milliseconds delay,
                                                  std::function<void()> callback) {
  return start_loop_timer(worker_.base(), delay, std::move(callback));
}

StateStore* Session::store() {
  return worker_.store();
}

DnsResolver* Session::resolver() {
  if (!resolver_taken_) {
    resolver_ = worker_.resolver_for(config_->dns);
    resolver_taken_ = true;
  }
  return resolver_.get();
}

void Session::send_to_client(std::string_view bytes) {
  if (banner_sent_ || !client_ || session_closing(state_)) return;
  write_to_client(bytes);
}

void Session::write_to_client(std::string_view bytes) {
  if (tls_active_ || state_ == SessionState::tls_handshake) {
    bufferevent_write(client_.get(), bytes.data(), bytes.size());
  } else {
    write_now_or_queue(client_.get(), bytes);
  }
}

// ---------------------------------------------------------------------------------------------
// libevent callbacks

void Session::read_cb(bufferevent*, void* self) {
  auto* session = static_cast<Session*>(self);
  session->guarded("read", [session] { session->on_read(); });
}

void Session::write_cb(bufferevent* bev, void* self) {
  auto* session = static_cast<Session*>(self);
  session->guarded("write", [session, bev] {
    if (session->state_ == SessionState::closed) return;
    if (session->state_ == SessionState::draining) {
      if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) session->finish();
      return;
    }
    session->on_client_output_drained();
  });
}

void Session::event_cb(bufferevent* bev, short what, void* self) {
  auto* session = static_cast<Session*>(self);
  session->guarded("event", [session, bev, what] { session->on_client_event(bev, what); });
}

void Session::on_client_event(bufferevent*, short what) {
  Session* session = this;
  if (session->state_ == SessionState::closed) return;
  const bool handshaking = session->state_ == SessionState::tls_handshake;
  if (what & BEV_EVENT_CONNECTED) {
    if (handshaking) session->on_tls_established();
    return;
  }
  if (handshaking && (what & BEV_EVENT_TIMEOUT)) {
    return session->tls_handshake_failed((what & BEV_EVENT_READING) ? "timeout: nothing read"
                                                                    : "timeout: nothing written");
  }
  if (handshaking && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) {
    std::string reason;
    while (unsigned long code = bufferevent_get_openssl_error(session->client_.get())) {
      char text[256];
      ERR_error_string_n(code, text, sizeof text);
      if (!reason.empty()) reason += "; ";
      reason += text;
    }
    return session->tls_handshake_failed(reason.empty() ? "connection closed during the handshake"
                                                        : reason);
  }
  if (what & BEV_EVENT_TIMEOUT) {
    if (session->state_ == SessionState::proxy_header) return session->on_proxy_header_timeout();
    if (session->state_ == SessionState::draining) return session->finish();
    if ((what & BEV_EVENT_READING) && session_waits(session->state_)) {
      // A timeout disables the bufferevent's reading (the session's own read event stays).
      if (!session->plain_reader_) bufferevent_enable(session->client_.get(), EV_READ);
      return;
    }
    if (what & BEV_EVENT_READING) {
      session->reply(
          421, fmt::format("4.4.2 {} Error: timeout exceeded", session->config_->server.hostname));
      return session->close_session(EndReason::timeout);
    }
    session->end_reason_ = EndReason::write_failed;
    return session->finish();
  }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    if (!session_closing(session->state_)) session->end_reason_ = EndReason::client_closed;
    if ((what & BEV_EVENT_EOF) && session_waits(session->state_)) {
      // A half-close: the upstream's answer to what was sent still goes out (resume()).
      session->client_eof_ = true;
      return;
    }
    session->finish();
  }
}

}  // namespace portcullis
