#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portcullis {

// A socket address (IPv4 or IPv6) with the text forms logs, XCLIENT and the config use.
struct NetAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  static std::optional<NetAddress> from_sockaddr(const sockaddr* sa, socklen_t len);
  // "192.0.2.1:25", "[2001:db8::1]:25", "localhost:25" is not accepted (numeric only).
  static std::optional<NetAddress> parse_host_port(std::string_view text);
  // A numeric address without a port.
  static std::optional<NetAddress> parse_ip(std::string_view text, uint16_t port = 0);

  // An IPv4-mapped IPv6 address (::ffff:192.0.2.1, what a dual-stack socket or load balancer
  // gives for an IPv4 client) as the IPv4 address it stands for; any other address unchanged.
  // Applied where an address enters (accept, PROXY header), so XCLIENT, limits, logs, headers
  // and filters all see the IPv4 client.
  NetAddress without_ipv4_mapping() const;

  bool is_ipv6() const { return storage.ss_family == AF_INET6; }
  std::string ip() const;  // "192.0.2.1", "2001:db8::1" (IPv4-mapped IPv6 → IPv4 text)
  uint16_t port() const;
  std::string host_port() const;  // "192.0.2.1:25", "[2001:db8::1]:25"
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
  // Key for per-client counting: the address for IPv4, its /64 for IPv6.
  std::string client_key() const;
};

}  // namespace portcullis
