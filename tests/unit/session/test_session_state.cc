// The session's state table (proxy/session/session_state.cc): the moves a session makes are
// allowed, the ones that would mean a defect are not.
#define BOOST_TEST_MODULE unit_session_state
#include <boost/test/unit_test.hpp>
#include <set>
#include <string>

#include "session_state.h"

using portcullis::kSessionStateCount;
using portcullis::session_closing;
using portcullis::session_transition_allowed;
using portcullis::session_waits;
using portcullis::SessionState;
using S = portcullis::SessionState;

namespace {

SessionState state_at(size_t index) {
  return static_cast<SessionState>(index);
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_state_has_its_own_name) {
  std::set<std::string> names;
  for (size_t index = 0; index < kSessionStateCount; ++index) {
    const std::string name(to_string(state_at(index)));
    BOOST_TEST(name != "unknown");
    names.insert(name);
  }
  BOOST_TEST(names.size() == kSessionStateCount);
  BOOST_TEST(to_string(S::waiting_upstream) == "waiting_upstream");
}

BOOST_AUTO_TEST_CASE(the_paths_a_session_takes_are_allowed) {
  // Plain: banner, EHLO screened, MAIL relayed, DATA, the message relayed, QUIT.
  const SessionState plain[] = {
      S::accepted,         S::greeting, S::command,  S::waiting_filters, S::command,
      S::waiting_upstream, S::command,  S::data,     S::command,         S::waiting_filters,
      S::waiting_upstream, S::command,  S::draining, S::closed};
  // A load balancer's PROXY header, implicit TLS, no screening.
  const SessionState smtps[] = {S::accepted, S::proxy_header, S::tls_handshake, S::command,
                                S::closed};
  // STARTTLS in the middle, then an RSET upstream followed by a new EHLO's screening.
  const SessionState starttls[] = {S::accepted, S::command,          S::tls_handshake,
                                   S::command,  S::waiting_upstream, S::waiting_filters,
                                   S::command,  S::draining,         S::closed};
  auto check = [](const auto& path) {
    for (size_t step = 1; step < std::size(path); ++step) {
      BOOST_TEST(session_transition_allowed(path[step - 1], path[step]),
                 to_string(path[step - 1]) << " -> " << to_string(path[step]));
    }
  };
  check(plain);
  check(smtps);
  check(starttls);
}

BOOST_AUTO_TEST_CASE(moves_that_would_be_a_defect_are_refused) {
  // Nothing is processed before the PROXY header or the handshake; no data without a command;
  // nothing comes back from closed; no return to set-up once the SMTP session runs.
  const std::pair<SessionState, SessionState> refused[] = {{S::proxy_header, S::data},
                                                           {S::tls_handshake, S::data},
                                                           {S::accepted, S::waiting_upstream},
                                                           {S::greeting, S::data},
                                                           {S::data, S::waiting_upstream},
                                                           {S::data, S::tls_handshake},
                                                           {S::waiting_upstream, S::data},
                                                           {S::waiting_filters, S::data},
                                                           {S::command, S::proxy_header},
                                                           {S::command, S::accepted},
                                                           {S::command, S::greeting},
                                                           {S::draining, S::command},
                                                           {S::closed, S::draining},
                                                           {S::closed, S::command},
                                                           {S::waiting_upstream, S::tls_handshake}};
  for (const auto& [from, to] : refused) {
    BOOST_TEST(!session_transition_allowed(from, to), to_string(from) << " -> " << to_string(to));
  }
}

BOOST_AUTO_TEST_CASE(any_live_state_may_close_and_staying_is_allowed) {
  for (size_t index = 0; index < kSessionStateCount; ++index) {
    const SessionState state = state_at(index);
    BOOST_TEST(session_transition_allowed(state, state), to_string(state));
    if (state == S::closed) continue;
    BOOST_TEST(session_transition_allowed(state, S::draining), to_string(state));
    BOOST_TEST(session_transition_allowed(state, S::closed), to_string(state));
  }
}

BOOST_AUTO_TEST_CASE(waiting_and_closing_states_are_classified) {
  std::set<SessionState> waiting, closing;
  for (size_t index = 0; index < kSessionStateCount; ++index) {
    if (session_waits(state_at(index))) waiting.insert(state_at(index));
    if (session_closing(state_at(index))) closing.insert(state_at(index));
  }
  BOOST_TEST(
      (waiting == std::set<SessionState>{S::greeting, S::waiting_filters, S::waiting_upstream}));
  BOOST_TEST((closing == std::set<SessionState>{S::draining, S::closed}));
}
