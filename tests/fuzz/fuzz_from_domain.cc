// libFuzzer target for the RFC5322.From domain extraction of the dmarc filter: the input is a
// header section as a client sends it. Whatever it holds, the answer is either an error with a
// reason or one domain DMARC can query: non-empty, lower-case, no white space or control
// bytes, no '@', quote, bracket or empty label. A second From field always makes it an error.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "from_domain.h"

using namespace portcullis;

namespace {

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view header(reinterpret_cast<const char*>(data), size);
  const FromDomain from = extract_from_domain(header);
  if (!from.ok()) {
    require(from.domain.empty(), "an error with a domain");
    return 0;
  }
  const std::string& domain = from.domain;
  require(!domain.empty(), "an empty domain");
  require(domain.front() != '.' && domain.back() != '.', "a domain with an edge dot");
  require(domain.find("..") == std::string::npos, "a domain with an empty label");
  for (char c : domain) {
    const auto byte = static_cast<unsigned char>(c);
    require(byte >= 0x80 || c == '.' || c == '-' || c == '_' || (c >= 'a' && c <= 'z') ||
                (c >= '0' && c <= '9'),
            "a byte a domain name cannot hold");
  }
  // The same header with one more From field in front: never a single author.
  const std::string doubled = "From: other@example.net\r\n" + std::string(header);
  const FromDomain twice = extract_from_domain(doubled);
  require(!twice.ok() || header.starts_with(" ") || header.starts_with("\t"),
          "two From fields gave a domain");
  return 0;
}
