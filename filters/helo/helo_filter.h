// The helo filter (DESIGN §4): judges the HELO/EHLO argument and records the fact
// `helo.check` at helo: "ours", "bare_ip", "ip_mismatch", "syntax" or "ok". The order of the
// checks is documented in docs/filters.md and in classify_helo below.
#pragma once

#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "filter.h"
#include "filter_settings.h"
#include "ip_address.h"

namespace portcullis {

// The words recorded in helo.check.
namespace helo_check {
inline constexpr std::string_view ok = "ok";
inline constexpr std::string_view syntax = "syntax";
inline constexpr std::string_view bare_ip = "bare_ip";
inline constexpr std::string_view ip_mismatch = "ip_mismatch";
inline constexpr std::string_view ours = "ours";
}  // namespace helo_check

// Classifies a HELO/EHLO argument, in this order:
//   1. "[...]" is an address literal (RFC 5321 4.1.3: "[a.b.c.d]" or "[IPv6:...]"; the tag is
//      case-insensitive): malformed → syntax; equal to `local_ip` → ours; equal to `client_ip`
//      (IPv4-mapped addresses compare as IPv4), or no client address known → ok;
//      otherwise → ip_mismatch.
//   2. A bare IPv4/IPv6 address: equal to `local_ip` → ours; otherwise → bare_ip.
//   3. Equal to `hostname` (case-insensitive, one trailing dot ignored on either side) → ours.
//   4. Not an RFC 5321 Domain (letters, digits, hyphens; labels 1..63 octets without a leading
//      or trailing hyphen; at most 255 octets; one trailing dot allowed), a last label of
//      digits only (a malformed address such as 300.1.1.1, never a real top-level domain), or
//      no dot at all (not fully qualified: "localhost", "DESKTOP-1") → syntax.
//   5. Otherwise → ok.
std::string_view classify_helo(std::string_view helo, const std::optional<IpAddress>& client_ip,
                               const std::optional<IpAddress>& local_ip, std::string_view hostname);

// The factory for a valid [filter.helo] block (it takes no keys); nullptr with `errors`
// appended otherwise.
std::shared_ptr<const FilterFactory> build_helo_filter(const SettingTable& table,
                                                       std::vector<SettingError>& errors);

// Stateless: one hook at helo that reads the core fact "helo" and records helo.check.
class HeloFilter : public SessionFilter {
 public:
  HookStatus on_phase(HookContext& context) override;
};

}  // namespace portcullis
