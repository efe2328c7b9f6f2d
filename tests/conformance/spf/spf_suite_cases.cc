#include "spf_suite_cases.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace portcullis {

namespace {

std::vector<std::string> strings_of(const YAML::Node& value) {
  std::vector<std::string> out;
  if (value.IsSequence()) {
    for (const auto& piece : value)
      out.push_back(piece.as<std::string>());
  } else {
    out.push_back(value.as<std::string>());
  }
  return out;
}

std::optional<DnsType> type_named(const std::string& name) {
  if (name == "A") return DnsType::a;
  if (name == "AAAA") return DnsType::aaaa;
  if (name == "MX") return DnsType::mx;
  if (name == "PTR") return DnsType::ptr;
  if (name == "TXT" || name == "SPF") return DnsType::txt;
  return std::nullopt;
}

// The reference driver's rules (pyspf test/testspf.py, as tests/corpora/spf/openspf/SOURCE.md
// describes them): SPF entries become TXT when the name has no TXT entry (served last);
// a bare TIMEOUT times out every type not listed before it and ends the name's entries;
// "TYPE: TIMEOUT" times out that type; names not in zonedata are NXDOMAIN.
void load_zone(const YAML::Node& zonedata, ZoneResolver& zone) {
  if (!zonedata) return;
  for (const auto& name_entries : zonedata) {
    const std::string name = name_entries.first.as<std::string>();
    zone.add_name(name);
    bool has_txt = false;
    for (const auto& entry : name_entries.second)
      if (entry.IsMap() && entry["TXT"]) has_txt = true;
    std::vector<std::vector<std::string>> spf_records;
    bool timed_out = false;
    for (const auto& entry : name_entries.second) {
      if (entry.IsScalar()) {
        if (entry.as<std::string>() == "TIMEOUT") {
          zone.time_out(name, std::nullopt);
          timed_out = true;
          break;
        }
        continue;
      }
      for (const auto& type_value : entry) {
        const std::string type = type_value.first.as<std::string>();
        const YAML::Node& value = type_value.second;
        if (type == "TIMEOUT") {
          zone.time_out(name, std::nullopt);
          timed_out = true;
          continue;
        }
        if (type == "SERVFAIL") {
          zone.serve_failure(name);
          continue;
        }
        if (value.IsScalar() && value.as<std::string>() == "TIMEOUT") {
          if (auto dns_type = type_named(type)) zone.time_out(name, *dns_type);
          continue;
        }
        if (type == "SPF") {
          if (!(value.IsScalar() && value.as<std::string>() == "NONE"))
            spf_records.push_back(strings_of(value));
        } else if (type == "TXT") {
          // "TXT: NONE" only stops the SPF entries becoming TXT: the name has no TXT
          // record, and a later bare TIMEOUT still times the TXT query out (txttimeout).
          if (!(value.IsScalar() && value.as<std::string>() == "NONE"))
            zone.add_txt(name, strings_of(value));
        } else if (type == "A" || type == "AAAA") {
          zone.add_a(name, value.as<std::string>());
        } else if (type == "MX") {
          zone.add_mx(name, value[0].as<std::uint16_t>(), value[1].as<std::string>());
        } else if (type == "PTR") {
          zone.add_ptr(name, value.as<std::string>());
        } else if (type == "CNAME") {
          zone.add_cname(name, value.as<std::string>());
        }
      }
      if (timed_out) break;
    }
    if (!has_txt && !timed_out)
      for (auto& record : spf_records)
        zone.add_txt(name, std::move(record));
  }
}

std::string text_of(const YAML::Node& node) {
  return node ? node.as<std::string>() : std::string();
}

SpfCase openspf_case(const std::string& suite, const std::string& id, const YAML::Node& zonedata,
                     const YAML::Node& test) {
  SpfCase spf_case;
  spf_case.suite = suite;
  spf_case.id = id;
  spf_case.load_zone = [zonedata](ZoneResolver& zone) { load_zone(zonedata, zone); };
  spf_case.host = text_of(test["host"]);
  spf_case.mailfrom = text_of(test["mailfrom"]);
  spf_case.helo = text_of(test["helo"]);
  spf_case.receiver = "receiver.example";
  // The generated corpus (tests/corpora/spf/generated) has no expected results.
  if (test["result"]) spf_case.accepted = strings_of(test["result"]);
  if (test["explanation"]) spf_case.explanation = test["explanation"].as<std::string>();
  return spf_case;
}

std::string trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r'))
    text.remove_suffix(1);
  return std::string(text);
}

std::vector<std::string> comma_list(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream items(text);
  std::string item;
  while (std::getline(items, item, ','))
    if (!trimmed(item).empty()) out.push_back(trimmed(item));
  return out;
}

// The mail-auth files (tests/corpora/spf/mail-auth/SOURCE.md) are not YAML: their driver reads
// each "---" document line by line, a leading "-" dropped. Record lines ("spf:", "exp:", "a:",
// "aaaa:", "ptr:", "mx:") go into one zone per file, a later line for the same name and type
// replacing the earlier one (spf and exp are both TXT); "domain:" (the HELO), "sender:" and
// "ip:" set the next check's parameters; each "expect:" is one test, against the zone as it
// stands at that line. The driver's resolver is the Internet's for names missing from its
// zone; ours answers NXDOMAIN, and names under "_dns_error." fail (SERVFAIL).
struct MailAuthZone {
  std::map<std::pair<std::string, std::string>, std::string> records;  // (type, name) → rest

  void load(ZoneResolver& zone) const {
    for (const auto& [key, rest] : records) {
      const auto& [type, name] = key;
      if (type == "txt") {
        zone.add_txt(name, {rest});
      } else if (type == "a" || type == "aaaa") {
        for (const auto& address : comma_list(rest))
          zone.add_a(name, address);
      } else if (type == "ptr") {
        auto address = IpAddress::parse(name);
        if (!address) continue;
        for (const auto& target : comma_list(rest))
          zone.add_ptr(reverse_name(*address), target);
      } else if (type == "mx") {
        std::uint16_t position = 0;
        for (const auto& address : comma_list(rest)) {
          const std::string exchange = "mx." + address + "." + std::to_string(position);
          zone.add_mx(name, static_cast<std::uint16_t>(position + 1), exchange);
          zone.add_a(exchange, address);
          ++position;
        }
      }
    }
  }
};

}  // namespace

const std::vector<SpfSuiteFile>& openspf_suite_files() {
  static const std::vector<SpfSuiteFile> files = {
      {"rfc7208", "spf/openspf/rfc7208-tests.yml"},
      {"rfc4408", "spf/openspf/rfc4408-tests.yml"},
      {"blitiri", "spf/blitiri/blitirispf-tests.yml"},
  };
  return files;
}

const std::vector<std::string>& mail_auth_stems() {
  static const std::vector<std::string> stems = {"a",      "all", "basic",   "examples",
                                                 "exists", "exp", "include", "ip",
                                                 "macro",  "mx",  "ptr",     "redirect"};
  return stems;
}

std::string environment_value(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) throw std::runtime_error(std::string(name) + " is not set");
  return value;
}

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<SpfCase> openspf_cases(const std::string& suite, const std::string& text) {
  std::vector<SpfCase> cases;
  std::set<std::string> seen;
  std::size_t scenario_number = 0;
  for (const auto& scenario : YAML::LoadAll(text)) {
    ++scenario_number;
    for (const auto& id_test : scenario["tests"]) {
      std::string id = id_test.first.as<std::string>();
      // blitiri reuses ids (test1, d00) in different scenarios: the later ones get the
      // scenario's number, so every id stays one case.
      if (!seen.insert(id).second) id += "-" + std::to_string(scenario_number);
      cases.push_back(openspf_case(suite, id, scenario["zonedata"], id_test.second));
      cases.back().scenario = scenario["description"].as<std::string>();
    }
  }
  return cases;
}

std::vector<SpfCase> mail_auth_cases(const std::string& stem, const std::string& text) {
  std::vector<SpfCase> cases;
  MailAuthZone zone;
  std::size_t document = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find("---\n", start);
    if (end == std::string::npos) end = text.size();
    const std::string body = text.substr(start, end - start);
    start = end + 4;
    ++document;
    std::string test_name, helo, sender, ip = "127.0.0.1";
    std::size_t test_number = 0;
    std::istringstream lines(body);
    std::string line;
    while (std::getline(lines, line)) {
      std::string content = trimmed(line);
      if (!content.empty() && content[0] == '-') content = trimmed(content.substr(1));
      const std::size_t colon = content.find(':');
      if (content.empty() || content[0] == '#' || colon == std::string::npos) continue;
      const std::string key = content.substr(0, colon);
      const std::string value = trimmed(content.substr(colon + 1));
      if (key == "name") {
        test_name = value;
      } else if (key == "spf" || key == "exp" || key == "a" || key == "aaaa" || key == "ptr" ||
                 key == "mx") {
        const std::size_t space = value.find(' ');
        if (space == std::string::npos) continue;
        const std::string type = (key == "spf" || key == "exp") ? "txt" : key;
        zone.records[{type, value.substr(0, space)}] = trimmed(value.substr(space));
      } else if (key == "domain") {
        helo = value;
      } else if (key == "sender") {
        sender = value;
      } else if (key == "ip") {
        ip = value;
      } else if (key == "expect") {
        SpfCase spf_case;
        spf_case.suite = "mail-auth";
        spf_case.scenario = stem;
        spf_case.id = stem + "." + std::to_string(document) + "." + std::to_string(++test_number);
        spf_case.host = ip;
        spf_case.helo = helo;
        spf_case.mailfrom = sender;
        spf_case.receiver = "localdomain.org";
        const std::size_t space = value.find(' ');
        spf_case.accepted = {value.substr(0, space)};
        if (space != std::string::npos) spf_case.explanation = trimmed(value.substr(space));
        spf_case.load_zone = [snapshot = zone](ZoneResolver& resolver) {
          snapshot.load(resolver);
          resolver.fail_names_containing("_dns_error.");
        };
        cases.push_back(std::move(spf_case));
      }
    }
  }
  return cases;
}

}  // namespace portcullis
