// The dmarc filter (DESIGN §4, §5; RFC 7489): at end of data, the RFC5322.From domain of the
// message (from_domain.h), its policy record fetched with the session's resolver
// (_dmarc.<From domain>, then _dmarc.<organisational domain> when there is none), parked while
// DNS runs, and the alignment of the `spf`/`spf.domain` and `dkim.domains` facts that earlier
// filters recorded. Records `dmarc` (pass fail none temperror permerror), `dmarc.domain` (the
// From domain in its ASCII form, when there is one) and `dmarc.policy` (when a record applies). No
// From, several From fields or several addresses give `permerror` without any DNS query.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dmarc_evaluation.h"
#include "filter.h"
#include "filter_settings.h"
#include "public_suffix_list.h"

namespace portcullis {

// [filter.dmarc] public_suffix_list: the list's path; read when the config is loaded (and so
// again on every reload). A file that cannot be read is a config error.
inline constexpr const char* kDefaultPublicSuffixList =
    "/usr/share/publicsuffix/public_suffix_list.dat";

std::shared_ptr<const FilterFactory> build_dmarc_filter(const SettingTable& table,
                                                        std::vector<SettingError>& errors);

class DmarcFilter : public SessionFilter {
 public:
  // `percent_roll` returns a number in [0, 100) for the pct= sample (tests inject their own).
  DmarcFilter(std::shared_ptr<const PublicSuffixList> list, std::function<int()> percent_roll);

  HookStatus on_phase(HookContext& context) override;
  // Drops the queries in flight.
  void cancel() override;
  void on_session_end(const SessionView&) override;

 private:
  // The answer for _dmarc.<domain>: finishes, or asks the organisational domain next.
  void on_answer(const std::string& record_domain, DnsAnswer answer);
  // `warning`: why the lookup failed (temperror), for the runner's log.
  void finish(std::string result, const DmarcOutcome* outcome, std::string warning = {});

  std::shared_ptr<const PublicSuffixList> list_;
  std::function<int()> percent_roll_;
  DnsResolver* resolver_ = nullptr;
  Completion completion_;
  std::string from_domain_;
  std::string organizational_domain_;
  DmarcEvidence evidence_;
  // One handle per lookup, so the second lookup starts inside the first one's callback
  // without destroying the handle that is calling back.
  std::unique_ptr<DnsQuery> from_query_;
  std::unique_ptr<DnsQuery> organizational_query_;
};

}  // namespace portcullis
