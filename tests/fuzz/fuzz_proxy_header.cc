// libFuzzer target for ProxyHeaderParser. Beyond "no crash, no sanitizer report" it aborts when
// a result breaks the parser's contract:
//  - consumed never exceeds the input and is 0 unless done;
//  - done means a complete header of the kind the input starts with (a v1 line ending in CRLF
//    within 107 octets, or exactly 16 + the declared length for v2), with two addresses or none
//    when local; each is IPv4 or IPv6, and never an IPv4-mapped IPv6 address (those enter as
//    IPv4, so the two may differ in family);
//  - need_more only while the input is shorter than kMaxHeaderSize;
//  - an error has a reason made of printable ASCII (never raw input bytes);
//  - the first prefix of the input that decides (as a listener reading one byte at a time would
//    see) decides exactly as the whole input does, and the header bytes alone give the same.
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "proxy_header.h"

namespace {

using portcullis::NetAddress;
using portcullis::ProxyHeaderParser;
using Result = ProxyHeaderParser::Result;
using Status = ProxyHeaderParser::Status;

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::string_view kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);

void require(bool condition) {
  if (!condition) std::abort();
}

bool same_address(const std::optional<NetAddress>& a, const std::optional<NetAddress>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a) return true;
  return a->length == b->length && std::memcmp(&a->storage, &b->storage, a->length) == 0;
}

bool same_result(const Result& a, const Result& b) {
  return a.status == b.status && a.consumed == b.consumed && a.local == b.local &&
         a.error == b.error && same_address(a.source, b.source) &&
         same_address(a.destination, b.destination);
}

void require_valid_address(const std::optional<NetAddress>& address) {
  require(address.has_value());
  const int family = address->storage.ss_family;
  require(family == AF_INET || family == AF_INET6);
  require(address->length == (family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6)));
  if (family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address->storage);
    require(!IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr));
  }
}

void require_consistent(const Result& result, std::string_view input) {
  switch (result.status) {
    case Status::need_more:
      require(result.consumed == 0 && result.error.empty());
      require(input.size() < ProxyHeaderParser::kMaxHeaderSize);
      break;
    case Status::error:
      require(result.consumed == 0 && !result.error.empty());
      for (const char c : result.error)
        require(c >= 0x20 && c < 0x7F);
      break;
    case Status::done: {
      require(result.error.empty());
      require(result.consumed > 0 && result.consumed <= input.size());
      const std::string_view header = input.substr(0, result.consumed);
      if (header.starts_with(kV1Prefix)) {
        require(header.size() <= ProxyHeaderParser::kMaxV1LineLength);
        require(header.ends_with("\r\n"));
        require(header.find('\n') == header.size() - 1);
      } else {
        require(header.starts_with(kV2Signature) && header.size() >= 16);
        const size_t declared =
            static_cast<unsigned char>(header[14]) << 8 | static_cast<unsigned char>(header[15]);
        require(header.size() == 16 + declared);
        require(declared <= ProxyHeaderParser::kMaxV2DeclaredLength);
      }
      if (result.local) {
        require(!result.source.has_value() && !result.destination.has_value());
      } else {
        require_valid_address(result.source);
        require_valid_address(result.destination);
      }
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const ProxyHeaderParser parser;
  const Result whole = parser.feed(input);
  require_consistent(whole, input);

  // A decision never needs more than kMaxHeaderSize bytes, so the walk is bounded.
  const size_t longest = std::min(input.size(), ProxyHeaderParser::kMaxHeaderSize);
  for (size_t length = 0; length <= longest; ++length) {
    const std::string_view prefix = input.substr(0, length);
    const Result partial = parser.feed(prefix);
    require_consistent(partial, prefix);
    if (partial.status != Status::need_more) {
      require(same_result(partial, whole));
      break;
    }
  }
  if (whole.status == Status::done) {
    require(same_result(parser.feed(input.substr(0, whole.consumed)), whole));
  }
  return 0;
}
