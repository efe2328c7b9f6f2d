#include "session_state.h"

#include <array>

namespace portcullis {

namespace {

using S = SessionState;

struct Transition {
  SessionState from;
  SessionState to;
};

// Every move a session makes, and why. Anything not listed (and not a move to draining or
// closed, which any live session may make) is a defect: the session ends as internal_error.
constexpr Transition kTransitions[] = {
    // Connection set-up.
    {S::accepted, S::proxy_header},   // a PROXY-protocol listener: the header comes first
    {S::accepted, S::tls_handshake},  // an smtps listener: TLS before anything else
    {S::accepted, S::greeting},       // connect-phase filters and policy before the banner
    {S::accepted, S::command},        // nothing to screen: the banner at once
    {S::proxy_header, S::tls_handshake},
    {S::proxy_header, S::greeting},
    {S::proxy_header, S::command},
    {S::tls_handshake, S::greeting},  // implicit TLS is up: the SMTP session starts
    {S::tls_handshake, S::command},   // likewise without screening, or STARTTLS is done
    {S::greeting, S::command},        // the banner (or the 554 greeting) is sent

    // A command line: check, then filters and policy, then the upstream (OpenSMTPD's check →
    // filter → proceed).
    {S::command, S::waiting_filters},   // HELO/EHLO, MAIL, RCPT, end of data
    {S::command, S::waiting_upstream},  // MAIL, RCPT relayed; the message; RSET upstream
    {S::command, S::data},              // DATA answered 354
    {S::command, S::tls_handshake},     // STARTTLS answered 220
    {S::data, S::command},              // the end of the message is read
    {S::waiting_filters, S::command},   // the verdict is answered (or let through)
    {S::waiting_filters, S::waiting_upstream},
    {S::waiting_upstream, S::command},          // the upstream's reply is relayed
    {S::waiting_upstream, S::waiting_filters},  // an RSET upstream, then a new HELO's screening
};

constexpr auto kAllowed = [] {
  std::array<std::array<bool, kSessionStateCount>, kSessionStateCount> allowed{};
  for (const Transition& transition : kTransitions) {
    allowed[static_cast<size_t>(transition.from)][static_cast<size_t>(transition.to)] = true;
  }
  for (size_t from = 0; from < kSessionStateCount; ++from) {
    allowed[from][from] = true;
    if (from != static_cast<size_t>(S::closed)) {
      allowed[from][static_cast<size_t>(S::draining)] = true;
      allowed[from][static_cast<size_t>(S::closed)] = true;
    }
  }
  return allowed;
}();

}  // namespace

std::string_view to_string(SessionState state) {
  switch (state) {
    case S::accepted:
      return "accepted";
    case S::proxy_header:
      return "proxy_header";
    case S::tls_handshake:
      return "tls_handshake";
    case S::greeting:
      return "greeting";
    case S::command:
      return "command";
    case S::data:
      return "data";
    case S::waiting_filters:
      return "waiting_filters";
    case S::waiting_upstream:
      return "waiting_upstream";
    case S::draining:
      return "draining";
    case S::closed:
      return "closed";
  }
  return "unknown";
}

bool session_transition_allowed(SessionState from, SessionState to) {
  return kAllowed[static_cast<size_t>(from)][static_cast<size_t>(to)];
}

}  // namespace portcullis
