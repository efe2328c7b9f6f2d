#include "spf_record.h"

#include <algorithm>

#include "spf_macro.h"

namespace portcullis {

namespace {

constexpr std::string_view version = "v=spf1";

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_alnum(char c) {
  return is_alpha(c) || is_digit(c);
}

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

// toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
bool valid_toplabel(std::string_view label) {
  if (label.empty() || !is_alnum(label.front()) || !is_alnum(label.back())) return false;
  if (!std::all_of(label.begin(), label.end(), [](char c) { return is_alnum(c) || c == '-'; }))
    return false;
  return std::any_of(label.begin(), label.end(), [](char c) { return is_alpha(c) || c == '-'; });
}

// The offset where the macro-string's trailing run of literal characters starts.
std::size_t trailing_literal_start(std::string_view text) {
  std::size_t literal_start = 0;
  std::size_t at = 0;
  while (at < text.size()) {
    if (text[at] != '%') {
      ++at;
      continue;
    }
    if (text[at + 1] == '{') {
      at = text.find('}', at) + 1;
    } else {
      at += 2;
    }
    literal_start = at;
  }
  return literal_start;
}

// A CIDR length: "0" or a number without leading zero, at most `maximum`.
std::optional<unsigned> parse_cidr_length(std::string_view digits, unsigned maximum) {
  if (digits.empty() || digits.size() > 3) return std::nullopt;
  if (!std::all_of(digits.begin(), digits.end(), is_digit)) return std::nullopt;
  if (digits.size() > 1 && digits[0] == '0') return std::nullopt;
  unsigned value = 0;
  for (char c : digits)
    value = value * 10 + static_cast<unsigned>(c - '0');
  if (value > maximum) return std::nullopt;
  return value;
}

// Splits a trailing dual-cidr-length ("/24", "//64", "/24//64") off `text`.
std::optional<std::string> take_dual_cidr(std::string_view& text, SpfMechanism& mechanism) {
  const std::size_t double_slash = text.rfind("//");
  if (double_slash != std::string_view::npos &&
      text.find('/', double_slash + 2) == std::string_view::npos) {
    auto length = parse_cidr_length(text.substr(double_slash + 2), 128);
    if (!length) return "invalid ip6 CIDR length";
    mechanism.cidr6 = *length;
    text = text.substr(0, double_slash);
  }
  const std::size_t slash = text.rfind('/');
  if (slash != std::string_view::npos) {
    const std::string_view tail = text.substr(slash + 1);
    // A domain-spec may contain '/' (a macro-literal): only digits after the last one make a
    // CIDR length; an ip4 CIDR that is not a number is a syntax error.
    if (!tail.empty() && std::all_of(tail.begin(), tail.end(), is_digit)) {
      auto length = parse_cidr_length(tail, 32);
      if (!length) return "invalid ip4 CIDR length";
      mechanism.cidr4 = *length;
      text = text.substr(0, slash);
    } else if (tail.empty()) {
      return "empty CIDR length";
    }
  }
  return std::nullopt;
}

std::optional<std::string> parse_ip_mechanism(std::string_view value, SpfMechanism& mechanism) {
  const bool v4 = mechanism.kind == SpfMechanismKind::ip4;
  const unsigned maximum = v4 ? 32 : 128;
  unsigned length = maximum;
  const std::size_t slash = value.find('/');
  if (slash != std::string_view::npos) {
    auto parsed = parse_cidr_length(value.substr(slash + 1), maximum);
    if (!parsed) return v4 ? "invalid ip4 CIDR length" : "invalid ip6 CIDR length";
    length = *parsed;
    value = value.substr(0, slash);
  }
  auto address = IpAddress::parse(value);
  if (!address || address->is_v4() != v4) return v4 ? "invalid ip4 address" : "invalid ip6 address";
  mechanism.network = *address;
  if (v4) {
    mechanism.cidr4 = length;
  } else {
    mechanism.cidr6 = length;
  }
  return std::nullopt;
}

std::optional<std::string> parse_directive(std::string_view term, SpfMechanism& mechanism) {
  switch (term.empty() ? '\0' : term[0]) {
    case '+':
      mechanism.qualifier = SpfQualifier::pass;
      term.remove_prefix(1);
      break;
    case '-':
      mechanism.qualifier = SpfQualifier::fail;
      term.remove_prefix(1);
      break;
    case '~':
      mechanism.qualifier = SpfQualifier::softfail;
      term.remove_prefix(1);
      break;
    case '?':
      mechanism.qualifier = SpfQualifier::neutral;
      term.remove_prefix(1);
      break;
    default:
      break;
  }
  std::size_t name_end = 0;
  while (name_end < term.size() && is_alnum(term[name_end]))
    ++name_end;
  const std::string_view name = term.substr(0, name_end);
  std::string_view rest = term.substr(name_end);
  struct Known {
    std::string_view name;
    SpfMechanismKind kind;
  };
  static constexpr Known known[] = {
      {"all", SpfMechanismKind::all}, {"include", SpfMechanismKind::include},
      {"a", SpfMechanismKind::a},     {"mx", SpfMechanismKind::mx},
      {"ptr", SpfMechanismKind::ptr}, {"ip4", SpfMechanismKind::ip4},
      {"ip6", SpfMechanismKind::ip6}, {"exists", SpfMechanismKind::exists},
  };
  const auto* found = std::find_if(std::begin(known), std::end(known), [&](const Known& k) {
    return equal_ignoring_case(k.name, name);
  });
  if (found == std::end(known)) return "unknown mechanism";
  mechanism.kind = found->kind;
  switch (mechanism.kind) {
    case SpfMechanismKind::all:
      if (!rest.empty()) return "invalid all mechanism";
      return std::nullopt;
    case SpfMechanismKind::ip4:
    case SpfMechanismKind::ip6:
      if (rest.empty() || rest[0] != ':') return "ip mechanism without an address";
      return parse_ip_mechanism(rest.substr(1), mechanism);
    case SpfMechanismKind::include:
    case SpfMechanismKind::exists:
      if (rest.empty() || rest[0] != ':') return "mechanism needs a domain";
      mechanism.domain_spec = std::string(rest.substr(1));
      return spf_domain_spec_error(mechanism.domain_spec);
    case SpfMechanismKind::ptr:
      if (rest.empty()) return std::nullopt;
      if (rest[0] != ':') return "invalid ptr mechanism";
      mechanism.domain_spec = std::string(rest.substr(1));
      return spf_domain_spec_error(mechanism.domain_spec);
    case SpfMechanismKind::a:
    case SpfMechanismKind::mx: {
      if (auto error = take_dual_cidr(rest, mechanism)) return error;
      if (rest.empty()) return std::nullopt;
      if (rest[0] != ':') return "invalid a/mx mechanism";
      mechanism.domain_spec = std::string(rest.substr(1));
      return spf_domain_spec_error(mechanism.domain_spec);
    }
  }
  return "unknown mechanism";
}

// The length of a modifier name at the start of `term` when '=' follows it, else 0.
std::size_t modifier_name_length(std::string_view term) {
  if (term.empty() || !is_alpha(term[0])) return 0;
  std::size_t at = 1;
  while (at < term.size() &&
         (is_alnum(term[at]) || term[at] == '-' || term[at] == '_' || term[at] == '.'))
    ++at;
  return (at < term.size() && term[at] == '=') ? at : 0;
}

}  // namespace

bool is_spf1_record(std::string_view text) {
  if (text.size() < version.size() || !equal_ignoring_case(text.substr(0, version.size()), version))
    return false;
  return text.size() == version.size() || text[version.size()] == ' ';
}

std::optional<std::string> spf_domain_spec_error(std::string_view text) {
  if (text.empty()) return "empty domain-spec";
  if (auto error = spf_macro_syntax_error(text, SpfMacroUse::domain_spec)) return error;
  std::string_view tail = text.substr(trailing_literal_start(text));
  if (tail.empty()) return std::nullopt;  // ends in a macro-expand
  if (tail.back() == '.') tail.remove_suffix(1);
  const std::size_t dot = tail.rfind('.');
  if (dot == std::string_view::npos) return "domain-spec does not end in a top label";
  if (!valid_toplabel(tail.substr(dot + 1))) return "invalid top label in domain-spec";
  return std::nullopt;
}

SpfParseResult parse_spf_record(std::string_view text) {
  if (text.size() > max_record_octets) return {std::nullopt, "record too long"};
  if (!is_spf1_record(text)) return {std::nullopt, "not an SPF version 1 record"};
  SpfRecord record;
  std::size_t terms = 0;
  std::size_t at = version.size();
  while (at < text.size()) {
    if (text[at] == ' ') {
      ++at;
      continue;
    }
    const std::size_t end = std::min(text.find(' ', at), text.size());
    const std::string_view term = text.substr(at, end - at);
    at = end;
    if (++terms > max_record_terms) return {std::nullopt, "too many terms"};
    if (const std::size_t name_length = modifier_name_length(term)) {
      const std::string_view name = term.substr(0, name_length);
      const std::string value(term.substr(name_length + 1));
      if (equal_ignoring_case(name, "redirect") || equal_ignoring_case(name, "exp")) {
        auto& slot = equal_ignoring_case(name, "redirect") ? record.redirect : record.exp;
        if (slot) return {std::nullopt, "duplicate " + std::string(name) + " modifier"};
        if (auto error = spf_domain_spec_error(value))
          return {std::nullopt, std::string(name) + ": " + *error};
        slot = value;
      } else if (auto error = spf_macro_syntax_error(value, SpfMacroUse::domain_spec)) {
        return {std::nullopt, "unknown modifier: " + *error};
      }
      continue;
    }
    SpfMechanism mechanism;
    if (auto error = parse_directive(term, mechanism)) return {std::nullopt, *error};
    record.mechanisms.push_back(std::move(mechanism));
  }
  return {std::move(record), {}};
}

}  // namespace portcullis
