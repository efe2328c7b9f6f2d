// The built-in filters' definitions. Each definition states its hooks and facts here, by hand,
// rather than copying them from the fact catalog: a unit test compares the two, so a fact whose
// type or phase drifts in one place is caught.
#include "registry.h"

#include <algorithm>

#include "dkim_filter.h"
#include "dmarc_filter.h"
#include "dnsbl_filter.h"
#include "fcrdns_filter.h"
#include "greylist_filter.h"
#include "helo_filter.h"
#include "pregreet_filter.h"
#include "ratelimit_filter.h"
#include "spf_filter.h"

namespace portcullis {

namespace {

std::vector<FilterDefinition> make_definitions() {
  std::vector<FilterDefinition> definitions;
  definitions.push_back(FilterDefinition{
      "pregreet",
      {Phase::connect, Phase::helo},
      {FactSpec{"pregreet", FactType::boolean, Phase::helo, Phase::data, "pregreet",
                "client spoke before the banner"}},
      build_pregreet_filter,
      [](const SettingTable& settings) {
        std::vector<SettingError> ignored;  // build() reports them
        return read_pregreet_settings(settings, ignored).wait + std::chrono::seconds(1);
      },
  });
  definitions.push_back(FilterDefinition{
      "helo",
      {Phase::helo},
      {FactSpec{"helo.check", FactType::string, Phase::helo, Phase::data, "helo",
                "'ok', 'syntax', 'bare_ip', 'ip_mismatch' or 'ours'"}},
      build_helo_filter,
      nullptr,
  });
  definitions.push_back(FilterDefinition{
      "fcrdns",
      {Phase::connect},
      {FactSpec{"client.ptr", FactType::string, Phase::connect, Phase::data, "fcrdns",
                "first PTR name, unverified"},
       FactSpec{"client.name", FactType::string, Phase::connect, Phase::data, "fcrdns",
                "forward-confirmed name; absent when not confirmed"},
       FactSpec{"fcrdns", FactType::string, Phase::connect, Phase::data, "fcrdns",
                "'pass', 'fail', 'none' or 'temperror'"}},
      build_fcrdns_filter,
      nullptr,
  });
  definitions.push_back(FilterDefinition{
      "dnsbl",
      {Phase::connect},
      {FactSpec{"dnsbl.score", FactType::integer, Phase::connect, Phase::data, "dnsbl",
                "weighted DNSBL score"},
       FactSpec{"dnsbl.lists", FactType::list, Phase::connect, Phase::data, "dnsbl",
                "names of the DNSBLs that hit"}},
      build_dnsbl_filter,
      nullptr,
  });
  definitions.push_back(FilterDefinition{
      "spf",
      {Phase::mail},
      {FactSpec{"spf", FactType::string, Phase::mail, Phase::data, "spf",
                "RFC 7208 result: pass fail softfail neutral none temperror permerror"},
       FactSpec{"spf.domain", FactType::string, Phase::mail, Phase::data, "spf",
                "the domain SPF checked"}},
      build_spf_filter,
      nullptr,
  });
  definitions.push_back(FilterDefinition{
      "ratelimit",
      // Every phase a counter can count at; a phase without limits costs a loop.
      {Phase::connect, Phase::mail, Phase::rcpt, Phase::data},
      {},  // rate.NAME, .exceeded, .retry_after: per configured limit, below
      build_ratelimit_filter,
      nullptr,
      false,
      [](const FilterFactory& factory) {
        std::vector<FactSpec> facts;
        for (const RateLimitFacts& limit : rate_limit_facts_of(factory)) {
          const std::string fact = "rate." + limit.name;
          facts.push_back(FactSpec{fact, FactType::integer, limit.phase, Phase::data, "ratelimit",
                                   "count in the window"});
          facts.push_back(FactSpec{fact + ".exceeded", FactType::boolean, limit.phase, Phase::data,
                                   "ratelimit", "over the limit"});
          facts.push_back(FactSpec{fact + ".retry_after", FactType::integer, limit.phase,
                                   Phase::data, "ratelimit",
                                   "seconds until the count falls under the limit"});
        }
        return facts;
      },
  });
  definitions.push_back(FilterDefinition{
      "greylist",
      {Phase::rcpt},
      {FactSpec{"greylist", FactType::string, Phase::rcpt, Phase::data, "greylist",
                "'new', 'early', 'passed', 'allowed' or 'skipped'"},
       FactSpec{"greylist.retry_after", FactType::integer, Phase::rcpt, Phase::data, "greylist",
                "seconds until a retry passes"}},
      build_greylist_filter,
      nullptr,
  });
  definitions.push_back(FilterDefinition{
      "dkim",
      {Phase::data},
      {FactSpec{"dkim", FactType::string, Phase::data, Phase::data, "dkim",
                "best signature result: pass fail policy temperror permerror none"},
       FactSpec{"dkim.domains", FactType::list, Phase::data, Phase::data, "dkim",
                "domains with a passing signature"}},
      build_dkim_filter,
      nullptr,
      true,
  });
  definitions.push_back(FilterDefinition{
      "dmarc",
      {Phase::data},
      {FactSpec{"dmarc", FactType::string, Phase::data, Phase::data, "dmarc",
                "pass fail none temperror permerror"},
       FactSpec{"dmarc.policy", FactType::string, Phase::data, Phase::data, "dmarc",
                "none, quarantine or reject"},
       FactSpec{"dmarc.domain", FactType::string, Phase::data, Phase::data, "dmarc",
                "the RFC5322.From domain"}},
      build_dmarc_filter,
      nullptr,
  });
  return definitions;
}

const std::vector<FilterDefinition>& all_definitions() {
  static const std::vector<FilterDefinition> definitions = make_definitions();
  return definitions;
}

}  // namespace

const FilterDefinition* find_filter_definition(std::string_view name) {
  const auto& definitions = all_definitions();
  auto it =
      std::find_if(definitions.begin(), definitions.end(),
                   [&](const FilterDefinition& definition) { return definition.name == name; });
  return it == definitions.end() ? nullptr : &*it;
}

const std::vector<const FilterDefinition*>& filter_definitions() {
  static const std::vector<const FilterDefinition*> pointers = [] {
    std::vector<const FilterDefinition*> in_order;
    for (const auto& definition : all_definitions())
      in_order.push_back(&definition);
    return in_order;
  }();
  return pointers;
}

std::vector<RateLimitFacts> configured_rate_limits(const std::vector<FilterInstance>& chain) {
  for (const FilterInstance& instance : chain) {
    if (instance.name == "ratelimit" && instance.factory) {
      return rate_limit_facts_of(*instance.factory);
    }
  }
  return {};
}

FactCatalog fact_catalog_for_chain(const std::vector<std::string>& chain,
                                   const std::vector<RateLimitFacts>& rate_limits) {
  // builtin_fact_catalog already holds DESIGN's whole table (also the facts of filters not
  // implemented yet), so a rule reading spf without spf in the chain is a clear error rather
  // than an unknown fact.
  return builtin_fact_catalog(chain, rate_limits);
}

}  // namespace portcullis
