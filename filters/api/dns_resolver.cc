#include "dns_resolver.h"

#include <fmt/format.h>

namespace portcullis {

std::string_view dns_type_name(DnsType type) {
  switch (type) {
    case DnsType::a:
      return "A";
    case DnsType::ptr:
      return "PTR";
    case DnsType::mx:
      return "MX";
    case DnsType::txt:
      return "TXT";
    case DnsType::aaaa:
      return "AAAA";
  }
  return "?";
}

std::string_view dns_outcome_name(DnsOutcome outcome) {
  switch (outcome) {
    case DnsOutcome::answer:
      return "answer";
    case DnsOutcome::no_data:
      return "no_data";
    case DnsOutcome::nxdomain:
      return "nxdomain";
    case DnsOutcome::temporary_failure:
      return "temporary_failure";
    case DnsOutcome::failure:
      return "failure";
  }
  return "?";
}

std::string reversed_labels(const IpAddress& address) {
  const IpAddress plain = address.unmapped();
  const auto& bytes = plain.bytes();
  std::string labels;
  if (plain.is_v4()) {
    labels = fmt::format("{}.{}.{}.{}", bytes[3], bytes[2], bytes[1], bytes[0]);
    return labels;
  }
  static constexpr char hex_digits[] = "0123456789abcdef";
  labels.reserve(63);
  for (int index = 15; index >= 0; --index) {
    if (!labels.empty()) labels += '.';
    labels += hex_digits[bytes[index] & 0x0f];
    labels += '.';
    labels += hex_digits[bytes[index] >> 4];
  }
  return labels;
}

std::string reverse_name(const IpAddress& address) {
  const IpAddress plain = address.unmapped();
  return reversed_labels(plain) + (plain.is_v4() ? ".in-addr.arpa" : ".ip6.arpa");
}

}  // namespace portcullis
