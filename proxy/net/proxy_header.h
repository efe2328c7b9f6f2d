// SECURITY: this parser reads the first bytes of a connection, before any SMTP, from a load
// balancer in [trust] proxy_peers (the listener must check the peer before calling it). It is
// pure (bytes in, a verdict out, no I/O, no state between calls), never throws, never reads
// past the bytes it is given and never asks for more than kMaxHeaderSize bytes: a v1 line is
// judged within kMaxV1LineLength octets and a v2 header within 16 + kMaxV2DeclaredLength.
// Error texts are fixed phrases and numbers, never bytes from the input, so they are safe to
// log as they are. tests/fuzz/fuzz_proxy_header.cc exercises it.
//
// Protocol: http://www.haproxy.org/download/2.9/doc/proxy-protocol.txt (v1 and v2).
//
// Never guess (spec section 5): the first bytes must be "PROXY " (v1) or the 12-byte v2
// signature; anything else is an error as soon as the bytes received cannot be the start of
// either, and never before. Every other malformation is also reported at the first byte that
// makes it certain (a lone LF, a CR not followed by LF, an unknown keyword, a bad octet, port
// or spacing, a v2 version, command, family or length that cannot be right), so a bad peer is
// cut off without waiting for its timeout; feeding the bytes one at a time or all at once gives
// the same result, error text included. (IPv6 text is checked early for its characters, group
// lengths and "::" only; the rest of its validity is decided by inet_pton when the field ends.)
//
// v1 (one US-ASCII line, CRLF within 107 octets including the CRLF), exactly:
//   "PROXY TCP4 <IPv4> <IPv4> <port> <port>\r\n"   single spaces; dotted quads (inet_pton, so
//   "PROXY TCP6 <IPv6> <IPv6> <port> <port>\r\n"   no leading zeros); ports 0-65535 in decimal
//   "PROXY UNKNOWN\r\n" or "PROXY UNKNOWN <anything but CR/LF>\r\n"   → local
// Address text of the other family (TCP4 with IPv6 text, or the reverse) is an error. The
// keyword must be exactly one of TCP4, TCP6, UNKNOWN: "UNKNOWNX" is an error, as is any
// lower-case form.
//
// v2 (binary, big-endian): signature, then version (high nibble, must be 2) and command (low
// nibble: 0 LOCAL, 1 PROXY, others are an error), family/transport byte, 16-bit length of the
// rest. With PROXY: 0x11 TCP/IPv4 and 0x21 TCP/IPv6 give the addresses (the length must cover
// the 12- or 36-byte address block); 0x12 and 0x22 (UDP) are an error, we relay TCP only;
// 0x00 UNSPEC and 0x31/0x32 UNIX → local (UNIX must still carry its 216-byte address block);
// every other family byte is an error, as the spec requires. With LOCAL the family and address
// block are ignored (spec: "discard the protocol block including the family") → local. After
// the addresses of INET, INET6 and UNIX headers, TLVs are skipped by their lengths: each must
// fit inside the declared length, or the header is an error. CRC32C TLVs are not verified (the
// spec makes it optional; the peer is trusted and TCP checksums the bytes). The whole declared
// length is always consumed.
//
// Length cap: the 16-bit field allows 65535 bytes, but a declared length above
// kMaxV2DeclaredLength (1024 + 216: the largest address block plus 1 KiB of TLVs) is an error.
// The spec's own sample receiver reads at most 16 + 216 bytes and rejects anything longer;
// the TLVs real senders add (HAProxy's SSL, ALPN, AUTHORITY, UNIQUE_ID ≤ 128 bytes; cloud load
// balancers' endpoint IDs) stay far below 1 KiB. The cap keeps what a connection can make us
// buffer before the banner small.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "net_address.h"

namespace portcullis {

class ProxyHeaderParser {
 public:
  static constexpr size_t kMaxV1LineLength = 107;  // including the CRLF (spec 2.1)
  static constexpr size_t kV2FixedLength = 16;     // signature, ver/cmd, family, length
  static constexpr size_t kMaxV2DeclaredLength = 1024 + 216;
  // The most bytes feed() can need before it stops answering need_more.
  static constexpr size_t kMaxHeaderSize = kV2FixedLength + kMaxV2DeclaredLength;

  enum class Status { need_more, done, error };

  struct Result {
    Status status = Status::need_more;
    // On done: bytes of the header (the SMTP stream starts right after them); never more than
    // the header, so bytes a client sent early stay in the caller's buffer. 0 otherwise.
    size_t consumed = 0;
    // v2 LOCAL, v1 UNKNOWN, v2 UNSPEC or UNIX family: keep the real endpoints. When local is
    // false on done, source and destination are both set and of the same family.
    bool local = false;
    std::optional<NetAddress> source, destination;
    std::string error;  // on error: why (a fixed phrase, safe for the log line)
  };

  // Called with all bytes received so far on the connection (not just the new ones). A timeout
  // while the answer is need_more is the caller's job (DESIGN: [trust] proxy_timeout).
  Result feed(std::string_view bytes_so_far) const;
};

}  // namespace portcullis
