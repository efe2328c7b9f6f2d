// Renderers for verdicts and traces: the text that `portcullis explain` prints and the golden
// tests compare, and JSON for tools.
#include <fmt/format.h>

#include "policy_verdict.h"

namespace portcullis::policy {

namespace {

std::string evidence_line(const EvidenceItem& item) {
  if (!item.value) return fmt::format("{}: absent", item.fact);
  return fmt::format("{} = {}", item.fact, format_fact_value(*item.value));
}

std::string answer_text(AnswerTime answer) {
  switch (answer) {
    case AnswerTime::now:
      return "answered now";
    case AnswerTime::now_and_close:
      return "answered now, then close";
    case AnswerTime::at_rcpt:
      return "delayed: answered at every RCPT";
    case AnswerTime::none:
      break;
  }
  return "not answered";
}

std::string verdict_line(const Verdict& verdict) {
  const std::string by_rule =
      verdict.decided_at == verdict.phase
          ? fmt::format("rule \"{}\"", verdict.rule)
          : fmt::format("rule \"{}\" at {}", verdict.rule, phase_name(verdict.decided_at));
  switch (verdict.action) {
    case Action::none:
    case Action::tag:
      return "pass (no rule decided)";
    case Action::continue_search:
      return fmt::format("pass ({} ended the phase with continue)", by_rule);
    case Action::accept:
      if (verdict.decided_at != verdict.phase) {
        return fmt::format("accept ({}): the rules of this phase are skipped", by_rule);
      }
      if (verdict.phase == Phase::data) return fmt::format("accept ({})", by_rule);
      return fmt::format("accept ({}): the rules of the later phases of this {} are skipped",
                         by_rule, is_session_phase(verdict.phase) ? "session" : "transaction");
    default:
      break;
  }
  const std::string source =
      verdict.failed_filter.empty()
          ? by_rule
          : (verdict.decided_at == verdict.phase
                 ? fmt::format("filter {} failed", verdict.failed_filter)
                 : fmt::format("filter {} failed at {}", verdict.failed_filter,
                               phase_name(verdict.decided_at)));
  return fmt::format("{} {} ({}), {}", action_name(verdict.action),
                     verdict.reply ? verdict.reply->to_string() : std::string(), source,
                     answer_text(verdict.answer));
}

// ---- JSON --------------------------------------------------------------------------------

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        // SECURITY: control bytes and bytes above ASCII (facts may hold anything a client
        // sent, not necessarily valid UTF-8) are escaped, so the output is always valid JSON.
        if (c < 0x20 || c >= 0x7f) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

template <typename T, typename F>
std::string json_array(const std::vector<T>& items, F&& render) {
  std::string out = "[";
  for (const auto& item : items) {
    if (out.size() > 1) out += ",";
    out += render(item);
  }
  return out + "]";
}

std::string json_evidence(const std::vector<EvidenceItem>& evidence) {
  return json_array(evidence, [](const EvidenceItem& item) {
    if (!item.value) return fmt::format("{{\"fact\":{},\"absent\":true}}", json_string(item.fact));
    return fmt::format("{{\"fact\":{},\"type\":{},\"value\":{}}}", json_string(item.fact),
                       json_string(fact_type_name(fact_type_of(*item.value))),
                       fact_value_json(*item.value));
  });
}

std::string json_reply(const std::optional<Reply>& reply) {
  if (!reply) return "null";
  return fmt::format("{{\"code\":{},\"enhanced\":{},\"text\":{}}}", reply->code,
                     json_string(reply->enhanced), json_string(reply->text));
}

std::string json_tag(const Tag& tag) {
  return fmt::format("{{\"header\":{},\"value\":{},\"rule\":{},\"phase\":{}}}",
                     json_string(tag.header), json_string(tag.value), json_string(tag.rule),
                     json_string(phase_name(tag.phase)));
}

}  // namespace

std::string fact_value_json(const FactValue& value) {
  switch (fact_type_of(value)) {
    case FactType::boolean:
      return std::get<bool>(value) ? "true" : "false";
    case FactType::integer:
      return std::to_string(std::get<std::int64_t>(value));
    case FactType::string:
      return json_string(std::get<std::string>(value));
    case FactType::ip:
      return json_string(std::get<IpAddress>(value).to_string());
    case FactType::list: {
      std::string out = "[";
      for (const auto& item : std::get<FactList>(value)) {
        if (out.size() > 1) out += ",";
        out += json_string(item);
      }
      return out + "]";
    }
  }
  return "null";
}

std::string_view answer_time_name(AnswerTime answer) {
  switch (answer) {
    case AnswerTime::none:
      return "none";
    case AnswerTime::now:
      return "now";
    case AnswerTime::now_and_close:
      return "now_and_close";
    case AnswerTime::at_rcpt:
      return "at_rcpt";
  }
  return "none";
}

std::string render_text(const Verdict& verdict) {
  const PhaseTrace& trace = verdict.trace;
  std::string out = fmt::format("phase {}\n", phase_name(verdict.phase));
  if (trace.evidence.empty()) {
    out += "  evidence: none\n";
  } else {
    out += "  evidence:\n";
    for (const auto& item : trace.evidence)
      out += "    " + evidence_line(item) + "\n";
  }
  for (const auto& filter : trace.failed_filters)
    out += fmt::format("  filter {} failed\n", filter);
  for (const auto& note : trace.notes)
    out += fmt::format("  note: {}\n", note);
  for (const auto& rule : trace.rules) {
    const std::string mode = rule.mode == Mode::observe ? ", observe" : "";
    const std::string result = rule.result == Truth::yes  ? "match"
                               : rule.result == Truth::no ? "no match"
                                                          : "no match (unknown)";
    out += fmt::format("  rule \"{}\" ({}{}): {}\n", rule.rule, rule.location, mode, result);
    out += fmt::format("    when {}\n", rule.when);
    for (const auto& check : rule.checks) {
      out += fmt::format("    {}: {}", check.test, truth_name(check.result));
      if (!check.detail.empty()) out += fmt::format(" ({})", check.detail);
      out += "\n";
    }
    if (rule.result == Truth::yes) out += fmt::format("    then {}\n", rule.then);
  }
  out += fmt::format("  verdict: {}\n", verdict_line(verdict));
  for (const auto& tag : verdict.tags) {
    out += fmt::format("  tag {}: {} (rule \"{}\")\n", tag.header, tag.value, tag.rule);
  }
  for (const auto& observed : verdict.observed) {
    std::string what(action_name(observed.action));
    if (observed.reply) what += " " + observed.reply->to_string();
    if (observed.tag) what += fmt::format(" {}: {}", observed.tag->header, observed.tag->value);
    out += fmt::format("  would have: {} (rule \"{}\", observe)\n", what, observed.rule);
  }
  return out;
}

std::string render_text(const std::vector<Verdict>& verdicts) {
  std::string out;
  for (const auto& verdict : verdicts) {
    if (!out.empty()) out += "\n";
    out += render_text(verdict);
  }
  return out;
}

std::string render_json(const Verdict& verdict) {
  const PhaseTrace& trace = verdict.trace;
  const std::string rules = json_array(trace.rules, [](const RuleTrace& rule) {
    const std::string checks = json_array(rule.checks, [](const CheckTrace& check) {
      return fmt::format("{{\"test\":{},\"result\":{},\"detail\":{}}}", json_string(check.test),
                         json_string(truth_name(check.result)), json_string(check.detail));
    });
    return fmt::format(
        "{{\"rule\":{},\"location\":{},\"mode\":{},\"when\":{},\"result\":{},\"checks\":{},"
        "\"then\":{}}}",
        json_string(rule.rule), json_string(rule.location), json_string(mode_name(rule.mode)),
        json_string(rule.when),
        json_string(rule.result == Truth::yes  ? "match"
                    : rule.result == Truth::no ? "no match"
                                               : "unknown"),
        checks, rule.result == Truth::yes ? json_string(rule.then) : std::string("null"));
  });
  const std::string observed = json_array(verdict.observed, [](const ObservedDecision& item) {
    return fmt::format("{{\"rule\":{},\"action\":{},\"reply\":{},\"answer\":{},\"tag\":{}}}",
                       json_string(item.rule), json_string(action_name(item.action)),
                       json_reply(item.reply), json_string(answer_time_name(item.answer)),
                       item.tag ? json_tag(*item.tag) : std::string("null"));
  });
  const auto strings = [](const std::vector<std::string>& items) {
    return json_array(items, [](const std::string& item) { return json_string(item); });
  };
  return fmt::format(
      "{{\"phase\":{},\"evidence\":{},\"failed_filters\":{},\"notes\":{},\"rules\":{},"
      "\"verdict\":{{\"action\":{},\"reply\":{},\"answer\":{},\"rule\":{},\"mode\":{},"
      "\"decided_at\":{},\"failed_filter\":{},\"evidence\":{},\"tags\":{},\"observed\":{}}}}}",
      json_string(phase_name(verdict.phase)), json_evidence(trace.evidence),
      strings(trace.failed_filters), strings(trace.notes), rules,
      json_string(action_name(verdict.action)), json_reply(verdict.reply),
      json_string(answer_time_name(verdict.answer)),
      verdict.rule.empty() ? std::string("null") : json_string(verdict.rule),
      json_string(mode_name(verdict.mode)), json_string(phase_name(verdict.decided_at)),
      verdict.failed_filter.empty() ? std::string("null") : json_string(verdict.failed_filter),
      json_evidence(verdict.evidence), json_array(verdict.tags, json_tag), observed);
}

std::string render_json(const std::vector<Verdict>& verdicts) {
  return json_array(verdicts, [](const Verdict& verdict) { return render_json(verdict); });
}

}  // namespace portcullis::policy
