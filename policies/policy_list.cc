#include "policy_list.h"

#include <algorithm>

#include <fmt/format.h>

namespace portcullis::policy {

std::string quoted_entry(std::string_view text) {
  // SECURITY: a list file may be any file the configuration names (file:/etc/shadow when
  // `check` runs as root); an error shows only a short prefix, escaped, of a bad entry.
  constexpr std::size_t shown = quoted_entry_length;
  std::string out = "'";
  for (unsigned char c : text.substr(0, shown)) {
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  out += text.size() > shown ? "'..." : "'";
  return out;
}

namespace {

// A corrected entry, as written when the bad entry was shown whole; else quoted like it.
std::string suggestion(std::string_view text) {
  const std::string quoted = quoted_entry(text);
  return quoted.size() == text.size() + 2 ? std::string(text) : quoted;
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string to_lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), lower);
  return out;
}

bool is_label_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

bool looks_numeric(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= '0' && c <= '9') || c == '.' || c == '/';
  });
}

// Checks a lower-cased domain without its trailing dot; "" when valid, else why not.
std::string domain_problem(std::string_view domain, std::string_view original) {
  if (domain.empty()) return fmt::format("{} is not a domain", quoted_entry(original));
  if (domain.size() > 253)
    return fmt::format("{} is longer than 253 bytes", quoted_entry(original));
  std::size_t start = 0;
  while (start <= domain.size()) {
    std::size_t dot = domain.find('.', start);
    if (dot == std::string_view::npos) dot = domain.size();
    const std::string_view label = domain.substr(start, dot - start);
    if (label.empty()) return fmt::format("{} has an empty label", quoted_entry(original));
    if (label.size() > 63)
      return fmt::format("{} has a label longer than 63 bytes", quoted_entry(original));
    if (label.front() == '-' || label.back() == '-') {
      return fmt::format("{} has a label that starts or ends with '-'", quoted_entry(original));
    }
    if (!std::all_of(label.begin(), label.end(), is_label_char)) {
      return fmt::format("{} is not a CIDR network, an address or a domain",
                         quoted_entry(original));
    }
    start = dot + 1;
  }
  return "";
}

std::string network_key(const IpAddress& address, unsigned prefix) {
  std::string key;
  key += address.is_v4() ? '4' : '6';
  key += static_cast<char>(prefix);
  const auto& bytes = address.bytes();
  key.append(reinterpret_cast<const char*>(bytes.data()), address.is_v4() ? 4 : 16);
  return key;
}

}  // namespace

std::optional<ListEntry> parse_list_entry(std::string_view text, std::string* error) {
  auto fail = [error](std::string message) -> std::optional<ListEntry> {
    *error = std::move(message);
    return std::nullopt;
  };
  // SECURITY: entries come from policy and list files (possibly generated from outside
  // feeds); each is bounded in length and checked byte by byte before it is stored.
  if (text.empty()) return fail("empty entry");
  if (text.size() > max_list_entry_length) {
    return fail(fmt::format("entry longer than {} bytes", max_list_entry_length));
  }
  ListEntry entry;
  entry.text = std::string(text);
  for (unsigned char c : text) {
    if (c >= 0x80) {
      return fail(
          fmt::format("{} is not ASCII; write an internationalized domain as its "
                      "A-label (xn--...)",
                      quoted_entry(text)));
    }
    if (c <= 0x20 || c == 0x7f) {
      return fail(c == ' ' || c == '\t'
                      ? fmt::format("{} contains a space; write one entry per string or line",
                                    quoted_entry(text))
                      : "entry contains a control character");
    }
  }
  const bool exact = text.front() == '=';
  const std::string_view body = exact ? text.substr(1) : text;
  if (body.empty()) return fail("'=' needs a domain after it: =example.org");
  const auto at = body.rfind('@');
  if (at != std::string_view::npos) {
    if (exact) return fail(fmt::format("{}: '=' applies to domains only", quoted_entry(text)));
    if (at == 0) {
      return fail(
          fmt::format("{} has no local part; write {} for the domain and its "
                      "subdomains, or {} for the domain only",
                      quoted_entry(text), suggestion(body.substr(1)),
                      suggestion("=" + std::string(body.substr(1)))));
    }
    const std::string_view local = body.substr(0, at);
    if (local.find_first_of("@\"") != std::string_view::npos) {
      return fail(fmt::format("{} is not a plain address (local@domain)", quoted_entry(text)));
    }
    const std::string domain = to_lower(body.substr(at + 1));
    if (const std::string problem = domain_problem(domain, text); !problem.empty()) {
      return fail(problem);
    }
    entry.kind = ListEntry::Kind::address;
    entry.value = to_lower(body);
    return entry;
  }
  if (body.find(':') != std::string_view::npos || body.find('/') != std::string_view::npos ||
      looks_numeric(body)) {
    if (exact) return fail(fmt::format("{}: '=' applies to domains only", quoted_entry(text)));
    IpNetwork::ParseError why = IpNetwork::ParseError::none;
    auto network = IpNetwork::parse(body, &why);
    if (!network) {
      switch (why) {
        case IpNetwork::ParseError::bad_prefix:
          return fail(
              fmt::format("{} has an invalid prefix length (0-32 for IPv4, 0-128 for "
                          "IPv6)",
                          quoted_entry(text)));
        case IpNetwork::ParseError::host_bits_set: {
          const auto slash = body.find('/');
          auto address = IpAddress::parse(body.substr(0, slash));
          const unsigned prefix =
              static_cast<unsigned>(std::stoul(std::string(body.substr(slash + 1))));
          return fail(fmt::format("{} has host bits set; the network is {}/{}", quoted_entry(text),
                                  address->masked(prefix).to_string(), prefix));
        }
        default:
          return fail(fmt::format("{} is not an IP address or CIDR network", quoted_entry(text)));
      }
    }
    entry.kind = ListEntry::Kind::network;
    entry.network = *network;
    entry.value = network->to_string();
    return entry;
  }
  if (body.front() == '.') {
    return fail(fmt::format("{}: a domain entry already matches its subdomains; write {}",
                            quoted_entry(text), suggestion(body.substr(1))));
  }
  if (body.find('*') != std::string_view::npos) {
    return fail(
        fmt::format("{}: no wildcards; a domain entry matches its subdomains", quoted_entry(text)));
  }
  std::string domain = to_lower(body);
  if (!domain.empty() && domain.back() == '.') domain.pop_back();
  if (const std::string problem = domain_problem(domain, text); !problem.empty()) {
    return fail(problem);
  }
  entry.kind = exact ? ListEntry::Kind::exact_domain : ListEntry::Kind::domain;
  entry.value = std::move(domain);
  return entry;
}

NamedList::NamedList(std::string name, std::string location, std::vector<ListEntry> entries)
    : name_(std::move(name)), location_(std::move(location)), entries_(std::move(entries)) {
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    const ListEntry& entry = entries_[i];
    switch (entry.kind) {
      case ListEntry::Kind::network: {
        ++network_count_;
        const IpAddress address = entry.network->address();
        networks_.emplace(network_key(address, entry.network->prefix_length()), i);
        prefix_lengths_[address.is_v4() ? 0 : 1].insert(entry.network->prefix_length());
        break;
      }
      case ListEntry::Kind::address:
        addresses_.emplace(entry.value, i);
        break;
      case ListEntry::Kind::domain:
        domains_.emplace(entry.value, i);
        break;
      case ListEntry::Kind::exact_domain:
        exact_domains_.emplace(entry.value, i);
        break;
    }
  }
}

const ListEntry* NamedList::match_ip(const IpAddress& candidate) const {
  // Networks are stored as parsed; a v4-mapped entry is unusual, so both the mapped and the
  // plain form of the candidate are tried.
  for (const IpAddress& address : {candidate.unmapped(), candidate}) {
    for (unsigned prefix : prefix_lengths_[address.is_v4() ? 0 : 1]) {
      if (prefix > address.bit_count()) continue;
      auto it = networks_.find(network_key(address.masked(prefix), prefix));
      if (it != networks_.end()) return &entries_[it->second];
    }
    if (address == candidate) break;
  }
  return nullptr;
}

const ListEntry* NamedList::match_domain(std::string_view domain) const {
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  if (domain.empty()) return nullptr;
  if (auto it = exact_domains_.find(std::string(domain)); it != exact_domains_.end()) {
    return &entries_[it->second];
  }
  // SECURITY: one lookup per label; a value has at most its length in labels.
  while (true) {
    if (auto it = domains_.find(std::string(domain)); it != domains_.end()) {
      return &entries_[it->second];
    }
    const auto dot = domain.find('.');
    if (dot == std::string_view::npos) return nullptr;
    domain.remove_prefix(dot + 1);
  }
}

const ListEntry* NamedList::match_string(std::string_view value) const {
  const std::string lowered = to_lower(value);
  const auto at = lowered.rfind('@');
  if (at == std::string::npos) return match_domain(lowered);
  if (auto it = addresses_.find(lowered); it != addresses_.end()) return &entries_[it->second];
  return match_domain(std::string_view(lowered).substr(at + 1));
}

}  // namespace portcullis::policy
