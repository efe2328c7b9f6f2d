// SECURITY: parses mailbox paths from untrusted clients; bounded by RFC 5321 length limits.
#pragma once

#include <string>
#include <string_view>

namespace portcullis {

enum class PathKind { mail_from, rcpt_to };

struct ParsedPath {
  bool ok = false;
  std::string mailbox;  // without angle brackets and without a source route; "" for <>
  std::string domain;   // the part after '@', lower-cased; "" for <> and <Postmaster>
};

// RFC 5321 4.1.2 Reverse-path / Forward-path, including <> (MAIL only), <Postmaster>
// (RCPT only), an ignored source route (<@a,@b:user@example.org>), quoted local parts,
// address literals and (RFC 6531) UTF-8 in local part and domain. Limits: local part 64,
// domain 255, path 256 octets.
ParsedPath parse_path(std::string_view text, PathKind kind);

}  // namespace portcullis
