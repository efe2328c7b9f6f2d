// SMTP session phases at which facts become known and policy rules run.
//
// The order of the enumerators is the order of a session: a fact known at `helo` is also known
// at every later phase of the same session (unless the session layer clears it, e.g. after
// STARTTLS or RSET). `data` means "end of data": the whole message has been read.
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace portcullis {

enum class Phase { connect, helo, mail, rcpt, data };

inline constexpr std::array<Phase, 5> all_phases = {Phase::connect, Phase::helo, Phase::mail,
                                                    Phase::rcpt, Phase::data};

// The lower-case name used in policy files, logs and metrics: "connect", "helo", ...
std::string_view phase_name(Phase phase);

// Inverse of phase_name; exact, case-sensitive match. nullopt for anything else.
std::optional<Phase> parse_phase(std::string_view name);

// Connect and helo decisions belong to the session; mail, rcpt and data ones to a transaction.
inline constexpr bool is_session_phase(Phase phase) {
  return phase == Phase::connect || phase == Phase::helo;
}

}  // namespace portcullis
