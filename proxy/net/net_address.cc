// SECURITY: parse_host_port and parse_ip read operator config and PROXY-header text; they accept
// only bounded numeric forms (inet_pton on a copy of at most INET6_ADDRSTRLEN bytes, a port of at
// most five digits) and never resolve names.
#include "net_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace portcullis {
namespace {

// inet_pton needs a NUL-terminated string; anything longer than the longest textual address
// cannot be one, so the copy is bounded.
template <int Family>
bool text_to_binary(std::string_view text, void* binary) {
  char buffer[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof buffer) return false;
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  return inet_pton(Family, buffer, binary) == 1;
}

std::optional<uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

const sockaddr_in* as_ipv4(const sockaddr_storage& storage) {
  return reinterpret_cast<const sockaddr_in*>(&storage);
}

const sockaddr_in6* as_ipv6(const sockaddr_storage& storage) {
  return reinterpret_cast<const sockaddr_in6*>(&storage);
}

std::string ipv4_text(const in_addr& address) {
  char buffer[INET_ADDRSTRLEN];
  if (inet_ntop(AF_INET, &address, buffer, sizeof buffer) == nullptr) return {};
  return buffer;
}

std::string ipv6_text(const in6_addr& address) {
  char buffer[INET6_ADDRSTRLEN];
  if (inet_ntop(AF_INET6, &address, buffer, sizeof buffer) == nullptr) return {};
  return buffer;
}

// The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d).
in_addr mapped_ipv4(const in6_addr& address) {
  in_addr ipv4{};
  std::memcpy(&ipv4, address.s6_addr + 12, 4);
  return ipv4;
}

bool shows_as_ipv4(const sockaddr_storage& storage) {
  if (storage.ss_family == AF_INET) return true;
  return storage.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&as_ipv6(storage)->sin6_addr);
}

}  // namespace

std::optional<NetAddress> NetAddress::from_sockaddr(const sockaddr* sa, socklen_t len) {
  if (sa == nullptr) return std::nullopt;
  NetAddress result;
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    result.length = sizeof(sockaddr_in);
  } else if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    result.length = sizeof(sockaddr_in6);
  } else {
    return std::nullopt;
  }
  std::memcpy(&result.storage, sa, result.length);
  return result.without_ipv4_mapping();
}

NetAddress NetAddress::without_ipv4_mapping() const {
  if (storage.ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&as_ipv6(storage)->sin6_addr)) {
    return *this;
  }
  const sockaddr_in6* mapped = as_ipv6(storage);
  sockaddr_in ipv4{};
  ipv4.sin_family = AF_INET;
  ipv4.sin_port = mapped->sin6_port;
  std::memcpy(&ipv4.sin_addr, mapped->sin6_addr.s6_addr + 12, 4);
  NetAddress result;
  std::memcpy(&result.storage, &ipv4, sizeof ipv4);
  result.length = sizeof ipv4;
  return result;
}

std::optional<NetAddress> NetAddress::parse_ip(std::string_view text, uint16_t port) {
  NetAddress result;
  if (text.find(':') == std::string_view::npos) {
    auto* ipv4 = reinterpret_cast<sockaddr_in*>(&result.storage);
    if (!text_to_binary<AF_INET>(text, &ipv4->sin_addr)) return std::nullopt;
    ipv4->sin_family = AF_INET;
    ipv4->sin_port = htons(port);
    result.length = sizeof(sockaddr_in);
  } else {
    auto* ipv6 = reinterpret_cast<sockaddr_in6*>(&result.storage);
    if (!text_to_binary<AF_INET6>(text, &ipv6->sin6_addr)) return std::nullopt;
    ipv6->sin6_family = AF_INET6;
    ipv6->sin6_port = htons(port);
    result.length = sizeof(sockaddr_in6);
  }
  return result;
}

std::optional<NetAddress> NetAddress::parse_host_port(std::string_view text) {
  std::string_view host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    // Brackets are for IPv6 only: "[192.0.2.1]:25" is not a form anyone writes.
    if (host.find(':') == std::string_view::npos) return std::nullopt;
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    // An unbracketed IPv6 address is ambiguous ("::1:25"), so it is refused.
    if (host.find(':') != std::string_view::npos) return std::nullopt;
    port_text = text.substr(colon + 1);
  }
  const auto port = parse_port(port_text);
  if (!port) return std::nullopt;
  return parse_ip(host, *port);
}

std::string NetAddress::ip() const {
  if (storage.ss_family == AF_INET) return ipv4_text(as_ipv4(storage)->sin_addr);
  if (storage.ss_family != AF_INET6) return {};
  const in6_addr& address = as_ipv6(storage)->sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(&address)) return ipv4_text(mapped_ipv4(address));
  return ipv6_text(address);
}

uint16_t NetAddress::port() const {
  if (storage.ss_family == AF_INET) return ntohs(as_ipv4(storage)->sin_port);
  if (storage.ss_family == AF_INET6) return ntohs(as_ipv6(storage)->sin6_port);
  return 0;
}

std::string NetAddress::host_port() const {
  if (storage.ss_family != AF_INET && storage.ss_family != AF_INET6) return {};
  const std::string port_text = std::to_string(port());
  if (shows_as_ipv4(storage)) return ip() + ":" + port_text;
  return "[" + ip() + "]:" + port_text;
}

std::string NetAddress::client_key() const {
  if (shows_as_ipv4(storage)) return ip();
  if (storage.ss_family != AF_INET6) return {};
  // One IPv6 customer usually holds a whole /64, so counting per address would be useless.
  in6_addr prefix = as_ipv6(storage)->sin6_addr;
  std::memset(prefix.s6_addr + 8, 0, 8);
  return ipv6_text(prefix) + "/64";
}

}  // namespace portcullis
