// Turns what was decided in a session into rejection-log records (DESIGN §6) and metrics
// (portcullis_decisions_total). One place, so the live session and its tests agree on what a
// "decision that is not a plain accept" is:
//   - a refusal answered now (a delayed refusal is recorded at the RCPT that answers it, with
//     decided_at), including a filter failure's 451 4.3.0;
//   - every observe-mode rule that matched (mode "observe", the action it would have taken);
//   - every tag (action "tag", reply = the header added);
//   - the upstream's own refusals (source "upstream");
//   - with [log] all_transactions, each delivered message (action "accept", source
//     "upstream", queue_id).
// Accepts by rule are counted in the metrics but not logged.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "facts.h"
#include "policy_verdict.h"
#include "rejection_log.h"
#include "session_phase.h"
#include "smtp_reply.h"

namespace portcullis {

// The session as the record shows it, at the time of the decision.
struct DecisionScene {
  std::uint64_t session = 0;
  std::string client_ip;
  unsigned client_port = 0;
  std::string client_name;
  std::string helo;
  bool tls = false;
  std::optional<std::string> sender;
  std::vector<std::string> rcpts;
};

// The SMTP reply for a policy reply; control bytes from placeholders become '?'.
SmtpReply smtp_reply_for(const policy::Reply& reply);

// "550 5.7.1 text" from a reply (lines joined with "\n").
std::string reply_text(const SmtpReply& reply);

// Records of a verdict (see above); `log` may be null (only metrics then).
void record_verdict(const policy::Verdict& verdict, const DecisionScene& scene, RejectionLog* log);
void record_upstream_refusal(Phase phase, const SmtpReply& reply, const DecisionScene& scene,
                             RejectionLog* log);
void record_delivery(const SmtpReply& reply, const std::string& queue_id,
                     const DecisionScene& scene, RejectionLog* log);

}  // namespace portcullis
