// Golden policy tests: tests/golden/policy/<case>.toml + <case>.facts -> <case>.ref (the
// verdicts and traces as render_text prints them), and errors/<case>.toml -> <case>.ref (the
// load errors). The format of .facts is in tests/golden/policy/README.md. The .ref files were
// committed after the renderer, so each case below names the DESIGN §4 rule (as detailed in
// docs/policy-language.md) it checks: a reader judges a .ref against that rule, not against
// the engine's output.
#define BOOST_TEST_MODULE policy_golden
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "fact_catalog.h"
#include "policy.h"
#include "policy_session.h"

namespace fs = std::filesystem;
namespace tt = boost::test_tools;
using namespace portcullis;
using namespace portcullis::policy;

namespace {

fs::path golden_dir() {
  const char* root = std::getenv("PORTCULLIS_SOURCE_ROOT");
  if (root == nullptr) throw std::runtime_error("PORTCULLIS_SOURCE_ROOT is not set");
  return fs::path(root) / "tests" / "golden" / "policy";
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Names in the policy files are relative to the case directory, as an operator would write
// them relative to the working directory.
FileReader reader_under(const fs::path& root) {
  return [root](const std::string& path, std::string* error) {
    const fs::path full = fs::path(path).is_absolute() ? fs::path(path) : root / path;
    return read_file_from_disk(full.string(), error);
  };
}

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return "";
  const auto last = text.find_last_not_of(" \t\r");
  return std::string(text.substr(first, last - first + 1));
}

std::vector<std::string> words(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::vector<std::string> out;
  for (std::string word; in >> word;)
    out.push_back(word);
  return out;
}

// 'text' with '' for a quote.
std::string parse_quoted(std::string_view text, std::size_t* consumed) {
  if (text.empty() || text.front() != '\'') throw std::runtime_error("expected a quoted string");
  std::string value;
  std::size_t i = 1;
  while (true) {
    if (i >= text.size()) throw std::runtime_error("unterminated string");
    if (text[i] == '\'') {
      if (i + 1 < text.size() && text[i + 1] == '\'') {
        value += '\'';
        i += 2;
        continue;
      }
      ++i;
      break;
    }
    value += text[i++];
  }
  *consumed = i;
  return value;
}

FactValue parse_fact_value(const FactSpec& spec, const std::string& text) {
  switch (spec.type) {
    case FactType::boolean:
      if (text == "true") return true;
      if (text == "false") return false;
      throw std::runtime_error("bad bool: " + text);
    case FactType::integer:
      return static_cast<std::int64_t>(std::stoll(text));
    case FactType::ip: {
      auto address = IpAddress::parse(text);
      if (!address) throw std::runtime_error("bad ip: " + text);
      return *address;
    }
    case FactType::string: {
      std::size_t consumed = 0;
      std::string value = parse_quoted(text, &consumed);
      if (consumed != text.size()) throw std::runtime_error("junk after string: " + text);
      return value;
    }
    case FactType::list: {
      if (text.size() < 2 || text.front() != '[' || text.back() != ']') {
        throw std::runtime_error("bad list: " + text);
      }
      FactList items;
      std::string_view rest = std::string_view(text).substr(1, text.size() - 2);
      while (true) {
        while (!rest.empty() && (rest.front() == ' ' || rest.front() == ','))
          rest.remove_prefix(1);
        if (rest.empty()) break;
        std::size_t consumed = 0;
        items.push_back(parse_quoted(rest, &consumed));
        rest.remove_prefix(consumed);
      }
      return items;
    }
  }
  throw std::runtime_error("unknown type");
}

struct CaseSettings {
  std::vector<std::string> files;
  std::vector<std::string> chain = builtin_filter_names();
  std::vector<RateLimitFacts> limits;
  bool delay_reject = true;
};

void apply_setting(CaseSettings* settings, const std::string& key, const std::string& value) {
  if (key == "files") {
    settings->files = words(value);
  } else if (key == "chain") {
    settings->chain = words(value);
  } else if (key == "ratelimit") {
    const auto parts = words(value);
    if (parts.size() != 2 || !parse_phase(parts[1])) {
      throw std::runtime_error("ratelimit: NAME PHASE");
    }
    settings->limits.push_back({parts[0], *parse_phase(parts[1])});
  } else if (key == "delay_reject") {
    settings->delay_reject = value == "true";
    if (value != "true" && value != "false") throw std::runtime_error("delay_reject: bool");
  } else {
    throw std::runtime_error("unknown setting " + key);
  }
}

std::string run_engine_case(const fs::path& facts_path) {
  const fs::path dir = facts_path.parent_path();
  const std::string name = facts_path.stem().string();
  std::istringstream lines(read_text(facts_path));

  CaseSettings settings;
  struct Step {
    std::string kind;
    std::vector<std::string> lines;
  };
  std::vector<Step> steps;
  for (std::string raw; std::getline(lines, raw);) {
    const std::string line = trim(raw);
    if (line.empty() || line.front() == '#') continue;
    if (line.front() == '[') {
      if (line.back() != ']') throw std::runtime_error("bad step line: " + line);
      steps.push_back({line.substr(1, line.size() - 2), {}});
      continue;
    }
    if (steps.empty()) {
      const auto colon = line.find(':');
      if (colon == std::string::npos) throw std::runtime_error("bad setting: " + line);
      apply_setting(&settings, trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
      continue;
    }
    steps.back().lines.push_back(line);
  }
  if (settings.files.empty()) settings.files = {name + ".toml"};

  const FactCatalog catalog = builtin_fact_catalog(settings.chain, settings.limits);
  const LoadResult loaded = load_policy(settings.files, catalog, reader_under(dir));
  if (!loaded.ok()) throw std::runtime_error("policy does not load:\n" + loaded.error_text());

  const SessionOptions options{settings.delay_reject};
  auto session = std::make_unique<PolicySession>(loaded.policy, options);
  Facts facts;
  auto erase_from = [&](Phase first) {
    facts.erase_if([&](std::string_view fact) {
      const FactSpec* spec = catalog.find(fact);
      return spec != nullptr && spec->known_from >= first;
    });
  };
  std::vector<std::string> blocks;
  for (const Step& step : steps) {
    if (step.kind == "starttls" || step.kind == "rset" || step.kind == "session" ||
        step.kind == "tags") {
      if (!step.lines.empty()) throw std::runtime_error("[" + step.kind + "] takes no lines");
    }
    if (step.kind == "starttls") {
      session->starttls();
      facts.erase_if([&](std::string_view fact) {
        const FactSpec* spec = catalog.find(fact);
        return spec != nullptr && spec->known_from == Phase::helo;
      });
      blocks.push_back("== starttls\n");
      continue;
    }
    if (step.kind == "rset") {
      session->reset_transaction();
      erase_from(Phase::mail);
      blocks.push_back("== rset\n");
      continue;
    }
    if (step.kind == "session") {
      session = std::make_unique<PolicySession>(loaded.policy, options);
      facts.clear();
      blocks.push_back("== new session\n");
      continue;
    }
    if (step.kind == "tags") {
      std::string block = "== message tags\n";
      const auto tags = session->message_tags();
      if (tags.empty()) block += "  none\n";
      for (const auto& tag : tags) {
        block += "  " + tag.header + ": " + tag.value + " (rule \"" + tag.rule + "\")\n";
      }
      blocks.push_back(block);
      continue;
    }
    const auto phase = parse_phase(step.kind);
    if (!phase) throw std::runtime_error("unknown step [" + step.kind + "]");
    std::vector<std::string> failed;
    for (const auto& line : step.lines) {
      if (line.starts_with("failed ")) {
        failed.push_back(trim(line.substr(7)));
        continue;
      }
      if (line.starts_with("unset ")) {
        facts.erase(trim(line.substr(6)));
        continue;
      }
      const auto equal = line.find('=');
      if (equal == std::string::npos) throw std::runtime_error("bad fact line: " + line);
      const std::string fact = trim(line.substr(0, equal));
      const FactSpec* spec = catalog.find(fact);
      if (spec == nullptr) throw std::runtime_error("unknown fact in .facts: " + fact);
      facts.set(fact, parse_fact_value(*spec, trim(line.substr(equal + 1))));
    }
    blocks.push_back(render_text(session->evaluate(*phase, facts, failed)));
  }
  std::string out;
  for (const auto& block : blocks) {
    if (!out.empty()) out += "\n";
    out += block;
  }
  return out;
}

// Case name -> the rule of DESIGN §4 (and docs/policy-language.md) its .ref must follow.
// Every case on disk must be listed and every listed case must exist, so that a new .ref
// cannot arrive without saying what it checks.
const std::map<std::string, std::string>& engine_case_rules() {
  static const std::map<std::string, std::string> rules = {
      {"absent_facts",
       "Facts: a fact no filter recorded is absent and every comparison with it is false; "
       "evaluated three-valued (unknown, 'not unknown' is unknown), a rule matches only when "
       "its condition is true; present() tests absence itself"},
      {"accept_skips",
       "Actions: accept skips every rule of the later phases of the transaction (decided at "
       "mail/rcpt/data) or of the whole session (decided at connect/helo); a connect accept "
       "survives STARTTLS; RSET ends a transaction accept"},
      {"delayed_rejection",
       "Delayed rejection: reject/tempfail decided at connect or helo are answered at every "
       "RCPT, the session going on (mail rules and tags still run); the first refusal decided "
       "stays the one answered; a delayed tempfail is 450 4.7.1 unless the rule's 4xx is "
       "another code than 421; {fact} placeholders in replies"},
      {"disconnect_never_delayed",
       "Delayed rejection: disconnect is never delayed (421 4.7.0 default, answered at once and "
       "closed even with delay_reject = true)"},
      {"filter_failure",
       "Filter failure with failure_mode = tempfail: 451 4.3.0 at its phase, delayed like any "
       "tempfail at connect/helo; a rule that refuses or accepts decides first, continue does "
       "not; a phase skipped by an earlier accept ignores the failure"},
      {"filter_failure_immediate",
       "Filter failure with delay_reject = false: answered at once, at connect as 421 4.3.0 and "
       "close, at helo as 451 4.3.0; reject at helo defaults to 554 5.7.1"},
      {"list_facts",
       "Expressions: 'x' in list_fact and FACT in list_fact test membership, case-insensitive; "
       "lists joined with ', ' in placeholders"},
      {"lists_names",
       "Lists: an entry with @ is an address, else a domain matching itself and its "
       "subdomains, =domain only itself; case-insensitive (trailing dot ignored); file:PATH "
       "lists one entry a line with # comments"},
      {"lists_networks",
       "Lists: CIDR (v4/v6) and address entries; the most specific containing entry is "
       "reported; an IPv4-mapped IPv6 client matches IPv4 entries"},
      {"multi_file",
       "Policy files: rules run in file order, then rule order; list names are shared across "
       "all files; tag goes on, the first refusal decides"},
      {"observe_mode",
       "Rules: mode = observe rules are evaluated and reported (would have: ...) but never "
       "decide, tag or skip; the search goes on as if they had not matched"},
      {"phase_inference",
       "Rules: without phase, a rule is tried at the earliest phase where every fact it reads "
       "(in when and in then placeholders) is known; with phase, at that phase"},
      {"placeholders",
       "Actions: {fact} placeholders in replies and tag values, an absent fact rendering as "
       "nothing, {{ and }} literal braces"},
      {"refusals_immediate",
       "Actions, delay_reject = false: default replies answered at once: reject 554 5.7.1 at "
       "connect/helo and 550 5.7.1 later; tempfail 421 4.7.0 and close at connect, 450 4.7.1 "
       "later"},
      {"starttls_reset",
       "STARTTLS resets the helo phase: helo facts and decisions (a delayed refusal, an accept, "
       "tags) are made again after the new EHLO; connect decisions (a delayed refusal) survive"},
      {"tag_and_continue",
       "Actions: tag adds a header and the search goes on; continue ends this phase's search "
       "(later rules of the phase are not tried); tags of connect/helo go on the message"},
  };
  return rules;
}

const std::map<std::string, std::string>& error_case_rules() {
  static const std::map<std::string, std::string> rules = {
      {"actions",
       "Actions: only reject, tempfail, disconnect, accept, continue, tag; reply classes are "
       "checked (reject 5xx, tempfail 4xx, disconnect 421) with a matching enhanced code; tag "
       "headers are X- style names the proxy does not own; placeholders name known facts"},
      {"chain",
       "Policy files: a rule that reads a fact of a filter missing from [filters] chain (in "
       "when or in a placeholder) is a check error; rate.NAME facts exist only for configured "
       "limits"},
      {"duplicates", "Lists and rules: names are unique across all policy files"},
      {"keys",
       "Policy files: fixed keys [lists] and [[rule]] with name, when, then, mode (enforce | "
       "observe) and phase; anything else, a missing key or a wrong type is an error"},
      {"lists",
       "Lists: each entry is a CIDR (v4/v6), an address (has @) or a domain (=domain for only "
       "itself), inline or file:PATH; a bad entry is an error at its own line, also in a list "
       "file"},
      {"phases",
       "Rules: phase is connect, helo, mail, rcpt or data; a rule may not read a fact unknown "
       "at its phase, nor facts no single phase knows"},
      {"syntax",
       "Expressions: the fixed forms (in, ==, !=, <, <=, >, >=, and, or, not, parentheses, "
       "single-quoted strings, integers, true/false); a syntax error names file:line:column"},
      {"toml", "Policy files are TOML: a TOML syntax error is reported with its position"},
      {"types",
       "Facts have fixed types: comparisons, membership and bare boolean conditions are type "
       "checked against the fact table; unknown facts and lists are errors"},
  };
  return rules;
}

std::string run_error_case(const fs::path& toml_path) {
  const fs::path dir = toml_path.parent_path();
  CaseSettings settings;
  std::istringstream lines(read_text(toml_path));
  for (std::string raw; std::getline(lines, raw);) {
    if (!raw.starts_with("# ")) break;
    const std::string line = raw.substr(2);
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, colon);
    if (key == "files" || key == "chain" || key == "ratelimit") {
      apply_setting(&settings, key, trim(line.substr(colon + 1)));
    }
  }
  if (settings.files.empty()) settings.files = {toml_path.filename().string()};
  const FactCatalog catalog = builtin_fact_catalog(settings.chain, settings.limits);
  const LoadResult loaded = load_policy(settings.files, catalog, reader_under(dir));
  BOOST_TEST(!loaded.ok());
  return loaded.error_text();
}

std::vector<fs::path> files_with_extension(const fs::path& dir, const std::string& extension) {
  std::vector<fs::path> paths;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == extension) paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

// Reports the first differing line, then the whole actual text.
void compare(const std::string& actual, const std::string& expected) {
  if (actual == expected) {
    BOOST_TEST(actual == expected);
    return;
  }
  std::istringstream a(actual);
  std::istringstream e(expected);
  std::string actual_line;
  std::string expected_line;
  int line = 0;
  while (true) {
    ++line;
    const bool more_actual = static_cast<bool>(std::getline(a, actual_line));
    const bool more_expected = static_cast<bool>(std::getline(e, expected_line));
    if (!more_actual && !more_expected) break;
    if (!more_actual) actual_line = "<end>";
    if (!more_expected) expected_line = "<end>";
    if (actual_line != expected_line) {
      BOOST_ERROR("first difference at line " << line << "\n  expected: " << expected_line
                                              << "\n  actual:   " << actual_line
                                              << "\n--- actual output ---\n"
                                              << actual);
      return;
    }
  }
  BOOST_ERROR("outputs differ");
}

// The stems of the files with `extension` in `dir`.
std::set<std::string> case_names(const fs::path& dir, const std::string& extension) {
  std::set<std::string> names;
  for (const auto& path : files_with_extension(dir, extension))
    names.insert(path.stem().string());
  return names;
}

std::set<std::string> keys_of(const std::map<std::string, std::string>& table) {
  std::set<std::string> keys;
  for (const auto& [name, rule] : table)
    keys.insert(name);
  return keys;
}

std::string rule_of(const std::map<std::string, std::string>& table, const std::string& name) {
  const auto found = table.find(name);
  return found == table.end() ? "(no DESIGN rule named for this case)" : found->second;
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_golden_case_names_the_design_rule_it_checks) {
  BOOST_TEST(case_names(golden_dir(), ".facts") == keys_of(engine_case_rules()), tt::per_element());
  BOOST_TEST(case_names(golden_dir() / "errors", ".ref") == keys_of(error_case_rules()),
             tt::per_element());
}

BOOST_AUTO_TEST_CASE(engine_cases_match_their_hand_written_refs) {
  const auto cases = files_with_extension(golden_dir(), ".facts");
  // The suite must not pass by finding nothing.
  BOOST_TEST(cases.size() >= 15u);
  for (const auto& facts : cases) {
    BOOST_TEST_CONTEXT("case " << facts.stem().string() << ", checking: "
                               << rule_of(engine_case_rules(), facts.stem().string())) {
      fs::path ref = facts;
      ref.replace_extension(".ref");
      try {
        compare(run_engine_case(facts), read_text(ref));
      } catch (const std::exception& e) {
        BOOST_ERROR("case failed to run: " << e.what());
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(error_cases_match_their_hand_written_refs) {
  const auto refs = files_with_extension(golden_dir() / "errors", ".ref");
  BOOST_TEST(refs.size() >= 9u);
  for (const auto& ref : refs) {
    BOOST_TEST_CONTEXT("error case " << ref.stem().string() << ", checking: "
                                     << rule_of(error_case_rules(), ref.stem().string())) {
      fs::path toml = ref;
      toml.replace_extension(".toml");
      try {
        compare(run_error_case(toml), read_text(ref));
      } catch (const std::exception& e) {
        BOOST_ERROR("case failed to run: " << e.what());
      }
    }
  }
}
