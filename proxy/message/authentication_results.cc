// SECURITY: find_own_authentication_results scans the client's header section. It only moves
// forward through the bytes it was given (one pass; comments are skipped with a depth counter,
// not recursion, so nesting costs no stack), keeps no copy beyond one authserv-id, and treats
// anything it cannot parse as "not ours". The header writer gets values that came from the
// client (sender domain, DKIM d=): every control byte is dropped there, so no CR/LF can end the
// field early and inject a header, and each value is cut to a fixed size.
#include "authentication_results.h"

#include <algorithm>
#include <cstring>

namespace portcullis {
namespace {

// Cut so that the longest possible piece (a quoted value with every byte escaped) stays far
// below the 998-byte line limit of RFC 5322 §2.1.1.
constexpr size_t kMaxValueBytes = 400;
constexpr size_t kMaxKeywordBytes = 64;
// RFC 5322 §2.1.1: lines SHOULD stay within 78 characters.
constexpr size_t kFoldColumn = 78;

constexpr std::string_view kFieldName = "Authentication-Results";

bool is_control(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool equal_ignoring_ascii_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

// RFC 2045 §5.1 tspecials.
bool is_tspecial(char c) {
  return c != '\0' && std::strchr("()<>@,;:\\\"/[]?=", c) != nullptr;
}

// A byte that may appear in an RFC 2045 token. Bytes above 0x7f are let through here because
// an internationalised authserv-id (RFC 8616) is UTF-8: reading it as one token is how a
// downstream parser would read it too.
bool is_token_byte(unsigned char c) {
  return c > 0x20 && c != 0x7f && !is_tspecial(static_cast<char>(c));
}

// --- writing -------------------------------------------------------------------------------

// Letters, digits and '-' (RFC 8601 Keyword / RFC 5321 Ldh-str), and '.' where asked for
// ("ptype.property"). Everything else is dropped.
std::string keyword_only(std::string_view text, bool allow_dot) {
  std::string out;
  for (const char c : text) {
    if (out.size() >= kMaxKeywordBytes) break;
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || (allow_dot && c == '.');
    if (keep) out.push_back(c);
  }
  return out;
}

// Drops control bytes and cuts to kMaxValueBytes without splitting a UTF-8 sequence.
std::string clean_value(std::string_view text) {
  std::string out;
  out.reserve(std::min(text.size(), kMaxValueBytes));
  for (const char c : text) {
    if (is_control(static_cast<unsigned char>(c))) continue;
    if (out.size() == kMaxValueBytes) {
      // Cut here; if that would split a multi-byte sequence, drop its partial start too.
      if ((static_cast<unsigned char>(c) & 0xc0) == 0x80) {
        while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xc0) == 0x80) {
          out.pop_back();
        }
        if (!out.empty() && (static_cast<unsigned char>(out.back()) & 0x80) != 0) out.pop_back();
      }
      break;
    }
    out.push_back(c);
  }
  return out;
}

bool is_ascii_token(std::string_view text) {
  if (text.empty()) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte < 0x80 && is_token_byte(byte);
  });
}

// A quoted string (RFC 5322 §3.2.4) with '"' and '\' as quoted-pairs. `text` has already
// been through clean_value, so it holds no CR/LF.
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// RFC 2045 value: the token itself when it is one, else a quoted string.
std::string as_value(std::string_view text) {
  return is_ascii_token(text) ? std::string(text) : quoted(text);
}

// The pieces of one resinfo in RFC 8601 order: methodspec, reasonspec, propspecs. Empty when
// the method or result cannot be written.
std::vector<std::string> resinfo_pieces(const AuthenticationMethodResult& entry) {
  const std::string method = keyword_only(entry.method, false);
  const std::string result = keyword_only(entry.result, false);
  if (method.empty() || result.empty()) return {};
  std::vector<std::string> pieces;
  pieces.push_back(method + "=" + result);
  const std::string reason = clean_value(entry.reason);
  if (!reason.empty()) pieces.push_back("reason=" + quoted(reason));
  for (const auto& [name, value] : entry.properties) {
    const std::string property = keyword_only(name, true);
    if (property.empty()) continue;
    pieces.push_back(property + "=" + as_value(clean_value(value)));
  }
  return pieces;
}

// --- reading -------------------------------------------------------------------------------

// Skips CFWS (RFC 5322 §3.2.2) from `position`: white space, line ends of folded lines, and
// comments, which nest and may hold quoted-pairs. False when a comment never closes.
bool skip_cfws(std::string_view value, size_t* position) {
  size_t i = *position;
  while (i < value.size()) {
    const char c = value[i];
    if (is_wsp(c) || c == '\r' || c == '\n') {
      ++i;
      continue;
    }
    if (c != '(') break;
    size_t depth = 1;
    ++i;
    while (i < value.size() && depth > 0) {
      const char inside = value[i];
      if (inside == '\\') {
        i += 2;  // quoted-pair: the next byte is literal, even '(' or ')'
        continue;
      }
      if (inside == '(') ++depth;
      if (inside == ')') --depth;
      ++i;
    }
    if (depth > 0) return false;
  }
  *position = std::min(i, value.size());
  return true;
}

// The authserv-id at the start of a field body (after the ':'), unquoted; false when there is
// none or it is malformed (an unclosed comment or quoted string).
bool read_authserv_id(std::string_view body, std::string* id) {
  size_t i = 0;
  if (!skip_cfws(body, &i) || i >= body.size()) return false;
  id->clear();
  if (body[i] == '"') {
    ++i;
    while (i < body.size()) {
      const char c = body[i];
      if (c == '"') return true;
      if (c == '\\' && i + 1 < body.size()) {
        id->push_back(body[i + 1]);
        i += 2;
        continue;
      }
      // Folding inside a quoted string: unfolding removes the line end, keeps the WSP.
      if (c != '\r' && c != '\n') id->push_back(c);
      ++i;
    }
    return false;
  }
  while (i < body.size() && is_token_byte(static_cast<unsigned char>(body[i]))) {
    id->push_back(body[i]);
    ++i;
  }
  return !id->empty();
}

// Where the body of an Authentication-Results field starts (just after ':'), or npos when the
// field (its first line, `line`) has another name.
size_t body_start_if_authentication_results(std::string_view line) {
  if (line.size() <= kFieldName.size()) return std::string_view::npos;
  if (!equal_ignoring_ascii_case(line.substr(0, kFieldName.size()), kFieldName)) {
    return std::string_view::npos;
  }
  size_t i = kFieldName.size();
  while (i < line.size() && is_wsp(line[i]))
    ++i;  // RFC 5322 obs-optional: WSP before ':'
  if (i >= line.size() || line[i] != ':') return std::string_view::npos;
  return i + 1;
}

// End of the line that starts at `start`, just past its LF (or the end of the input).
size_t line_end(std::string_view text, size_t start) {
  const size_t lf = text.find('\n', start);
  return lf == std::string_view::npos ? text.size() : lf + 1;
}

bool is_empty_line(std::string_view text, size_t start, size_t end) {
  const std::string_view line = text.substr(start, end - start);
  return line == "\r\n" || line == "\n" || line == "\r";
}

}  // namespace

std::string authentication_results_header(std::string_view authserv_id,
                                          const std::vector<AuthenticationMethodResult>& results) {
  std::string out = "Authentication-Results: ";
  out += as_value(clean_value(authserv_id));

  std::vector<std::vector<std::string>> entries;
  for (const auto& result : results) {
    auto pieces = resinfo_pieces(result);
    if (!pieces.empty()) entries.push_back(std::move(pieces));
  }
  if (entries.empty()) return out + "; none\r\n";  // RFC 8601 §2.2 no-result

  for (size_t e = 0; e < entries.size(); ++e) {
    const bool last_entry = e + 1 == entries.size();
    out += ";\r\n\t";
    size_t column = 1;  // the tab
    const auto& pieces = entries[e];
    for (size_t p = 0; p < pieces.size(); ++p) {
      // The ';' that ends a resinfo stays on its last line, so it counts there.
      const size_t width = pieces[p].size() + ((p + 1 == pieces.size() && !last_entry) ? 1 : 0);
      if (p > 0) {
        if (column + 1 + width > kFoldColumn) {
          out += "\r\n\t";
          column = 1;
        } else {
          out += ' ';
          ++column;
        }
      }
      out += pieces[p];
      column += pieces[p].size();
    }
  }
  out += "\r\n";
  return out;
}

std::vector<ByteRange> find_own_authentication_results(std::string_view header_section,
                                                       std::string_view authserv_id) {
  std::vector<ByteRange> own;
  if (authserv_id.empty()) return own;
  std::string id;
  size_t position = 0;
  while (position < header_section.size()) {
    const size_t field_start = position;
    size_t field_end = line_end(header_section, position);
    if (is_empty_line(header_section, field_start, field_end)) break;  // end of the header
    // Continuation lines (starting with WSP) belong to this field.
    while (field_end < header_section.size() && is_wsp(header_section[field_end])) {
      field_end = line_end(header_section, field_end);
    }
    position = field_end;

    const std::string_view field = header_section.substr(field_start, field_end - field_start);
    const std::string_view first_line = field.substr(0, line_end(field, 0));
    const size_t body_start = body_start_if_authentication_results(first_line);
    if (body_start == std::string_view::npos) continue;
    if (read_authserv_id(field.substr(body_start), &id) &&
        equal_ignoring_ascii_case(id, authserv_id)) {
      own.push_back(ByteRange{field_start, field_end - field_start});
    }
  }
  return own;
}

}  // namespace portcullis
