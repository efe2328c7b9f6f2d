// The filter registry (definitions, their agreement with DESIGN's fact catalog, building
// factories from good and bad [filter.NAME] blocks) and SettingsReader's messages.
#define BOOST_TEST_MODULE filter_registry
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

#include "registry.h"

using namespace portcullis;

namespace portcullis {
std::ostream& operator<<(std::ostream& out, Phase phase) {
  return out << phase_name(phase);
}
std::ostream& operator<<(std::ostream& out, FactType type) {
  return out << fact_type_name(type);
}
}  // namespace portcullis

namespace {

SettingValue at(SettingValue value, unsigned line, unsigned column) {
  value.line = line;
  value.column = column;
  return value;
}

SettingValue integer(std::int64_t number, unsigned line = 0, unsigned column = 0) {
  return at(SettingValue{number}, line, column);
}
SettingValue text(std::string value, unsigned line = 0, unsigned column = 0) {
  return at(SettingValue{std::move(value)}, line, column);
}
SettingValue flag(bool value, unsigned line = 0, unsigned column = 0) {
  return at(SettingValue{value}, line, column);
}

std::vector<std::string> names_of(const std::vector<const FilterDefinition*>& definitions) {
  std::vector<std::string> names;
  for (const auto* definition : definitions)
    names.push_back(definition->name);
  return names;
}

}  // namespace

BOOST_AUTO_TEST_CASE(definitions_are_the_built_in_filters_in_chain_order) {
  BOOST_TEST((names_of(filter_definitions()) ==
              std::vector<std::string>{"pregreet", "helo", "fcrdns", "dnsbl", "spf", "ratelimit",
                                       "greylist", "dkim", "dmarc"}));
  const FilterDefinition* pregreet = find_filter_definition("pregreet");
  BOOST_REQUIRE(pregreet != nullptr);
  BOOST_TEST((pregreet->hooks == std::vector<Phase>{Phase::connect, Phase::helo}));
  BOOST_REQUIRE(pregreet->facts.size() == 1u);
  BOOST_TEST(pregreet->facts[0].name == "pregreet");
  BOOST_TEST(pregreet->facts[0].type == FactType::boolean);
  BOOST_TEST(pregreet->facts[0].known_from == Phase::helo);

  const FilterDefinition* helo = find_filter_definition("helo");
  BOOST_REQUIRE(helo != nullptr);
  BOOST_TEST((helo->hooks == std::vector<Phase>{Phase::helo}));
  BOOST_REQUIRE(helo->facts.size() == 1u);
  BOOST_TEST(helo->facts[0].name == "helo.check");
  BOOST_TEST(helo->facts[0].type == FactType::string);
  BOOST_TEST(helo->facts[0].known_from == Phase::helo);

  const FilterDefinition* spf = find_filter_definition("spf");
  BOOST_REQUIRE(spf != nullptr);
  BOOST_TEST((spf->hooks == std::vector<Phase>{Phase::mail}));
  BOOST_REQUIRE(spf->facts.size() == 2u);
  BOOST_TEST(spf->facts[0].name == "spf");
  BOOST_TEST(spf->facts[1].name == "spf.domain");
  BOOST_TEST(spf->facts[1].known_from == Phase::mail);
  BOOST_TEST(!spf->streams_message);

  const FilterDefinition* dkim = find_filter_definition("dkim");
  BOOST_REQUIRE(dkim != nullptr);
  BOOST_TEST((dkim->hooks == std::vector<Phase>{Phase::data}));
  BOOST_TEST(dkim->streams_message);
  BOOST_REQUIRE(dkim->facts.size() == 2u);
  BOOST_TEST(dkim->facts[0].name == "dkim");
  BOOST_TEST(dkim->facts[1].name == "dkim.domains");
  BOOST_TEST(dkim->facts[1].type == FactType::list);

  BOOST_TEST(find_filter_definition("nope") == nullptr);
  BOOST_TEST(find_filter_definition("Helo") == nullptr);  // names are exact
  BOOST_TEST(find_filter_definition("") == nullptr);
  BOOST_TEST(find_filter_definition("pregreet") == filter_definitions()[0]);
}

BOOST_AUTO_TEST_CASE(every_definition_agrees_with_the_fact_catalog) {
  const FactCatalog catalog = fact_catalog_for_chain({"pregreet", "helo"});
  const auto& builtin = builtin_filter_names();
  for (const FilterDefinition* definition : filter_definitions()) {
    BOOST_TEST_CONTEXT("filter " << definition->name) {
      BOOST_TEST((std::find(builtin.begin(), builtin.end(), definition->name) != builtin.end()));
      BOOST_TEST(static_cast<bool>(definition->build));
      BOOST_TEST(!definition->hooks.empty());
      for (const FactSpec& fact : definition->facts) {
        BOOST_TEST_CONTEXT("fact " << fact.name) {
          const FactSpec* listed = catalog.find(fact.name);
          BOOST_REQUIRE(listed != nullptr);
          BOOST_TEST(listed->type == fact.type);
          BOOST_TEST(listed->known_from == fact.known_from);
          BOOST_TEST(listed->known_until == fact.known_until);
          BOOST_TEST(listed->filter == definition->name);
          BOOST_TEST(fact.filter == definition->name);
          // A filter must be called at (or before) the phase its fact becomes known.
          BOOST_TEST(std::any_of(definition->hooks.begin(), definition->hooks.end(),
                                 [&](Phase hook) { return hook <= fact.known_from; }));
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(catalog_for_a_chain_enables_only_its_filters_but_knows_all) {
  const FactCatalog catalog = fact_catalog_for_chain({"helo"});
  BOOST_TEST(catalog.filter_enabled("helo"));
  BOOST_TEST(!catalog.filter_enabled("pregreet"));
  BOOST_TEST(!catalog.filter_enabled("spf"));
  const FactSpec* spf = catalog.find("spf");
  BOOST_REQUIRE(spf != nullptr);  // known, so "not in the chain" can be said
  BOOST_TEST(!catalog.available(*spf));
  const FactSpec* pregreet = catalog.find("pregreet");
  BOOST_REQUIRE(pregreet != nullptr);
  BOOST_TEST(!catalog.available(*pregreet));
  BOOST_TEST(catalog.available(*catalog.find("helo.check")));
  BOOST_TEST(catalog.available(*catalog.find("client.ip")));  // core

  const FactCatalog with_limits =
      fact_catalog_for_chain({"ratelimit"}, {RateLimitFacts{"conn_per_ip", Phase::connect}});
  const FactSpec* exceeded = with_limits.find("rate.conn_per_ip.exceeded");
  BOOST_REQUIRE(exceeded != nullptr);
  BOOST_TEST(exceeded->type == FactType::boolean);
  BOOST_TEST(with_limits.available(*exceeded));
}

BOOST_AUTO_TEST_CASE(ratelimit_declares_three_facts_per_configured_limit) {
  const FilterDefinition* ratelimit = find_filter_definition("ratelimit");
  BOOST_REQUIRE(ratelimit != nullptr);
  BOOST_TEST(ratelimit->facts.empty());
  BOOST_REQUIRE(static_cast<bool>(ratelimit->configured_facts));
  SettingTable limit = {{"name", text("msgs")},
                        {"key", text("sender.domain")},
                        {"counter", text("messages")},
                        {"limit", integer(100)},
                        {"per", integer(3600)}};
  SettingTable block = {{"limit", SettingValue{SettingArray{SettingValue{limit}}}}};
  std::vector<SettingError> errors;
  auto factory = ratelimit->build(block, errors);
  BOOST_REQUIRE(factory != nullptr);
  const std::vector<FactSpec> facts = ratelimit->configured_facts(*factory);
  BOOST_REQUIRE(facts.size() == 3u);
  // The same names, types and phases as the catalog gives the configured limit.
  FilterInstance instance;
  instance.name = "ratelimit";
  instance.factory = factory;
  const std::vector<RateLimitFacts> limits = configured_rate_limits({instance});
  BOOST_REQUIRE(limits.size() == 1u);
  BOOST_TEST(limits[0].name == "msgs");
  BOOST_TEST(limits[0].phase == Phase::mail);
  const FactCatalog catalog = fact_catalog_for_chain({"ratelimit"}, limits);
  for (const FactSpec& fact : facts) {
    BOOST_TEST_CONTEXT("fact " << fact.name) {
      const FactSpec* listed = catalog.find(fact.name);
      BOOST_REQUIRE(listed != nullptr);
      BOOST_TEST(listed->type == fact.type);
      BOOST_TEST(listed->known_from == fact.known_from);
      BOOST_TEST(listed->known_until == fact.known_until);
      BOOST_TEST(listed->filter == "ratelimit");
      BOOST_TEST(catalog.available(*listed));
    }
  }
  BOOST_TEST(facts[1].name == "rate.msgs.exceeded");
  BOOST_TEST(configured_rate_limits({}).empty());
  // Any other filter's factory has no limits.
  instance.factory = find_filter_definition("helo")->build({}, errors);
  BOOST_TEST(configured_rate_limits({instance}).empty());
}

BOOST_AUTO_TEST_CASE(pregreet_builds_from_an_empty_or_a_full_block) {
  const FilterDefinition* pregreet = find_filter_definition("pregreet");
  std::vector<SettingError> errors;
  BOOST_TEST(pregreet->build({}, errors) != nullptr);
  BOOST_TEST(errors.empty());
  SettingTable full = {{"wait_ms", integer(0)}, {"teaser", flag(false)}};
  auto factory = pregreet->build(full, errors);
  BOOST_REQUIRE(factory != nullptr);
  BOOST_TEST(errors.empty());
  BOOST_TEST(factory->create() != nullptr);
  SettingTable maximum = {{"wait_ms", integer(60000)}};
  BOOST_TEST(pregreet->build(maximum, errors) != nullptr);
  BOOST_TEST(errors.empty());
}

BOOST_AUTO_TEST_CASE(pregreet_rejects_out_of_range_wrong_type_and_unknown_keys) {
  const FilterDefinition* pregreet = find_filter_definition("pregreet");
  std::vector<SettingError> errors;
  SettingTable bad = {{"wait_ms", integer(70000, 12, 11)},
                      {"teaser", text("yes", 13, 11)},
                      {"wait", integer(5, 14, 1)}};
  BOOST_TEST(pregreet->build(bad, errors) == nullptr);
  BOOST_REQUIRE(errors.size() == 3u);
  BOOST_TEST(errors[0].key == "wait_ms");
  BOOST_TEST(errors[0].message == "expected an integer from 0 to 60000, got 70000");
  BOOST_TEST(errors[0].line == 12u);
  BOOST_TEST(errors[0].column == 11u);
  BOOST_TEST(errors[1].key == "teaser");
  BOOST_TEST(errors[1].message == "expected a bool, got a string");
  BOOST_TEST(errors[1].line == 13u);
  BOOST_TEST(errors[2].key == "wait");
  BOOST_TEST(
      errors[2].message ==
      "unknown key (known keys: wait_ms, teaser, pass_ttl; every filter also takes timeout and "
      "failure_mode)");
  BOOST_TEST(errors[2].line == 14u);

  errors.clear();
  SettingTable negative = {{"wait_ms", integer(-1)}};
  BOOST_TEST(pregreet->build(negative, errors) == nullptr);
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].message == "expected an integer from 0 to 60000, got -1");

  errors.clear();
  SettingTable string_wait = {{"wait_ms", text("6000")}};
  BOOST_TEST(pregreet->build(string_wait, errors) == nullptr);
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].message == "expected an integer from 0 to 60000, got a string");
}

BOOST_AUTO_TEST_CASE(helo_takes_no_keys) {
  const FilterDefinition* helo = find_filter_definition("helo");
  std::vector<SettingError> errors;
  BOOST_TEST(helo->build({}, errors) != nullptr);
  BOOST_TEST(errors.empty());
  SettingTable bad = {{"strict", flag(true, 3, 1)}};
  BOOST_TEST(helo->build(bad, errors) == nullptr);
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].key == "strict");
  BOOST_TEST(errors[0].message == "unknown key (this filter takes only timeout and failure_mode)");
  BOOST_TEST(errors[0].line == 3u);
}

BOOST_AUTO_TEST_CASE(spf_takes_no_keys) {
  const FilterDefinition* spf = find_filter_definition("spf");
  std::vector<SettingError> errors;
  BOOST_TEST(spf->build({}, errors) != nullptr);
  BOOST_TEST(errors.empty());
  SettingTable bad = {{"strict", flag(true, 2, 1)}};
  BOOST_TEST(spf->build(bad, errors) == nullptr);
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].key == "strict");
}

BOOST_AUTO_TEST_CASE(dkim_keys_are_validated_at_their_place) {
  const FilterDefinition* dkim = find_filter_definition("dkim");
  std::vector<SettingError> errors;
  BOOST_TEST(dkim->build({}, errors) != nullptr);
  BOOST_TEST(errors.empty());
  SettingValue zero{std::int64_t{0}};
  zero.line = 4;
  zero.column = 18;
  BOOST_TEST(dkim->build(SettingTable{{"max_signatures", zero}}, errors) == nullptr);
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].key == "max_signatures");
  BOOST_TEST(errors[0].line == 4u);
}

BOOST_AUTO_TEST_CASE(dmarc_hooks_the_data_phase_and_loads_its_public_suffix_list) {
  const FilterDefinition* dmarc = find_filter_definition("dmarc");
  BOOST_REQUIRE(dmarc != nullptr);
  BOOST_TEST((dmarc->hooks == std::vector<Phase>{Phase::data}));
  BOOST_REQUIRE(dmarc->facts.size() == 3u);
  BOOST_TEST(dmarc->facts[0].name == "dmarc");
  BOOST_TEST(dmarc->facts[1].name == "dmarc.policy");
  BOOST_TEST(dmarc->facts[2].name == "dmarc.domain");
  BOOST_TEST(dmarc->facts[2].known_from == Phase::data);
  BOOST_TEST(!dmarc->streams_message);
  std::vector<SettingError> errors;
  BOOST_TEST(dmarc->build({}, errors) != nullptr);  // the distribution's list
  BOOST_TEST(errors.empty());
  SettingTable missing = {{"public_suffix_list", text("/nonexistent/list.dat")}};
  BOOST_TEST(dmarc->build(missing, errors) == nullptr);
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].key == "public_suffix_list");
}

BOOST_AUTO_TEST_CASE(settings_reader_strings_strings_and_prefixes) {
  SettingArray zones = {text("a.example"), integer(3, 7, 14), text("b.example")};
  SettingTable table = {{"zone", text("zen.example.net")},
                        {"answers", SettingValue{zones}},
                        {"weight", integer(3)},
                        {"names", SettingValue{SettingArray{text("x"), text("y")}}}};
  std::vector<SettingError> errors;
  SettingsReader reader(table, errors, "list[1].");
  BOOST_TEST(reader.string("zone", "") == "zen.example.net");
  BOOST_TEST(reader.string("absent", "fallback") == "fallback");
  BOOST_TEST((reader.strings("names", {}) == std::vector<std::string>{"x", "y"}));
  BOOST_TEST((reader.strings("answers", {"kept"}) == std::vector<std::string>{"kept"}));
  BOOST_TEST(reader.string("weight", "w") == "w");
  BOOST_TEST(reader.boolean("zone", true) == true);
  BOOST_TEST(reader.integer("weight", 0, 0, 10) == 3);
  BOOST_REQUIRE(errors.size() == 3u);
  BOOST_TEST(errors[0].key == "list[1].answers[1]");
  BOOST_TEST(errors[0].message == "expected a string, got an integer");
  BOOST_TEST(errors[0].line == 7u);
  BOOST_TEST(errors[0].column == 14u);
  BOOST_TEST(errors[1].key == "list[1].weight");
  BOOST_TEST(errors[1].message == "expected a string, got an integer");
  BOOST_TEST(errors[2].key == "list[1].zone");
  BOOST_TEST(errors[2].message == "expected a bool, got a string");

  errors.clear();
  reader.reject_unknown({"zone", "answers", "weight"});
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].key == "list[1].names");

  errors.clear();
  BOOST_TEST(reader.strings("zone", {}).empty());
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].message == "expected an array of strings, got a string");
  BOOST_TEST(reader.find("weight") != nullptr);
  BOOST_TEST(reader.find("weigh") == nullptr);
}

BOOST_AUTO_TEST_CASE(fcrdns_and_dnsbl_are_registered_at_connect) {
  const FilterDefinition* fcrdns = find_filter_definition("fcrdns");
  BOOST_REQUIRE(fcrdns != nullptr);
  BOOST_TEST((fcrdns->hooks == std::vector<Phase>{Phase::connect}));
  std::vector<SettingError> errors;
  BOOST_TEST(fcrdns->build({}, errors) != nullptr);
  BOOST_TEST(errors.empty());

  const FilterDefinition* dnsbl = find_filter_definition("dnsbl");
  BOOST_REQUIRE(dnsbl != nullptr);
  BOOST_TEST((dnsbl->hooks == std::vector<Phase>{Phase::connect}));
  // A dnsbl filter without a list is a configuration error, named at the key.
  BOOST_TEST(dnsbl->build({}, errors) == nullptr);
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].key == "list");
  errors.clear();
  SettingTable one_list = {
      {"list", SettingValue{SettingArray{SettingValue{SettingTable{
                   {"zone", text("zen.example.net", 4, 11)}, {"weight", integer(3)}}}}}}};
  BOOST_TEST(dnsbl->build(one_list, errors) != nullptr);
  BOOST_TEST(errors.empty());
}
