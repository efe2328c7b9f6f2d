// The action language of policy rules (`then`): actions, replies and {fact} templates.
//
//   then     := 'reject' [reply] | 'tempfail' [reply] | 'disconnect' [reply]
//             | 'accept' | 'continue' | 'tag' HEADER ':' template
//   reply    := CODE ' ' ENHANCED [' ' template]        e.g. 550 5.7.23 SPF failed for {spf.domain}
//   template := text with {fact} placeholders; '{{' and '}}' are literal braces
//
// Pure text in, structure out (no TOML, no catalog); the compiler checks the placeholders'
// facts, the loader maps offsets to file positions.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "facts.h"

namespace portcullis::policy {

enum class Action { none, accept, continue_search, reject, tempfail, disconnect, tag };
// "none", "accept", "continue", "reject", "tempfail", "disconnect", "tag".
std::string_view action_name(Action action);
inline bool is_refusal(Action action) {
  return action == Action::reject || action == Action::tempfail || action == Action::disconnect;
}

enum class Mode { enforce, observe };
std::string_view mode_name(Mode mode);

// A piece of literal text or a {fact} placeholder.
struct TemplatePart {
  bool is_placeholder = false;
  std::string text;        // literal text, or the fact name
  std::size_t offset = 0;  // in the `then` string (for errors)
};

struct Template {
  std::vector<TemplatePart> parts;
  bool empty() const { return parts.empty(); }
  // Fills placeholders from `facts`. An absent fact gives ""; a present one its plain form.
  // The result is printable ASCII only (anything else becomes '?') and at most `max_length`
  // bytes, so client-controlled facts (helo, sender) cannot inject lines into a reply or header.
  std::string render(const Facts& facts, std::size_t max_length) const;
  // The template as written (placeholders in braces, braces doubled).
  std::string source() const;
};

struct Reply {
  int code = 0;
  std::string enhanced;  // "5.7.1"
  std::string text;
  // "550 5.7.1 text" (no CRLF).
  std::string to_string() const;
  friend bool operator==(const Reply&, const Reply&) = default;
};

struct ReplyTemplate {
  int code = 0;
  std::string enhanced;
  Template text;  // may be empty: the default text of the action
};

struct ActionSpec {
  Action action = Action::none;
  std::optional<ReplyTemplate> reply;
  // tag only:
  std::string header;
  Template header_value;
};

struct ActionError {
  std::size_t offset = 0;
  std::string message;
};

inline constexpr std::size_t max_action_length = 2048;
// RFC 5321 4.5.3.1.5: a reply line is at most 512 bytes with CRLF; "550 5.7.1 " takes 10.
inline constexpr std::size_t max_reply_text = 500;
// RFC 5322 2.1.1: lines at most 998 bytes; leaves room for the header name.
inline constexpr std::size_t max_header_value = 900;
inline constexpr std::size_t max_header_name = 76;

// Parses the `then` string: syntax, reply code format and classes (reject 5xx, tempfail 4xx,
// disconnect 421; the enhanced code's class equal to the reply's), header name syntax.
std::variant<ActionSpec, ActionError> parse_action(std::string_view text);

}  // namespace portcullis::policy
