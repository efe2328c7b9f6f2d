// What the session tells others about the client's DNS names, from the fcrdns filter's facts
// (client.name, client.ptr, fcrdns): XCLIENT NAME / REVERSE_NAME for the upstream, the name in
// our Received header, and the Authentication-Results iprev entry (RFC 8601 2.7.3).
// Pure: no I/O.
#pragma once

#include <optional>
#include <string>

#include "authentication_results.h"
#include "facts.h"

namespace portcullis {

// Postfix XCLIENT_README's values: a name, "[UNAVAILABLE]" or "[TEMPUNAVAIL]".
struct XclientNames {
  std::string name = "[UNAVAILABLE]";          // NAME: the forward-confirmed name
  std::string reverse_name = "[UNAVAILABLE]";  // REVERSE_NAME: the PTR name, unverified
};

// NAME = client.name, REVERSE_NAME = client.ptr; an absent one is "[TEMPUNAVAIL]" when the
// lookup failed temporarily (fcrdns = "temperror"), "[UNAVAILABLE]" otherwise (no PTR, not
// confirmed, or the fcrdns filter did not run).
XclientNames xclient_names(const Facts& facts);

// The name in "Received: from HELO (NAME [ADDR])": client.name, or "unknown" as Postfix writes.
std::string received_client_name(const Facts& facts);

// iprev from the fcrdns facts: pass (client.name; the name as the reason), fail (PTR names, none
// confirmed), permerror (no PTR record), temperror; nullopt when the filter did not run.
// `client_ip` is the policy.iprev property.
std::optional<AuthenticationMethodResult> iprev_result(const Facts& facts,
                                                       const std::string& client_ip);

}  // namespace portcullis
