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

#include "conformance_scoreboard.h"
#include "spf_evaluator.h"
#include "spf_suite_cases.h"
#include "zone_resolver.h"

using namespace portcullis;
namespace utf = boost::unit_test;

namespace {

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
  test::ConformanceScoreboard::instance().judge(spf_case.suite, spf_case.id, ok, detail);
}

void add_case(utf::test_suite* suite, std::shared_ptr<SpfCase> spf_case) {
  test::ConformanceScoreboard::instance().register_case(spf_case->suite, spf_case->id);
  suite->add(utf::make_test_case([spf_case] { run_case(*spf_case); },
                                 test::conformance_case_name(spf_case->id), __FILE__, __LINE__));
}

// One suite per file, then one per scenario (YAML) or file (mail-auth), then the cases.
void add_cases(const std::string& suite_name, const std::vector<SpfCase>& cases) {
  auto* file_suite = BOOST_TEST_SUITE(test::conformance_case_name(suite_name));
  utf::test_suite* scenario_suite = nullptr;
  std::string scenario;
  for (const auto& spf_case : cases) {
    if (scenario_suite == nullptr || spf_case.scenario != scenario) {
      scenario = spf_case.scenario;
      scenario_suite = BOOST_TEST_SUITE(test::conformance_case_name(scenario));
      file_suite->add(scenario_suite);
    }
    add_case(scenario_suite, std::make_shared<SpfCase>(spf_case));
  }
  utf::framework::master_test_suite().add(file_suite);
}

bool register_suites() {
  const std::string corpora = environment_value("PORTCULLIS_CORPORA");
  auto& board = test::ConformanceScoreboard::instance();
  board.load_known_differences(read_whole_file(environment_value("PORTCULLIS_SOURCE_ROOT") +
                                               "/tests/conformance/spf/known-differences.txt"));
  for (const auto& file : openspf_suite_files())
    add_cases(file.name, openspf_cases(file.name, read_whole_file(corpora + "/" + file.path)));
  std::vector<SpfCase> mail_auth;
  for (const auto& stem : mail_auth_stems())
    for (auto& spf_case :
         mail_auth_cases(stem, read_whole_file(corpora + "/spf/mail-auth/" + stem + ".yml")))
      mail_auth.push_back(std::move(spf_case));
  add_cases("mail_auth", mail_auth);
  utf::framework::master_test_suite().add(
      utf::make_test_case([&board] { board.check_known_differences_exist(); },
                          "known_differences_name_tests", __FILE__, __LINE__));
  return true;
}

}  // namespace

int main(int argc, char* argv[]) {
  const int status = utf::unit_test_main(&register_suites, argc, argv);
  test::ConformanceScoreboard::instance().print_scores("spf");
  return status;
}
