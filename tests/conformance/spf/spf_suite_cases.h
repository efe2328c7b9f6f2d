// The SPF conformance suites of tests/corpora/spf/ as test cases: the openspf RFC 7208 and
// RFC 4408 suites and the blitiri extras (YAML), and the mail-auth files (line by line). Each
// case carries its zone as a function that fills a ZoneResolver, so the conformance and the
// oracle tests serve exactly the same data.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "zone_resolver.h"

namespace portcullis {

struct SpfSuiteFile {
  std::string name;  // "rfc7208": the score's and the difference lists' key
  std::string path;  // under PORTCULLIS_CORPORA
};

// The YAML suites, in order.
const std::vector<SpfSuiteFile>& openspf_suite_files();
// The mail-auth file stems ("a", "all", …), in order.
const std::vector<std::string>& mail_auth_stems();

// One test, whatever its suite's format.
struct SpfCase {
  std::string suite;
  std::string scenario;  // the YAML scenario's description, or the mail-auth file stem
  std::string id;
  std::function<void(ZoneResolver&)> load_zone;
  std::string host;
  std::string mailfrom;
  std::string helo;
  std::string receiver;
  std::vector<std::string> accepted;       // any of them passes
  std::optional<std::string> explanation;  // compared for fail results when given
};

// The value of an environment variable; throws when unset.
std::string environment_value(const char* name);
std::string read_whole_file(const std::string& path);

// Every case of one YAML suite file (`text` is its content).
std::vector<SpfCase> openspf_cases(const std::string& suite, const std::string& text);
// Every case of one mail-auth file.
std::vector<SpfCase> mail_auth_cases(const std::string& stem, const std::string& text);

}  // namespace portcullis
