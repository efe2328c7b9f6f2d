// The sender part of a greylist triplet. Mail systems rewrite the envelope sender per message
// (BATV signs it with a tag that changes daily, SRS rewrites it at each forwarder), so a retry
// of the same message can carry another sender: greylisting on the raw address would greylist
// every retry again. Pure.
// SECURITY: the sender comes from the client's MAIL FROM; only its bytes are rearranged, at
// most as many as it holds.
#pragma once

#include <string>
#include <string_view>

namespace portcullis {

// The address a retry keeps: lower-cased; a BATV prvs= tag removed
// ("prvs=1234abcdef=alice@example.org" → "alice@example.org"); an SRS0/SRS1 address taken back
// to the original sender ("SRS0=HHH=TT=example.org=alice@forwarder.example" →
// "alice@example.org"). Anything that does not parse as one of those is only lower-cased.
// The null sender stays "".
std::string normalise_greylist_sender(std::string_view sender);

}  // namespace portcullis
