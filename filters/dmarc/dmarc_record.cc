#include "dmarc_record.h"

#include <utility>

namespace portcullis {

namespace {

bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_wsp(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && is_wsp(text.back()))
    text.remove_suffix(1);
  return text;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// The tag-list as (name, value) pairs, trimmed; nullopt when a non-empty element has no '='
// or an invalid name (RFC 7489 §6.4, the DKIM tag-list of RFC 6376 §3.2). A trailing ';' is
// allowed.
std::optional<std::vector<std::pair<std::string_view, std::string_view>>> tag_list(
    std::string_view text) {
  std::vector<std::pair<std::string_view, std::string_view>> tags;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find(';', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view element = trim(text.substr(start, end - start));
    start = end + 1;
    if (element.empty()) {
      if (end == text.size()) break;
      continue;
    }
    const std::size_t equals = element.find('=');
    if (equals == std::string_view::npos) return std::nullopt;
    const std::string_view name = trim(element.substr(0, equals));
    if (name.empty()) return std::nullopt;
    for (char c : name) {
      const bool allowed =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
      if (!allowed) return std::nullopt;
    }
    tags.emplace_back(name, trim(element.substr(equals + 1)));
  }
  return tags;
}

std::optional<DmarcPolicy> policy_value(std::string_view value) {
  if (equals_ignoring_case(value, "none")) return DmarcPolicy::none;
  if (equals_ignoring_case(value, "quarantine")) return DmarcPolicy::quarantine;
  if (equals_ignoring_case(value, "reject")) return DmarcPolicy::reject;
  return std::nullopt;
}

std::optional<DmarcAlignment> alignment_value(std::string_view value) {
  if (equals_ignoring_case(value, "r")) return DmarcAlignment::relaxed;
  if (equals_ignoring_case(value, "s")) return DmarcAlignment::strict;
  return std::nullopt;
}

std::optional<int> percent_value(std::string_view value) {
  if (value.empty() || value.size() > 3) return std::nullopt;
  int percent = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    percent = percent * 10 + (c - '0');
  }
  if (percent > 100) return std::nullopt;
  return percent;
}

// dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ], comma-separated (§6.4): valid
// when one element has a URI scheme (ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":") followed
// by something.
bool has_valid_report_uri(std::string_view value) {
  std::size_t start = 0;
  while (start <= value.size()) {
    std::size_t end = value.find(',', start);
    if (end == std::string_view::npos) end = value.size();
    const std::string_view uri = trim(value.substr(start, end - start));
    start = end + 1;
    const std::size_t colon = uri.find(':');
    if (colon != std::string_view::npos && colon > 0 && colon + 1 < uri.size()) {
      bool scheme_ok = (uri[0] >= 'a' && uri[0] <= 'z') || (uri[0] >= 'A' && uri[0] <= 'Z');
      for (std::size_t i = 1; i < colon && scheme_ok; ++i) {
        const char c = uri[i];
        scheme_ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '-' || c == '.';
      }
      if (scheme_ok) return true;
    }
    if (end == value.size()) break;
  }
  return false;
}

}  // namespace

std::string_view dmarc_policy_name(DmarcPolicy policy) {
  switch (policy) {
    case DmarcPolicy::none:
      return "none";
    case DmarcPolicy::quarantine:
      return "quarantine";
    case DmarcPolicy::reject:
      return "reject";
  }
  return "none";
}

bool is_dmarc_record(std::string_view text) {
  // dmarc-version = "v" *WSP "=" *WSP %x44 %x4d %x41 %x52 %x43 %x31 (upper-case DMARC1),
  // followed by the end or a separator.
  text = trim(text);
  if (text.empty() || (text[0] != 'v' && text[0] != 'V')) return false;
  text = trim(text.substr(1));
  if (!text.starts_with('=')) return false;
  text = trim(text.substr(1));
  if (!text.starts_with("DMARC1")) return false;
  text = trim(text.substr(6));
  return text.empty() || text.front() == ';';
}

std::optional<DmarcRecord> parse_dmarc_record(std::string_view text) {
  if (!is_dmarc_record(text)) return std::nullopt;
  auto tags = tag_list(text);
  if (!tags) return std::nullopt;

  DmarcRecord record;
  std::optional<DmarcPolicy> policy;
  bool policy_seen = false;
  bool subdomain_invalid = false;
  bool report_uri = false;
  for (const auto& [name, value] : *tags) {
    if (equals_ignoring_case(name, "p")) {
      if (!policy_seen) policy = policy_value(value);
      policy_seen = true;
    } else if (equals_ignoring_case(name, "sp")) {
      record.subdomain_policy = policy_value(value);
      subdomain_invalid = !record.subdomain_policy;
    } else if (equals_ignoring_case(name, "pct")) {
      if (auto percent = percent_value(value)) record.percent = *percent;
    } else if (equals_ignoring_case(name, "adkim")) {
      if (auto alignment = alignment_value(value)) record.dkim_alignment = *alignment;
    } else if (equals_ignoring_case(name, "aspf")) {
      if (auto alignment = alignment_value(value)) record.spf_alignment = *alignment;
    } else if (equals_ignoring_case(name, "rua")) {
      report_uri = has_valid_report_uri(value);
    }
  }
  if (!policy || subdomain_invalid) {
    if (!report_uri) return std::nullopt;
    // §6.6.3 step 6: act as if the record were "v=DMARC1; p=none".
    return DmarcRecord{};
  }
  record.policy = *policy;
  return record;
}

}  // namespace portcullis
