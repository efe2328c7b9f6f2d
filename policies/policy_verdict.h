// What the engine decides at a phase (Verdict) and why (PhaseTrace), plus the renderers that
// `portcullis explain` prints: text for a person, JSON for tools.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "facts.h"
#include "policy_action.h"
#include "policy_condition.h"
#include "session_phase.h"

namespace portcullis::policy {

// When the proxy answers a refusal.
enum class AnswerTime {
  none,           // nothing to answer: the command goes on
  now,            // answer this command with the reply
  now_and_close,  // answer with the reply (421), then close the connection
  at_rcpt,        // delayed refusal: the session goes on, every RCPT gets the reply
};
std::string_view answer_time_name(AnswerTime answer);  // "none", "now", "now_and_close", "at_rcpt"

struct Tag {
  std::string header;
  std::string value;
  std::string rule;
  Phase phase = Phase::connect;
  friend bool operator==(const Tag&, const Tag&) = default;
};

// A fact as evidence: its value, or absent.
struct EvidenceItem {
  std::string fact;
  std::optional<FactValue> value;
};

// An observe-mode rule that matched: what it would have done.
struct ObservedDecision {
  std::string rule;
  Action action = Action::none;
  std::optional<Reply> reply;
  std::optional<Tag> tag;
  AnswerTime answer = AnswerTime::none;
};

struct RuleTrace {
  std::string rule;
  std::string location;  // file:line
  Mode mode = Mode::enforce;
  std::string when;  // the condition, normalised
  Truth result = Truth::no;
  std::vector<CheckTrace> checks;
  // When matched: the action as it takes (or, in observe mode, would take) effect, e.g.
  // "reject 554 5.7.1 Rejected by policy", "tag X-Spam: yes", "accept".
  std::string then;
};

struct PhaseTrace {
  Phase phase = Phase::connect;
  // Every fact read by the rules tried, sorted by name.
  std::vector<EvidenceItem> evidence;
  std::vector<std::string> failed_filters;
  std::vector<std::string> notes;
  std::vector<RuleTrace> rules;
};

struct Verdict {
  Phase phase = Phase::connect;
  // none: no rule decided. continue_search / accept: the command goes on. reject, tempfail,
  // disconnect: refused (see answer). Never tag: tags are in `tags`.
  Action action = Action::none;
  std::optional<Reply> reply;  // for refusals: the reply as it is (or will be) answered
  AnswerTime answer = AnswerTime::none;
  std::string rule;  // the deciding rule, "" when none or a filter failure
  Mode mode = Mode::enforce;
  // The phase where the decision was made: differs from `phase` for a delayed refusal answered
  // at RCPT and for an accept that skips this phase.
  Phase decided_at = Phase::connect;
  std::string failed_filter;           // set when the decision is a filter failure (451 4.3.0)
  std::vector<EvidenceItem> evidence;  // the facts the deciding rule read
  std::vector<Tag> tags;               // headers added at this phase
  std::vector<ObservedDecision> observed;
  PhaseTrace trace;

  bool refused() const { return is_refusal(action); }
};

// A fact value as a JSON value: true, 42, "text", "192.0.2.1", ["a","b"] (strings escaped so
// the result is valid JSON whatever bytes a client sent).
std::string fact_value_json(const FactValue& value);

// Text for a person (docs/policy-language.md "Reading a trace" and tests/golden/policy/README.md
// describe it). Ends with a newline.
std::string render_text(const Verdict& verdict);
// Several phases, separated by blank lines.
std::string render_text(const std::vector<Verdict>& verdicts);
// One JSON object per verdict (no trailing newline); an array for several.
std::string render_json(const Verdict& verdict);
std::string render_json(const std::vector<Verdict>& verdicts);

}  // namespace portcullis::policy
