// The session's relay orchestration: opening or reusing an upstream connection, relaying
// commands and the message, and mapping upstream failures to the client's replies.
// SECURITY: nothing is relayed on an upstream reply that was not checked first
// (UpstreamConnection checks the greeting, XCLIENT and EHLO).
#include "session.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <string_view>

#include "authentication_results.h"
#include "client_names.h"
#include "log_sink.h"
#include "metrics.h"
#include "worker.h"

#include "session_internal.h"

namespace portcullis {

using namespace session_detail;

namespace {

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

}  // namespace

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
  if (message_view_ && message_view_->header_read()) {
    forged = find_own_authentication_results(message_view_->header_section(),
                                             config_->server.authserv_id);
    if (!forged.empty()) {
      log_info("authentication_results_removed", {{"session", std::to_string(id_)},
                                                  {"client", client_text_},
                                                  {"fields", std::to_string(forged.size())}});
    }
  }
  enter(SessionState::waiting_upstream);
  upstream_->send_message(
      message_.get(), message_headers(), std::move(forged), [this, size](UpstreamResult result) {
        guarded("upstream", [&] {
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
      });
}

// Ends the transaction; when the upstream has one open, it is reset first (RSET) so the
// connection can serve the next transaction. `then` runs once that is done (maybe at once).
void Session::reset_transaction(std::function<void()> then) {
  const bool upstream_open = in_transaction_ && upstream_ && upstream_->idle_and_usable();
  end_transaction();
  if (!upstream_open) return then();
  enter(SessionState::waiting_upstream);
  upstream_->command("RSET", [this, then = std::move(then)](UpstreamResult result) {
    guarded("upstream", [&] {
      if (session_closing(state_)) return;
      enter(SessionState::command);
      if (result.ok() && result.reply.code == 421) {
        then();
        reply(result.reply, nullptr, true);
        close_session(EndReason::upstream_closed_session);
        return resume();
      }
      if (!result.ok() || !result.reply.positive()) drop_upstream();
      then();
      // `then` may have started more asynchronous work (the helo phase's filters).
      if (!session_waits(state_)) resume();
    });
  });
}

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
    enter(SessionState::waiting_upstream);
    upstream_->regreet(std::move(greeting), [this, command, then](UpstreamResult result) {
      guarded("upstream", [&] {
        if (result.ok() && result.reply.code == 250) {
          metrics().upstream_connections_reused_total.increment();
          return then();
        }
        // The kept connection went stale (e.g. the upstream's idle timeout won the race): nothing
        // of this session happened on it yet, so a new connection takes over.
        log_info("upstream_reuse_failed", {{"session", std::to_string(id_)},
                                           {"error", to_string(result.error)},
                                           {"reply", result.reply.wire, true}});
        if (result.error == UpstreamError::xclient_refused && result.reply.code / 100 == 5 &&
            worker_.context().upstream_status->note_reuse_refused()) {
          log_warning("upstream_refuses_reuse",
                      {{"reply", result.reply.wire, true},
                       {"hint",
                        "the upstream refuses a second XCLIENT on one connection (Postfix "
                        "checks smtpd_authorized_xclient_hosts against the client the first "
                        "one named); upstream connections are no longer kept"}});
        }
        drop_upstream();
        if (session_closing(state_)) return;
        enter(SessionState::command);
        open_upstream(command, then);
        if (!session_waits(state_)) resume();  // refused at once (no slot): the 451 is written
      });
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
  enter(SessionState::waiting_upstream);
  upstream_->open(upstream_greeting(), [this, command, then](UpstreamResult result) {
    guarded("upstream", [&] {
      if (!result.ok()) {
        upstream_failed(command, result);
        return resume();
      }
      then();
    });
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
  const XclientNames names = xclient_names(facts_);
  greeting.identity.name = names.name;
  greeting.identity.reverse_name = names.reverse_name;
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
    enter(SessionState::waiting_upstream);
    upstream_->command(line, [this, command, on_positive](UpstreamResult result) {
      guarded("upstream", [&] {
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
  message_view_.reset();
  message_.reset();
  message_store_failed_ = false;
  authentication_entries_.clear();
}

}  // namespace portcullis
