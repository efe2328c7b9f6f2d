// The DKIM corpora (tests/corpora/dkim/), each message its own Boost.Test case. Keys are served
// from a ZoneResolver built from the corpus's key file (answers queued and delivered by the
// case, as a real resolver would), and the message is streamed into a DkimVerification in odd
// chunks, as the session hands it over.
//
//   - rfc8463: RFC 8463 A.3 (mail-auth 001.txt), production defaults: both signatures pass.
//   - dkimpy: the static vectors pass under production defaults; rfc6376.signed.rsa.msg with
//     each broken key record of dkimpy does not.
//   - mail-auth: real messages, production defaults, upstream expects pass.
//   - mail-dkim-perl: the Mail::DKIM corpus under the corpus profile (min_key_bits 512,
//     allow_sha1) against t/verifier.t's pass/fail/invalid (invalid = our permerror);
//     DomainKeys-only, pre-standard (no v=) and draft v=0.5 files are not applicable.
//   - mail-dkim-perl-rfc8301: the same files under production defaults: every signature keeps
//     its corpus-profile result except that a verified rsa-sha1 signature, or one with an RSA
//     key under 1024 bits, is `policy` (RFC 8301).
//
// known-differences.txt lists the cases whose result differs from the corpus's expectation,
// with the reason; a case fails when its result changes against that list, in either
// direction. The scores are printed at the end ("dkim mail-dkim-perl: 27/32").
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "conformance_scoreboard.h"
#include "dkim_library.h"
#include "dkim_verification.h"
#include "zone_resolver.h"

using namespace portcullis;
namespace utf = boost::unit_test;

namespace {

std::string environment_value(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) throw std::runtime_error(std::string(name) + " is not set");
  return value;
}

std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string corpora() {
  return environment_value("PORTCULLIS_CORPORA") + "/dkim/";
}

// LF line ends (mail-auth) as CRLF, leaving existing CRLFs alone.
std::string with_crlf(const std::string& text) {
  std::string out;
  out.reserve(text.size() + text.size() / 20);
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out += '\r';
    out += text[i];
  }
  return out;
}

// Key lines "<name> <TXT value>" (libopendkim's DKIM_QUERY_FILE format, FAKE_DNS.dat's
// sentinels included) into the zone.
void load_keys(const std::string& text, ZoneResolver& zone) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    const auto space = line.find_first_of(" \t");
    if (space == std::string::npos) continue;
    const std::string name = line.substr(0, space);
    const auto value_start = line.find_first_not_of(" \t", space);
    const std::string value = value_start == std::string::npos ? "" : line.substr(value_start);
    if (value == "NXDOMAIN") continue;  // unknown names are NXDOMAIN
    if (value == "~~Query timed out~~") {
      zone.time_out(name, DnsType::txt);
    } else if (value == "~~SERVFAIL~~") {
      zone.serve_failure(name);
    } else if (value == "\"\"") {
      zone.add_txt(name, {""});
    } else {
      zone.add_txt(name, {value});
    }
  }
}

DkimSettings production() {
  return DkimSettings{};
}

DkimSettings corpus_profile() {
  DkimSettings settings;
  settings.min_key_bits = 512;
  settings.allow_sha1 = true;
  return settings;
}

// Every pass counted, and those decided by the cached-key check (dkim_cached_key_check.h)
// rather than by libopendkim: printed at the end, so a run shows the corpora went through it.
struct PassCounts {
  std::size_t passes = 0;
  std::size_t with_cached_key = 0;
};
PassCounts& pass_counts() {
  static PassCounts counts;
  return counts;
}

DkimOutcome verify(const DkimSettings& settings, const std::string& keys,
                   const std::string& message) {
  std::string error;
  std::shared_ptr<const DkimLibrary> library =
      DkimLibrary::create(settings, DkimVerification::callbacks(), error);
  BOOST_REQUIRE_MESSAGE(library != nullptr, error);
  ZoneResolver zone;
  load_keys(keys, zone);
  DkimVerification verification(library, &zone);
  // Odd chunks, so boundaries fall inside CRLFs and inside the header's end.
  for (std::size_t at = 0; at < message.size(); at += 97)
    verification.feed(std::string_view(message).substr(at, 97));
  verification.end_of_message();
  zone.run();
  BOOST_REQUIRE(verification.keys_ready());
  BOOST_TEST(zone.pending() == 0u);
  DkimOutcome outcome = verification.finish();
  for (const auto& signature : outcome.signatures)
    if (signature.verdict == DkimVerdict::pass || signature.verdict == DkimVerdict::policy)
      ++pass_counts().passes;
  pass_counts().with_cached_key += verification.passed_with_cached_key();
  return outcome;
}

std::string describe(const DkimOutcome& outcome) {
  std::string text = std::string(dkim_verdict_name(outcome.verdict));
  if (!outcome.reason.empty()) text += " (" + outcome.reason + ")";
  for (const auto& signature : outcome.signatures) {
    text += "; d=" + signature.domain + " s=" + signature.selector + " a=" + signature.algorithm +
            ": " + std::string(dkim_verdict_name(signature.verdict));
    if (!signature.reason.empty()) text += " (" + signature.reason + ")";
  }
  return text;
}

// Counts the case and checks it against known-differences.txt.
void judge(const std::string& set, const std::string& file, bool ok, const std::string& detail) {
  BOOST_TEST_MESSAGE(set << " " << file << ": " << detail);
  test::ConformanceScoreboard::instance().judge(set, file, ok, detail);
}

// "001.txt" of mail-auth: the key lines, a blank line, the message (LF).
std::pair<std::string, std::string> split_mail_auth(const std::string& text) {
  const auto blank = text.find("\n\n");
  BOOST_REQUIRE(blank != std::string::npos);
  return {text.substr(0, blank + 1), with_crlf(text.substr(blank + 2))};
}

void rfc8463_case() {
  auto [keys, message] = split_mail_auth(read_whole_file(corpora() + "mail-auth/001.txt"));
  const DkimOutcome outcome = verify(production(), keys, message);
  BOOST_REQUIRE_EQUAL(outcome.signatures.size(), 2u);
  BOOST_TEST(outcome.signatures[0].algorithm == "ed25519-sha256");
  BOOST_TEST(outcome.signatures[1].algorithm == "rsa-sha256");
  bool ok = outcome.verdict == DkimVerdict::pass;
  for (const auto& signature : outcome.signatures)
    ok = ok && signature.verdict == DkimVerdict::pass;
  BOOST_TEST(outcome.passing_domains == std::vector<std::string>{"football.example.com"});
  judge("rfc8463", "001.txt", ok, describe(outcome));
}

void mail_auth_case(const std::string& file) {
  auto [keys, message] = split_mail_auth(read_whole_file(corpora() + "mail-auth/" + file));
  const DkimOutcome outcome = verify(production(), keys, message);
  judge("mail-auth", file, outcome.verdict == DkimVerdict::pass, describe(outcome));
}

void dkimpy_pass_case(const std::string& file) {
  const std::string keys = read_whole_file(corpora() + "dkimpy/dns-keys.derived.txt");
  const DkimOutcome outcome =
      verify(production(), keys, with_crlf(read_whole_file(corpora() + "dkimpy/" + file)));
  bool ok = outcome.verdict == DkimVerdict::pass && !outcome.signatures.empty();
  for (const auto& signature : outcome.signatures)
    ok = ok && signature.verdict == DkimVerdict::pass;
  judge("dkimpy", file, ok, describe(outcome));
}

// rfc6376.signed.rsa.msg (s=test, d=football.example.com) with a broken key record in place of
// test.txt: the signature must not pass.
void dkimpy_bad_key_case(const std::string& key_file) {
  std::string record = read_whole_file(corpora() + "dkimpy/" + key_file);
  while (!record.empty() && (record.back() == '\n' || record.back() == '\r'))
    record.pop_back();
  const std::string keys = "test._domainkey.football.example.com " + record + "\n";
  const DkimOutcome outcome = verify(
      production(), keys, with_crlf(read_whole_file(corpora() + "dkimpy/rfc6376.signed.rsa.msg")));
  BOOST_REQUIRE_EQUAL(outcome.signatures.size(), 1u);
  judge("dkimpy", "rfc6376.signed.rsa.msg+" + key_file,
        outcome.verdict == DkimVerdict::permerror || outcome.verdict == DkimVerdict::fail,
        describe(outcome));
}

struct PerlCase {
  std::string file;
  std::string kind;
  std::string expected;  // pass, fail, invalid
};

std::vector<PerlCase> perl_cases() {
  std::vector<PerlCase> cases;
  std::istringstream lines(
      read_whole_file(corpora() + "mail-dkim-perl/expected-results.derived.tsv"));
  std::string line;
  bool header = true;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (header) {  // the column names
      header = false;
      continue;
    }
    std::istringstream fields(line);
    PerlCase perl_case;
    std::getline(fields, perl_case.file, '\t');
    std::getline(fields, perl_case.kind, '\t');
    std::getline(fields, perl_case.expected, '\t');
    perl_case.expected = perl_case.expected.substr(0, perl_case.expected.find(' '));
    cases.push_back(perl_case);
  }
  return cases;
}

// DomainKeys (RFC 4870) is not DKIM; signatures without v= and v=0.5 are drafts from before
// RFC 4871, which RFC 6376 §3.5 ("v= … MUST be 1") does not accept either.
bool perl_case_applies(const PerlCase& perl_case) {
  return perl_case.kind.rfind("domainkeys", 0) != 0 &&
         perl_case.kind.find("no-v-tag") == std::string::npos && perl_case.kind != "dkim-v=0.5";
}

std::string mail_dkim_name(DkimVerdict verdict) {
  return verdict == DkimVerdict::permerror ? "invalid" : std::string(dkim_verdict_name(verdict));
}

std::string perl_message(const PerlCase& perl_case) {
  return read_whole_file(corpora() + "mail-dkim-perl/corpus/" + perl_case.file);
}

std::string perl_keys() {
  return read_whole_file(corpora() + "mail-dkim-perl/FAKE_DNS.dat");
}

void perl_corpus_case(const PerlCase& perl_case) {
  const DkimOutcome outcome = verify(corpus_profile(), perl_keys(), perl_message(perl_case));
  const std::string got = mail_dkim_name(outcome.verdict);
  judge("mail-dkim-perl", perl_case.file, got == perl_case.expected,
        "got " + describe(outcome) + ", Mail::DKIM expects " + perl_case.expected);
}

bool refused_by_rfc8301(const DkimSignatureResult& signature) {
  if (signature.algorithm == "rsa-sha1") return true;
  return signature.algorithm.rfind("rsa-", 0) == 0 && signature.key_bits < 1024;
}

void perl_production_case(const PerlCase& perl_case) {
  const DkimOutcome relaxed = verify(corpus_profile(), perl_keys(), perl_message(perl_case));
  const DkimOutcome strict = verify(production(), perl_keys(), perl_message(perl_case));
  BOOST_REQUIRE_EQUAL(strict.signatures.size(), relaxed.signatures.size());
  DkimVerdict expected = DkimVerdict::none;
  bool signatures_agree = true;
  for (std::size_t i = 0; i < relaxed.signatures.size(); ++i) {
    DkimVerdict want = relaxed.signatures[i].verdict;
    if (want == DkimVerdict::pass && refused_by_rfc8301(relaxed.signatures[i]))
      want = DkimVerdict::policy;
    expected = better_dkim_verdict(expected, want);
    signatures_agree = signatures_agree && strict.signatures[i].verdict == want;
  }
  if (relaxed.signatures.empty()) expected = relaxed.verdict;
  judge(
      "mail-dkim-perl-rfc8301", perl_case.file, signatures_agree && strict.verdict == expected,
      "got " + describe(strict) + ", RFC 8301 expects " + std::string(dkim_verdict_name(expected)));
}

void add(utf::test_suite* suite, const std::string& set, const std::string& file,
         std::function<void()> body) {
  test::ConformanceScoreboard::instance().register_case(set, file);
  suite->add(
      utf::make_test_case(std::move(body), test::conformance_case_name(file), __FILE__, __LINE__));
}

bool register_suites() {
  auto& board = test::ConformanceScoreboard::instance();
  board.load_known_differences(read_whole_file(environment_value("PORTCULLIS_SOURCE_ROOT") +
                                               "/tests/conformance/dkim/known-differences.txt"));
  auto* rfc8463 = BOOST_TEST_SUITE("rfc8463");
  add(rfc8463, "rfc8463", "001.txt", rfc8463_case);
  utf::framework::master_test_suite().add(rfc8463);

  auto* dkimpy = BOOST_TEST_SUITE("dkimpy");
  for (const std::string file :
       {"rfc6376.signed.msg", "rfc6376.signed.rsa.msg", "ed25519test2.msg", "test2.message"})
    add(dkimpy, "dkimpy", file, [file] { dkimpy_pass_case(file); });
  for (const std::string key : {"badversion.txt", "badk.txt", "test_bad.txt", "test_tlsrpt.txt"})
    add(dkimpy, "dkimpy", "rfc6376.signed.rsa.msg+" + key, [key] { dkimpy_bad_key_case(key); });
  utf::framework::master_test_suite().add(dkimpy);

  auto* mail_auth = BOOST_TEST_SUITE("mail_auth");
  for (const std::string file : {"001.txt", "002.txt", "003.txt", "004.txt", "005.txt", "006.txt"})
    add(mail_auth, "mail-auth", file, [file] { mail_auth_case(file); });
  utf::framework::master_test_suite().add(mail_auth);

  auto* perl = BOOST_TEST_SUITE("mail_dkim_perl");
  auto* perl_strict = BOOST_TEST_SUITE("mail_dkim_perl_rfc8301");
  std::size_t not_applicable = 0;
  for (const auto& perl_case : perl_cases()) {
    if (!perl_case_applies(perl_case)) {
      ++not_applicable;
      continue;
    }
    add(perl, "mail-dkim-perl", perl_case.file, [perl_case] { perl_corpus_case(perl_case); });
    add(perl_strict, "mail-dkim-perl-rfc8301", perl_case.file,
        [perl_case] { perl_production_case(perl_case); });
  }
  std::cout << "dkim mail-dkim-perl not applicable (DomainKeys, pre-standard, v=0.5): "
            << not_applicable << "\n";
  utf::framework::master_test_suite().add(perl);
  utf::framework::master_test_suite().add(perl_strict);
  utf::framework::master_test_suite().add(utf::make_test_case(
      [&board] {
        BOOST_TEST(board.has_known_differences());
        board.check_known_differences_exist();
      },
      "known_differences_name_cases", __FILE__, __LINE__));
  return true;
}

}  // namespace

int main(int argc, char* argv[]) {
  const int status = utf::unit_test_main(&register_suites, argc, argv);
  test::ConformanceScoreboard::instance().print_scores("dkim");
  std::cout << "dkim signatures verified (pass or policy): " << pass_counts().passes
            << ", of them with a cached key: " << pass_counts().with_cached_key << "\n";
  return status;
}
