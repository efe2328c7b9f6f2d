// The Authentication-Results header field (RFC 8601): writing Portcullis's own, and finding
// inbound copies that claim Portcullis's authserv-id so they can be left out when the message
// is relayed (RFC 8601 §5: a forged copy would otherwise be believed downstream).
// Pure: no I/O. The session maps filter facts to AuthenticationMethodResult.
// SECURITY: find_own_authentication_results reads the client's header section (untrusted);
// property values and reasons given to authentication_results_header usually come from the
// client too (sender domain, DKIM d=). See the .cc file header.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace portcullis {

// One "method=result [reason=...] ptype.property=value ..." entry (RFC 8601 §2.2 resinfo).
struct AuthenticationMethodResult {
  std::string method;  // e.g. "spf"
  std::string result;  // e.g. "pass"
  // In order, e.g. {"smtp.mailfrom", "example.org"}.
  std::vector<std::pair<std::string, std::string>> properties;
  std::string reason;  // written as reason="..." when not empty
};

// A span of message bytes, in offsets from the start of the message.
struct ByteRange {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

// The whole header field, folded one method per line and ending with CRLF:
//   "Authentication-Results: mx.example.org;\r\n\tspf=pass smtp.mailfrom=example.org\r\n"
// or, with no results, "Authentication-Results: mx.example.org; none\r\n".
// Control bytes (CR, LF, NUL, HTAB, DEL...) in any input are dropped. Method, result and
// property names keep only letters, digits, '-' (and '.' in property names); an entry whose
// method or result is then empty is left out, and so is a property with an empty name.
// Property values that are not RFC 2045 tokens are written as quoted strings; the reason is
// always quoted. Values longer than 400 bytes are cut (at a UTF-8 boundary) so that no line
// can pass the 998-byte limit of RFC 5322; lines are folded before a property or reason that
// would take a line past 78 characters.
std::string authentication_results_header(std::string_view authserv_id,
                                          const std::vector<AuthenticationMethodResult>& results);

// The Authentication-Results fields in `header_section` whose authserv-id equals `authserv_id`
// (ASCII case-insensitive; a token or a quoted string, after any comments and folding), each
// range covering the whole field with its continuation lines and line ends, in order.
// `header_section` is the message from its first byte up to, not including, the empty line
// that ends the header; when it holds no empty line, all of it is taken as header. Lines end
// in LF (CRLF in stored messages). Fields such as ARC-Authentication-Results or
// X-Authentication-Results are not matched. An empty `authserv_id` matches nothing.
std::vector<ByteRange> find_own_authentication_results(std::string_view header_section,
                                                       std::string_view authserv_id);

}  // namespace portcullis
