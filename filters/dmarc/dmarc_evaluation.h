// The DMARC decision once the policy record is known (RFC 7489 §3.1 identifier alignment,
// §6.6.2 and §6.6.4 policy): pass when SPF passed for an aligned domain or a DKIM signature
// of an aligned domain passed, fail otherwise; the policy that applies (sp for a subdomain of
// the organisational domain whose record was found there), lowered one step for a failing
// message that the pct= sample leaves out.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "dmarc_record.h"
#include "public_suffix_list.h"

namespace portcullis {

// What earlier filters recorded (facts `spf`, `spf.domain`, `dkim.domains`).
struct DmarcEvidence {
  std::string spf;                        // empty when spf did not run
  std::string spf_domain;                 // the domain SPF checked
  std::vector<std::string> dkim_domains;  // domains with a passing signature
};

struct DmarcOutcome {
  bool pass = false;
  DmarcPolicy policy = DmarcPolicy::none;
  bool spf_aligned = false;
  bool dkim_aligned = false;
};

// The organisational domain of `domain`, or the domain itself (lower-cased, without a
// trailing dot) when the list gives none (a public suffix, a single label).
std::string organizational_domain_or_self(const PublicSuffixList& list, std::string_view domain);

// Strict: the same name (ASCII case-insensitive); relaxed: the same organisational domain.
bool domains_aligned(const PublicSuffixList& list, std::string_view from_domain,
                     std::string_view other, DmarcAlignment mode);

// `record_domain`: where the record was found (the From domain or its organisational domain).
// `percent_roll` returns a number in [0, 100); a failing message is subject to the policy
// when it is below the record's pct.
DmarcOutcome evaluate_dmarc(const PublicSuffixList& list, const DmarcRecord& record,
                            std::string_view from_domain, std::string_view record_domain,
                            const DmarcEvidence& evidence,
                            const std::function<int()>& percent_roll);

}  // namespace portcullis
