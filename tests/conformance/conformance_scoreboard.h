// What the conformance suites (SPF, DKIM) share: each case is a Boost.Test case of its own;
// its outcome is counted per set ("rfc7208", "mail-dkim-perl") and checked against the set's
// known-differences.txt ("SET ID REASON" lines): an unlisted case must agree, a listed one must
// still differ (so the file never goes stale), and every listed case must exist. The scores are
// printed after the run as "PREFIX SET: PASSED/TOTAL", which scripts/test.sh collects.
#pragma once

#include <boost/test/unit_test.hpp>

#include <cctype>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>

namespace portcullis::test {

class ConformanceScoreboard {
 public:
  static ConformanceScoreboard& instance() {
    static ConformanceScoreboard board;
    return board;
  }

  // The known-differences file's text; '#' lines and empty lines are skipped.
  void load_known_differences(const std::string& text) {
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream fields(line);
      std::string set, id, reason;
      fields >> set >> id;
      std::getline(fields, reason);
      known_[set + " " + id] = reason;
    }
  }

  void register_case(const std::string& set, const std::string& id) {
    registered_.insert(set + " " + id);
  }

  // One case's outcome, asserted against the known differences.
  void judge(const std::string& set, const std::string& id, bool ok, const std::string& detail) {
    Score& score = scores_[set];
    ++score.total;
    if (ok) ++score.passed;
    if (known_.count(set + " " + id) == 0) {
      BOOST_TEST(ok, set << " " << id << ": " << detail);
    } else {
      BOOST_TEST(!ok, set << " " << id << " now agrees (" << detail
                          << "): remove it from known-differences.txt");
    }
  }

  // A test case of its own: every listed difference names a registered case, with a reason.
  void check_known_differences_exist() const {
    for (const auto& [key, reason] : known_) {
      BOOST_TEST(registered_.count(key) == 1u,
                 "known-differences.txt names " << key << ", which is no case");
      BOOST_TEST(reason.size() > 10u, key << " has no reason");
    }
  }

  void print_scores(const std::string& prefix) const {
    for (const auto& [set, score] : scores_)
      std::cout << prefix << " " << set << ": " << score.passed << "/" << score.total << "\n";
  }

  bool has_known_differences() const { return !known_.empty(); }

 private:
  struct Score {
    std::size_t passed = 0;
    std::size_t total = 0;
  };
  std::map<std::string, Score> scores_;
  std::map<std::string, std::string> known_;  // "SET ID" → reason
  std::set<std::string> registered_;
};

// A Boost.Test case name from a test id or file name.
inline std::string conformance_case_name(std::string text) {
  for (char& c : text)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  return text;
}

}  // namespace portcullis::test
