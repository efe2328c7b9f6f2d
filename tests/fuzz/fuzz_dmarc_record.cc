// libFuzzer target for the DMARC record parser (a TXT record from the sender's DNS): a record
// that parses starts with v=DMARC1 and has a pct within 0..100; one that is not v=DMARC1 never
// parses.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "dmarc_record.h"

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
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool versioned = is_dmarc_record(text);
  const auto record = parse_dmarc_record(text);
  if (!record) return 0;
  require(versioned, "parsed a record without v=DMARC1 first");
  require(record->percent >= 0 && record->percent <= 100, "pct out of 0..100");
  const std::string_view name = dmarc_policy_name(record->policy);
  require(name == "none" || name == "quarantine" || name == "reject", "an unknown policy");
  return 0;
}
