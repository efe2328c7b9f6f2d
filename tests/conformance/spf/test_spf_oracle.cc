// The libspf2 oracle (DESIGN §7): every case of the openspf RFC 7208 and RFC 4408 suites and
// the blitiri extras is evaluated by libspf2 1.2.10 (its in-memory zone layer, fed the same
// zone as our ZoneResolver) and by our evaluator. oracle-differences.txt lists every case
// where the two verdicts differ, with both verdicts and a class checked against the suite:
//   libspf2  ours agrees with the suite, libspf2 does not;
//   ours     libspf2 agrees with the suite, ours does not (so it is in known-differences.txt);
//   neither  neither agrees with the suite.
// A case fails when a difference is unlisted, a listed one is gone, or a verdict or class no
// longer holds. libspf2's zone layer knows no CNAME (those entries are left out) and its
// "(invalid)" result is mapped as NOTES §1.3 describes: DNS error → temperror, else permerror.
//
// The generated corpus (tests/corpora/spf/generated/records.yml, no expected results) is
// compared the same way against generated-differences.txt, where each difference belongs to a
// group whose class (libspf2 or ours) and RFC 7208 reasoning the file's header gives.
#include <boost/test/unit_test.hpp>

#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

extern "C" {
#include <spf2/spf.h>
#include <spf2/spf_dns_zone.h>
}

#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
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

struct ListedDifference {
  std::string libspf2;
  std::string ours;
  std::string classification;
};

std::map<std::string, ListedDifference>& listed() {
  static std::map<std::string, ListedDifference> table;
  return table;
}

std::set<std::string>& case_keys() {
  static std::set<std::string> keys;
  return keys;
}

struct Score {
  std::size_t agreements = 0;
  std::size_t evaluated = 0;
};

Score& suites_score() {
  static Score score;
  return score;
}

Score& generated_score() {
  static Score score;
  return score;
}

// generated-differences.txt: "# group NAME CLASS …" header lines, then "ID LIBSPF2 OURS GROUP".
struct GeneratedDifference {
  std::string libspf2;
  std::string ours;
  std::string group;
};

std::map<std::string, std::string>& group_classes() {
  static std::map<std::string, std::string> classes;
  return classes;
}

std::map<std::string, GeneratedDifference>& generated_listed() {
  static std::map<std::string, GeneratedDifference> table;
  return table;
}

std::set<std::string>& generated_ids() {
  static std::set<std::string> ids;
  return ids;
}

ns_type ns_type_of(DnsType type) {
  switch (type) {
    case DnsType::a:
      return ns_t_a;
    case DnsType::aaaa:
      return ns_t_aaaa;
    case DnsType::mx:
      return ns_t_mx;
    case DnsType::ptr:
      return ns_t_ptr;
    case DnsType::txt:
      return ns_t_txt;
  }
  return ns_t_any;
}

std::string libspf2_verdict(const SpfCase& spf_case) {
  ZoneResolver zone;
  spf_case.load_zone(zone);
  SPF_dns_server_t* dns = SPF_dns_zone_new(nullptr, "oracle", 0);
  BOOST_REQUIRE(dns != nullptr);
  for (const auto& entry : zone.entries()) {
    const char* name = entry.name.c_str();
    switch (entry.kind) {
      case ZoneEntry::Kind::record: {
        std::string data;
        if (entry.type == DnsType::txt) {
          for (const auto& piece : entry.record.strings)
            data += piece;
        } else if (entry.record.address) {
          data = entry.record.address->to_string();
        } else {
          data = entry.record.name;
        }
        SPF_dns_zone_add_str(dns, name, ns_type_of(entry.type), NETDB_SUCCESS, data.c_str());
        break;
      }
      case ZoneEntry::Kind::timeout_type:
        SPF_dns_zone_add_str(dns, name, ns_type_of(entry.type), TRY_AGAIN, nullptr);
        break;
      case ZoneEntry::Kind::timeout_unlisted:
      case ZoneEntry::Kind::servfail:
        SPF_dns_zone_add_str(dns, name, ns_t_any, TRY_AGAIN, nullptr);
        break;
      case ZoneEntry::Kind::cname:
        break;  // not supported by the zone layer
    }
  }
  SPF_server_t* server = SPF_server_new_dns(dns, 0);
  // %{r} must not be this machine's host name, so that results do not depend on it.
  SPF_server_set_rec_dom(server, spf_case.receiver.c_str());
  SPF_response_t* setup = nullptr;
  SPF_server_set_explanation(server, "DEFAULT", &setup);  // NULL here crashes libspf2
  if (setup != nullptr) SPF_response_free(setup);
  SPF_request_t* request = SPF_request_new(server);
  auto client = IpAddress::parse(spf_case.host);
  BOOST_REQUIRE(client.has_value());
  if (client->is_v4()) {
    SPF_request_set_ipv4_str(request, spf_case.host.c_str());
  } else {
    SPF_request_set_ipv6_str(request, spf_case.host.c_str());
  }
  SPF_request_set_helo_dom(request, spf_case.helo.c_str());
  SPF_request_set_env_from(request, spf_case.mailfrom.c_str());
  SPF_response_t* response = nullptr;
  const SPF_errcode_t error = SPF_request_query_mailfrom(request, &response);
  std::string verdict = "permerror";
  if (response != nullptr) {
    const SPF_result_t result = SPF_response_result(response);
    if (result == SPF_RESULT_INVALID) {
      verdict = error == SPF_E_DNS_ERROR ? "temperror" : "permerror";
    } else {
      verdict = SPF_strresult(result);
    }
    SPF_response_free(response);
  }
  SPF_request_free(request);
  SPF_server_free(server);
  SPF_dns_free(dns);
  return verdict;
}

std::string our_verdict(const SpfCase& spf_case) {
  ZoneResolver zone;
  spf_case.load_zone(zone);
  SpfRequest request;
  request.client = *IpAddress::parse(spf_case.host);
  request.sender = spf_case.mailfrom;
  request.helo = spf_case.helo;
  request.receiver = spf_case.receiver;
  std::vector<SpfResult> results;
  SpfEvaluator evaluator(zone);
  auto immediate = evaluator.start(request, [&](SpfResult r) { results.push_back(r); });
  zone.run();
  if (immediate) results.push_back(*immediate);
  BOOST_REQUIRE_EQUAL(results.size(), 1u);
  return std::string(spf_verdict_name(results.front().verdict));
}

void run_case(const SpfCase& spf_case) {
  const std::string key = spf_case.suite + " " + spf_case.id;
  const std::string theirs = libspf2_verdict(spf_case);
  const std::string ours = our_verdict(spf_case);
  ++suites_score().evaluated;
  const auto entry = listed().find(key);
  if (theirs == ours) {
    ++suites_score().agreements;
    BOOST_TEST((entry == listed().end()),
               key << ": both say " << ours << "; remove it from oracle-differences.txt");
    return;
  }
  const auto& accepted = spf_case.accepted;
  const bool ours_ok = std::find(accepted.begin(), accepted.end(), ours) != accepted.end();
  const bool theirs_ok = std::find(accepted.begin(), accepted.end(), theirs) != accepted.end();
  const std::string classification = ours_ok ? "libspf2" : (theirs_ok ? "ours" : "neither");
  if (entry == listed().end()) {
    BOOST_ERROR("unlisted difference: " << key << " " << theirs << " " << ours << " "
                                        << classification);
    return;
  }
  BOOST_TEST(entry->second.libspf2 == theirs, key << ": libspf2 now says " << theirs);
  BOOST_TEST(entry->second.ours == ours, key << ": ours now says " << ours);
  BOOST_TEST(entry->second.classification == classification,
             key << ": the class is now " << classification);
}

void run_generated_case(const SpfCase& spf_case) {
  const std::string theirs = libspf2_verdict(spf_case);
  const std::string ours = our_verdict(spf_case);
  ++generated_score().evaluated;
  const auto entry = generated_listed().find(spf_case.id);
  if (theirs == ours) {
    ++generated_score().agreements;
    BOOST_TEST(
        (entry == generated_listed().end()),
        spf_case.id << ": both say " << ours << "; remove it from generated-differences.txt");
    return;
  }
  if (entry == generated_listed().end()) {
    BOOST_ERROR("unlisted difference: " << spf_case.id << " " << theirs << " " << ours << " ("
                                        << spf_case.scenario << ")");
    return;
  }
  BOOST_TEST(entry->second.libspf2 == theirs, spf_case.id << ": libspf2 now says " << theirs);
  BOOST_TEST(entry->second.ours == ours, spf_case.id << ": ours now says " << ours);
}

void load_generated_listed(const std::string& path) {
  std::istringstream lines(read_whole_file(path));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("# group ", 0) == 0) {
      std::istringstream fields(line.substr(8));
      std::string name, classification;
      fields >> name >> classification;
      group_classes()[name] = classification;
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string id;
    GeneratedDifference difference;
    fields >> id >> difference.libspf2 >> difference.ours >> difference.group;
    generated_listed()[id] = difference;
  }
}

// Every listed difference names a case of the corpus and a group the header defines, and every
// group is classed libspf2 or ours and still has a difference: a difference nobody classified,
// or a reason nothing needs any more, is a failure.
void check_generated_listed() {
  std::set<std::string> used;
  for (const auto& [id, difference] : generated_listed())
    used.insert(difference.group);
  for (const auto& [name, classification] : group_classes()) {
    BOOST_TEST((classification == "libspf2" || classification == "ours"),
               "group " << name << " has class " << classification);
    BOOST_TEST(used.count(name) == 1u, "group " << name << " has no difference left");
  }
  for (const auto& [id, difference] : generated_listed()) {
    BOOST_TEST(generated_ids().count(id) == 1u,
               "generated-differences.txt names " << id << ", which is no generated case");
    BOOST_TEST(group_classes().count(difference.group) == 1u,
               id << ": group " << difference.group << " is not defined in the header");
  }
}

void load_listed(const std::string& path) {
  std::istringstream lines(read_whole_file(path));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string suite, id;
    ListedDifference difference;
    fields >> suite >> id >> difference.libspf2 >> difference.ours >> difference.classification;
    listed()[suite + " " + id] = difference;
  }
}

void check_listed_cases_exist() {
  for (const auto& [key, difference] : listed())
    BOOST_TEST(case_keys().count(key) == 1u,
               "oracle-differences.txt names " << key << ", which is no test");
}

std::string case_name(std::string text) {
  for (char& c : text)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  return text;
}

bool register_cases() {
  const std::string corpora = environment_value("PORTCULLIS_CORPORA");
  load_listed(environment_value("PORTCULLIS_SOURCE_ROOT") +
              "/tests/conformance/spf/oracle-differences.txt");
  for (const auto& file : openspf_suite_files()) {
    auto* suite = BOOST_TEST_SUITE(file.name);
    for (auto& spf_case : openspf_cases(file.name, read_whole_file(corpora + "/" + file.path))) {
      auto shared = std::make_shared<SpfCase>(std::move(spf_case));
      case_keys().insert(shared->suite + " " + shared->id);
      suite->add(utf::make_test_case([shared] { run_case(*shared); }, case_name(shared->id),
                                     __FILE__, __LINE__));
    }
    utf::framework::master_test_suite().add(suite);
  }
  utf::framework::master_test_suite().add(utf::make_test_case(
      &check_listed_cases_exist, "oracle_differences_name_tests", __FILE__, __LINE__));

  load_generated_listed(environment_value("PORTCULLIS_SOURCE_ROOT") +
                        "/tests/conformance/spf/generated-differences.txt");
  auto* generated = BOOST_TEST_SUITE("generated");
  for (auto& spf_case :
       openspf_cases("generated", read_whole_file(corpora + "/spf/generated/records.yml"))) {
    auto shared = std::make_shared<SpfCase>(std::move(spf_case));
    generated_ids().insert(shared->id);
    generated->add(utf::make_test_case([shared] { run_generated_case(*shared); },
                                       case_name(shared->id), __FILE__, __LINE__));
  }
  utf::framework::master_test_suite().add(generated);
  utf::framework::master_test_suite().add(utf::make_test_case(
      &check_generated_listed, "generated_differences_are_classified", __FILE__, __LINE__));
  return true;
}

}  // namespace

int main(int argc, char* argv[]) {
  const int status = utf::unit_test_main(&register_cases, argc, argv);
  std::cout << "spf oracle: libspf2 and ours agree on " << suites_score().agreements << "/"
            << suites_score().evaluated << "\n";
  std::cout << "spf oracle generated: libspf2 and ours agree on " << generated_score().agreements
            << "/" << generated_score().evaluated << "\n";
  return status;
}
