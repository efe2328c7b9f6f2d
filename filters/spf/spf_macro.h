// SPF macro strings (RFC 7208 §7): syntax check and expansion.
//
// SECURITY: macro strings come from DNS records an attacker publishes. The syntax check walks
// the text once; expansion is bounded (max_expansion_octets) whatever the transformers ask
// for, and a request for a letter the context cannot offer is a permerror, never a guess.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace portcullis {

// Where a macro string appears: the letters c, r and t are only allowed in explanation text
// (RFC 7208 §7.2).
enum class SpfMacroUse { domain_spec, explanation };

// The values the letters expand to. `validated_name` (%{p}) must be filled by the caller when
// the string uses it (spf_macro_uses_p), since finding it takes DNS.
struct SpfMacroContext {
  std::string sender;          // s: <sender> (local@domain, postmaster@helo for a null sender)
  std::string sender_local;    // l
  std::string sender_domain;   // o
  std::string domain;          // d: the domain being checked
  std::string ip_dotted;       // i: dotted IPv4 or nibble IPv6
  std::string ip_readable;     // c: the address in its usual text form
  std::string validated_name;  // p
  bool ipv6 = false;           // v: "in-addr" or "ip6"
  std::string helo;            // h
  std::string receiver;        // r
  std::string timestamp;       // t
};

inline constexpr std::size_t max_expansion_octets = 4096;

// nullopt when `text` is a valid macro-string for `use`; otherwise the reason.
std::optional<std::string> spf_macro_syntax_error(std::string_view text, SpfMacroUse use);

// True when `text` (already valid) uses %{p}.
bool spf_macro_uses_p(std::string_view text);

struct SpfExpansion {
  std::optional<std::string> text;  // nullopt: permerror
  std::string error;
};

// Expands a valid macro-string. Upper-case letters are URL-escaped (RFC 7208 §7.3).
SpfExpansion expand_spf_macro(std::string_view text, SpfMacroUse use,
                              const SpfMacroContext& context);

}  // namespace portcullis
