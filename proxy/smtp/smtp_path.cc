// SECURITY: every function here reads untrusted client bytes. The input is rejected up front
// when longer than the RFC 5321 path limit (256 octets), every loop advances by at least one
// byte over a string_view, and inet_pton gets a NUL-terminated copy held in a fixed-size
// stack buffer, so nothing here can read out of bounds or allocate without bound.
#include "smtp_path.h"

#include <arpa/inet.h>

#include <array>
#include <cstring>

namespace portcullis {
namespace {

constexpr size_t max_path_octets = 256;       // RFC 5321 4.5.3.1.3, including the brackets
constexpr size_t max_local_part_octets = 64;  // RFC 5321 4.5.3.1.1
constexpr size_t max_domain_octets = 255;     // RFC 5321 4.5.3.1.2
constexpr size_t max_label_octets = 63;       // RFC 1035 2.3.4

bool is_alpha(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}
// RFC 6531 lets UTF-8 (every byte >= 0x80) appear where RFC 5321 allows letters.
bool is_utf8_byte(unsigned char c) {
  return c >= 0x80;
}
bool is_let_dig(unsigned char c) {
  return is_alpha(c) || is_digit(c) || is_utf8_byte(c);
}

// RFC 5322 atext, extended by RFC 6531 with UTF8-non-ascii.
bool is_atext(unsigned char c) {
  if (is_alpha(c) || is_digit(c) || is_utf8_byte(c)) return true;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) !=
         std::string_view::npos;
}

// RFC 5321 qtextSMTP (%d32-33 / %d35-91 / %d93-126), extended by RFC 6531.
bool is_qtext(unsigned char c) {
  return c == 32 || c == 33 || (c >= 35 && c <= 91) || (c >= 93 && c <= 126) || is_utf8_byte(c);
}

bool iequals_ascii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]);
    unsigned char y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') x = static_cast<unsigned char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<unsigned char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string lower_ascii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// sub-domain = Let-dig [Ldh-str]: no leading or trailing hyphen, at most 63 octets.
bool is_valid_label(std::string_view label) {
  if (label.empty() || label.size() > max_label_octets) return false;
  if (!is_let_dig(static_cast<unsigned char>(label.front()))) return false;
  if (!is_let_dig(static_cast<unsigned char>(label.back()))) return false;
  for (char c : label) {
    unsigned char byte = static_cast<unsigned char>(c);
    if (!is_let_dig(byte) && byte != '-') return false;
  }
  return true;
}

// Domain = sub-domain *("." sub-domain)
bool is_valid_domain(std::string_view domain) {
  if (domain.empty() || domain.size() > max_domain_octets) return false;
  size_t start = 0;
  while (true) {
    size_t dot = domain.find('.', start);
    std::string_view label =
        domain.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (!is_valid_label(label)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// inet_pton needs a NUL-terminated string; the literal is already bounded by the path limit.
bool inet_pton_bounded(int family, std::string_view text) {
  std::array<char, max_path_octets + 1> buffer{};
  if (text.empty() || text.size() >= buffer.size()) return false;
  std::memcpy(buffer.data(), text.data(), text.size());
  std::array<unsigned char, 16> address{};
  return inet_pton(family, buffer.data(), address.data()) == 1;
}

// dcontent = %d33-90 / %d94-126
bool is_dcontent(unsigned char c) {
  return (c >= 33 && c <= 90) || (c >= 94 && c <= 126);
}

// address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
//                         General-address-literal ) "]"
bool is_valid_address_literal(std::string_view literal) {
  if (literal.size() < 3 || literal.front() != '[' || literal.back() != ']') return false;
  std::string_view inside = literal.substr(1, literal.size() - 2);
  size_t colon = inside.find(':');
  if (colon == std::string_view::npos) return inet_pton_bounded(AF_INET, inside);
  std::string_view tag = inside.substr(0, colon);
  std::string_view content = inside.substr(colon + 1);
  if (iequals_ascii(tag, "IPv6")) return inet_pton_bounded(AF_INET6, content);
  // General-address-literal = Standardized-tag ":" 1*dcontent; Standardized-tag = Ldh-str.
  if (tag.empty() || !is_alpha(static_cast<unsigned char>(tag.front())) || tag.back() == '-') {
    return false;
  }
  for (char c : tag) {
    unsigned char byte = static_cast<unsigned char>(c);
    if (!is_alpha(byte) && !is_digit(byte) && byte != '-') return false;
  }
  if (content.empty()) return false;
  for (char c : content) {
    if (!is_dcontent(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Dot-string = Atom *("." Atom)
bool is_valid_dot_string(std::string_view text) {
  if (text.empty() || text.front() == '.' || text.back() == '.') return false;
  bool previous_was_dot = false;
  for (char c : text) {
    if (c == '.') {
      if (previous_was_dot) return false;
      previous_was_dot = true;
      continue;
    }
    previous_was_dot = false;
    if (!is_atext(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Quoted-string = DQUOTE *QcontentSMTP DQUOTE; returns the length of the quoted string at the
// start of text (quotes included), or 0 when there is none.
size_t quoted_string_length(std::string_view text) {
  if (text.empty() || text.front() != '"') return 0;
  size_t position = 1;
  while (position < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[position]);
    if (c == '"') return position + 1;
    if (c == '\\') {
      // quoted-pairSMTP = %d92 %d32-126
      if (position + 1 >= text.size()) return 0;
      unsigned char escaped = static_cast<unsigned char>(text[position + 1]);
      if (escaped < 32 || escaped > 126) return 0;
      position += 2;
      continue;
    }
    if (!is_qtext(c)) return 0;
    ++position;
  }
  return 0;
}

// A-d-l = At-domain *( "," At-domain ); At-domain = "@" Domain. Returns the length consumed
// including the terminating ':', or 0 when the route is malformed.
size_t source_route_length(std::string_view text) {
  size_t position = 0;
  while (true) {
    if (position >= text.size() || text[position] != '@') return 0;
    ++position;
    size_t end = text.find_first_of(",:", position);
    if (end == std::string_view::npos) return 0;
    if (!is_valid_domain(text.substr(position, end - position))) return 0;
    position = end + 1;
    if (text[end] == ':') return position;
  }
}

}  // namespace

ParsedPath parse_path(std::string_view text, PathKind kind) {
  ParsedPath result;
  if (text.size() > max_path_octets || text.size() < 2) return result;
  if (text.front() != '<' || text.back() != '>') return result;
  std::string_view inner = text.substr(1, text.size() - 2);

  if (inner.empty()) {
    result.ok = kind == PathKind::mail_from;
    return result;
  }
  if (kind == PathKind::rcpt_to && iequals_ascii(inner, "postmaster")) {
    result.ok = true;
    result.mailbox = std::string(inner);
    return result;
  }

  if (inner.front() == '@') {
    size_t route = source_route_length(inner);
    if (route == 0) return result;
    inner.remove_prefix(route);
  }

  size_t local_length = quoted_string_length(inner);
  if (local_length == 0) {
    // atext has no '@', so the first one ends a Dot-string (an address literal may hold more).
    size_t at = inner.find('@');
    if (at == std::string_view::npos) return result;
    local_length = at;
    if (!is_valid_dot_string(inner.substr(0, local_length))) return result;
  }
  if (local_length > max_local_part_octets) return result;
  if (local_length >= inner.size() || inner[local_length] != '@') return result;

  std::string_view domain = inner.substr(local_length + 1);
  if (domain.empty() || domain.size() > max_domain_octets) return result;
  if (domain.front() == '[') {
    if (!is_valid_address_literal(domain)) return result;
  } else if (!is_valid_domain(domain)) {
    return result;
  }

  result.ok = true;
  result.mailbox = std::string(inner);
  result.domain = lower_ascii(domain);
  return result;
}

}  // namespace portcullis
