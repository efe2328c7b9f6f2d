// The session's verbs: each command is checked, judged by the filters and the policy where they
// apply, then answered here or relayed (session_relay.cc). OpenSMTPD's check -> filter ->
// proceed, per verb.
#include "session.h"

#include <event2/bufferevent_ssl.h>
#include <fmt/format.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string_view>

#include "log_sink.h"
#include "metrics.h"
#include "session_facts.h"
#include "worker.h"

#include "session_internal.h"

namespace portcullis {

using namespace session_detail;

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
  if (++junk_commands_ <= junk_command_limit()) return true;
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
  message_view_.reset();  // it reads the store about to be replaced
  message_ =
      std::make_unique<MessageStore>(config_->limits.spill_threshold, config_->server.state_dir);
  message_store_failed_ = false;
  reply(354, "End data with <CR><LF>.<CR><LF>", &command);
  if (streams_message_ && filters_) {
    view_.facts = &facts_;
    filters_->begin_message(view_);
  }
  parser_.begin_data();
  enter(SessionState::data);
  data_started_ = std::chrono::steady_clock::now();
  data_bytes_ = 0;
  arm_deadline(Deadline::data, std::chrono::seconds(config_->timeouts.data_block));
}

void Session::handle_data_end(const DataEnd& end) {
  enter(SessionState::command);
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
  message_view_ = std::make_unique<StoredMessageView>(*message_, config_->limits.max_header_size);
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

void Session::on_rset(const Command& command) {
  count(command.verb, true);
  if (!note_junk_command()) return;
  reset_transaction([this, command] { reply(250, "2.0.0 Ok", &command); });
}

void Session::on_quit(const Command& command) {
  count(command.verb, true);
  reply(221, "2.0.0 Bye", &command);
  close_session(EndReason::quit);
}

// Runs the filters of `phase`, then the policy, and hands the verdict to `then` (maybe at once).
// While filters are parked the session is busy: pipelined input waits in the buffer.
void Session::screen(Phase phase, VerdictThen then) {
  auto decide = [this, phase, then = std::move(then)](const PhaseOutcome& outcome) {
    for (const AuthenticationEntry& entry : outcome.authentication)
      authentication_entries_.push_back(entry);
    policy::Verdict verdict = policy_->evaluate(phase, facts_, outcome.failed_filters);
    record_verdict(verdict, scene(), worker_.context().rejection_log);
    then(verdict);
  };
  if (!filters_) {
    PhaseOutcome nothing;
    nothing.phase = phase;
    enter(SessionState::command);  // the connect phase's verdict is due before the banner
    return decide(nothing);
  }
  view_.facts = &facts_;
  // Before the banner the client's input is read (it is the pregreet filter's evidence) but
  // not processed; afterwards the same holds for the commands it pipelines.
  enter(phase == Phase::connect ? SessionState::greeting : SessionState::waiting_filters);
  in_filter_run_ = true;
  const MessageView* message = phase == Phase::data ? message_view_.get() : nullptr;
  filters_->run(
      phase, view_, facts_,
      [this, decide = std::move(decide)](PhaseOutcome outcome) {
        guarded("filters", [&] {
          if (session_closing(state_)) return;
          const bool parked = !in_filter_run_;
          // What the verdict lets happen next (the banner, the command, the upstream) starts
          // from here.
          enter(SessionState::command);
          decide(outcome);
          if (parked && !session_waits(state_)) resume();
        });
      },
      nullptr, message);
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
  guarded("filter_result", [&] {
    if (filters_ && state_ != SessionState::closed) filters_->deliver(call_id, std::move(result));
  });
}

}  // namespace portcullis
