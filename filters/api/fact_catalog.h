// FactCatalog: which facts exist, their types, when they become known and who provides them.
//
// The policy compiler type-checks rules against a catalog and infers each rule's phase from
// it. A catalog also remembers the facts of filters that are known but not enabled, so that
// `check` can say "rule X reads fact spf of filter spf, which is not in [filters] chain"
// instead of "unknown fact".
//
// The filter registry (filters/) will build the catalog for the configured chain; until then
// builtin_fact_catalog() builds DESIGN §4's table for a given set of enabled filters.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "facts.h"
#include "session_phase.h"

namespace portcullis {

struct FactSpec {
  std::string name;
  FactType type = FactType::string;
  // The earliest phase at which the fact is known ...
  Phase known_from = Phase::connect;
  // ... and the last one (e.g. rcpt is absent at data). Later phases of a session keep it.
  Phase known_until = Phase::data;
  // The filter that records it; "" for core facts that the session records itself.
  std::string filter;
  std::string meaning;
};

class FactCatalog {
 public:
  // Adds or replaces a fact. `enabled` false records the fact of a filter that is not in the
  // chain: find() still returns it, enabled() says no.
  void add(FactSpec spec);
  // A filter in the chain. Core facts (filter "") are always enabled.
  void enable_filter(std::string filter);

  const FactSpec* find(std::string_view name) const;
  bool filter_enabled(std::string_view filter) const;
  // Facts whose filter is enabled (or core).
  bool available(const FactSpec& spec) const { return filter_enabled(spec.filter); }

  // Names of known facts close to `name` (a typo), best first; used for "did you mean".
  std::vector<std::string> similar_names(std::string_view name) const;
  // An explanation for an unknown name under a pattern prefix (e.g. rate.NAME), or "".
  std::string hint_for_unknown(std::string_view name) const;

  // Every fact, in the order added.
  const std::vector<FactSpec>& facts() const { return facts_; }
  const std::vector<std::string>& enabled_filters() const { return enabled_filters_; }

  // Pattern facts (rate.<name>...) name a family; unknown members get this hint.
  void add_pattern_hint(std::string prefix, std::string hint);

 private:
  std::vector<FactSpec> facts_;
  std::vector<std::string> enabled_filters_;
  std::vector<std::pair<std::string, std::string>> pattern_hints_;
};

// A [[filter.ratelimit.limit]]: its name and the phase of its counter (connections,
// concurrent, errors: connect; messages: mail; recipients: rcpt; bytes: data).
struct RateLimitFacts {
  std::string name;
  Phase phase = Phase::connect;
};

// Names of the built-in filters, in DESIGN's example chain order.
const std::vector<std::string>& builtin_filter_names();

// DESIGN §4's fact table: core facts plus the facts of every built-in filter; the filters in
// `chain` are enabled. rate.<name>, rate.<name>.exceeded and rate.<name>.retry_after exist for
// each configured limit.
FactCatalog builtin_fact_catalog(const std::vector<std::string>& chain,
                                 const std::vector<RateLimitFacts>& rate_limits = {});

}  // namespace portcullis
