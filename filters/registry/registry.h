// The filter registry: maps a filter's name to the phases it hooks, the facts it records (and
// the phase they become known), and a factory builder that validates its [filter.NAME] block.
// The config loader builds the chain from it; the policy loader type-checks rules against the
// catalog it produces.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fact_catalog.h"
#include "filter.h"
#include "filter_instance.h"
#include "filter_settings.h"
#include "session_phase.h"

namespace portcullis {

struct FilterDefinition {
  std::string name;
  std::vector<Phase> hooks;     // phases at which on_phase() is called
  std::vector<FactSpec> facts;  // every fact the filter may record (runner drops any other)
  // Validates the block (errors appended, nullptr returned on any error) and builds the factory.
  std::function<std::shared_ptr<const FilterFactory>(const SettingTable& settings,
                                                     std::vector<SettingError>& errors)>
      build;
  // The shortest `timeout` these settings can work with (e.g. pregreet's wait); a shorter one is
  // a config error, since every call would time out. Null: no lower bound.
  std::function<std::chrono::milliseconds(const SettingTable& settings)> minimum_timeout;
  // The session calls on_message_begin/on_message_data while the message arrives
  // (message_view.h).
  bool streams_message = false;
  // Facts that depend on the settings (ratelimit: three per configured limit), declared in
  // addition to `facts`, read from the factory that `build` made. Null: the facts are fixed.
  std::function<std::vector<FactSpec>(const FilterFactory& factory)> configured_facts = nullptr;
};

// The built-in filters that exist, by name; nullptr for an unknown name.
const FilterDefinition* find_filter_definition(std::string_view name);
// Every built-in filter, in DESIGN's chain order.
const std::vector<const FilterDefinition*>& filter_definitions();

// The catalog for a chain: core facts, the facts of every known filter (those in `chain`
// enabled), so a rule reading the fact of a filter missing from the chain is a clear error.
// The [[filter.ratelimit.limit]]s of a loaded chain (none when ratelimit is not in it), for
// fact_catalog_for_chain.
std::vector<RateLimitFacts> configured_rate_limits(const std::vector<FilterInstance>& chain);

FactCatalog fact_catalog_for_chain(const std::vector<std::string>& chain,
                                   const std::vector<RateLimitFacts>& rate_limits = {});

}  // namespace portcullis
