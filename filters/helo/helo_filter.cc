// SECURITY: the HELO/EHLO argument is client input of any bytes the SMTP parser let through.
// Anything longer than the longest valid argument (a 255-octet domain plus its trailing dot)
// is refused before it is looked at; every loop walks a string_view once; address text goes to
// IpAddress::parse, which bounds its own copy. Nothing is allocated from the input.
#include "helo/helo_filter.h"

#include <algorithm>
#include <string>

namespace portcullis {

namespace {

constexpr std::size_t max_domain_octets = 255;  // RFC 5321 4.5.3.1.2
constexpr std::size_t max_label_octets = 63;    // RFC 1035 2.3.4
constexpr std::string_view ipv6_tag = "IPv6:";  // RFC 5321 4.1.3; ABNF strings ignore case

class HeloFactory : public FilterFactory {
 public:
  std::unique_ptr<SessionFilter> create() const override { return std::make_unique<HeloFilter>(); }
};

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

std::string_view without_trailing_dot(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return name;
}

bool is_letter_or_digit(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// RFC 5321 sub-domain: Let-dig [Ldh-str], at most 63 octets.
bool valid_label(std::string_view label) {
  if (label.empty() || label.size() > max_label_octets) return false;
  if (!is_letter_or_digit(label.front()) || !is_letter_or_digit(label.back())) return false;
  return std::all_of(label.begin(), label.end(),
                     [](char c) { return is_letter_or_digit(c) || c == '-'; });
}

// A fully qualified RFC 5321 Domain (trailing dot already removed): at least two labels, and a
// last label that is not all digits (RFC 3696 2: no top-level domain is numeric; such a name
// is a malformed address like 300.1.1.1).
bool valid_fully_qualified_domain(std::string_view name) {
  if (name.empty() || name.size() > max_domain_octets) return false;
  std::size_t labels = 0;
  std::string_view last_label;
  std::string_view rest = name;
  while (true) {
    const std::size_t dot = rest.find('.');
    const std::string_view label = rest.substr(0, dot);
    if (!valid_label(label)) return false;
    ++labels;
    last_label = label;
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  if (labels < 2) return false;
  return !std::all_of(last_label.begin(), last_label.end(), is_digit);
}

// The address of an RFC 5321 address literal's contents (between the brackets): a dotted IPv4
// address, or "IPv6:" and an IPv6 address. General-address-literals (another tag) are not
// addresses we can compare, so they count as malformed.
std::optional<IpAddress> parse_address_literal(std::string_view inside) {
  if (inside.size() > ipv6_tag.size() &&
      equal_ignoring_case(inside.substr(0, ipv6_tag.size()), ipv6_tag)) {
    auto address = IpAddress::parse(inside.substr(ipv6_tag.size()));
    if (address && !address->is_v4()) return address;
    return std::nullopt;
  }
  auto address = IpAddress::parse(inside);
  if (address && address->is_v4()) return address;
  return std::nullopt;
}

bool same(const std::optional<IpAddress>& a, const IpAddress& b) {
  return a && a->same_address(b);
}

}  // namespace

std::string_view classify_helo(std::string_view helo, const std::optional<IpAddress>& client_ip,
                               const std::optional<IpAddress>& local_ip,
                               std::string_view hostname) {
  if (helo.empty() || helo.size() > max_domain_octets + 1) return helo_check::syntax;

  // 1. Address literals.
  if (helo.front() == '[') {
    if (helo.size() < 2 || helo.back() != ']') return helo_check::syntax;
    auto address = parse_address_literal(helo.substr(1, helo.size() - 2));
    if (!address) return helo_check::syntax;
    if (same(local_ip, *address)) return helo_check::ours;
    // Without a known client address there is nothing to contradict the literal.
    if (!client_ip || same(client_ip, *address)) return helo_check::ok;
    return helo_check::ip_mismatch;
  }

  // 2. Bare addresses.
  if (auto address = IpAddress::parse(helo)) {
    return same(local_ip, *address) ? helo_check::ours : helo_check::bare_ip;
  }

  // 3. Our own name, before the syntax check, so that a short [server] hostname still counts.
  const std::string_view name = without_trailing_dot(helo);
  const std::string_view our_name = without_trailing_dot(hostname);
  if (!our_name.empty() && equal_ignoring_case(name, our_name)) return helo_check::ours;

  // 4. and 5.
  return valid_fully_qualified_domain(name) ? helo_check::ok : helo_check::syntax;
}

std::shared_ptr<const FilterFactory> build_helo_filter(const SettingTable& table,
                                                       std::vector<SettingError>& errors) {
  const std::size_t errors_before = errors.size();
  SettingsReader reader(table, errors);
  reader.reject_unknown({});
  if (errors.size() != errors_before) return nullptr;
  return std::make_shared<HeloFactory>();
}

HookStatus HeloFilter::on_phase(HookContext& context) {
  if (context.phase() != Phase::helo) return HookStatus::continue_chain;
  const SessionView& view = context.session();
  const std::string* helo = view.facts != nullptr ? view.facts->string("helo") : nullptr;
  if (helo == nullptr) {
    // The session records helo before this phase runs; without it there is nothing to judge,
    // and saying so (the failure mode applies) beats a silent absent fact.
    context.fail("no helo fact recorded");
    return HookStatus::continue_chain;
  }
  context.record("helo.check",
                 std::string(classify_helo(*helo, view.client_ip, view.local_ip, view.hostname)));
  return HookStatus::continue_chain;
}

}  // namespace portcullis
