#include "fact_catalog.h"

#include <algorithm>

#include <fmt/format.h>

namespace portcullis {

namespace {

// Levenshtein distance, bounded by the caller to short names.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

void FactCatalog::add(FactSpec spec) {
  auto existing = std::find_if(facts_.begin(), facts_.end(),
                               [&](const FactSpec& fact) { return fact.name == spec.name; });
  if (existing != facts_.end()) {
    *existing = std::move(spec);
  } else {
    facts_.push_back(std::move(spec));
  }
}

void FactCatalog::enable_filter(std::string filter) {
  if (!filter_enabled(filter)) enabled_filters_.push_back(std::move(filter));
}

const FactSpec* FactCatalog::find(std::string_view name) const {
  auto it = std::find_if(facts_.begin(), facts_.end(),
                         [&](const FactSpec& fact) { return fact.name == name; });
  return it == facts_.end() ? nullptr : &*it;
}

bool FactCatalog::filter_enabled(std::string_view filter) const {
  return filter.empty() || std::find(enabled_filters_.begin(), enabled_filters_.end(), filter) !=
                               enabled_filters_.end();
}

std::vector<std::string> FactCatalog::similar_names(std::string_view name) const {
  // SECURITY: names come from policy files; the distance is only computed for names of a
  // sane length, so a huge token cannot cost quadratic time.
  std::vector<std::pair<std::size_t, std::string>> scored;
  if (name.size() > 64) return {};
  for (const auto& fact : facts_) {
    const std::size_t distance = edit_distance(name, fact.name);
    const std::size_t allowed =
        std::max<std::size_t>(2, std::min(name.size(), fact.name.size()) / 4);
    if (distance <= allowed) scored.emplace_back(distance, fact.name);
  }
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> names;
  for (auto& [distance, fact_name] : scored)
    names.push_back(std::move(fact_name));
  return names;
}

void FactCatalog::add_pattern_hint(std::string prefix, std::string hint) {
  pattern_hints_.emplace_back(std::move(prefix), std::move(hint));
}

std::string FactCatalog::hint_for_unknown(std::string_view name) const {
  for (const auto& [prefix, hint] : pattern_hints_) {
    if (name.starts_with(prefix)) return hint;
  }
  return "";
}

const std::vector<std::string>& builtin_filter_names() {
  static const std::vector<std::string> names = {"pregreet",  "helo",     "fcrdns", "dnsbl", "spf",
                                                 "ratelimit", "greylist", "dkim",   "dmarc"};
  return names;
}

FactCatalog builtin_fact_catalog(const std::vector<std::string>& chain,
                                 const std::vector<RateLimitFacts>& rate_limits) {
  using enum FactType;
  FactCatalog catalog;
  auto fact = [&catalog](std::string name, FactType type, Phase from, std::string filter,
                         std::string meaning, Phase until = Phase::data) {
    catalog.add(
        FactSpec{std::move(name), type, from, until, std::move(filter), std::move(meaning)});
  };
  // Core facts, recorded by the session itself.
  fact("client.ip", ip, Phase::connect, "", "client address (from the PROXY header when present)");
  fact("client.port", integer, Phase::connect, "", "client port");
  fact("tls", boolean, Phase::helo, "", "TLS in use");
  fact("tls.version", string, Phase::helo, "", "TLS protocol version, e.g. 'TLSv1.3'");
  fact("helo", string, Phase::helo, "", "HELO/EHLO argument");
  fact("sender", string, Phase::mail, "", "envelope sender; '' for the null sender");
  fact("sender.domain", string, Phase::mail, "", "domain of the envelope sender; '' for <>");
  fact("size", integer, Phase::mail, "", "SIZE= at mail; the real size at data");
  fact("rcpt", string, Phase::rcpt, "", "the recipient of this RCPT", Phase::rcpt);
  fact("rcpt.domain", string, Phase::rcpt, "", "domain of this RCPT's recipient", Phase::rcpt);
  fact("rcpt.count", integer, Phase::rcpt, "", "accepted recipients so far");
  // Built-in filters.
  fact("pregreet", boolean, Phase::helo, "pregreet", "client spoke before the banner");
  fact("helo.check", string, Phase::helo, "helo",
       "'ok', 'syntax', 'bare_ip', 'ip_mismatch' or 'ours'");
  fact("client.ptr", string, Phase::connect, "fcrdns", "first PTR name, unverified");
  fact("client.name", string, Phase::connect, "fcrdns",
       "forward-confirmed name; absent when not confirmed");
  fact("fcrdns", string, Phase::connect, "fcrdns", "'pass', 'fail', 'none' or 'temperror'");
  fact("dnsbl.score", integer, Phase::connect, "dnsbl", "weighted DNSBL score");
  fact("dnsbl.lists", list, Phase::connect, "dnsbl", "names of the DNSBLs that hit");
  fact("spf", string, Phase::mail, "spf",
       "RFC 7208 result: pass fail softfail neutral none temperror permerror");
  fact("spf.domain", string, Phase::mail, "spf", "the domain SPF checked");
  for (const auto& limit : rate_limits) {
    fact("rate." + limit.name, integer, limit.phase, "ratelimit", "count in the window");
    fact("rate." + limit.name + ".exceeded", boolean, limit.phase, "ratelimit", "over the limit");
    fact("rate." + limit.name + ".retry_after", integer, limit.phase, "ratelimit",
         "seconds until the count falls under the limit");
  }
  std::string limit_names;
  for (const auto& limit : rate_limits) {
    limit_names += limit_names.empty() ? "" : ", ";
    limit_names += limit.name;
  }
  catalog.add_pattern_hint(
      "rate.", limit_names.empty()
                   ? "rate.NAME facts exist only for limits named in [[filter.ratelimit.limit]], "
                     "and none is configured"
                   : fmt::format("rate.NAME facts exist for the limits named in "
                                 "[[filter.ratelimit.limit]]: {}",
                                 limit_names));
  fact("greylist", string, Phase::rcpt, "greylist",
       "'new', 'early', 'passed', 'allowed' or 'skipped'");
  fact("greylist.retry_after", integer, Phase::rcpt, "greylist", "seconds until a retry passes");
  fact("dkim", string, Phase::data, "dkim",
       "best signature result: pass fail policy temperror permerror none");
  fact("dkim.domains", list, Phase::data, "dkim", "domains with a passing signature");
  fact("dmarc", string, Phase::data, "dmarc", "pass fail none temperror permerror");
  fact("dmarc.policy", string, Phase::data, "dmarc", "none, quarantine or reject");
  fact("dmarc.domain", string, Phase::data, "dmarc", "the RFC5322.From domain");
  for (const auto& filter : chain)
    catalog.enable_filter(filter);
  return catalog;
}

}  // namespace portcullis
