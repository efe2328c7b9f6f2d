// libFuzzer target for the SPF macro expander. The first input byte picks where the string is
// used (even: domain-spec, odd: explanation) and the length of the sender's local part, so
// the length bound is reached too. A string that passes the syntax check must expand or fail
// only on the length bound; an expansion never exceeds the bound and, since the context is
// printable, never holds a byte outside printable ASCII.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "spf_macro.h"

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
  if (size == 0) return 0;
  const SpfMacroUse use = (data[0] & 1) != 0 ? SpfMacroUse::explanation : SpfMacroUse::domain_spec;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  SpfMacroContext context;
  context.sender_local = std::string(1 + data[0] * 4, 'l');
  context.sender_domain = "mail.example.com";
  context.sender = context.sender_local + "@" + context.sender_domain;
  context.domain = "a-b.c_d.e+f.example.com";
  context.ip_dotted = "192.0.2.3";
  context.ip_readable = "192.0.2.3";
  context.helo = "helo.example.org";
  context.receiver = "receiver.example";
  context.timestamp = "1700000000";

  const bool valid = !spf_macro_syntax_error(text, use);
  const SpfExpansion expansion = expand_spf_macro(text, use, context);
  if (!valid) {
    require(!expansion.text, "an invalid string expanded");
    return 0;
  }
  if (!expansion.text) {
    require(expansion.error == "macro expansion too long", "a valid string failed to expand");
    return 0;
  }
  require(expansion.text->size() <= max_expansion_octets, "expansion past the bound");
  for (char c : *expansion.text) {
    const auto u = static_cast<unsigned char>(c);
    require(u >= 0x20 && u <= 0x7e, "non-printable byte in an expansion");
  }
  (void)spf_macro_uses_p(text);
  return 0;
}
