// One-off measurement (issue 14), not a test: a 20 MB message signed rsa-sha256
// relaxed/relaxed with the RFC 8463 A.1 RSA key, verified (a) streaming — the body hashed in
// 64 kB chunks as it arrives, end of data then only runs dkim_eom — and (b) all at end of data —
// every byte fed at the data hook. Prints the CPU time of each and the delay each adds at end
// of data. Run by hand: build/tests/bench/bench_dkim_streaming (needs PORTCULLIS_CORPORA).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include "dkim_library.h"
#include "dkim_verification.h"
#include "zone_resolver.h"

// dkim.h uses _Bool and includes <stdbool.h> only under HAVE_STDBOOL_H.
#include <stdbool.h>
// clang-format off
#include <dkim.h>
// clang-format on

using namespace portcullis;

namespace {

constexpr std::size_t kMessageBytes = 20 * 1024 * 1024;
constexpr std::size_t kChunk = 64 * 1024;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

double cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string signed_message(const std::string& private_key) {
  const std::string header =
      "From: Joe SixPack <joe@football.example.com>\r\n"
      "To: Suzie Q <suzie@shopping.example.net>\r\n"
      "Subject: a large attachment\r\n"
      "Date: Fri, 11 Jul 2003 21:00:37 -0700\r\n"
      "Message-ID: <large@football.example.com>\r\n";
  std::string body;
  body.reserve(kMessageBytes + 100);
  const std::string line =
      "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n";
  while (body.size() < kMessageBytes)
    body += line;

  DKIM_LIB* library = dkim_init(nullptr, nullptr);
  DKIM_STAT status = DKIM_STAT_OK;
  std::string key = private_key;  // dkim_sign takes a non-const key
  DKIM* signer = dkim_sign(
      library, reinterpret_cast<const unsigned char*>("bench"), nullptr,
      reinterpret_cast<unsigned char*>(key.data()), reinterpret_cast<const unsigned char*>("test"),
      reinterpret_cast<const unsigned char*>("football.example.com"), DKIM_CANON_RELAXED,
      DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &status);
  if (signer == nullptr) throw std::runtime_error("dkim_sign failed");
  std::istringstream fields(header);
  std::string field;
  while (std::getline(fields, field)) {
    if (!field.empty() && field.back() == '\r') field.pop_back();
    dkim_header(signer, reinterpret_cast<unsigned char*>(field.data()), field.size());
  }
  dkim_eoh(signer);
  dkim_body(signer, reinterpret_cast<unsigned char*>(body.data()), body.size());
  if (dkim_eom(signer, nullptr) != DKIM_STAT_OK) throw std::runtime_error("dkim_eom failed");
  unsigned char signature[4096];
  if (dkim_getsighdr(signer, signature, sizeof signature, std::strlen("DKIM-Signature: ")) !=
      DKIM_STAT_OK)
    throw std::runtime_error("dkim_getsighdr failed");
  dkim_free(signer);
  dkim_close(library);
  return "DKIM-Signature: " + std::string(reinterpret_cast<char*>(signature)) + "\r\n" + header +
         "\r\n" + body;
}

struct Run {
  double cpu = 0;          // whole verification
  double end_of_data = 0;  // wall time from end of data to the verdict
  std::string verdict;
};

Run verify(std::shared_ptr<const DkimLibrary> library, const std::string& key_record,
           const std::string& message, bool streaming) {
  ZoneResolver zone;
  zone.add_txt("test._domainkey.football.example.com", {key_record});
  Run run;
  const double cpu_start = cpu_seconds();
  DkimVerification verification(library, &zone);
  if (streaming) {
    for (std::size_t at = 0; at < message.size(); at += kChunk) {
      verification.feed(std::string_view(message).substr(at, kChunk));
      zone.run();  // the key answers while the body arrives
    }
  }
  const double end_start = wall_seconds();
  if (!streaming) {
    for (std::size_t at = 0; at < message.size(); at += kChunk)
      verification.feed(std::string_view(message).substr(at, kChunk));
    zone.run();
  }
  verification.end_of_message();
  const DkimOutcome outcome = verification.finish();
  run.end_of_data = wall_seconds() - end_start;
  run.cpu = cpu_seconds() - cpu_start;
  run.verdict = std::string(dkim_verdict_name(outcome.verdict));
  return run;
}

}  // namespace

int main() {
  const char* corpora = std::getenv("PORTCULLIS_CORPORA");
  if (corpora == nullptr) {
    std::fprintf(stderr, "PORTCULLIS_CORPORA is not set (tests/corpora)\n");
    return 2;
  }
  const std::string dkimpy = std::string(corpora) + "/dkim/dkimpy/";
  std::string key_record = read_file(dkimpy + "test.txt");
  while (!key_record.empty() && (key_record.back() == '\n' || key_record.back() == '\r'))
    key_record.pop_back();
  const std::string message = signed_message(read_file(dkimpy + "test.private"));
  std::string error;
  std::shared_ptr<const DkimLibrary> library =
      DkimLibrary::create(DkimSettings{}, DkimVerification::callbacks(), error);
  if (!library) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  std::printf("message: %zu bytes, rsa-sha256 relaxed/relaxed, fed in %zu-byte chunks\n",
              message.size(), kChunk);
  for (int round = 0; round < 3; ++round) {
    for (bool streaming : {true, false}) {
      const Run run = verify(library, key_record, message, streaming);
      std::printf("%-10s verdict %-5s cpu %7.1f ms  added at end of data %7.2f ms\n",
                  streaming ? "streaming" : "at-end", run.verdict.c_str(), run.cpu * 1e3,
                  run.end_of_data * 1e3);
    }
  }
  return 0;
}
