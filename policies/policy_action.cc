#include "policy_action.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

namespace portcullis::policy {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

// Header fields the proxy itself writes or that carry a message's identity; a `tag` must not
// forge or duplicate them.
constexpr std::array<std::string_view, 20> reserved_headers = {"authentication-results",
                                                               "arc-authentication-results",
                                                               "arc-message-signature",
                                                               "arc-seal",
                                                               "dkim-signature",
                                                               "received",
                                                               "received-spf",
                                                               "return-path",
                                                               "from",
                                                               "sender",
                                                               "reply-to",
                                                               "to",
                                                               "cc",
                                                               "bcc",
                                                               "subject",
                                                               "date",
                                                               "message-id",
                                                               "mime-version",
                                                               "content-type",
                                                               "content-transfer-encoding"};

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::optional<ActionError> parse_template(std::string_view text, std::size_t base, Template* out) {
  std::string literal;
  std::size_t literal_start = base;
  auto flush = [&] {
    if (!literal.empty()) out->parts.push_back({false, std::move(literal), literal_start});
    literal.clear();
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      if (c == '\t') {
        literal += ' ';
        continue;
      }
      return ActionError{base + i, "control character (a line break?) in the text"};
    }
    if (static_cast<unsigned char>(c) >= 0x80) {
      return ActionError{base + i,
                         "non-ASCII character in the text; replies and headers are "
                         "ASCII"};
    }
    if (c == '{') {
      if (i + 1 < text.size() && text[i + 1] == '{') {
        if (literal.empty()) literal_start = base + i;
        literal += '{';
        ++i;
        continue;
      }
      const auto close = text.find('}', i);
      if (close == std::string_view::npos) {
        return ActionError{base + i, "unclosed '{' (write '{{' for a literal brace)"};
      }
      const std::string_view name = text.substr(i + 1, close - i - 1);
      if (name.empty() || name.find_first_of("{ ") != std::string_view::npos) {
        return ActionError{base + i,
                           "expected a fact name in '{...}' (write '{{' for a literal "
                           "brace)"};
      }
      flush();
      out->parts.push_back({true, std::string(name), base + i + 1});
      i = close;
      continue;
    }
    if (c == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') {
        if (literal.empty()) literal_start = base + i;
        literal += '}';
        ++i;
        continue;
      }
      return ActionError{base + i, "lone '}' (write '}}' for a literal brace)"};
    }
    if (literal.empty()) literal_start = base + i;
    literal += c;
  }
  flush();
  return std::nullopt;
}

std::optional<ActionError> parse_reply(Action action, std::string_view text, std::size_t base,
                                       std::optional<ReplyTemplate>* out) {
  const std::string_view name = action_name(action);
  std::size_t pos = 0;
  while (pos < text.size() && is_blank(text[pos]))
    ++pos;
  if (pos == text.size()) return std::nullopt;
  const std::size_t code_start = pos;
  while (pos < text.size() && !is_blank(text[pos]))
    ++pos;
  const std::string_view code_text = text.substr(code_start, pos - code_start);
  if (code_text.size() != 3 || !std::all_of(code_text.begin(), code_text.end(), is_digit) ||
      code_text[0] < '2' || code_text[0] > '5' || code_text[1] > '5') {
    return ActionError{base + code_start,
                       fmt::format("expected a reply code (3 digits, e.g. {}) after '{}' at '{}'",
                                   action == Action::reject ? "550" : "450", name, code_text)};
  }
  ReplyTemplate reply;
  reply.code = (code_text[0] - '0') * 100 + (code_text[1] - '0') * 10 + (code_text[2] - '0');
  const char reply_class = code_text[0];
  if (action == Action::reject && reply_class != '5') {
    return ActionError{base + code_start,
                       fmt::format("reject needs a 5xx reply code, not {}", code_text)};
  }
  if (action == Action::tempfail && reply_class != '4') {
    return ActionError{base + code_start,
                       fmt::format("tempfail needs a 4xx reply code, not {}", code_text)};
  }
  if (action == Action::disconnect && reply.code != 421) {
    return ActionError{base + code_start,
                       fmt::format("disconnect needs the reply code 421, not {}", code_text)};
  }
  while (pos < text.size() && is_blank(text[pos]))
    ++pos;
  const std::size_t enhanced_start = pos;
  while (pos < text.size() && !is_blank(text[pos]))
    ++pos;
  const std::string_view enhanced = text.substr(enhanced_start, pos - enhanced_start);
  // class "." subject "." detail, subject and detail 1-3 digits (RFC 3463).
  bool well_formed = enhanced.size() >= 5 && enhanced[1] == '.';
  if (well_formed) {
    const std::string_view rest = enhanced.substr(2);
    const auto dot = rest.find('.');
    const std::string_view subject = rest.substr(0, dot);
    const std::string_view detail =
        dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
    auto digits_1_3 = [](std::string_view part) {
      return !part.empty() && part.size() <= 3 && std::all_of(part.begin(), part.end(), is_digit);
    };
    well_formed = dot != std::string_view::npos && digits_1_3(subject) && digits_1_3(detail) &&
                  (enhanced[0] == '2' || enhanced[0] == '4' || enhanced[0] == '5');
  }
  if (!well_formed) {
    return ActionError{base + enhanced_start,
                       enhanced.empty()
                           ? fmt::format("expected an enhanced status code (e.g. {}.7.1) after {} "
                                         "at the end",
                                         reply_class, code_text)
                           : fmt::format("expected an enhanced status code (e.g. {}.7.1) after {} "
                                         "at '{}'",
                                         reply_class, code_text, enhanced)};
  }
  if (enhanced[0] != reply_class) {
    return ActionError{base + enhanced_start,
                       fmt::format("the enhanced status code {} must have the class of the reply "
                                   "code {} ({}.x.x)",
                                   enhanced, code_text, reply_class)};
  }
  reply.enhanced = std::string(enhanced);
  while (pos < text.size() && is_blank(text[pos]))
    ++pos;
  std::string_view reply_text = text.substr(pos);
  while (!reply_text.empty() && is_blank(reply_text.back()))
    reply_text.remove_suffix(1);
  if (auto error = parse_template(reply_text, base + pos, &reply.text)) return error;
  *out = std::move(reply);
  return std::nullopt;
}

}  // namespace

std::string_view action_name(Action action) {
  switch (action) {
    case Action::none:
      return "none";
    case Action::accept:
      return "accept";
    case Action::continue_search:
      return "continue";
    case Action::reject:
      return "reject";
    case Action::tempfail:
      return "tempfail";
    case Action::disconnect:
      return "disconnect";
    case Action::tag:
      return "tag";
  }
  return "none";
}

std::string_view mode_name(Mode mode) {
  return mode == Mode::observe ? "observe" : "enforce";
}

std::string Template::render(const Facts& facts, std::size_t max_length) const {
  std::string out;
  for (const auto& part : parts) {
    if (!part.is_placeholder) {
      out += part.text;
    } else if (const FactValue* value = facts.get(part.text); value != nullptr) {
      out += format_fact_plain(*value);
    }
    // SECURITY: bounded growth; a huge fact value stops being copied at the limit.
    if (out.size() >= max_length) break;
  }
  if (out.size() > max_length) out.resize(max_length);
  // SECURITY: fact values may come from the client (HELO, addresses); anything that is not
  // printable ASCII (CR, LF, NUL, UTF-8 bytes) is replaced so a reply stays one line.
  for (char& c : out) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f) c = '?';
  }
  return out;
}

std::string Template::source() const {
  std::string out;
  for (const auto& part : parts) {
    if (part.is_placeholder) {
      out += '{' + part.text + '}';
      continue;
    }
    for (char c : part.text) {
      if (c == '{' || c == '}') out += c;
      out += c;
    }
  }
  return out;
}

std::string Reply::to_string() const {
  std::string out = fmt::format("{} {}", code, enhanced);
  if (!text.empty()) out += ' ' + text;
  return out;
}

std::variant<ActionSpec, ActionError> parse_action(std::string_view text) {
  // SECURITY: bounded length; every loop below advances through the text once.
  if (text.size() > max_action_length) {
    return ActionError{0, fmt::format("action longer than {} bytes", max_action_length)};
  }
  std::size_t pos = 0;
  while (pos < text.size() && is_blank(text[pos]))
    ++pos;
  const std::size_t word_start = pos;
  while (pos < text.size() && !is_blank(text[pos]))
    ++pos;
  std::string_view word = text.substr(word_start, pos - word_start);
  // "tag X-Foo: bar" may be written "tag X-Foo:bar"; split off the header at the blank.
  ActionSpec spec;
  const std::pair<std::string_view, Action> actions[] = {{"reject", Action::reject},
                                                         {"tempfail", Action::tempfail},
                                                         {"disconnect", Action::disconnect},
                                                         {"accept", Action::accept},
                                                         {"continue", Action::continue_search},
                                                         {"tag", Action::tag}};
  for (const auto& [name, action] : actions) {
    if (word == name) spec.action = action;
  }
  if (spec.action == Action::none) {
    return ActionError{word_start, word.empty()
                                       ? std::string("expected an action: reject, tempfail, "
                                                     "disconnect, accept, continue or tag")
                                       : fmt::format("expected an action: reject, tempfail, "
                                                     "disconnect, accept, continue or tag at '{}'",
                                                     word.substr(0, 24))};
  }
  switch (spec.action) {
    case Action::accept:
    case Action::continue_search: {
      while (pos < text.size() && is_blank(text[pos]))
        ++pos;
      if (pos < text.size()) {
        return ActionError{pos, fmt::format("{} takes no reply or argument", word)};
      }
      return spec;
    }
    case Action::tag: {
      while (pos < text.size() && is_blank(text[pos]))
        ++pos;
      const std::size_t header_start = pos;
      while (pos < text.size() && text[pos] != ':' && !is_blank(text[pos]))
        ++pos;
      const std::string_view header = text.substr(header_start, pos - header_start);
      if (header.empty()) {
        return ActionError{header_start, "expected a header name after 'tag' (tag X-Name: value)"};
      }
      const bool valid_name =
          header.size() <= max_header_name && std::all_of(header.begin(), header.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-';
          });
      if (!valid_name) {
        return ActionError{header_start,
                           fmt::format("'{}' is not a header name (letters, digits and '-', at "
                                       "most {} bytes)",
                                       header.substr(0, 24), max_header_name)};
      }
      if (std::find(reserved_headers.begin(), reserved_headers.end(), lower(header)) !=
          reserved_headers.end()) {
        return ActionError{header_start,
                           fmt::format("tag cannot add {}: that header is the proxy's or the "
                                       "message's own; use an X- header",
                                       header)};
      }
      if (pos >= text.size() || text[pos] != ':') {
        return ActionError{pos, fmt::format("expected ':' after the header name {}", header)};
      }
      ++pos;
      while (pos < text.size() && is_blank(text[pos]))
        ++pos;
      std::string_view value = text.substr(pos);
      while (!value.empty() && is_blank(value.back()))
        value.remove_suffix(1);
      if (value.empty()) return ActionError{pos, fmt::format("expected a value after {}:", header)};
      spec.header = std::string(header);
      if (auto error = parse_template(value, pos, &spec.header_value)) return *error;
      return spec;
    }
    default:
      break;
  }
  if (auto error = parse_reply(spec.action, text.substr(pos), pos, &spec.reply)) return *error;
  return spec;
}

}  // namespace portcullis::policy
