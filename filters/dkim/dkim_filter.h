// The dkim filter (DESIGN §4, §5; RFC 6376, RFC 8463, RFC 8301): streams the message
// (on_message_begin/on_message_data) into a DkimVerification, which starts the key queries at
// the end of the header section and hashes the body as it arrives. At the data phase it
// records `dkim` (best signature result) and `dkim.domains` (domains with a passing
// signature), parked while key queries are still in flight. Without a stream (the session did
// not call the streaming hooks) it reads the whole message from HookContext::message().
// Without a resolver it reports an error, so its failure_mode applies.
#pragma once

#include <memory>
#include <vector>

#include "dkim_library.h"
#include "dkim_result.h"
#include "dkim_verification.h"
#include "filter.h"
#include "filter_settings.h"

namespace portcullis {

// The factory for a valid [filter.dkim] block; nullptr with `errors` appended otherwise.
std::shared_ptr<const FilterFactory> build_dkim_filter(const SettingTable& table,
                                                       std::vector<SettingError>& errors);

class DkimFilter : public SessionFilter {
 public:
  explicit DkimFilter(std::shared_ptr<const DkimLibrary> library);

  HookStatus on_phase(HookContext& context) override;
  void on_message_begin(StreamContext& context) override;
  void on_message_data(StreamContext& context, std::string_view bytes) override;
  // Drops the verification, which cancels its key queries.
  void cancel() override;
  void on_session_end(const SessionView&) override;

  // The evidence of the last message checked, one entry per signature (for the
  // Authentication-Results writer and the log).
  const DkimOutcome& last_outcome() const { return last_outcome_; }

  // The filter's facts for an outcome.
  static FilterResult result_facts(const DkimOutcome& outcome);

 private:
  std::shared_ptr<const DkimLibrary> library_;
  std::unique_ptr<DkimVerification> verification_;
  bool streamed_ = false;
  DkimOutcome last_outcome_;
};

}  // namespace portcullis
