// A DMARC policy record (RFC 7489 §6.3, §6.4): "v=DMARC1; p=...; ..." from a TXT record at
// _dmarc.<domain>. Tags other than v, p, sp, pct, adkim, aspf and rua are ignored; a value of
// sp, pct, adkim or aspf that does not parse is ignored too (its default applies, §6.3 "syntax
// errors in the remainder of the record SHOULD be discarded in favour of default values").
// A missing or invalid p (or an invalid sp) follows §6.6.3 step 6: with a syntactically valid
// rua URI the record acts as p=none, otherwise it is no DMARC record at all.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis {

enum class DmarcPolicy { none, quarantine, reject };
enum class DmarcAlignment { relaxed, strict };

// "none", "quarantine", "reject".
std::string_view dmarc_policy_name(DmarcPolicy policy);

struct DmarcRecord {
  DmarcPolicy policy = DmarcPolicy::none;
  std::optional<DmarcPolicy> subdomain_policy;  // sp=, when present and valid
  int percent = 100;                            // pct=
  DmarcAlignment dkim_alignment = DmarcAlignment::relaxed;
  DmarcAlignment spf_alignment = DmarcAlignment::relaxed;
};

// True when the TXT text starts with the v=DMARC1 tag (§6.6.3 step 2: other records at the
// name are discarded before counting).
bool is_dmarc_record(std::string_view text);

// The record, or nullopt when it is not a usable DMARC record (not v=DMARC1 first, a
// malformed tag list, or no valid p and no valid rua).
std::optional<DmarcRecord> parse_dmarc_record(std::string_view text);

}  // namespace portcullis
