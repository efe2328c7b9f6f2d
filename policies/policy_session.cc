#include "policy_session.h"

#include <algorithm>

#include <fmt/format.h>

namespace portcullis::policy {

namespace {

struct Settled {
  Reply reply;
  AnswerTime answer = AnswerTime::now;
};

// When and with what a refusal is answered (DESIGN §4, delayed rejection).
Settled settle(Action action, Reply reply, Phase phase, bool delay_reject) {
  if (action == Action::disconnect) return {std::move(reply), AnswerTime::now_and_close};
  if (is_session_phase(phase)) {
    if (delay_reject) {
      // Answered at RCPT, where a 421 would end the session: it becomes 450 4.7.1.
      if (action == Action::tempfail && reply.code == 421) {
        reply.code = 450;
        reply.enhanced = "4.7.1";
      }
      return {std::move(reply), AnswerTime::at_rcpt};
    }
    if (action == Action::tempfail && phase == Phase::connect) {
      // A temporary refusal instead of the banner can only be 421 and a close.
      reply.code = 421;
      return {std::move(reply), AnswerTime::now_and_close};
    }
  }
  const AnswerTime answer = reply.code == 421 ? AnswerTime::now_and_close : AnswerTime::now;
  return {std::move(reply), answer};
}

Reply rule_reply(const Rule& rule, Phase phase, const Facts& facts) {
  Reply reply = default_reply(rule.then.action, phase);
  if (rule.then.reply) {
    reply.code = rule.then.reply->code;
    reply.enhanced = rule.then.reply->enhanced;
    if (!rule.then.reply->text.empty()) {
      reply.text = rule.then.reply->text.render(facts, max_reply_text);
    }
  }
  return reply;
}

std::vector<EvidenceItem> evidence_for(const std::vector<std::string>& names, const Facts& facts) {
  std::vector<EvidenceItem> evidence;
  for (const auto& name : names) {
    const FactValue* value = facts.get(name);
    evidence.push_back({name, value ? std::optional<FactValue>(*value) : std::nullopt});
  }
  return evidence;
}

std::string joined_filters(const std::vector<std::string>& filters) {
  std::string out;
  for (const auto& filter : filters) {
    if (!out.empty()) out += ", ";
    out += filter;
  }
  return out;
}

}  // namespace

Reply default_reply(Action action, Phase phase) {
  switch (action) {
    case Action::reject:
      return {is_session_phase(phase) ? 554 : 550, "5.7.1", "Rejected by policy"};
    case Action::tempfail:
      if (phase == Phase::connect) return {421, "4.7.0", "Try again later"};
      return {450, "4.7.1", "Try again later"};
    case Action::disconnect:
      return {421, "4.7.0", "Closing connection"};
    default:
      return {};
  }
}

Reply filter_failure_reply() {
  return {451, "4.3.0", "Temporary failure, try again later"};
}

PolicySession::PolicySession(std::shared_ptr<const Policy> policy, SessionOptions options)
    : policy_(policy ? std::move(policy) : std::make_shared<const Policy>()), options_(options) {}

void PolicySession::starttls() {
  if (session_accept_ && session_accept_->phase == Phase::helo) session_accept_.reset();
  if (pending_ && pending_->decided_at == Phase::helo) pending_.reset();
  std::erase_if(session_tags_, [](const Tag& tag) { return tag.phase == Phase::helo; });
}

void PolicySession::reset_transaction() {
  transaction_accept_.reset();
  transaction_tags_.clear();
}

std::vector<Tag> PolicySession::message_tags() const {
  std::vector<Tag> tags = session_tags_;
  tags.insert(tags.end(), transaction_tags_.begin(), transaction_tags_.end());
  return tags;
}

void PolicySession::add_tag(Tag tag) {
  auto& tags = is_session_phase(tag.phase) ? session_tags_ : transaction_tags_;
  tags.push_back(std::move(tag));
}

Verdict PolicySession::evaluate(Phase phase, const Facts& facts,
                                const std::vector<std::string>& failed_filters) {
  Verdict verdict;
  verdict.phase = phase;
  verdict.decided_at = phase;
  verdict.trace.phase = phase;
  verdict.trace.failed_filters = failed_filters;

  if (phase == Phase::rcpt && pending_) {
    verdict.action = pending_->action;
    verdict.reply = pending_->reply;
    verdict.answer = AnswerTime::now;
    verdict.rule = pending_->rule;
    verdict.decided_at = pending_->decided_at;
    verdict.failed_filter = pending_->failed_filter;
    verdict.evidence = pending_->evidence;
    verdict.trace.notes.push_back(
        fmt::format("the refusal decided at {} is answered at every RCPT; the rules of this "
                    "phase are not tried",
                    phase_name(pending_->decided_at)));
    return verdict;
  }

  const Accepted* accepted = nullptr;
  if (session_accept_ && phase > session_accept_->phase) {
    accepted = &*session_accept_;
  } else if (transaction_accept_ && phase > transaction_accept_->phase) {
    accepted = &*transaction_accept_;
  }
  if (accepted != nullptr) {
    verdict.action = Action::accept;
    verdict.rule = accepted->rule;
    verdict.decided_at = accepted->phase;
    if (!failed_filters.empty()) {
      verdict.trace.notes.push_back(fmt::format("failed filters ignored: {} (accepted at {})",
                                                joined_filters(failed_filters),
                                                phase_name(accepted->phase)));
    }
    return verdict;
  }

  const Rule* decider = nullptr;
  std::vector<std::string> read;
  std::optional<Settled> decision;
  for (const Rule* rule : policy_->rules_at(phase)) {
    RuleTrace trace;
    trace.rule = rule->name;
    trace.location = rule->location();
    trace.mode = rule->mode;
    trace.when = rule->when.text();
    trace.result = policy::evaluate(rule->when, facts, &trace.checks);
    for (const auto& fact : rule->facts) {
      if (std::find(read.begin(), read.end(), fact) == read.end()) read.push_back(fact);
    }
    const bool observe = rule->mode == Mode::observe;
    if (trace.result == Truth::yes) {
      const Action action = rule->then.action;
      ObservedDecision observed{rule->name, action, std::nullopt, std::nullopt, AnswerTime::none};
      if (action == Action::tag) {
        Tag tag{rule->then.header, rule->then.header_value.render(facts, max_header_value),
                rule->name, phase};
        trace.then = fmt::format("tag {}: {}", tag.header, tag.value);
        if (observe) {
          observed.tag = std::move(tag);
        } else {
          const auto current = message_tags();
          const bool known = std::any_of(current.begin(), current.end(), [&](const Tag& t) {
            return t.header == tag.header && t.value == tag.value;
          });
          if (!known) {
            verdict.tags.push_back(tag);
            add_tag(std::move(tag));
          }
        }
      } else if (is_refusal(action)) {
        Settled settled =
            settle(action, rule_reply(*rule, phase, facts), phase, options_.delay_reject);
        trace.then = fmt::format("{} {}", action_name(action), settled.reply.to_string());
        if (observe) {
          observed.reply = settled.reply;
          observed.answer = settled.answer;
        } else {
          decider = rule;
          decision = std::move(settled);
        }
      } else {
        trace.then = std::string(action_name(action));
        if (!observe) decider = rule;
      }
      if (observe) {
        trace.then += " (observe: not enforced)";
        verdict.observed.push_back(std::move(observed));
      }
    }
    verdict.trace.rules.push_back(std::move(trace));
    if (decider != nullptr) break;
  }
  std::sort(read.begin(), read.end());
  verdict.trace.evidence = evidence_for(read, facts);

  const bool failure_applies =
      !failed_filters.empty() &&
      (decider == nullptr || decider->then.action == Action::continue_search);
  if (failure_applies) {
    decision = settle(Action::tempfail, filter_failure_reply(), phase, options_.delay_reject);
    verdict.action = Action::tempfail;
    verdict.failed_filter = failed_filters.front();
  } else if (decider != nullptr) {
    verdict.action = decider->then.action;
    verdict.rule = decider->name;
    verdict.evidence = evidence_for(decider->facts, facts);
    if (!failed_filters.empty()) {
      verdict.trace.notes.push_back(
          fmt::format("failed filters ignored: {} (rule \"{}\" "
                      "decided first)",
                      joined_filters(failed_filters), decider->name));
    }
  }

  if (decision) {
    verdict.reply = decision->reply;
    verdict.answer = decision->answer;
    if (decision->answer == AnswerTime::at_rcpt) {
      if (pending_) {
        verdict.trace.notes.push_back(
            fmt::format("a refusal decided at {} is already pending; it stays the one answered "
                        "at RCPT",
                        phase_name(pending_->decided_at)));
      } else {
        pending_ = Pending{verdict.action, *verdict.reply,        verdict.rule,
                           phase,          verdict.failed_filter, verdict.evidence};
      }
    }
  }
  if (verdict.action == Action::accept) {
    (is_session_phase(phase) ? session_accept_ : transaction_accept_) =
        Accepted{verdict.rule, phase};
  }
  return verdict;
}

}  // namespace portcullis::policy
