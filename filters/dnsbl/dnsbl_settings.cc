// The operator's [filter.dnsbl] block: trusted but possibly wrong. Each error names its key, and
// an `answers` entry that would count a list's error codes (127.255.255.x) or a non-loopback
// address as "listed" is refused here, so that mistake cannot reach a running proxy.
#include "dnsbl/dnsbl_settings.h"

#include <algorithm>
#include <optional>

#include <fmt/format.h>

namespace portcullis {

namespace {

constexpr std::uint32_t loopback_first = 0x7f000000u;     // 127.0.0.0
constexpr std::uint32_t loopback_last = 0x7fffffffu;      // 127.255.255.255
constexpr std::uint32_t error_codes_first = 0x7fffff00u;  // 127.255.255.0
// A nibble-form IPv6 query name is 63 octets plus a dot before the zone; DNS names end at 253.
constexpr std::size_t max_zone_octets = 253 - 64;

bool valid_zone(std::string_view zone) {
  if (zone.empty() || zone.size() > max_zone_octets) return false;
  std::size_t label_size = 0;
  for (char c : zone) {
    if (c == '.') {
      if (label_size == 0) return false;
      label_size = 0;
      continue;
    }
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!allowed || ++label_size > 63) return false;
  }
  return label_size > 0 && zone.find('.') != std::string_view::npos;
}

std::optional<std::uint32_t> parse_ipv4(std::string_view text) {
  auto address = IpAddress::parse(text);
  if (!address || !address->is_v4()) return std::nullopt;
  return ipv4_number(*address);
}

// "127.0.0.2" or "127.0.0.2-127.0.0.11"; nullopt with `why` set otherwise.
std::optional<Ipv4Range> parse_answer(std::string_view text, std::string& why) {
  const std::size_t dash = text.find('-');
  const auto first = parse_ipv4(text.substr(0, dash));
  const auto last = dash == std::string_view::npos ? first : parse_ipv4(text.substr(dash + 1));
  if (!first || !last) {
    why = fmt::format("expected an IPv4 address or a range such as 127.0.0.2-127.0.0.11, got '{}'",
                      text);
    return std::nullopt;
  }
  if (*first > *last) {
    why = fmt::format("the range '{}' ends before it starts", text);
    return std::nullopt;
  }
  if (*first < loopback_first || *last > loopback_last) {
    why = fmt::format(
        "'{}' is outside 127.0.0.0/8: DNS block lists answer inside it, and any other answer is "
        "an error",
        text);
    return std::nullopt;
  }
  if (*last >= error_codes_first) {
    why = fmt::format(
        "'{}' reaches into 127.255.255.0/24, the codes lists use for errors (such as "
        "127.255.255.254, \"query refused\"): counting them would block every client",
        text);
    return std::nullopt;
  }
  return Ipv4Range{*first, *last};
}

DnsblList read_list(const SettingTable& table, std::vector<SettingError>& errors,
                    const std::string& prefix) {
  SettingsReader reader(table, errors, prefix);
  DnsblList list;
  const SettingValue* zone_value = reader.find("zone");
  std::string zone = reader.string("zone", "");
  if (!zone.empty() && zone.back() == '.') zone.pop_back();
  std::transform(zone.begin(), zone.end(), zone.begin(), [](char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  });
  if (zone_value == nullptr) {
    reader.error("zone", "missing: every list needs the zone to query");
  } else if (std::holds_alternative<std::string>(zone_value->value) && !valid_zone(zone)) {
    reader.error("zone",
                 fmt::format("expected a domain name of at most {} octets such as "
                             "'zen.example.net', got '{}'",
                             max_zone_octets, std::get<std::string>(zone_value->value)),
                 zone_value);
  }
  list.zone = zone;
  list.weight = reader.integer("weight", 1, -100, 100);
  const SettingValue* answers_value = reader.find("answers");
  const std::vector<std::string> answers = reader.strings("answers", {"127.0.0.2-127.0.0.255"});
  if (answers_value != nullptr && answers.empty() &&
      std::holds_alternative<SettingArray>(answers_value->value) &&
      std::get<SettingArray>(answers_value->value).empty()) {
    reader.error("answers", "empty: no answer would ever count as listed", answers_value);
  }
  for (std::size_t index = 0; index < answers.size(); ++index) {
    std::string why;
    auto range = parse_answer(answers[index], why);
    if (!range) {
      const SettingValue* at = nullptr;
      if (answers_value != nullptr) {
        if (const auto* array = std::get_if<SettingArray>(&answers_value->value)) {
          if (index < array->size()) at = &(*array)[index];
        }
      }
      reader.error(fmt::format("answers[{}]", index), why, at);
      continue;
    }
    list.answers.push_back(*range);
  }
  reader.reject_unknown({"zone", "weight", "answers"});
  return list;
}

}  // namespace

std::uint32_t ipv4_number(const IpAddress& address) {
  const auto& bytes = address.bytes();
  return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
         (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
}

DnsblSettings read_dnsbl_settings(const SettingTable& table, std::vector<SettingError>& errors) {
  SettingsReader reader(table, errors);
  DnsblSettings settings;
  const SettingValue* lists = reader.find("list");
  if (lists == nullptr) {
    reader.error("list", "missing: add at least one [[filter.dnsbl.list]] with a zone");
  } else if (const auto* array = std::get_if<SettingArray>(&lists->value)) {
    if (array->empty()) reader.error("list", "empty: add at least one list", lists);
    if (array->size() > dnsbl_max_lists) {
      reader.error("list", fmt::format("at most {} lists, got {}", dnsbl_max_lists, array->size()),
                   lists);
    }
    for (std::size_t index = 0; index < array->size() && index < dnsbl_max_lists; ++index) {
      const SettingValue& item = (*array)[index];
      const std::string key = fmt::format("list[{}]", index);
      const auto* table_item = std::get_if<SettingTable>(&item.value);
      if (table_item == nullptr) {
        reader.error(key, "expected a table ([[filter.dnsbl.list]])", &item);
        continue;
      }
      DnsblList list = read_list(*table_item, errors, key + ".");
      const bool duplicate =
          !list.zone.empty() &&
          std::any_of(settings.lists.begin(), settings.lists.end(),
                      [&](const DnsblList& other) { return other.zone == list.zone; });
      if (duplicate) {
        reader.error(key + ".zone", fmt::format("'{}' is listed twice", list.zone),
                     SettingsReader(*table_item, errors).find("zone"));
      }
      settings.lists.push_back(std::move(list));
    }
  } else {
    reader.error("list", "expected an array of tables ([[filter.dnsbl.list]])", lists);
  }
  settings.pass_ttl = std::chrono::seconds(reader.integer("pass_ttl", 0, 0, 2592000));
  reader.reject_unknown({"list", "pass_ttl"});
  return settings;
}

}  // namespace portcullis
