// A-labels for the Public Suffix List and DMARC: a domain label in UTF-8 turned into its ASCII
// form ("xn--" + RFC 3492 punycode), so that the list's Unicode rules and a From domain written
// either way compare equal. Only ASCII letters are case-folded; there is no IDNA2008 mapping or
// NFC normalisation (a label that needs them is compared as written).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace portcullis {

// The label lower-cased (ASCII) when it is ASCII, else "xn--" + punycode of its code points;
// nullopt for invalid UTF-8 or a label whose encoding would pass 63 bytes.
std::optional<std::string> idna_ascii_label(std::string_view label);

// Every label of `domain` so converted, joined with '.'; nullopt when a label is empty or
// cannot be converted. The form a DNS query and a comparison with other identifiers need.
std::optional<std::string> idna_ascii_domain(std::string_view domain);

}  // namespace portcullis
