#include "from_domain.h"

#include <vector>

namespace portcullis {

namespace {

// Quoted text is kept as this byte, so an '@' or ',' inside quotes separates nothing and a
// quote in a domain makes it invalid.
constexpr char kQuoted = '\x01';
// RFC 1035 §2.3.4: a name in presentation form, without the root's dot.
constexpr std::size_t kMaxDomainBytes = 253;

bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool names_from(std::string_view name) {
  while (!name.empty() && is_wsp(name.back()))
    name.remove_suffix(1);  // obs-optional WSP
  if (name.size() != 4) return false;
  return lower(name[0]) == 'f' && lower(name[1]) == 'r' && lower(name[2]) == 'o' &&
         lower(name[3]) == 'm';
}

FromDomain failure(std::string why) {
  return FromDomain{{}, std::move(why)};
}

// The values of every From field, unfolded (line ends dropped, continuation kept).
std::vector<std::string> from_values(std::string_view header) {
  std::vector<std::string> values;
  bool in_from = false;
  std::size_t start = 0;
  while (start < header.size()) {
    std::size_t end = header.find('\n', start);
    if (end == std::string_view::npos) end = header.size();
    std::string_view line = header.substr(start, end - start);
    start = end + 1;
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (!line.empty() && is_wsp(line.front())) {
      if (in_from) values.back().append(line);
      continue;
    }
    const std::size_t colon = line.find(':');
    in_from = colon != std::string_view::npos && names_from(line.substr(0, colon));
    if (in_from) values.emplace_back(line.substr(colon + 1));
  }
  return values;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_wsp(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && is_wsp(text.back()))
    text.remove_suffix(1);
  return text;
}

struct Mailbox {
  std::string bare;   // outside angle brackets (display name, or the addr-spec itself)
  std::string angle;  // inside <>
  bool has_angle = false;
};

// The domain of one addr-spec, or an error.
FromDomain domain_of(std::string_view address) {
  const std::size_t at = address.rfind('@');
  if (at == std::string_view::npos) return failure("From address without a domain");
  if (trim(address.substr(0, at)).empty()) return failure("From address without a local part");
  std::string domain;
  for (char c : address.substr(at + 1))
    if (!is_wsp(c)) domain.push_back(lower(c));  // obs-domain allows CFWS around the dots
  if (domain.ends_with('.')) domain.pop_back();
  if (domain.empty()) return failure("From address without a domain");
  if (domain.front() == '[') return failure("From address with a domain literal");
  if (domain.size() > kMaxDomainBytes) return failure("From domain longer than 253 bytes");
  bool label_start = true;
  for (char c : domain) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '.') {
      if (label_start) return failure("From domain with an empty label");
      label_start = true;
      continue;
    }
    label_start = false;
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                         byte >= 0x80;  // UTF-8 (RFC 6532)
    if (!allowed) return failure("From domain with an invalid character");
  }
  if (label_start) return failure("From domain with an empty label");
  return FromDomain{std::move(domain), {}};
}

}  // namespace

FromDomain extract_from_domain(std::string_view header_section) {
  const std::vector<std::string> values = from_values(header_section);
  if (values.empty()) return failure("no From field");
  if (values.size() > 1) return failure("several From fields");
  const std::string& value = values.front();

  std::vector<Mailbox> mailboxes(1);
  int comment_depth = 0;
  bool in_quote = false;
  bool in_literal = false;
  bool in_angle = false;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    Mailbox& current = mailboxes.back();
    std::string& into = in_angle ? current.angle : current.bare;
    if (comment_depth > 0) {
      if (c == '\\') {
        ++i;
      } else if (c == '(') {
        ++comment_depth;
      } else if (c == ')') {
        --comment_depth;
        if (comment_depth == 0) into.push_back(' ');  // a comment separates like CFWS
      }
      continue;
    }
    if (in_quote) {
      if (c == '\\') {
        ++i;
        into.push_back(kQuoted);
      } else if (c == '"') {
        in_quote = false;
      } else {
        into.push_back(kQuoted);
      }
      continue;
    }
    if (in_literal) {
      into.push_back(c);
      if (c == '\\') {
        if (++i < value.size()) into.push_back(value[i]);
      } else if (c == ']') {
        in_literal = false;
      }
      continue;
    }
    switch (c) {
      case '(':
        comment_depth = 1;
        break;
      case '"':
        in_quote = true;
        into.push_back(kQuoted);
        break;
      case '[':
        in_literal = true;
        into.push_back(c);
        break;
      case '<':
        if (in_angle || current.has_angle) return failure("From mailbox with several '<'");
        in_angle = true;
        current.has_angle = true;
        break;
      case '>':
        if (!in_angle) return failure("From mailbox with an unmatched '>'");
        in_angle = false;
        break;
      case ':':
        // Inside <> only an obs-route ("<@relay:user@example.org>") has a colon: drop it.
        if (!in_angle) return failure("From holds a group");
        current.angle.clear();
        break;
      case ';':
        return failure("From holds a group");
      case ',':
        if (in_angle) return failure("From mailbox with ',' inside '<>'");
        mailboxes.emplace_back();
        break;
      default:
        into.push_back(c);
    }
  }
  if (comment_depth > 0) return failure("From with an unterminated comment");
  if (in_quote) return failure("From with an unterminated quoted string");
  if (in_literal || in_angle) return failure("From with an unterminated bracket");

  // obs-mbox-list allows empty elements ("a@example.org, ,"); they are not mailboxes.
  const Mailbox* only = nullptr;
  for (const Mailbox& mailbox : mailboxes) {
    if (!mailbox.has_angle && trim(mailbox.bare).empty()) continue;
    if (only != nullptr) return failure("From holds several mailboxes");
    only = &mailbox;
  }
  if (only == nullptr) return failure("From holds no mailbox");
  if (only->has_angle) return domain_of(trim(only->angle));
  // Without <>, the text is the addr-spec itself: words with spaces there are a display name
  // missing its address.
  const std::string_view bare = trim(only->bare);
  if (bare.find_first_of(" \t") != std::string_view::npos &&
      bare.find('@') != std::string_view::npos) {
    const std::size_t at = bare.rfind('@');
    if (trim(bare.substr(0, at)).find_first_of(" \t") != std::string_view::npos)
      return failure("From address with spaces in its local part");
  }
  return domain_of(bare);
}

}  // namespace portcullis
