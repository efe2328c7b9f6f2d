#include "dmarc_evaluation.h"

namespace portcullis {

namespace {

std::string normalised(std::string_view domain) {
  if (domain.ends_with('.')) domain.remove_suffix(1);
  std::string out;
  out.reserve(domain.size());
  for (char c : domain)
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  return out;
}

DmarcPolicy one_step_lower(DmarcPolicy policy) {
  return policy == DmarcPolicy::reject ? DmarcPolicy::quarantine : DmarcPolicy::none;
}

}  // namespace

std::string organizational_domain_or_self(const PublicSuffixList& list, std::string_view domain) {
  std::string name = normalised(domain);
  if (auto organizational = list.organizational_domain(name)) return *organizational;
  return name;
}

bool domains_aligned(const PublicSuffixList& list, std::string_view from_domain,
                     std::string_view other, DmarcAlignment mode) {
  if (other.empty()) return false;
  if (mode == DmarcAlignment::strict) return normalised(from_domain) == normalised(other);
  return organizational_domain_or_self(list, from_domain) ==
         organizational_domain_or_self(list, other);
}

DmarcOutcome evaluate_dmarc(const PublicSuffixList& list, const DmarcRecord& record,
                            std::string_view from_domain, std::string_view record_domain,
                            const DmarcEvidence& evidence,
                            const std::function<int()>& percent_roll) {
  DmarcOutcome outcome;
  outcome.spf_aligned =
      evidence.spf == "pass" &&
      domains_aligned(list, from_domain, evidence.spf_domain, record.spf_alignment);
  for (const std::string& domain : evidence.dkim_domains)
    if (domains_aligned(list, from_domain, domain, record.dkim_alignment))
      outcome.dkim_aligned = true;
  outcome.pass = outcome.spf_aligned || outcome.dkim_aligned;

  const bool subdomain = normalised(from_domain) != normalised(record_domain);
  outcome.policy = subdomain && record.subdomain_policy ? *record.subdomain_policy : record.policy;
  // §6.6.4: a failing message outside the pct sample gets the next policy down.
  if (!outcome.pass && outcome.policy != DmarcPolicy::none && record.percent < 100 &&
      !(percent_roll() < record.percent))
    outcome.policy = one_step_lower(outcome.policy);
  return outcome;
}

}  // namespace portcullis
