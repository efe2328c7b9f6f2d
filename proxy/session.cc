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
#include "worker.h"

namespace portcullis {

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

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Postfix: "250 2.0.0 Ok: queued as 3F2A41C0B1"; other MTAs: "… queued as <id>" / "id=<id>".
// Case-insensitive position of `needle` in `text`, or npos.
size_t ifind(std::string_view text, std::string_view needle) {
  for (size_t at = 0; at + needle.size() <= text.size(); ++at) {
    if (iequals(text.substr(at, needle.size()), needle)) return at;
  }
  return std::string_view::npos;
}

// The id after "queued as" or "id=" (up to 64 of [A-Za-z0-9._-]); a plain scan, since it runs
// for every delivered message.
std::string queue_id_from(const SmtpReply& reply) {
  auto id_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  };
  for (const std::string& line : reply.lines) {
    for (std::string_view marker : {std::string_view("queued as"), std::string_view("id=")}) {
      size_t at = ifind(line, marker);
      if (at == std::string_view::npos) continue;
      at += marker.size();
      while (at < line.size() && std::isspace(static_cast<unsigned char>(line[at])))
        ++at;
      size_t end = at;
      while (end < line.size() && end - at < 64 && id_char(line[end]))
        ++end;
      if (end > at) return line.substr(at, end - at);
    }
  }
  return {};
}

// The counters a session bumps for every command, looked up once per process.
Counter& command_counter(Verb verb, bool ok) {
  static const auto table = [] {
    std::array<std::array<Counter*, 2>, static_cast<size_t>(Verb::unknown) + 1> counters{};
    for (size_t i = 0; i < counters.size(); ++i) {
      const std::string verb_name(to_string(static_cast<Verb>(i)));
      counters[i][0] = &metrics().commands_total.with({verb_name, "refused"});
      counters[i][1] = &metrics().commands_total.with({verb_name, "accepted"});
    }
    return counters;
  }();
  return *table[static_cast<size_t>(verb)][ok ? 1 : 0];
}

enum class MessageOutcome { delivered, refused, failed };

// portcullis_messages_total, once per message: looked up once per process.
Counter& message_counter(MessageOutcome outcome) {
  static const std::array<Counter*, 3> table = {
      &metrics().messages_total.with({"delivered"}),
      &metrics().messages_total.with({"refused"}),
      &metrics().messages_total.with({"failed"}),
  };
  return *table[static_cast<size_t>(outcome)];
}

Counter& upstream_reply_counter(int code) {
  static const auto table = [] {
    std::array<Counter*, 6> counters{};
    for (int i = 0; i < 6; ++i) {
      counters[i] = &metrics().upstream_replies_total.with({fmt::format("{}xx", i)});
    }
    return counters;
  }();
  return *table[std::clamp(code / 100, 0, 5)];
}

Phase phase_of(Verb verb) {
  switch (verb) {
    case Verb::helo:
    case Verb::ehlo:
      return Phase::helo;
    case Verb::mail:
      return Phase::mail;
    case Verb::rcpt:
      return Phase::rcpt;
    default:
      return Phase::data;
  }
}

// Header values come from policy placeholders, i.e. maybe from the client: a CR or LF would
// start a header of the client's choosing.
std::string header_safe(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 && c != '\t') c = ' ';
    if (byte == 0x7f) c = ' ';
  }
  return out;
}

}  // namespace

template <typename Body>
void Session::guarded(const char* where, Body&& body) noexcept {
  try {
    body();
    return;
  } catch (const std::exception& error) {
    log_error(
        "session_callback_failed",
        {{"session", std::to_string(id_)}, {"callback", where}, {"error", error.what(), true}});
  } catch (...) {
    log_error("session_callback_failed",
              {{"session", std::to_string(id_)}, {"callback", where}, {"error", "unknown"}});
  }
  try {
    end_reason_ = EndReason::internal_error;
    closing_ = true;
    finish();
  } catch (...) {
    // Nothing more can be done for this session; the worker frees it with the others.
  }
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
  if (!client_) {
    log_error("session_failed", {{"session", std::to_string(id_)}, {"reason", "bufferevent"}});
    closing_ = true;
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
      closing_ = true;
      return finish();
    }
    awaiting_proxy_header_ = true;
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
    closing_ = true;
    return finish();
  }
  evbuffer_drain(input, result.consumed);
  awaiting_proxy_header_ = false;
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
  if (!awaiting_proxy_header_ || finished_) return;
  log_warning("proxy_header_refused",
              {{"session", std::to_string(id_)}, {"client", client_text_}, {"error", "timeout"}});
  end_reason_ = EndReason::proxy_header_refused;
  closing_ = true;
  finish();
}

void Session::begin_smtp() {
  const Config& config = *config_;
  if (listener().mode == ListenMode::smtps && !start_tls()) {
    return close_session(EndReason::tls_failed);
  }
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
  reply(220, fmt::format("{} ESMTP Portcullis", config_->server.hostname));
}

void Session::compute_offer() {
  const Config& config = *config_;
  const bool starttls = !listener().tls.empty() && listener().mode != ListenMode::smtps &&
                        !tls_active_ && !tls_handshaking_;
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
  tls_handshaking_ = true;
  // From the first byte: a handshake that trickles or stalls ends when this passes.
  arm_deadline(Deadline::tls_handshake, std::chrono::seconds(config_->timeouts.command));
  return true;
}

void Session::tls_handshake_failed(const std::string& reason) {
  log_warning("tls_handshake_failed",
              {{"session", std::to_string(id_)}, {"client", client_text_}, {"reason", reason}});
  metrics().tls_handshakes_total.with({"failed"}).increment();
  end_reason_ = EndReason::tls_failed;
  closing_ = true;
  finish();
}

void Session::on_tls_established() {
  if (deadline_kind_ == Deadline::tls_handshake) cancel_deadline();
  tls_handshaking_ = false;
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
  if (upstream_offer_) compute_offer();
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
  if (awaiting_proxy_header_) return on_proxy_header_bytes();
  process_input();
}

void Session::process_input() {
  if (processing_ || finished_) return;
  processing_ = true;
  // Re-read each time: STARTTLS replaces the bufferevent in the middle of this loop.
  while (!busy_ && !closing_ && !awaiting_proxy_header_ && !output_paused_ &&
         evbuffer_get_length(bufferevent_get_input(client_.get())) > 0) {
    evbuffer* input = bufferevent_get_input(client_.get());
    if (shutting_down_ && !in_transaction_) {
      processing_ = false;
      return shut_down();
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
  if (closing_ || finished_) return;
  update_reading();
  update_command_line_deadline();
}

// A command line must be complete within [timeouts] command of the moment the session starts
// waiting for its rest, however slowly its bytes trickle in (each read re-arms the idle
// timeout, not this deadline).
void Session::update_command_line_deadline() {
  if (busy_ || output_paused_ || !parser_.mid_command_line()) {
    if (deadline_kind_ == Deadline::command_line) cancel_deadline();
    return;
  }
  if (deadline_kind_ == Deadline::none) {
    arm_deadline(Deadline::command_line, std::chrono::seconds(config_->timeouts.command));
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
  if (finished_ || closing_) return;
  const std::string timeout_text =
      fmt::format("4.4.2 {} Error: timeout exceeded", config_->server.hostname);
  switch (kind) {
    case Deadline::none:
      return;
    case Deadline::command_line:
      log_info("command_line_timeout", {{"session", std::to_string(id_)},
                                        {"client", client_text_},
                                        {"seconds", std::to_string(config_->timeouts.command)}});
      reply(421, timeout_text);
      return close_session(EndReason::timeout);
    case Deadline::tls_handshake:
      return tls_handshake_failed("timeout: the handshake did not complete within " +
                                  std::to_string(config_->timeouts.command) + " s");
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
  if (!client_ || closing_ || busy_ || client_eof_ || output_paused_) return;
  const bool data = parser_.in_data();
  if (!timeouts_set_ || timeouts_for_data_ != data) {
    const TimeoutsConfig& timeouts = config_->timeouts;
    timeval read_timeout{static_cast<time_t>(data ? timeouts.data_block : timeouts.command), 0};
    timeval write_timeout{static_cast<time_t>(timeouts.command), 0};
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
  busy_ = false;
  if (closing_ || finished_) return;
  if (shutting_down_ && !in_transaction_) return shut_down();
  process_input();
  // The client closed while a command was in flight: its last commands are answered first.
  if (client_eof_ && !busy_ && !closing_ && !finished_) finish();
}

void Session::shut_down() {
  shutting_down_ = true;
  if (closing_ || finished_ || busy_ || in_transaction_) return;
  reply(421,
        fmt::format("4.3.2 {} Service shutting down, try again later", config_->server.hostname));
  close_session(EndReason::shutdown);
}

void Session::handle_command(Command command) {
  if (command.error != CommandError::none) {
    count(command.verb, false);
    refuse_command_error(command);
    return;
  }
  if (greeting_refusal_ && command.verb != Verb::quit) {
    count(command.verb, false);
    return reply(*greeting_refusal_, &command);
  }
  switch (command.verb) {
    case Verb::helo:
      return on_helo(command, false);
    case Verb::ehlo:
      return on_helo(command, true);
    case Verb::mail:
      return on_mail(command);
    case Verb::rcpt:
      return on_rcpt(command);
    case Verb::data:
      return on_data(command);
    case Verb::rset:
      return on_rset(command);
    case Verb::quit:
      return on_quit(command);
    case Verb::noop:
      count(command.verb, true);
      if (!note_junk_command()) return;
      return reply(250, "2.0.0 Ok", &command);
    case Verb::vrfy:
      count(command.verb, true);
      if (!note_junk_command()) return;
      return reply(252, "2.0.0 Cannot VRFY user, but will accept message and attempt delivery",
                   &command);
    case Verb::help:
      count(command.verb, true);
      if (!note_junk_command()) return;
      return reply(214, "2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP",
                   &command);
    case Verb::starttls:
      return on_starttls(command);
    case Verb::unknown:
      count(command.verb, false);
      return reply(500, "5.5.2 Error: command not recognized", &command);
  }
}

bool Session::note_junk_command() {
  if (++junk_commands_ <= config_->limits.max_junk_commands) return true;
  return note_error();
}

bool Session::note_error() {
  if (++errors_ < config_->limits.max_errors) return true;
  const SmtpReply too_many = SmtpReply::make(
      421, fmt::format("4.7.0 {} Error: too many errors", config_->server.hostname));
  write_to_client(too_many.wire);
  close_session(EndReason::too_many_errors);
  return false;
}

void Session::refuse_command_error(const Command& command) {
  switch (command.error) {
    case CommandError::none:
      return;
    case CommandError::line_too_long:
      return reply(500, "5.5.2 Error: line too long", &command);
    case CommandError::nul_byte:
      return reply(500, "5.5.2 Error: NUL character in command", &command);
    case CommandError::bare_lf:
      return reply(500, "5.5.2 Error: command line ends in a bare LF", &command);
    case CommandError::bare_cr:
      return reply(500, "5.5.2 Error: bare CR in command", &command);
    case CommandError::forbidden:
      // Postfix's answer to HTTP and header lines sent to an SMTP port.
      reply(221, "2.7.0 Error: I can break rules, too. Goodbye.", &command);
      return close_session(EndReason::forbidden_command);
    case CommandError::unrecognized:
      return reply(500, "5.5.2 Error: command not recognized", &command);
    case CommandError::syntax:
      return reply(501, "5.5.4 Syntax error in parameters or arguments", &command);
    case CommandError::bad_sender_path:
      return reply(501, "5.1.7 Bad sender address syntax", &command);
    case CommandError::bad_recipient_path:
      return reply(501, "5.1.3 Bad recipient address syntax", &command);
    case CommandError::bad_parameter:
      return reply(501, "5.5.4 Invalid parameter syntax", &command);
  }
}

// ---------------------------------------------------------------------------------------------
// commands

void Session::on_helo(const Command& command, bool extended) {
  count(command.verb, true);
  if (!helo_.empty() && !note_junk_command()) return;
  // RFC 5321 4.1.4: HELO/EHLO resets the transaction, at the upstream too.
  reset_transaction([this, command, extended] {
    if (upstream_ && (command.argument != helo_ || extended != esmtp_)) {
      // The upstream was greeted with the old name or verb (XCLIENT PROTO SMTP/ESMTP): greet it
      // again at the next transaction.
      drop_upstream();
    }
    auto greet = [this, command, extended] {
      helo_ = command.argument;
      esmtp_ = extended;
      if (extended) {
        reply(build_ehlo_reply(config_->server.hostname, offer_), &command);
      } else {
        reply(250, config_->server.hostname, &command);
      }
    };
    if (!policy_) return greet();
    // A new HELO/EHLO is judged afresh: helo facts and decisions are made again.
    helo_.clear();
    policy_->starttls();
    SSL* ssl = tls_active_ ? bufferevent_openssl_get_ssl(client_.get()) : nullptr;
    record_helo_facts(facts_, catalog(), command.argument, tls_active_,
                      ssl ? SSL_get_version(ssl) : "");
    screen(Phase::helo, [this, command, greet](const policy::Verdict& verdict) {
      if (answer_refusal(verdict, &command)) return;
      greet();
    });
  });
}

const FactCatalog* Session::catalog() const {
  return config_->filters.catalog.get();
}

void Session::on_mail(const Command& command) {
  if (helo_.empty()) {
    count(command.verb, false);
    return reply(503, "5.5.1 Error: send HELO/EHLO first", &command);
  }
  if (in_transaction_) {
    count(command.verb, false);
    return reply(503, "5.5.1 Error: nested MAIL command", &command);
  }
  if (listener().mode == ListenMode::submission && !tls_active_) {
    count(command.verb, false);
    return reply(530, "5.7.0 Must issue a STARTTLS command first", &command);
  }
  std::optional<std::int64_t> declared_size;
  for (const EsmtpParam& param : command.params) {
    if (!iequals(param.keyword, "SIZE")) continue;
    uint64_t declared = 0;
    const char* first = param.value.data();
    const char* last = first + param.value.size();
    auto [end, ec] = std::from_chars(first, last, declared);
    if (!param.has_value || ec != std::errc() || end != last) {
      count(command.verb, false);
      return reply(501, "5.5.4 Bad SIZE parameter", &command);
    }
    if (declared > offer_.size_limit) {
      count(command.verb, false);
      return reply(552, "5.3.4 Message size exceeds fixed limit", &command);
    }
    declared_size = static_cast<std::int64_t>(declared);
  }
  std::string line = "MAIL FROM:<" + command.path + ">";
  if (!command.params_text.empty()) line += " " + command.params_text;
  if (!policy_) return relay_command(command, std::move(line), &Session::mail_accepted);
  policy_->reset_transaction();
  record_mail_facts(facts_, catalog(), command.path, declared_size);
  screen(Phase::mail,
         [this, command, line = std::move(line)](const policy::Verdict& verdict) mutable {
           if (answer_refusal(verdict, &command)) return;
           relay_command(command, std::move(line), &Session::mail_accepted);
         });
}

void Session::mail_accepted(const Command& command) {
  in_transaction_ = true;
  sender_ = command.path;
  recipients_.clear();
}

void Session::on_rcpt(const Command& command) {
  if (!in_transaction_) {
    count(command.verb, false);
    return reply(503, "5.5.1 Error: need MAIL command", &command);
  }
  if (recipients_.size() >= config_->limits.max_recipients) {
    count(command.verb, false);
    return reply(452, "4.5.3 Error: too many recipients", &command);
  }
  std::string line = "RCPT TO:<" + command.path + ">";
  if (!command.params_text.empty()) line += " " + command.params_text;
  if (!policy_) return relay_command(command, std::move(line), &Session::rcpt_accepted);
  record_rcpt_facts(facts_, catalog(), command.path, static_cast<std::int64_t>(recipients_.size()));
  screen(Phase::rcpt,
         [this, command, line = std::move(line)](const policy::Verdict& verdict) mutable {
           if (answer_refusal(verdict, &command)) return;
           relay_command(command, std::move(line), &Session::rcpt_accepted);
         });
}

void Session::rcpt_accepted(const Command& command) {
  recipients_.push_back(command.path);
}

void Session::on_data(const Command& command) {
  if (!in_transaction_) {
    count(command.verb, false);
    return reply(503, "5.5.1 Error: need RCPT command", &command);
  }
  if (recipients_.empty()) {
    count(command.verb, false);
    return reply(554, "5.5.1 Error: no valid recipients", &command);
  }
  count(command.verb, true);
  message_ =
      std::make_unique<MessageStore>(config_->limits.spill_threshold, config_->server.state_dir);
  message_store_failed_ = false;
  reply(354, "End data with <CR><LF>.<CR><LF>", &command);
  parser_.begin_data();
  data_started_ = std::chrono::steady_clock::now();
  data_bytes_ = 0;
  arm_deadline(Deadline::data, std::chrono::seconds(config_->timeouts.data_block));
}

void Session::handle_data_end(const DataEnd& end) {
  if (deadline_kind_ == Deadline::data) cancel_deadline();
  Command data_command;
  data_command.verb = Verb::data;
  data_command.line = "(end of data)";
  auto refuse = [&](int code, std::string_view text) {
    const SmtpReply refusal = SmtpReply::make(code, text);
    reset_transaction([this, refusal, data_command] { reply(refusal, &data_command); });
  };
  if (end.too_big) return refuse(552, "5.3.4 Message size exceeds fixed limit");
  if (end.line_too_long) return refuse(552, "5.3.4 Message line too long");
  if (end.header_too_large) return refuse(552, "5.3.4 Message header too large");
  if (end.nul) return refuse(550, "5.6.0 Message contains NUL characters");
  if (end.bare_cr) return refuse(550, "5.5.2 Message contains bare CR");
  if (end.bare_lf) return refuse(550, "5.5.2 Message contains bare LF");
  if (message_store_failed_ || !message_) {
    return refuse(451, "4.3.0 Error: could not store the message, try again later");
  }
  if (!policy_) return deliver_message(end.size);
  record_data_facts(facts_, catalog(), static_cast<std::int64_t>(end.size),
                    static_cast<std::int64_t>(recipients_.size()));
  const uint64_t size = end.size;
  screen(Phase::data, [this, size, data_command](const policy::Verdict& verdict) {
    if (verdict.refused() && verdict.answer != policy::AnswerTime::at_rcpt) {
      message_counter(MessageOutcome::refused).increment();
      const SmtpReply refusal = smtp_reply_for(*verdict.reply);
      const bool close = verdict.answer == policy::AnswerTime::now_and_close;
      return reset_transaction([this, refusal, data_command, close] {
        count(Verb::data, false);
        reply(refusal, &data_command);
        if (close || refusal.code == 421) close_session(EndReason::policy);
      });
    }
    deliver_message(size);
  });
}

void Session::deliver_message(uint64_t size) {
  Command data_command;
  data_command.verb = Verb::data;
  data_command.line = "(end of data)";
  if (!upstream_ || !upstream_->idle_and_usable()) {
    UpstreamResult gone{UpstreamError::closed, {}, "upstream connection lost before DATA"};
    return upstream_failed(data_command, gone);
  }
  // SECURITY: an inbound Authentication-Results claiming our authserv-id is a forgery (RFC
  // 8601 5): it is not forwarded.
  std::vector<ByteRange> forged;
  std::string header_section;
  if (message_->read_header_section(config_->limits.max_header_size, &header_section)) {
    forged = find_own_authentication_results(header_section, config_->server.authserv_id);
    if (!forged.empty()) {
      log_info("authentication_results_removed", {{"session", std::to_string(id_)},
                                                  {"client", client_text_},
                                                  {"fields", std::to_string(forged.size())}});
    }
  }
  busy_ = true;
  update_reading();
  upstream_->send_message(
      message_.get(), message_headers(), std::move(forged), [this, size](UpstreamResult result) {
        Command final_command;
        final_command.verb = Verb::data;
        final_command.line = "(end of data)";
        if (!result.ok()) {
          message_counter(MessageOutcome::failed).increment();
          upstream_failed(final_command, result);
          return resume();
        }
        upstream_reply_counter(result.reply.code).increment();
        if (!result.reply.positive()) {
          message_counter(MessageOutcome::refused).increment();
          record_upstream_refusal(Phase::data, result.reply, scene(),
                                  worker_.context().rejection_log);
        }
        if (result.reply.positive()) {
          ++messages_delivered_;
          message_counter(MessageOutcome::delivered).increment();
          metrics().message_bytes_total.increment(size);
          if (config_->log.all_transactions) {
            record_delivery(result.reply, queue_id_from(result.reply), scene(),
                            worker_.context().rejection_log);
          }
          log_info(
              "delivered",
              {{"session", std::to_string(id_)},
               {"client", client_text_},
               {"helo", helo_, true},
               {"sender", sender_, true},
               {"rcpts", std::to_string(recipients_.size())},
               {"size", std::to_string(size)},
               {"queue_id", queue_id_from(result.reply), true},
               {"reply", result.reply.lines.empty() ? std::string() : result.reply.lines.front(),
                true}});
        }
        reply(result.reply, &final_command, true);
        end_transaction();
        if (result.reply.code == 421) close_session(EndReason::upstream_closed_session);
        resume();
      });
}

void Session::on_rset(const Command& command) {
  count(command.verb, true);
  if (!note_junk_command()) return;
  reset_transaction([this, command] { reply(250, "2.0.0 Ok", &command); });
}

// Ends the transaction; when the upstream has one open, it is reset first (RSET) so the
// connection can serve the next transaction. `then` runs once that is done (maybe at once).
void Session::reset_transaction(std::function<void()> then) {
  const bool upstream_open = in_transaction_ && upstream_ && upstream_->idle_and_usable();
  end_transaction();
  if (!upstream_open) return then();
  busy_ = true;
  update_reading();
  upstream_->command("RSET", [this, then = std::move(then)](UpstreamResult result) {
    busy_ = false;
    if (result.ok() && result.reply.code == 421) {
      then();
      reply(result.reply, nullptr, true);
      close_session(EndReason::upstream_closed_session);
      return resume();
    }
    if (!result.ok() || !result.reply.positive()) drop_upstream();
    then();
    // `then` may have started more asynchronous work (the helo phase's filters).
    if (!busy_) resume();
  });
}

void Session::on_quit(const Command& command) {
  count(command.verb, true);
  reply(221, "2.0.0 Bye", &command);
  close_session(EndReason::quit);
}

// ---------------------------------------------------------------------------------------------
// upstream

template <typename Then>
void Session::with_upstream(const Command& command, Then then) {
  if (upstream_ && upstream_->idle_and_usable()) {
    then();
    return;
  }
  drop_upstream();
  if (auto kept = worker_.take_upstream(config_)) {
    upstream_ = std::move(kept);
    holds_upstream_slot_ = true;
    UpstreamGreeting greeting = upstream_greeting();
    if (!upstream_->needs_regreet(greeting)) {
      metrics().upstream_connections_reused_total.increment();
      then();
      return;
    }
    busy_ = true;
    update_reading();
    upstream_->regreet(std::move(greeting), [this, command, then](UpstreamResult result) {
      if (result.ok() && result.reply.code == 250) {
        metrics().upstream_connections_reused_total.increment();
        return then();
      }
      // The kept connection went stale (e.g. the upstream's idle timeout won the race): nothing
      // of this session happened on it yet, so a new connection takes over.
      log_info("upstream_reuse_failed", {{"session", std::to_string(id_)},
                                         {"error", to_string(result.error)},
                                         {"reply", result.reply.wire, true}});
      drop_upstream();
      busy_ = false;
      open_upstream(command, then);
      if (!busy_) resume();  // refused at once (no slot): the 451 is written
    });
    return;
  }
  open_upstream(command, then);
}

template <typename Then>
void Session::open_upstream(const Command& command, Then then) {
  const Config& config = *config_;
  if (!worker_.acquire_upstream_slot(config.upstream.max_connections)) {
    count(command.verb, false);
    log_warning("upstream_busy",
                {{"session", std::to_string(id_)},
                 {"max_connections", std::to_string(config.upstream.max_connections)}});
    return reply(451, "4.3.2 Too many connections to the upstream, try again later", &command);
  }
  holds_upstream_slot_ = true;
  upstream_ = std::make_unique<UpstreamConnection>(worker_.base(), config.upstream.addresses,
                                                   config.upstream.reply_timeout);
  busy_ = true;
  update_reading();
  upstream_->open(upstream_greeting(), [this, command, then](UpstreamResult result) {
    if (!result.ok()) {
      upstream_failed(command, result);
      return resume();
    }
    then();
  });
}

UpstreamGreeting Session::upstream_greeting() const {
  const Config& config = *config_;
  UpstreamGreeting greeting;
  greeting.pass_client = config.upstream.pass_client;
  greeting.our_hostname = config.server.hostname;
  greeting.client_helo = helo_;
  greeting.client_esmtp = esmtp_;
  greeting.identity.addr = peer_.ip();
  greeting.identity.addr_is_ipv6 = peer_.is_ipv6();
  greeting.identity.port = peer_.port();
  greeting.identity.helo = helo_;
  greeting.identity.proto = esmtp_ ? "ESMTP" : "SMTP";
  greeting.identity.dest_addr = local_.ip();
  greeting.identity.dest_is_ipv6 = local_.is_ipv6();
  greeting.identity.dest_port = local_.port();
  greeting.client_address = peer_;
  greeting.local_address = local_;
  greeting.tls = config.upstream.tls;
  greeting.tls_context = worker_.context().upstream_tls->current();
  greeting.verify_name = config.upstream.verify_name;
  return greeting;
}

// Sends `line` upstream (opening the connection when needed) and passes the reply back
// unchanged; on a positive reply `on_positive` records what the command established.
void Session::relay_command(const Command& command, std::string line,
                            void (Session::*on_positive)(const Command&)) {
  with_upstream(command, [this, command, line = std::move(line), on_positive]() {
    busy_ = true;
    update_reading();
    upstream_->command(line, [this, command, on_positive](UpstreamResult result) {
      if (!result.ok()) {
        upstream_failed(command, result);
        return resume();
      }
      count(command.verb, result.reply.positive());
      upstream_reply_counter(result.reply.code).increment();
      if (!result.reply.positive()) {
        DecisionScene refused_scene = scene();
        if (command.verb == Verb::mail) refused_scene.sender = command.path;
        if (command.verb == Verb::rcpt) {
          if (!policy_) refused_scene.rcpts.push_back(command.path);
        }
        record_upstream_refusal(phase_of(command.verb), result.reply, refused_scene,
                                worker_.context().rejection_log);
      }
      if (result.reply.positive()) (this->*on_positive)(command);
      reply(result.reply, &command, true);
      if (result.reply.code == 421) {
        end_transaction();
        close_session(EndReason::upstream_closed_session);
      }
      resume();
    });
  });
}

void Session::upstream_failed(const Command& command, const UpstreamResult& result) {
  count(command.verb, false);
  metrics().upstream_errors_total.with({std::string(to_string(result.error))}).increment();
  const bool transaction_was_open = in_transaction_;
  end_transaction();
  drop_upstream();
  log_warning("upstream_failed", {{"session", std::to_string(id_)},
                                  {"client", client_text_},
                                  {"error", to_string(result.error)},
                                  {"detail", result.detail, true},
                                  {"reply", result.reply.wire, true},
                                  {"transaction", transaction_was_open ? "open" : "none"}});
  switch (result.error) {
    case UpstreamError::xclient_refused: {
      // Postfix answers an unauthorised XCLIENT with 550 5.7.0 and offers no XCLIENT keyword to
      // a host outside smtpd_authorized_xclient_hosts (its EHLO reply, 250, is then what we
      // have); other replies (501 bad syntax, …) are a
      // different problem and must not send the administrator to that setting.
      const bool authorization =
          result.reply.code == 0 || result.reply.code == 250 || result.reply.code == 550;
      std::vector<LogField> fields{{"session", std::to_string(id_)},
                                   {"detail", result.detail, true}};
      if (authorization) {
        fields.push_back(
            {"hint",
             "the upstream must list Portcullis's address in smtpd_authorized_xclient_hosts "
             "(Postfix), or set [upstream] pass_client to proxy-v2 or none"});
      }
      log_error("xclient_refused", fields);
      reply(421,
            "4.3.0 " + config_->server.hostname +
                (authorization
                     ? " Error: the upstream refuses XCLIENT (see smtpd_authorized_xclient_hosts)"
                     : " Error: the upstream refused the client's identity, try again later"),
            &command);
      return close_session(EndReason::xclient_refused);
    }
    case UpstreamError::refused:
      if (result.reply.code == 421) {
        reply(result.reply, &command, true);
        return close_session(EndReason::upstream_closed_session);
      }
      return reply(451, "4.4.2 Error: the upstream refused the session, try again later", &command);
    case UpstreamError::connect_failed:
      worker_.context().upstream_status->request_probe();
      return reply(451, "4.4.2 Error: upstream unreachable, try again later", &command);
    case UpstreamError::timeout:
      return reply(451, "4.4.2 Error: the upstream did not answer in time, try again later",
                   &command);
    case UpstreamError::tls_failed:
      if (result.reply.code == 421) {
        reply(result.reply, &command, true);
        return close_session(EndReason::upstream_closed_session);
      }
      return reply(451, "4.7.5 Error: TLS to the upstream failed, try again later", &command);
    case UpstreamError::none:
    case UpstreamError::closed:
    case UpstreamError::protocol:
      return reply(451, "4.4.2 Error: upstream connection lost, try again later", &command);
  }
}

void Session::drop_upstream() {
  if (upstream_ && holds_upstream_slot_ && upstream_->reusable()) {
    // The pool keeps it, or closes it and releases the slot.
    holds_upstream_slot_ = false;
    worker_.keep_upstream(std::move(upstream_), config_);
    return;
  }
  if (upstream_) {
    upstream_->quit();
    upstream_.reset();
  }
  if (holds_upstream_slot_) {
    worker_.release_upstream_slot();
    holds_upstream_slot_ = false;
  }
}

void Session::end_transaction() {
  in_transaction_ = false;
  sender_.clear();
  recipients_.clear();
  message_.reset();
  message_store_failed_ = false;
}

// ---------------------------------------------------------------------------------------------
// output

void Session::reply(int code, std::string_view text, const Command* command) {
  reply(SmtpReply::make(code, text), command, false);
}

void Session::reply(const SmtpReply& smtp_reply, const Command* command, bool from_upstream) {
  if (!client_ || finished_) return;
  write_to_client(smtp_reply.wire);
  const int code = smtp_reply.code;
  if (code < 400 || code == 421 || closing_) return;
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
  if (closing_) return;
  closing_ = true;
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
  if (finished_) return;
  finished_ = true;
  closing_ = true;
  if (filters_) {
    filters_->session_end(view_);
    filters_.reset();
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

const char* Session::end_reason_name(EndReason reason) {
  switch (reason) {
    case EndReason::quit:
      return "quit";
    case EndReason::proxy_header_refused:
      return "proxy_header_refused";
    case EndReason::session_limit:
      return "session_limit";
    case EndReason::tls_failed:
      return "tls_failed";
    case EndReason::client_closed:
      return "client_closed";
    case EndReason::timeout:
      return "timeout";
    case EndReason::too_many_errors:
      return "too_many_errors";
    case EndReason::forbidden_command:
      return "forbidden_command";
    case EndReason::upstream_unavailable:
      return "upstream_unavailable";
    case EndReason::upstream_closed_session:
      return "upstream_421";
    case EndReason::xclient_refused:
      return "xclient_refused";
    case EndReason::write_failed:
      return "write_failed";
    case EndReason::shutdown:
      return "shutdown";
    case EndReason::policy:
      return "policy";
    case EndReason::internal_error:
      return "internal_error";
  }
  return "unknown";
}

// Portcullis's own trace header (RFC 5321 4.4; protocol names from RFC 3848), so that what
// XCLIENT cannot carry (TLS) reaches the message.
std::string Session::received_header() const {
  const char* protocol =
      esmtp_ ? (tls_active_ ? "ESMTPS" : "ESMTP") : (tls_active_ ? "SMTPS" : "SMTP");
  char date[64];
  const time_t now = time(nullptr);
  tm utc{};
  gmtime_r(&now, &utc);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &utc);
  std::string header = fmt::format(
      "Received: from {} (unknown [{}{}])\r\n\tby {} (Portcullis) with {} id {}", helo_,
      peer_.is_ipv6() ? "IPv6:" : "", peer_.ip(), config_->server.hostname, protocol, id_);
  if (tls_active_) header += fmt::format("\r\n\t(using {})", tls_description_);
  header += fmt::format(";\r\n\t{}\r\n", date);
  return header;
}

void Session::count(Verb verb, bool ok) {
  command_counter(verb, ok).increment();
  auto& slot = counts_[static_cast<size_t>(verb)];
  ++slot[1];
  if (ok) ++slot[0];
}

void Session::log_end() {
  std::vector<LogField> fields{{"session", std::to_string(id_)},
                               {"client", client_text_},
                               {"helo", helo_, true},
                               {"reason", end_reason_name(end_reason_)}};
  unsigned accepted = 0;
  unsigned total = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    const auto& slot = counts_[i];
    if (slot[1] == 0) continue;
    accepted += slot[0];
    total += slot[1];
    std::string value =
        slot[0] == slot[1] ? std::to_string(slot[1]) : fmt::format("{}/{}", slot[0], slot[1]);
    fields.push_back({to_string(static_cast<Verb>(i)), std::move(value)});
  }
  fields.push_back({"commands", accepted == total ? std::to_string(total)
                                                  : fmt::format("{}/{}", accepted, total)});
  fields.push_back({"delivered", std::to_string(messages_delivered_)});
  log_info("disconnect", fields);
  metrics().session_ends_total.with({end_reason_name(end_reason_)}).increment();
}

// ---------------------------------------------------------------------------------------------
// screening

// Runs the filters of `phase`, then the policy, and hands the verdict to `then` (maybe at once).
// While filters are parked the session is busy: pipelined input waits in the buffer.
void Session::screen(Phase phase, VerdictThen then) {
  auto decide = [this, phase, then = std::move(then)](const PhaseOutcome& outcome) {
    policy::Verdict verdict = policy_->evaluate(phase, facts_, outcome.failed_filters);
    record_verdict(verdict, scene(), worker_.context().rejection_log);
    then(verdict);
  };
  if (!filters_) {
    PhaseOutcome nothing;
    nothing.phase = phase;
    return decide(nothing);
  }
  view_.facts = &facts_;
  busy_ = true;
  in_filter_run_ = true;
  filters_->run(phase, view_, facts_, [this, decide = std::move(decide)](PhaseOutcome outcome) {
    busy_ = false;
    if (finished_) return;
    const bool parked = !in_filter_run_;
    if (!closing_) decide(outcome);
    if (parked && !busy_) resume();
  });
  in_filter_run_ = false;
}

bool Session::answer_refusal(const policy::Verdict& verdict, const Command* command) {
  if (!verdict.refused() || !verdict.reply) return false;
  if (verdict.answer != policy::AnswerTime::now &&
      verdict.answer != policy::AnswerTime::now_and_close) {
    return false;
  }
  if (command) count(command->verb, false);
  const SmtpReply refusal = smtp_reply_for(*verdict.reply);
  reply(refusal, command);
  if (verdict.answer == policy::AnswerTime::now_and_close || refusal.code == 421) {
    close_session(EndReason::policy);
  }
  return true;
}

void Session::deliver_filter_result(uint64_t call_id, FilterResult result) {
  if (filters_ && !finished_) filters_->deliver(call_id, std::move(result));
}

DecisionScene Session::scene() const {
  DecisionScene scene;
  scene.session = id_;
  scene.client_ip = peer_.ip();
  scene.client_port = peer_.port();
  if (const std::string* name = facts_.string("client.name")) scene.client_name = *name;
  const std::string* helo = facts_.string("helo");
  scene.helo = helo ? *helo : helo_;
  scene.tls = tls_active_;
  const std::string* sender = facts_.string("sender");
  if (in_transaction_) {
    scene.sender = sender_;
  } else if (sender) {
    scene.sender = *sender;
  }
  scene.rcpts = recipients_;
  if (const std::string* rcpt = facts_.string("rcpt")) scene.rcpts.push_back(*rcpt);
  return scene;
}

// The methods whose evidence exists (RFC 8601); none → "; none".
std::vector<AuthenticationMethodResult> Session::authentication_results() const {
  std::vector<AuthenticationMethodResult> results;
  if (const std::string* name = facts_.string("client.name")) {
    results.push_back({"iprev", "pass", {{"policy.iprev", peer_.ip()}}, *name});
  }
  if (const std::string* spf = facts_.string("spf")) {
    AuthenticationMethodResult spf_result{"spf", *spf, {}, {}};
    if (const std::string* domain = facts_.string("spf.domain")) {
      spf_result.properties.push_back({"smtp.mailfrom", *domain});
    }
    results.push_back(std::move(spf_result));
  }
  if (const std::string* dkim = facts_.string("dkim")) {
    AuthenticationMethodResult dkim_result{"dkim", *dkim, {}, {}};
    const FactList* domains = facts_.list("dkim.domains");
    if (domains && !domains->empty())
      dkim_result.properties.push_back({"header.d", domains->front()});
    results.push_back(std::move(dkim_result));
  }
  if (const std::string* dmarc = facts_.string("dmarc")) {
    AuthenticationMethodResult dmarc_result{"dmarc", *dmarc, {}, {}};
    if (const std::string* domain = facts_.string("dmarc.domain")) {
      dmarc_result.properties.push_back({"header.from", *domain});
    }
    results.push_back(std::move(dmarc_result));
  }
  return results;
}

// What goes in front of the message: our Received header (RFC 5321 4.4: the top), our
// Authentication-Results right below it (as an MTA with a milter writes them, RFC 8601 5), then
// the policy's tags.
std::string Session::message_headers() const {
  std::string headers = received_header();
  headers += authentication_results_header(config_->server.authserv_id, authentication_results());
  if (policy_) {
    for (const policy::Tag& tag : policy_->message_tags()) {
      headers += header_safe(tag.header) + ": " + header_safe(tag.value) + "\r\n";
    }
  }
  return headers;
}

std::unique_ptr<TimerHandle> Session::start_timer(std::chrono::milliseconds delay,
                                                  std::function<void()> callback) {
  return start_loop_timer(worker_.base(), delay, std::move(callback));
}

void Session::send_to_client(std::string_view bytes) {
  if (banner_sent_ || !client_ || closing_) return;
  write_to_client(bytes);
}

void Session::write_to_client(std::string_view bytes) {
  if (tls_active_ || tls_handshaking_) {
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
    if (session->finished_) return;
    if (session->closing_) {
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
  if (session->finished_) return;
  if (what & BEV_EVENT_CONNECTED) {
    if (session->tls_handshaking_) session->on_tls_established();
    return;
  }
  if (session->tls_handshaking_ && (what & BEV_EVENT_TIMEOUT)) {
    return session->tls_handshake_failed((what & BEV_EVENT_READING) ? "timeout: nothing read"
                                                                    : "timeout: nothing written");
  }
  if (session->tls_handshaking_ && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) {
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
    if (session->awaiting_proxy_header_) return session->on_proxy_header_timeout();
    if (session->closing_) return session->finish();
    if ((what & BEV_EVENT_READING) && session->busy_) {
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
    if (!session->closing_) session->end_reason_ = EndReason::client_closed;
    if ((what & BEV_EVENT_EOF) && session->busy_ && !session->closing_) {
      // A half-close: the upstream's answer to what was sent still goes out (resume()).
      session->client_eof_ = true;
      return;
    }
    session->finish();
  }
}

}  // namespace portcullis
