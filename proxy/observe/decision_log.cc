#include "decision_log.h"

#include <fmt/format.h>

#include "metrics.h"

namespace portcullis {

namespace {

RejectionRecord base_record(const DecisionScene& scene, Phase phase) {
  RejectionRecord record;
  record.session = scene.session;
  record.client_ip = scene.client_ip;
  record.client_port = scene.client_port;
  record.client_name = scene.client_name;
  record.helo = scene.helo;
  record.tls = scene.tls;
  record.sender = scene.sender;
  record.rcpts = scene.rcpts;
  record.phase = std::string(phase_name(phase));
  return record;
}

std::vector<std::pair<std::string, std::string>> evidence_json(
    const std::vector<policy::EvidenceItem>& evidence) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& item : evidence) {
    out.emplace_back(item.fact, item.value ? policy::fact_value_json(*item.value) : "null");
  }
  return out;
}

void count_decision(Phase phase, const std::string& rule, std::string_view action,
                    policy::Mode mode) {
  metrics()
      .decisions_total
      .with({std::string(phase_name(phase)), rule, std::string(action),
             std::string(policy::mode_name(mode))})
      .increment();
}

std::string tag_text(const policy::Tag& tag) {
  return tag.header + ": " + tag.value;
}

}  // namespace

SmtpReply smtp_reply_for(const policy::Reply& reply) {
  std::string text = reply.enhanced.empty() ? reply.text : reply.enhanced + " " + reply.text;
  for (char& c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) c = '?';
  }
  return SmtpReply::make(reply.code, text);
}

std::string reply_text(const SmtpReply& reply) {
  std::string out;
  for (const auto& line : reply.lines) {
    if (!out.empty()) out += "\n";
    out += fmt::format("{} {}", reply.code, line);
  }
  return out.empty() ? std::to_string(reply.code) : out;
}

void record_verdict(const policy::Verdict& verdict, const DecisionScene& scene, RejectionLog* log) {
  const bool answered_now = verdict.answer == policy::AnswerTime::now ||
                            verdict.answer == policy::AnswerTime::now_and_close;
  // A delayed refusal is counted once, when decided; it is logged at each RCPT it answers.
  const bool delayed_answer = verdict.decided_at != verdict.phase;
  if (verdict.action != policy::Action::none && !delayed_answer) {
    const std::string rule = !verdict.rule.empty() ? verdict.rule
                             : !verdict.failed_filter.empty()
                                 ? "filter failure: " + verdict.failed_filter
                                 : std::string();
    if (!rule.empty()) {
      count_decision(verdict.decided_at, rule, policy::action_name(verdict.action), verdict.mode);
    }
  }
  for (const auto& tag : verdict.tags) {
    count_decision(verdict.phase, tag.rule, "tag", policy::Mode::enforce);
  }
  for (const auto& observed : verdict.observed) {
    count_decision(verdict.phase, observed.rule, policy::action_name(observed.action),
                   policy::Mode::observe);
  }
  if (!log) return;
  if (verdict.refused() && answered_now && verdict.reply) {
    RejectionRecord record = base_record(scene, verdict.phase);
    record.rule = verdict.rule;
    record.mode = std::string(policy::mode_name(verdict.mode));
    record.action = std::string(policy::action_name(verdict.action));
    record.reply = reply_text(smtp_reply_for(*verdict.reply));
    record.evidence = evidence_json(verdict.evidence);
    if (verdict.decided_at != verdict.phase) {
      record.decided_at = std::string(phase_name(verdict.decided_at));
    }
    record.failed_filter = verdict.failed_filter;
    log->write(record);
  }
  for (const auto& tag : verdict.tags) {
    RejectionRecord record = base_record(scene, verdict.phase);
    record.rule = tag.rule;
    record.action = "tag";
    record.reply = tag_text(tag);
    log->write(record);
  }
  for (const auto& observed : verdict.observed) {
    RejectionRecord record = base_record(scene, verdict.phase);
    record.rule = observed.rule;
    record.mode = "observe";
    record.action = std::string(policy::action_name(observed.action));
    if (observed.reply) record.reply = reply_text(smtp_reply_for(*observed.reply));
    if (observed.tag) record.reply = tag_text(*observed.tag);
    log->write(record);
  }
}

void record_upstream_refusal(Phase phase, const SmtpReply& reply, const DecisionScene& scene,
                             RejectionLog* log) {
  if (!log) return;
  RejectionRecord record = base_record(scene, phase);
  record.action = reply.code == 421 ? "disconnect" : reply.code >= 500 ? "reject" : "tempfail";
  record.reply = reply_text(reply);
  record.source = "upstream";
  log->write(record);
}

void record_delivery(const SmtpReply& reply, const std::string& queue_id,
                     const DecisionScene& scene, RejectionLog* log) {
  if (!log) return;
  RejectionRecord record = base_record(scene, Phase::data);
  record.action = "accept";
  record.reply = reply_text(reply);
  record.source = "upstream";
  record.queue_id = queue_id;
  log->write(record);
}

}  // namespace portcullis
