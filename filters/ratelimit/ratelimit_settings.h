// The [filter.ratelimit] settings: one `[[filter.ratelimit.limit]]` table per named limit
// (DESIGN §9).
//
//   name         a fact-name-safe word (lowercase letters, digits, '_' and '-', starting with
//                a letter): the facts are rate.NAME, rate.NAME.exceeded, rate.NAME.retry_after
//   key          what is counted apart: client.ip | client.net | helo | sender |
//                sender.domain | rcpt | rcpt.domain
//   counter      connections, concurrent, errors (known at connect); messages (mail);
//                recipients (rcpt); bytes (data, the message size)
//   limit        how many per window (1 .. 10^12, bytes being the large one)
//   per          the window in seconds (1 .. 30 days); for `concurrent` the lifetime of a
//                count that no session changes (default 3600), so that the counts of a node
//                that crashed age out
//   ipv4_prefix  for client.ip (default 32) and client.net (default 24) only
//   ipv6_prefix  for client.ip (default 64) and client.net (default 48) only
//
// A key must be known at its counter's phase: `key = "rcpt"` with `counter = "connections"`
// is an error (there is no recipient at connect), and so is rcpt with bytes (data counts the
// message once, not per recipient).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fact_catalog.h"
#include "filter_settings.h"
#include "session_phase.h"

namespace portcullis {

enum class RateLimitKey { client_ip, client_net, helo, sender, sender_domain, rcpt, rcpt_domain };
enum class RateLimitCounter { connections, concurrent, errors, messages, recipients, bytes };

struct RateLimit {
  std::string name;
  RateLimitKey key = RateLimitKey::client_ip;
  RateLimitCounter counter = RateLimitCounter::connections;
  std::int64_t limit = 1;
  std::int64_t per_seconds = 60;
  unsigned ipv4_prefix = 32;
  unsigned ipv6_prefix = 64;
};

struct RatelimitSettings {
  std::vector<RateLimit> limits;
};

inline constexpr std::size_t ratelimit_max_limits = 64;
inline constexpr std::int64_t ratelimit_max_limit = 1'000'000'000'000;
inline constexpr std::int64_t ratelimit_max_per_seconds = 30 * 24 * 3600;
inline constexpr std::int64_t ratelimit_concurrent_default_per = 3600;

std::string_view rate_limit_key_name(RateLimitKey key);
std::optional<RateLimitKey> parse_rate_limit_key(std::string_view name);
std::string_view rate_limit_counter_name(RateLimitCounter counter);
std::optional<RateLimitCounter> parse_rate_limit_counter(std::string_view name);

// The phase at which the counter counts (and its facts become known).
Phase counter_phase(RateLimitCounter counter);
// The earliest phase at which the key's value is known.
Phase key_phase(RateLimitKey key);

// Reads a [filter.ratelimit] block; every problem is appended to `errors`, naming its key
// ("limit[1].counter").
RatelimitSettings read_ratelimit_settings(const SettingTable& table,
                                          std::vector<SettingError>& errors);

// The facts' names and phases, for the fact catalog and the chain's declared facts.
std::vector<RateLimitFacts> rate_limit_facts(const RatelimitSettings& settings);

}  // namespace portcullis
