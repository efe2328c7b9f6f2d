// PolicySession: the policy engine for one SMTP session.
//
// Pure: facts in, verdicts out; no I/O, no clock. The session layer calls evaluate() at each
// phase (after the filters of that phase finished), starttls() after a successful STARTTLS,
// and reset_transaction() on RSET, on a new MAIL after a finished transaction, and after the
// end of data. The object holds what outlives a phase: an accept (of the session or the
// transaction), a delayed refusal, and the tags for the message. It keeps the policy it was
// created with, so a reload does not change a session in progress.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "facts.h"
#include "policy.h"
#include "policy_verdict.h"
#include "session_phase.h"

namespace portcullis::policy {

struct SessionOptions {
  // [policy] delay_reject: reject/tempfail decided at connect or helo are answered at RCPT.
  bool delay_reject = true;
};

// Default replies (DESIGN §4).
Reply default_reply(Action action, Phase phase);
// The reply for a filter that failed with failure_mode = "tempfail".
Reply filter_failure_reply();

class PolicySession {
 public:
  explicit PolicySession(std::shared_ptr<const Policy> policy, SessionOptions options = {});

  // Runs the rules of `phase` over `facts`. `failed_filters` names the filters that failed
  // at this phase with failure_mode = "tempfail" (the runner handles failure_mode = continue
  // itself; those facts are simply absent).
  Verdict evaluate(Phase phase, const Facts& facts,
                   const std::vector<std::string>& failed_filters = {});

  // STARTTLS succeeded: helo decisions (an accept, a delayed refusal, tags) are made again
  // after the next EHLO; connect decisions survive.
  void starttls();
  // RSET, a new transaction or the end of data: transaction decisions and tags are dropped.
  void reset_transaction();

  // Headers to add to the current message: session tags, then transaction tags, in the order
  // their rules matched; each header/value pair once.
  std::vector<Tag> message_tags() const;

  const std::shared_ptr<const Policy>& policy() const { return policy_; }
  const SessionOptions& options() const { return options_; }

 private:
  struct Accepted {
    std::string rule;
    Phase phase = Phase::connect;
  };
  struct Pending {
    Action action = Action::none;
    Reply reply;
    std::string rule;
    Phase decided_at = Phase::connect;
    std::string failed_filter;
    std::vector<EvidenceItem> evidence;
  };

  void add_tag(Tag tag);

  std::shared_ptr<const Policy> policy_;
  SessionOptions options_;
  std::optional<Accepted> session_accept_;
  std::optional<Accepted> transaction_accept_;
  std::optional<Pending> pending_;
  std::vector<Tag> session_tags_;
  std::vector<Tag> transaction_tags_;
};

}  // namespace portcullis::policy
