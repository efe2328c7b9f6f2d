#include "spf_macro.h"

#include <algorithm>
#include <vector>

namespace portcullis {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_delimiter(char c) {
  return c == '.' || c == '-' || c == '+' || c == ',' || c == '/' || c == '_' || c == '=';
}

// macro-literal = %x21-24 / %x26-7E; explanation text also allows SP (RFC 7208 §6.2).
bool is_literal(char c, SpfMacroUse use) {
  const auto u = static_cast<unsigned char>(c);
  if (u == ' ') return use == SpfMacroUse::explanation;
  return u >= 0x21 && u <= 0x7e && u != '%';
}

bool is_letter(char c, SpfMacroUse use) {
  switch (lower(c)) {
    case 's':
    case 'l':
    case 'o':
    case 'd':
    case 'i':
    case 'p':
    case 'h':
    case 'v':
      return true;
    case 'c':
    case 'r':
    case 't':
      return use == SpfMacroUse::explanation;
    default:
      return false;
  }
}

// One %{...} macro, parsed.
struct Macro {
  char letter = 0;
  bool url_escape = false;
  std::size_t keep = 0;  // 0: all parts
  bool reverse = false;
  std::string delimiters;
};

// Parses the body between "%{" and "}" (text starts after "%{"); on success sets *length to
// the octets consumed including the closing brace.
std::optional<std::string> parse_macro(std::string_view text, SpfMacroUse use, Macro& macro,
                                       std::size_t& length) {
  if (text.empty()) return "unterminated macro";
  const char letter = text[0];
  if (!is_letter(letter, use)) {
    const char l = lower(letter);
    if (l == 'c' || l == 'r' || l == 't') return "macro letter only allowed in exp text";
    return "invalid macro letter";
  }
  macro.letter = lower(letter);
  macro.url_escape = letter != macro.letter;
  std::size_t at = 1;
  bool has_digits = false;
  std::size_t keep = 0;
  while (at < text.size() && is_digit(text[at])) {
    has_digits = true;
    keep = std::min<std::size_t>(keep * 10 + static_cast<std::size_t>(text[at] - '0'), 1000);
    ++at;
  }
  if (has_digits && keep == 0) return "macro digit transformer is zero";
  macro.keep = keep;
  if (at < text.size() && lower(text[at]) == 'r') {
    macro.reverse = true;
    ++at;
  }
  while (at < text.size() && is_delimiter(text[at])) {
    macro.delimiters.push_back(text[at]);
    ++at;
  }
  if (at >= text.size()) return "unterminated macro";
  if (text[at] != '}') return "invalid character in macro";
  length = at + 1;
  return std::nullopt;
}

const char* const hex_digits = "0123456789ABCDEF";

void append_url_escaped(std::string& out, std::string_view value) {
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    const bool unreserved = (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
                            (u >= '0' && u <= '9') || u == '-' || u == '.' || u == '_' || u == '~';
    if (unreserved) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(hex_digits[u >> 4]);
      out.push_back(hex_digits[u & 0xf]);
    }
  }
}

std::string_view letter_value(char letter, const SpfMacroContext& context) {
  switch (letter) {
    case 's':
      return context.sender;
    case 'l':
      return context.sender_local;
    case 'o':
      return context.sender_domain;
    case 'd':
      return context.domain;
    case 'i':
      return context.ip_dotted;
    case 'p':
      return context.validated_name.empty() ? std::string_view("unknown")
                                            : std::string_view(context.validated_name);
    case 'h':
      return context.helo;
    case 'v':
      return context.ipv6 ? "ip6" : "in-addr";
    case 'c':
      return context.ip_readable;
    case 'r':
      return context.receiver.empty() ? std::string_view("unknown")
                                      : std::string_view(context.receiver);
    case 't':
      return context.timestamp;
    default:
      return {};
  }
}

std::string transform(std::string_view value, const Macro& macro) {
  if (macro.keep == 0 && !macro.reverse && macro.delimiters.empty()) return std::string(value);
  const std::string delimiters = macro.delimiters.empty() ? "." : macro.delimiters;
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= value.size(); ++i) {
    if (i == value.size() || delimiters.find(value[i]) != std::string::npos) {
      parts.push_back(value.substr(start, i - start));
      start = i + 1;
    }
  }
  if (macro.reverse) std::reverse(parts.begin(), parts.end());
  std::size_t first = 0;
  if (macro.keep != 0 && macro.keep < parts.size()) first = parts.size() - macro.keep;
  std::string out;
  for (std::size_t i = first; i < parts.size(); ++i) {
    if (i != first) out.push_back('.');
    out.append(parts[i]);
  }
  return out;
}

}  // namespace

std::optional<std::string> spf_macro_syntax_error(std::string_view text, SpfMacroUse use) {
  std::size_t at = 0;
  while (at < text.size()) {
    const char c = text[at];
    if (c != '%') {
      if (!is_literal(c, use)) return "invalid character in macro string";
      ++at;
      continue;
    }
    if (at + 1 >= text.size()) return "lone % at end of macro string";
    const char next = text[at + 1];
    if (next == '%' || next == '_' || next == '-') {
      at += 2;
      continue;
    }
    if (next != '{') return "invalid % escape";
    Macro macro;
    std::size_t length = 0;
    if (auto error = parse_macro(text.substr(at + 2), use, macro, length)) return error;
    at += 2 + length;
  }
  return std::nullopt;
}

bool spf_macro_uses_p(std::string_view text) {
  for (std::size_t at = 0; at + 2 < text.size(); ++at) {
    if (text[at] != '%') continue;
    if (text[at + 1] == '{' && lower(text[at + 2]) == 'p') return true;
    ++at;  // skip the escaped character ("%%{p}" is literal)
  }
  return false;
}

SpfExpansion expand_spf_macro(std::string_view text, SpfMacroUse use,
                              const SpfMacroContext& context) {
  if (auto error = spf_macro_syntax_error(text, use)) return {std::nullopt, *error};
  std::string out;
  std::size_t at = 0;
  while (at < text.size()) {
    if (out.size() > max_expansion_octets) return {std::nullopt, "macro expansion too long"};
    const char c = text[at];
    if (c != '%') {
      out.push_back(c);
      ++at;
      continue;
    }
    const char next = text[at + 1];
    if (next == '%') {
      out.push_back('%');
      at += 2;
      continue;
    }
    if (next == '_') {
      out.push_back(' ');
      at += 2;
      continue;
    }
    if (next == '-') {
      out.append("%20");
      at += 2;
      continue;
    }
    Macro macro;
    std::size_t length = 0;
    parse_macro(text.substr(at + 2), use, macro, length);
    at += 2 + length;
    const std::string value = transform(letter_value(macro.letter, context), macro);
    if (macro.url_escape) {
      append_url_escaped(out, value);
    } else {
      out.append(value);
    }
  }
  if (out.size() > max_expansion_octets) return {std::nullopt, "macro expansion too long"};
  return {std::move(out), {}};
}

}  // namespace portcullis
