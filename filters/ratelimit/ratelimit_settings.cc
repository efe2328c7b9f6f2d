// The operator's [[filter.ratelimit.limit]] tables: trusted but possibly wrong. A limit that
// could never be counted (its key unknown at its counter's phase) is refused here rather than
// silently never firing.
#include "ratelimit/ratelimit_settings.h"

#include <algorithm>
#include <array>
#include <utility>

#include <fmt/format.h>

namespace portcullis {

namespace {

constexpr std::array<std::pair<RateLimitKey, std::string_view>, 7> key_names = {{
    {RateLimitKey::client_ip, "client.ip"},
    {RateLimitKey::client_net, "client.net"},
    {RateLimitKey::helo, "helo"},
    {RateLimitKey::sender, "sender"},
    {RateLimitKey::sender_domain, "sender.domain"},
    {RateLimitKey::rcpt, "rcpt"},
    {RateLimitKey::rcpt_domain, "rcpt.domain"},
}};

constexpr std::array<std::pair<RateLimitCounter, std::string_view>, 6> counter_names = {{
    {RateLimitCounter::connections, "connections"},
    {RateLimitCounter::concurrent, "concurrent"},
    {RateLimitCounter::errors, "errors"},
    {RateLimitCounter::messages, "messages"},
    {RateLimitCounter::recipients, "recipients"},
    {RateLimitCounter::bytes, "bytes"},
}};

template <typename Names>
std::string joined(const Names& names) {
  std::string out;
  for (const auto& [value, name] : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

bool valid_name(std::string_view name) {
  // The policy language's names: a part starts with a letter.
  if (name.empty() || name.size() > 64 || name[0] < 'a' || name[0] > 'z') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

bool is_address_key(RateLimitKey key) {
  return key == RateLimitKey::client_ip || key == RateLimitKey::client_net;
}

bool is_recipient_key(RateLimitKey key) {
  return key == RateLimitKey::rcpt || key == RateLimitKey::rcpt_domain;
}

// Whether every field this limit needs was read; a partly read limit adds no further errors.
struct ReadLimit {
  RateLimit limit;
  bool key_known = false;
  bool counter_known = false;
};

ReadLimit read_limit(const SettingTable& table, std::vector<SettingError>& errors,
                     const std::string& prefix) {
  SettingsReader reader(table, errors, prefix);
  ReadLimit read;
  RateLimit& limit = read.limit;

  const SettingValue* name_value = reader.find("name");
  limit.name = reader.string("name", "");
  if (name_value == nullptr) {
    reader.error("name", "missing: every limit needs a name (its facts are rate.NAME ...)");
  } else if (std::holds_alternative<std::string>(name_value->value) && !valid_name(limit.name)) {
    reader.error(
        "name",
        fmt::format("expected 1 to 64 lowercase letters, digits, '_' or '-', starting with "
                    "a letter (the facts are rate.NAME), got '{}'",
                    limit.name),
        name_value);
  }

  const SettingValue* key_value = reader.find("key");
  const std::string key = reader.string("key", "");
  if (key_value == nullptr) {
    reader.error("key", fmt::format("missing: one of {}", joined(key_names)));
  } else if (std::holds_alternative<std::string>(key_value->value)) {
    if (auto parsed = parse_rate_limit_key(key)) {
      limit.key = *parsed;
      read.key_known = true;
    } else {
      reader.error("key", fmt::format("expected one of {}, got '{}'", joined(key_names), key),
                   key_value);
    }
  }

  const SettingValue* counter_value = reader.find("counter");
  const std::string counter = reader.string("counter", "");
  if (counter_value == nullptr) {
    reader.error("counter", fmt::format("missing: one of {}", joined(counter_names)));
  } else if (std::holds_alternative<std::string>(counter_value->value)) {
    if (auto parsed = parse_rate_limit_counter(counter)) {
      limit.counter = *parsed;
      read.counter_known = true;
    } else {
      reader.error("counter",
                   fmt::format("expected one of {}, got '{}'", joined(counter_names), counter),
                   counter_value);
    }
  }

  if (reader.find("limit") == nullptr) {
    reader.error("limit", "missing: how many per window");
  }
  limit.limit = reader.integer("limit", 1, 1, ratelimit_max_limit);

  const bool concurrent = read.counter_known && limit.counter == RateLimitCounter::concurrent;
  if (reader.find("per") == nullptr && !concurrent) {
    reader.error("per", "missing: the window, in seconds");
  }
  limit.per_seconds = reader.integer("per", concurrent ? ratelimit_concurrent_default_per : 60, 1,
                                     ratelimit_max_per_seconds);

  const bool net = read.key_known && limit.key == RateLimitKey::client_net;
  limit.ipv4_prefix = net ? 24 : 32;
  limit.ipv6_prefix = net ? 48 : 64;
  for (const auto& [field, bits] : {std::pair<std::string_view, unsigned>{"ipv4_prefix", 32},
                                    std::pair<std::string_view, unsigned>{"ipv6_prefix", 128}}) {
    const SettingValue* value = reader.find(field);
    if (value == nullptr) continue;
    if (read.key_known && !is_address_key(limit.key)) {
      reader.error(field,
                   fmt::format("only for key client.ip or client.net, not {}",
                               rate_limit_key_name(limit.key)),
                   value);
      continue;
    }
    const auto prefix_length = static_cast<unsigned>(reader.integer(
        field, field == "ipv4_prefix" ? limit.ipv4_prefix : limit.ipv6_prefix, 1, bits));
    (field == "ipv4_prefix" ? limit.ipv4_prefix : limit.ipv6_prefix) = prefix_length;
  }

  if (read.key_known && read.counter_known) {
    const Phase counted_at = counter_phase(limit.counter);
    const Phase known_from = key_phase(limit.key);
    if (known_from > counted_at) {
      reader.error("key",
                   fmt::format("{} is known only from the {} phase, but {} are counted at {}: "
                               "choose a key known by then (client.ip, client.net{})",
                               rate_limit_key_name(limit.key), phase_name(known_from),
                               rate_limit_counter_name(limit.counter), phase_name(counted_at),
                               counted_at >= Phase::mail ? ", helo, sender, sender.domain" : ""),
                   key_value);
    } else if (is_recipient_key(limit.key) && counted_at != Phase::rcpt) {
      reader.error("key",
                   fmt::format("{} is known only at each RCPT, but {} are counted at {}: use "
                               "counter recipients, or a key known for the whole transaction",
                               rate_limit_key_name(limit.key),
                               rate_limit_counter_name(limit.counter), phase_name(counted_at)),
                   key_value);
    }
  }
  reader.reject_unknown({"name", "key", "counter", "limit", "per", "ipv4_prefix", "ipv6_prefix"});
  return read;
}

}  // namespace

std::string_view rate_limit_key_name(RateLimitKey key) {
  for (const auto& [value, name] : key_names) {
    if (value == key) return name;
  }
  return "?";
}

std::optional<RateLimitKey> parse_rate_limit_key(std::string_view name) {
  for (const auto& [value, text] : key_names) {
    if (text == name) return value;
  }
  return std::nullopt;
}

std::string_view rate_limit_counter_name(RateLimitCounter counter) {
  for (const auto& [value, name] : counter_names) {
    if (value == counter) return name;
  }
  return "?";
}

std::optional<RateLimitCounter> parse_rate_limit_counter(std::string_view name) {
  for (const auto& [value, text] : counter_names) {
    if (text == name) return value;
  }
  return std::nullopt;
}

Phase counter_phase(RateLimitCounter counter) {
  switch (counter) {
    case RateLimitCounter::connections:
    case RateLimitCounter::concurrent:
    case RateLimitCounter::errors:
      return Phase::connect;
    case RateLimitCounter::messages:
      return Phase::mail;
    case RateLimitCounter::recipients:
      return Phase::rcpt;
    case RateLimitCounter::bytes:
      return Phase::data;
  }
  return Phase::connect;
}

Phase key_phase(RateLimitKey key) {
  switch (key) {
    case RateLimitKey::client_ip:
    case RateLimitKey::client_net:
      return Phase::connect;
    case RateLimitKey::helo:
      return Phase::helo;
    case RateLimitKey::sender:
    case RateLimitKey::sender_domain:
      return Phase::mail;
    case RateLimitKey::rcpt:
    case RateLimitKey::rcpt_domain:
      return Phase::rcpt;
  }
  return Phase::connect;
}

RatelimitSettings read_ratelimit_settings(const SettingTable& table,
                                          std::vector<SettingError>& errors) {
  SettingsReader reader(table, errors);
  RatelimitSettings settings;
  const SettingValue* limits = reader.find("limit");
  if (limits == nullptr) {
    reader.error("limit",
                 "missing: add at least one [[filter.ratelimit.limit]] with name, key, counter, "
                 "limit and per");
  } else if (const auto* array = std::get_if<SettingArray>(&limits->value)) {
    if (array->empty()) reader.error("limit", "empty: add at least one limit", limits);
    if (array->size() > ratelimit_max_limits) {
      reader.error("limit",
                   fmt::format("at most {} limits, got {}", ratelimit_max_limits, array->size()),
                   limits);
    }
    for (std::size_t index = 0; index < array->size() && index < ratelimit_max_limits; ++index) {
      const SettingValue& item = (*array)[index];
      const std::string key = fmt::format("limit[{}]", index);
      const auto* table_item = std::get_if<SettingTable>(&item.value);
      if (table_item == nullptr) {
        reader.error(key, "expected a table ([[filter.ratelimit.limit]])", &item);
        continue;
      }
      ReadLimit read = read_limit(*table_item, errors, key + ".");
      const bool duplicate =
          !read.limit.name.empty() &&
          std::any_of(settings.limits.begin(), settings.limits.end(),
                      [&](const RateLimit& other) { return other.name == read.limit.name; });
      if (duplicate) {
        reader.error(key + ".name",
                     fmt::format("'{}' names two limits: each limit's facts need their own name",
                                 read.limit.name),
                     SettingsReader(*table_item, errors).find("name"));
      }
      settings.limits.push_back(std::move(read.limit));
    }
  } else {
    reader.error("limit", "expected an array of tables ([[filter.ratelimit.limit]])", limits);
  }
  reader.reject_unknown({"limit"});
  return settings;
}

std::vector<RateLimitFacts> rate_limit_facts(const RatelimitSettings& settings) {
  std::vector<RateLimitFacts> facts;
  for (const RateLimit& limit : settings.limits)
    facts.push_back(RateLimitFacts{limit.name, counter_phase(limit.counter)});
  return facts;
}

}  // namespace portcullis
