// `portcullis explain`: one transaction through the same filter runner, filters and policy
// engine as live traffic (DESIGN §4), printed phase by phase — the evidence, every rule tried
// and why it matched or not, the verdict and the reply — as text or JSON. The DNS filters ask
// [dns] resolvers (or --dns) on explain's own loop, bounded by [dns] timeout and the filters'
// timeouts as in live traffic; every query and its answer is shown in the phase that asked it.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace portcullis {

struct ExplainOptions {
  std::string config_path;
  std::string client;  // "192.0.2.1", "192.0.2.1:4567", "[2001:db8::1]:4567" or "2001:db8::1"
  std::string helo;    // "" = no HELO: the session stops after connect
  bool tls = false;    // as if STARTTLS had succeeded before HELO
  std::string from;    // sender; "<>" or "" with from_given = the null sender
  bool from_given = false;
  std::vector<std::string> rcpts;
  std::string message_file;           // the message for the data phase ("" = no data phase)
  std::vector<std::string> evidence;  // "fact=value": replaces what a filter would record
  std::vector<std::string> dns;       // "IP:PORT" each: replaces [dns] resolvers
  bool json = false;
};

// Exit code: 0 = explained (whatever the verdict), 1 = bad config, 2 = bad arguments.
int run_explain(const ExplainOptions& options, std::ostream& out, std::ostream& err);

}  // namespace portcullis
