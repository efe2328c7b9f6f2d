// The SPF conformance suites (tests/corpora/spf/): every test id of the openspf RFC 7208 and
// RFC 4408 suites, the blitiri extras and the mail-auth files is its own Boost.Test case,
// registered at start-up from the YAML (suite per file, then per scenario). Each case serves its
// scenario's zonedata from a ZoneResolver (answers queued and delivered by the case's loop, as a
// real resolver would) and runs SpfEvaluator::start on it.
//
// known-differences.txt lists the test ids whose result still differs, with the reason; a case
// fails when its result changes against that list, in either direction, so the list stays
// true. The mail-auth files are read line by line (they are not YAML). The scores per suite are
// printed at the end ("spf rfc7208: 203/203").
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "spf_evaluator.h"
#include "spf_suite_cases.h"
#include "zone_resolver.h"

using namespace portcullis;
namespace utf = boost::unit_test;

namespace {

struct Score {
  std::size_t passed = 0;
  std::size_t total = 0;
};

std::map<std::string, Score>& scores() {
  static std::map<std::string, Score> table;
  return table;
}

// "suite test-id" → reason.
std::map<std::string, std::string>& known_differences() {
  static std::map<std::string, std::string> table;
  return table;
}

std::set<std::string>& registered_keys() {
  static std::set<std::string> keys;
  return keys;
}

void load_known_differences(const std::string& path) {
  std::istringstream lines(read_whole_file(path));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string suite, id, reason;
    fields >> suite >> id;
    std::getline(fields, reason);
    known_differences()[suite + " " + id] = reason;
  }
}

void run_case(const SpfCase& spf_case) {
  ZoneResolver zone;
  spf_case.load_zone(zone);
  SpfRequest request;
  auto client = IpAddress::parse(spf_case.host);
  BOOST_REQUIRE_MESSAGE(client.has_value(), "client address " << spf_case.host);
  request.client = *client;
  request.sender = spf_case.mailfrom;
  request.helo = spf_case.helo;
  request.receiver = spf_case.receiver;

  std::vector<SpfResult> results;
  auto evaluator = std::make_unique<SpfEvaluator>(zone);
  auto immediate =
      evaluator->start(request, [&](SpfResult result) { results.push_back(std::move(result)); });
  BOOST_TEST(results.empty(), "no callback from start()");
  zone.run();
  if (immediate) {
    BOOST_TEST(results.empty(), "no callback after an immediate result");
    results.push_back(*immediate);
  }
  BOOST_REQUIRE_EQUAL(results.size(), 1u);
  BOOST_TEST(zone.pending() == 0u);
  const SpfResult& result = results.front();

  const std::string got(spf_verdict_name(result.verdict));
  const auto& accepted = spf_case.accepted;
  bool ok = std::find(accepted.begin(), accepted.end(), got) != accepted.end();
  std::string expected;
  for (const auto& one : accepted)
    expected += (expected.empty() ? "" : " or ") + one;
  std::string detail = "result " + got + " (" + result.reason + "), expected " + expected;
  if (ok && spf_case.explanation && result.verdict == SpfVerdict::fail) {
    const std::string explanation = result.explanation.empty() ? "DEFAULT" : result.explanation;
    if (explanation != *spf_case.explanation) {
      ok = false;
      detail = "explanation '" + explanation + "', expected '" + *spf_case.explanation + "'";
    }
  }
  Score& score = scores()[spf_case.suite];
  ++score.total;
  if (ok) ++score.passed;
  const auto known = known_differences().find(spf_case.suite + " " + spf_case.id);
  if (known == known_differences().end()) {
    BOOST_TEST(ok, spf_case.suite << " " << spf_case.id << ": " << detail);
  } else {
    BOOST_TEST(!ok, spf_case.suite << " " << spf_case.id
                                   << " now passes: remove it from known-differences.txt");
  }
}

void check_known_differences_exist() {
  for (const auto& [key, reason] : known_differences())
    BOOST_TEST(registered_keys().count(key) == 1u,
               "known-differences.txt names " << key << ", which is no test");
}

std::string case_name(std::string text) {
  for (char& c : text)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  return text;
}

void add_case(utf::test_suite* suite, std::shared_ptr<SpfCase> spf_case) {
  registered_keys().insert(spf_case->suite + " " + spf_case->id);
  suite->add(utf::make_test_case([spf_case] { run_case(*spf_case); }, case_name(spf_case->id),
                                 __FILE__, __LINE__));
}

// One suite per file, then one per scenario (YAML) or file (mail-auth), then the cases.
void add_cases(const std::string& suite_name, const std::vector<SpfCase>& cases) {
  auto* file_suite = BOOST_TEST_SUITE(case_name(suite_name));
  utf::test_suite* scenario_suite = nullptr;
  std::string scenario;
  for (const auto& spf_case : cases) {
    if (scenario_suite == nullptr || spf_case.scenario != scenario) {
      scenario = spf_case.scenario;
      scenario_suite = BOOST_TEST_SUITE(case_name(scenario));
      file_suite->add(scenario_suite);
    }
    add_case(scenario_suite, std::make_shared<SpfCase>(spf_case));
  }
  utf::framework::master_test_suite().add(file_suite);
}

bool register_suites() {
  const std::string corpora = environment_value("PORTCULLIS_CORPORA");
  load_known_differences(environment_value("PORTCULLIS_SOURCE_ROOT") +
                         "/tests/conformance/spf/known-differences.txt");
  for (const auto& file : openspf_suite_files())
    add_cases(file.name, openspf_cases(file.name, read_whole_file(corpora + "/" + file.path)));
  std::vector<SpfCase> mail_auth;
  for (const auto& stem : mail_auth_stems())
    for (auto& spf_case :
         mail_auth_cases(stem, read_whole_file(corpora + "/spf/mail-auth/" + stem + ".yml")))
      mail_auth.push_back(std::move(spf_case));
  add_cases("mail_auth", mail_auth);
  utf::framework::master_test_suite().add(utf::make_test_case(
      &check_known_differences_exist, "known_differences_name_tests", __FILE__, __LINE__));
  return true;
}

}  // namespace

int main(int argc, char* argv[]) {
  const int status = utf::unit_test_main(&register_suites, argc, argv);
  for (const auto& [suite, score] : scores())
    std::cout << "spf " << suite << ": " << score.passed << "/" << score.total << "\n";
  return status;
}
