// libFuzzer target for the SPF record parser. A record that parses must be one the evaluator
// can trust: within the term bound, CIDR lengths in range, every domain-spec valid, ip4/ip6
// networks of their family; anything longer than the record bound must be refused.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "spf_record.h"

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
  const SpfParseResult result = parse_spf_record(text);
  if (!result.record) {
    require(!result.error.empty(), "refused without a reason");
    return 0;
  }
  require(is_spf1_record(text), "parsed a record without the version");
  require(text.size() <= max_record_octets, "parsed a record past the length bound");
  const SpfRecord& record = *result.record;
  require(record.mechanisms.size() <= max_record_terms, "more mechanisms than the term bound");
  for (const auto& mechanism : record.mechanisms) {
    require(mechanism.cidr4 <= 32 && mechanism.cidr6 <= 128, "CIDR length out of range");
    switch (mechanism.kind) {
      case SpfMechanismKind::ip4:
        require(mechanism.network && mechanism.network->is_v4(), "ip4 without an IPv4 network");
        break;
      case SpfMechanismKind::ip6:
        require(mechanism.network && !mechanism.network->is_v4(), "ip6 without an IPv6 network");
        break;
      case SpfMechanismKind::include:
      case SpfMechanismKind::exists:
        require(!mechanism.domain_spec.empty(), "include/exists without a domain");
        [[fallthrough]];
      default:
        if (!mechanism.domain_spec.empty())
          require(!spf_domain_spec_error(mechanism.domain_spec), "invalid domain-spec kept");
    }
  }
  if (record.redirect) require(!spf_domain_spec_error(*record.redirect), "invalid redirect kept");
  if (record.exp) require(!spf_domain_spec_error(*record.exp), "invalid exp kept");
  // Parsing is a pure function of the text.
  const SpfParseResult again = parse_spf_record(text);
  require(again.record && again.record->mechanisms.size() == record.mechanisms.size(),
          "a second parse differs");
  return 0;
}
