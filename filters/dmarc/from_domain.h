// The RFC5322.From domain DMARC evaluates (RFC 7489 §6.6.1), read from the message's header
// section. Exactly one From field holding exactly one mailbox gives its domain, lower-cased;
// anything else (no From, several From fields, several mailboxes, a group, an address without
// a domain or with a domain literal, unbalanced quotes, comments or brackets) is an error, so
// the filter reports `permerror` rather than picking one of several authors (CVE-2019-16378).
// One pass over the header, so the work is linear in its size.
// SECURITY: the header section is the client's; nothing here trusts its structure.
#pragma once

#include <string>
#include <string_view>

namespace portcullis {

struct FromDomain {
  std::string domain;  // empty when `error` is set
  std::string error;   // why there is no single From domain (for logs and the trace)
  bool ok() const { return error.empty(); }
};

// `header_section`: the header bytes up to the empty line (CRLF or LF line ends).
FromDomain extract_from_domain(std::string_view header_section);

}  // namespace portcullis
