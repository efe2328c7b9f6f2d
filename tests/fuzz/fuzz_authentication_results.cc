// libFuzzer target for the Authentication-Results writer's escaping (RFC 8601) and the reader
// that finds inbound copies claiming our authserv-id. The input picks the authserv-id and the
// entries (method, result, reason, properties: every byte possible, control bytes included).
// The header written must be exactly one field: CRLF only as folding (each continuation line
// starts with white space), no other control byte, every line within RFC 5322's 998 bytes,
// ending in CRLF; and the reader must find it again by its authserv-id. The raw input is also
// read as a header section: every range found lies inside it, in order, without overlap.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "authentication_results.h"

using namespace portcullis;

namespace {

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

void check_one_field(const std::string& field) {
  require(field.starts_with("Authentication-Results: "), "not an Authentication-Results field");
  require(field.size() >= 2 && field.ends_with("\r\n"), "the field does not end in CRLF");
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < field.size(); ++i) {
    const auto byte = static_cast<unsigned char>(field[i]);
    if (field[i] == '\r') {
      require(i + 1 < field.size() && field[i + 1] == '\n', "a CR without LF");
      require(i - line_start <= 998, "a line longer than 998 bytes");
      ++i;
      line_start = i + 1;
      if (line_start < field.size())
        require(field[line_start] == ' ' || field[line_start] == '\t',
                "a line end that is not folding: a second header field");
      continue;
    }
    require(field[i] != '\n', "a bare LF");
    require(field[i] == '\t' || (byte >= 0x20 && byte != 0x7f), "a control byte in the field");
  }
}

bool printable_ascii(std::string_view text) {
  for (char c : text)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    const std::string_view header(reinterpret_cast<const char*>(data), size);
    std::uint64_t end = 0;
    for (const ByteRange& range : find_own_authentication_results(header, "mx.example.org")) {
      require(range.offset >= end, "ranges out of order or overlapping");
      require(range.length > 0 && range.offset + range.length <= size, "a range outside the input");
      end = range.offset + range.length;
    }
  }

  FuzzedDataProvider input(data, size);
  const std::string authserv_id = input.ConsumeRandomLengthString(120);
  std::vector<AuthenticationMethodResult> results;
  const int entries = input.ConsumeIntegralInRange(0, 6);
  for (int e = 0; e < entries; ++e) {
    AuthenticationMethodResult entry;
    entry.method = input.ConsumeRandomLengthString(80);
    entry.result = input.ConsumeRandomLengthString(80);
    entry.reason = input.ConsumeRandomLengthString(600);
    const int properties = input.ConsumeIntegralInRange(0, 4);
    for (int p = 0; p < properties; ++p) {
      std::string name = input.ConsumeRandomLengthString(80);
      std::string value = input.ConsumeRandomLengthString(600);
      entry.properties.emplace_back(std::move(name), std::move(value));
    }
    results.push_back(std::move(entry));
  }
  const std::string field = authentication_results_header(authserv_id, results);
  check_one_field(field);

  // Read back: a printable authserv-id (kept whole by the writer) finds exactly this field.
  if (!authserv_id.empty() && authserv_id.size() <= 100 && printable_ascii(authserv_id)) {
    const std::string header = "Received: from a by b\r\n" + field + "Subject: s\r\n";
    const auto found = find_own_authentication_results(header, authserv_id);
    require(found.size() == 1, "the written field is not found by its authserv-id");
    require(found[0].offset == std::string_view("Received: from a by b\r\n").size() &&
                found[0].length == field.size(),
            "the range found is not the written field");
  }
  return 0;
}
