// Where a client session is, as one value, and the moves between those places (the table is in
// session_state.cc). Every asynchronous wait is a state of its own, so that a new kind of wait
// (DNS, a store) is a new row here rather than one more flag in the session.
#pragma once

#include <cstddef>
#include <string_view>

namespace portcullis {

enum class SessionState {
  accepted,          // constructed; nothing read or written yet
  proxy_header,      // waiting for the PROXY header (a trusted load balancer's listener)
  tls_handshake,     // implicit TLS, or after the 220 to STARTTLS
  greeting,          // connect-phase filters and policy judge the client before the banner
  command,           // ready for the next command line
  data,              // reading message content after the 354
  waiting_filters,   // a phase's filters or the policy decide (helo, mail, rcpt, data)
  waiting_upstream,  // a command, the message or an RSET waits for the upstream's reply
  draining,          // closing: the last replies are being written
  closed,            // finished; the worker frees the session
};

inline constexpr size_t kSessionStateCount = static_cast<size_t>(SessionState::closed) + 1;

std::string_view to_string(SessionState state);

// True when the session may move from `from` to `to` (staying in a state is always allowed).
bool session_transition_allowed(SessionState from, SessionState to);

// States in which the client's pipelined input is read into the buffer but not processed.
constexpr bool session_waits(SessionState state) {
  return state == SessionState::greeting || state == SessionState::waiting_filters ||
         state == SessionState::waiting_upstream;
}

constexpr bool session_closing(SessionState state) {
  return state == SessionState::draining || state == SessionState::closed;
}

}  // namespace portcullis
