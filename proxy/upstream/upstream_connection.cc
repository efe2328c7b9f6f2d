#include "upstream_connection.h"

#include "callback_guard.h"
#include "direct_write.h"
#include "plain_socket_reader.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include <algorithm>
#include <utility>

#include "log_sink.h"
#include "proxy_v2_writer.h"

namespace portcullis {

namespace {
constexpr size_t kMessageChunk = 64 * 1024;
constexpr size_t kOutputHighWater = 256 * 1024;
constexpr size_t kOutputLowWater = 64 * 1024;
// SECURITY: what the upstream may send ahead of what we consume.
constexpr size_t kInputHighWater = 256 * 1024;

// Sorted, merged ranges clipped to the message, without empty ones: the pump then only has
// to look at the next range.
std::vector<ByteRange> normalised_skips(std::vector<ByteRange> skip, uint64_t message_size) {
  std::vector<ByteRange> clipped;
  for (const ByteRange& range : skip) {
    if (range.offset >= message_size || range.length == 0) continue;
    const uint64_t end =
        range.length > message_size - range.offset ? message_size : range.offset + range.length;
    clipped.push_back(ByteRange{range.offset, end - range.offset});
  }
  std::sort(clipped.begin(), clipped.end(),
            [](const ByteRange& a, const ByteRange& b) { return a.offset < b.offset; });
  std::vector<ByteRange> merged;
  for (const ByteRange& range : clipped) {
    if (!merged.empty() && range.offset <= merged.back().offset + merged.back().length) {
      const uint64_t end =
          std::max(merged.back().offset + merged.back().length, range.offset + range.length);
      merged.back().length = end - merged.back().offset;
    } else {
      merged.push_back(range);
    }
  }
  return merged;
}
}  // namespace

const char* to_string(UpstreamError error) {
  switch (error) {
    case UpstreamError::none:
      return "none";
    case UpstreamError::connect_failed:
      return "connect_failed";
    case UpstreamError::closed:
      return "closed";
    case UpstreamError::timeout:
      return "timeout";
    case UpstreamError::protocol:
      return "protocol";
    case UpstreamError::refused:
      return "refused";
    case UpstreamError::xclient_refused:
      return "xclient_refused";
    case UpstreamError::tls_failed:
      return "tls_failed";
  }
  return "unknown";
}

UpstreamConnection::UpstreamConnection(event_base* base, const std::vector<NetAddress>& addresses,
                                       unsigned reply_timeout_seconds)
    : base_(base), addresses_(addresses), reply_timeout_(reply_timeout_seconds) {
  timer_.reset(evtimer_new(base_, &UpstreamConnection::timeout_cb, this));
}

UpstreamConnection::~UpstreamConnection() {
  *alive_ = false;
}

void UpstreamConnection::open(UpstreamGreeting greeting, Callback done) {
  greeting_ = std::move(greeting);
  open_done_ = std::move(done);
  next_address_ = 0;
  try_next_address();
}

void UpstreamConnection::try_next_address() {
  plain_reader_.reset();
  bev_.reset();
  while (next_address_ < addresses_.size()) {
    const NetAddress& address = addresses_[next_address_++];
    bev_.reset(bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE));
    if (!bev_) break;
    bufferevent_setcb(bev_.get(), &UpstreamConnection::read_cb, &UpstreamConnection::write_cb,
                      &UpstreamConnection::event_cb, this);
    if (bufferevent_socket_connect(bev_.get(), address.sa(), static_cast<int>(address.length)) ==
        0) {
      connected_to_ = address;
      arm_timer();
      return;
    }
  }
  bev_.reset();
  failed_ = true;
  auto done = std::move(open_done_);
  if (done) done(UpstreamResult{UpstreamError::connect_failed, {}, "no upstream address accepted"});
}

void UpstreamConnection::on_connected() {
  set_no_delay(bufferevent_getfd(bev_.get()));
  // Replies are read by our own event until TLS starts (see plain_socket_reader.h).
  plain_reader_ = std::make_unique<PlainSocketReader>(
      base_, bev_.get(), kInputHighWater,
      [this] { guarded("upstream_read", [this] { on_read(); }); },
      [this](short what) { guarded("upstream_event", [this, what] { on_event(what); }); });
  plain_reader_->start(nullptr);
  bufferevent_enable(bev_.get(), EV_WRITE);
  bufferevent_setwatermark(bev_.get(), EV_WRITE, kOutputLowWater, 0);
  if (greeting_.pass_client == PassClient::proxy_v2 || greeting_.proxy_v2_local) {
    std::string header = greeting_.proxy_v2_local ? build_proxy_v2_local_header()
                                                  : build_proxy_v2_header(greeting_.client_address,
                                                                          greeting_.local_address);
    bufferevent_write(bev_.get(), header.data(), header.size());
  }
  stage_ = GreetStage::banner;
  expect_reply([this](UpstreamResult result) { greet_step(std::move(result)); });
}

// The greeting runs as a small state machine over replies: banner → [EHLO ours → XCLIENT… →]
// EHLO client.
void UpstreamConnection::greet_step(UpstreamResult result) {
  auto finish = [this](UpstreamResult final_result) {
    if (!final_result.ok()) failed_ = true;
    ready_ = final_result.ok();
    auto done = std::move(open_done_);
    if (done) done(std::move(final_result));
  };
  if (!result.ok()) return finish(std::move(result));
  const SmtpReply& reply = result.reply;
  auto next = [this](const std::string& line) {
    send_line(line);
    expect_reply([this](UpstreamResult r) { greet_step(std::move(r)); });
  };
  switch (stage_) {
    case GreetStage::banner:
      if (reply.code != 220) {
        return finish(UpstreamResult{UpstreamError::refused, reply, "greeting refused"});
      }
      if (greeting_.pass_client == PassClient::xclient || greeting_.tls != UpstreamTls::none) {
        stage_ = GreetStage::ehlo_ours;
        return next("EHLO " + greeting_.our_hostname);
      }
      stage_ = GreetStage::ehlo_client;
      return next(final_greeting());
    case GreetStage::ehlo_ours: {
      if (reply.code != 250) {
        return finish(UpstreamResult{UpstreamError::refused, reply, "EHLO refused"});
      }
      if (greeting_.tls != UpstreamTls::none && !tls_active_) {
        if (parse_ehlo_reply(reply).starttls && greeting_.tls_context) {
          stage_ = GreetStage::starttls;
          return next("STARTTLS");
        }
        if (greeting_.tls == UpstreamTls::required) {
          return finish(UpstreamResult{UpstreamError::tls_failed, reply,
                                       "the upstream does not offer STARTTLS (tls = required)"});
        }
      }
      return after_tls_decision(reply);
    }
    case GreetStage::starttls:
      if (reply.code == 220) return start_upstream_tls();
      if (reply.code == 421 || greeting_.tls == UpstreamTls::required) {
        return finish(UpstreamResult{UpstreamError::tls_failed, reply, "STARTTLS refused"});
      }
      // Opportunistic: go on in plaintext on this connection.
      stage_ = GreetStage::ehlo_ours;
      greeting_.tls = UpstreamTls::none;
      return next("EHLO " + greeting_.our_hostname);
    case GreetStage::tls_handshake:
      return;
    case GreetStage::xclient:
      // SECURITY: only 220/250 means the upstream took the client's identity; on anything else
      // the connection would carry the client's commands as the proxy's own.
      if (reply.code == 421) {
        return finish(UpstreamResult{UpstreamError::refused, reply, "XCLIENT answered 421"});
      }
      if (reply.code != 220 && reply.code != 250) {
        return finish(UpstreamResult{UpstreamError::xclient_refused, reply, "XCLIENT refused"});
      }
      if (xclient_sent_ < xclient_lines_.size()) return next(xclient_lines_[xclient_sent_++]);
      stage_ = GreetStage::ehlo_client;
      return next(final_greeting());
    case GreetStage::ehlo_client:
      if (reply.code != 250) {
        return finish(UpstreamResult{UpstreamError::refused, reply, "HELO/EHLO refused"});
      }
      capabilities_ = greeting_.client_esmtp ? parse_ehlo_reply(reply) : UpstreamCapabilities{};
      greeted_as_ = final_greeting();
      stage_ = GreetStage::done;
      return finish(std::move(result));
    case GreetStage::done:
      return;
  }
}

// After our own EHLO (over TLS when it was wanted): XCLIENT, or straight to the client's name.
void UpstreamConnection::after_tls_decision(const SmtpReply& ehlo_reply) {
  auto next = [this](const std::string& line) {
    send_line(line);
    expect_reply([this](UpstreamResult r) { greet_step(std::move(r)); });
  };
  if (greeting_.pass_client != PassClient::xclient) {
    stage_ = GreetStage::ehlo_client;
    return next(final_greeting());
  }
  UpstreamCapabilities offered = parse_ehlo_reply(ehlo_reply);
  if (!offered.xclient) {
    failed_ = true;
    auto done = std::move(open_done_);
    if (done) {
      done(UpstreamResult{UpstreamError::xclient_refused, ehlo_reply,
                          "the upstream does not offer XCLIENT to Portcullis"});
    }
    return;
  }
  xclient_offered_ = offered.xclient_attrs;
  send_xclient(xclient_offered_);
}

void UpstreamConnection::send_xclient(const std::set<std::string>& offered_attrs) {
  xclient_lines_ = build_xclient_commands(greeting_.identity, offered_attrs);
  xclient_sent_ = 0;
  stage_ = GreetStage::xclient;
  send_line(xclient_lines_[xclient_sent_++]);
  expect_reply([this](UpstreamResult r) { greet_step(std::move(r)); });
}

bool UpstreamConnection::reusable() const {
  return idle_and_usable() && clean_ && !transaction_open_ && stage_ == GreetStage::done &&
         greeting_.pass_client != PassClient::proxy_v2 && !greeting_.proxy_v2_local;
}

bool UpstreamConnection::needs_regreet(const UpstreamGreeting& greeting) const {
  if (greeting.pass_client == PassClient::xclient) return true;
  return (greeting.client_esmtp ? "EHLO " : "HELO ") + greeting.client_helo != greeted_as_;
}

void UpstreamConnection::regreet(UpstreamGreeting greeting, Callback done) {
  // What belongs to the connection (TLS, how it was opened) stays; the client's part changes.
  greeting_.client_helo = std::move(greeting.client_helo);
  greeting_.client_esmtp = greeting.client_esmtp;
  greeting_.identity = std::move(greeting.identity);
  greeting_.client_address = greeting.client_address;
  greeting_.local_address = greeting.local_address;
  open_done_ = std::move(done);
  ready_ = false;
  if (greeting_.pass_client == PassClient::xclient) return send_xclient(xclient_offered_);
  stage_ = GreetStage::ehlo_client;
  send_line(final_greeting());
  expect_reply([this](UpstreamResult r) { greet_step(std::move(r)); });
}

void UpstreamConnection::start_upstream_tls() {
  // SECURITY: whatever the upstream sent after its 220 was sent in plaintext and could have
  // been injected (CVE-2021-38371 class): it is dropped, and capabilities are read again over
  // TLS.
  evbuffer* input = bufferevent_get_input(bev_.get());
  if (const size_t injected = evbuffer_get_length(input); injected > 0) {
    evbuffer_drain(input, injected);
    log_warning("upstream_starttls_plaintext_discarded",
                {{"upstream", connected_to_.host_port()}, {"bytes", std::to_string(injected)}});
  }
  reply_parser_.reset();
  SslPtr ssl(SSL_new(greeting_.tls_context->ctx.get()));
  if (ssl && !greeting_.verify_name.empty()) {
    SSL_set_tlsext_host_name(ssl.get(), greeting_.verify_name.c_str());
    if (greeting_.tls == UpstreamTls::required)
      SSL_set1_host(ssl.get(), greeting_.verify_name.c_str());
  }
  plain_reader_.reset();  // the TLS filter reads from here on
  bufferevent* plain = bev_.release();
  bufferevent* wrapped =
      ssl ? bufferevent_openssl_filter_new(base_, plain, ssl.release(), BUFFEREVENT_SSL_CONNECTING,
                                           BEV_OPT_CLOSE_ON_FREE)
          : nullptr;
  if (!wrapped) {
    bev_.reset(plain);
    return fail(UpstreamError::tls_failed, "cannot start TLS");
  }
  bufferevent_openssl_set_allow_dirty_shutdown(wrapped, 1);
  bev_.reset(wrapped);
  bufferevent_setcb(wrapped, &UpstreamConnection::read_cb, &UpstreamConnection::write_cb,
                    &UpstreamConnection::event_cb, this);
  bufferevent_enable(wrapped, EV_READ | EV_WRITE);
  bufferevent_setwatermark(wrapped, EV_WRITE, kOutputLowWater, 0);
  stage_ = GreetStage::tls_handshake;
  arm_timer();
}

void UpstreamConnection::on_tls_connected() {
  tls_active_ = true;
  stage_ = GreetStage::ehlo_ours;
  send_line("EHLO " + greeting_.our_hostname);
  expect_reply([this](UpstreamResult r) { greet_step(std::move(r)); });
}

std::string UpstreamConnection::final_greeting() const {
  return (greeting_.client_esmtp ? "EHLO " : "HELO ") + greeting_.client_helo;
}

void UpstreamConnection::command(const std::string& line, Callback done) {
  if (failed_ || !bev_) {
    done(UpstreamResult{UpstreamError::closed, {}, "upstream connection is gone"});
    return;
  }
  send_line(line);
  // What the reply means for reuse: MAIL opens a transaction, RSET and HELO/EHLO close it.
  const std::string verb = line.substr(0, 4);
  expect_reply([this, verb, done = std::move(done)](UpstreamResult result) {
    if (result.ok()) {
      if (!result.reply.positive()) {
        clean_ = false;
      } else if (verb == "MAIL") {
        transaction_open_ = true;
      } else if (verb == "RSET" || verb == "EHLO" || verb == "HELO") {
        transaction_open_ = false;
      }
    }
    done(std::move(result));
  });
}

void UpstreamConnection::send_message(MessageStore* message, std::string prefix, Callback done) {
  send_message(message, std::move(prefix), {}, std::move(done));
}

void UpstreamConnection::send_message(MessageStore* message, std::string prefix,
                                      std::vector<ByteRange> skip, Callback done) {
  if (failed_ || !bev_) {
    done(UpstreamResult{UpstreamError::closed, {}, "upstream connection is gone"});
    return;
  }
  message_ = message;
  message_prefix_ = std::move(prefix);
  message_skip_ = normalised_skips(std::move(skip), message->size());
  send_line("DATA");
  expect_reply([this, done = std::move(done)](UpstreamResult result) mutable {
    if (result.ok() && result.reply.code < 400 && result.reply.code != 354) {
      // SECURITY: a 2xx to DATA before any message byte was sent cannot be an acceptance of
      // the message; taking it as one would answer 250 for mail nobody received.
      failed_ = true;
      clean_ = false;
      close_connection();
      done(UpstreamResult{UpstreamError::protocol, std::move(result.reply),
                          "DATA answered with something other than 354"});
      return;
    }
    if (!result.ok() || result.reply.code != 354) {
      if (result.ok()) clean_ = false;
      done(std::move(result));
      return;
    }
    stuffer_ = DotStuffer();
    message_->rewind();
    message_position_ = 0;
    next_skip_ = 0;
    streaming_ = true;
    // The final reply completes it and ends the transaction, whatever it says.
    pending_ = [this, done = std::move(done)](UpstreamResult final_result) {
      if (final_result.ok()) {
        transaction_open_ = false;
        if (!final_result.reply.positive()) clean_ = false;
      }
      done(std::move(final_result));
    };
    stuffed_.clear();
    // The prefix goes out with the first chunk: two small writes in a row would wait for the
    // upstream's delayed ACK (Nagle).
    stuffer_.feed(message_prefix_, &stuffed_);
    pump_message();
  });
}

void UpstreamConnection::pump_message() {
  evbuffer* output = bufferevent_get_output(bev_.get());
  while (streaming_ && evbuffer_get_length(output) < kOutputHighWater) {
    // Jump over the skipped range we have reached, and never read into the next one.
    while (next_skip_ < message_skip_.size() &&
           message_skip_[next_skip_].offset <= message_position_) {
      const ByteRange& range = message_skip_[next_skip_++];
      message_position_ = std::max(message_position_, range.offset + range.length);
      message_->seek(message_position_);
    }
    size_t limit = kMessageChunk;
    if (next_skip_ < message_skip_.size()) {
      limit = static_cast<size_t>(
          std::min<uint64_t>(limit, message_skip_[next_skip_].offset - message_position_));
    }
    if (message_->read(&chunk_, limit)) {
      message_position_ += chunk_.size();
      stuffer_.feed(chunk_, &stuffed_);
    } else {
      if (!message_->error().empty()) {
        streaming_ = false;
        return fail(UpstreamError::closed, "message store: " + message_->error());
      }
      stuffer_.finish(&stuffed_);
      streaming_ = false;
    }
    // Bytes are sent in chunks of at least kMessageChunk (or the whole rest), so no small write
    // follows another.
    if (stuffed_.size() >= kMessageChunk || !streaming_) {
      send_bytes(stuffed_);
      stuffed_.clear();
    }
  }
  arm_timer();  // the write side must make progress within reply_timeout, then the final reply
}

void UpstreamConnection::quit() {
  if (timer_) event_del(timer_.get());
  pending_ = nullptr;
  streaming_ = false;
  if (!bev_ || failed_) {
    close_connection();
    return;
  }
  send_line("QUIT");
  if (evbuffer_get_length(bufferevent_get_output(bev_.get())) == 0) {
    close_connection();  // the QUIT is already in the socket
    ready_ = false;
    failed_ = true;
    return;
  }
  // The QUIT is flushed by a bufferevent that frees itself, so this object can go at once.
  plain_reader_.reset();
  bufferevent* lingering = bev_.release();
  bufferevent_setcb(lingering, nullptr, &UpstreamConnection::linger_write_cb,
                    &UpstreamConnection::linger_event_cb, nullptr);
  bufferevent_setwatermark(lingering, EV_WRITE, 0, 0);
  timeval linger_timeout{5, 0};
  bufferevent_set_timeouts(lingering, &linger_timeout, &linger_timeout);
  ready_ = false;
  failed_ = true;
}

void UpstreamConnection::linger_write_cb(bufferevent* bev, void*) {
  if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) bufferevent_free(bev);
}

void UpstreamConnection::linger_event_cb(bufferevent* bev, short, void*) {
  bufferevent_free(bev);
}

void UpstreamConnection::send_line(const std::string& line) {
  send_bytes(line + "\r\n");
}

// Straight to a plain socket when nothing is queued (see direct_write.h); through the TLS filter
// otherwise. What is queued drains through write_cb, which keeps a message streaming.
void UpstreamConnection::send_bytes(std::string_view bytes) {
  if (bufferevent_openssl_get_ssl(bev_.get()) != nullptr) {
    bufferevent_write(bev_.get(), bytes.data(), bytes.size());
  } else {
    write_now_or_queue(bev_.get(), bytes);
  }
}

void UpstreamConnection::expect_reply(Callback handler) {
  pending_ = std::move(handler);
  arm_timer();
}

void UpstreamConnection::arm_timer() {
  timeval tv{static_cast<time_t>(reply_timeout_), 0};
  evtimer_add(timer_.get(), &tv);
}

void UpstreamConnection::on_read() {
  if (!bev_) return;
  // Re-read each time: STARTTLS replaces the bufferevent inside a handler.
  while (bev_ && pending_ && !streaming_ &&
         evbuffer_get_length(bufferevent_get_input(bev_.get())) > 0) {
    evbuffer* input = bufferevent_get_input(bev_.get());
    evbuffer_iovec vec;
    if (evbuffer_peek(input, -1, nullptr, &vec, 1) < 1) break;
    SmtpReply reply;
    auto step = reply_parser_.feed(
        std::string_view(static_cast<const char*>(vec.iov_base), vec.iov_len), &reply);
    evbuffer_drain(input, step.consumed);
    if (step.error) return fail(UpstreamError::protocol, "malformed reply from the upstream");
    if (!step.complete) continue;
    // SECURITY: one command is in flight at a time, so bytes behind a complete reply were sent
    // before the next command existed: more replies than commands. Taking them as the next
    // command's reply would put the upstream and the client out of step.
    // (Bytes behind the 220 to STARTTLS are discarded before the handshake instead, as the
    // STARTTLS injection rule says.)
    if (stage_ != GreetStage::starttls && evbuffer_get_length(input) > 0) {
      return fail(UpstreamError::protocol, "the upstream sent more replies than commands");
    }
    event_del(timer_.get());
    auto handler = std::move(pending_);
    pending_ = nullptr;
    std::weak_ptr<bool> alive = alive_;
    handler(UpstreamResult{UpstreamError::none, std::move(reply), {}});
    if (alive.expired() || !bev_) return;
  }
  if (streaming_ && bev_ && evbuffer_get_length(bufferevent_get_input(bev_.get())) > 0) {
    // A reply while the message is still being sent answers no command of ours.
    return fail(UpstreamError::protocol, "the upstream replied before the end of the message");
  }
  if (!pending_ && bev_ && stage_ != GreetStage::tls_handshake &&
      evbuffer_get_length(bufferevent_get_input(bev_.get())) > 0) {
    // Bytes nobody asked for (e.g. a 421 before an idle close): this connection can no longer
    // be trusted to stay in step.
    failed_ = true;
  }
  // Reading stopped at the high-water mark resumes once replies have been consumed.
  if (plain_reader_ && !plain_reader_->reading() && bev_ &&
      evbuffer_get_length(bufferevent_get_input(bev_.get())) < kInputHighWater) {
    plain_reader_->start(nullptr);
  }
}

void UpstreamConnection::on_write() {
  if (streaming_) pump_message();
}

void UpstreamConnection::on_event(short what) {
  if (what & BEV_EVENT_CONNECTED) {
    if (stage_ == GreetStage::tls_handshake) return on_tls_connected();
    on_connected();
    return;
  }
  if (stage_ == GreetStage::tls_handshake && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) {
    std::string reason;
    while (unsigned long code = bufferevent_get_openssl_error(bev_.get())) {
      char text[256];
      ERR_error_string_n(code, text, sizeof text);
      if (!reason.empty()) reason += "; ";
      reason += text;
    }
    return fail(UpstreamError::tls_failed,
                "TLS handshake with the upstream failed: " +
                    (reason.empty() ? std::string("connection closed") : reason));
  }
  if (stage_ == GreetStage::banner && !ready_ && !pending_ && open_done_) {
    // The connect itself failed: try the next address.
    try_next_address();
    return;
  }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    // Replies that arrived just before the close still count.
    on_read();
    if (bev_)
      fail(UpstreamError::closed,
           (what & BEV_EVENT_EOF) ? "closed by the upstream" : "connection error");
  } else if (what & BEV_EVENT_TIMEOUT) {
    fail(UpstreamError::timeout, "write timeout");
  }
}

void UpstreamConnection::on_timeout() {
  if (!bev_) return;
  if (stage_ == GreetStage::banner && !ready_ && !pending_ && open_done_) {
    try_next_address();  // connect timed out
    return;
  }
  fail(UpstreamError::timeout, "no reply within reply_timeout");
}

void UpstreamConnection::fail(UpstreamError error, std::string detail) {
  failed_ = true;
  streaming_ = false;
  close_connection();
  auto handler = std::move(pending_);
  pending_ = nullptr;
  if (!handler && open_done_) handler = std::move(open_done_);
  if (handler) handler(UpstreamResult{error, {}, std::move(detail)});
}

void UpstreamConnection::close_connection() {
  if (timer_) event_del(timer_.get());
  plain_reader_.reset();
  bev_.reset();
  ready_ = false;
  failed_ = true;
}

// What throws in this connection's own work fails the waiting command (the session's
// handlers guard themselves), so no exception reaches libevent.
template <typename Body>
void UpstreamConnection::guarded(const char* where, Body&& body) noexcept {
  guard_callback(where, std::forward<Body>(body),
                 [this] { fail(UpstreamError::protocol, "internal error"); });
}

void UpstreamConnection::read_cb(bufferevent*, void* self) {
  auto* connection = static_cast<UpstreamConnection*>(self);
  connection->guarded("upstream_read", [connection] { connection->on_read(); });
}
void UpstreamConnection::write_cb(bufferevent*, void* self) {
  auto* connection = static_cast<UpstreamConnection*>(self);
  connection->guarded("upstream_write", [connection] { connection->on_write(); });
}
void UpstreamConnection::event_cb(bufferevent*, short what, void* self) {
  auto* connection = static_cast<UpstreamConnection*>(self);
  connection->guarded("upstream_event", [connection, what] { connection->on_event(what); });
}
void UpstreamConnection::timeout_cb(evutil_socket_t, short, void* self) {
  auto* connection = static_cast<UpstreamConnection*>(self);
  connection->guarded("upstream_timeout", [connection] { connection->on_timeout(); });
}

}  // namespace portcullis
