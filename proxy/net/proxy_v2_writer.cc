#include "proxy_v2_writer.h"

#include <netinet/in.h>

#include <cstdint>
#include <cstring>

namespace portcullis {
namespace {

constexpr unsigned char signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr unsigned char version_2_proxy = 0x21;
constexpr unsigned char family_unspec = 0x00;
constexpr unsigned char tcp_over_ipv4 = 0x11;
constexpr unsigned char tcp_over_ipv6 = 0x21;

bool is_family(const NetAddress& address, int family) {
  return address.storage.ss_family == family;
}

const in6_addr* ipv6_of(const NetAddress& address) {
  return &reinterpret_cast<const sockaddr_in6*>(&address.storage)->sin6_addr;
}

// True for an IPv4 address, or an IPv6 one that only carries IPv4 (a dual-stack listener).
bool is_ipv4_client(const NetAddress& address) {
  if (is_family(address, AF_INET)) return true;
  return is_family(address, AF_INET6) && IN6_IS_ADDR_V4MAPPED(ipv6_of(address));
}

void append_ipv4(std::string* out, const NetAddress& address) {
  unsigned char bytes[4];
  if (is_family(address, AF_INET)) {
    std::memcpy(bytes, &reinterpret_cast<const sockaddr_in*>(&address.storage)->sin_addr, 4);
  } else {
    std::memcpy(bytes, ipv6_of(address)->s6_addr + 12, 4);
  }
  out->append(reinterpret_cast<const char*>(bytes), sizeof bytes);
}

void append_ipv6(std::string* out, const NetAddress& address) {
  unsigned char bytes[16] = {};
  if (is_family(address, AF_INET6)) {
    std::memcpy(bytes, ipv6_of(address)->s6_addr, 16);
  } else {
    bytes[10] = 0xFF;
    bytes[11] = 0xFF;
    std::memcpy(bytes + 12, &reinterpret_cast<const sockaddr_in*>(&address.storage)->sin_addr, 4);
  }
  out->append(reinterpret_cast<const char*>(bytes), sizeof bytes);
}

void append_be16(std::string* out, uint16_t value) {
  out->push_back(static_cast<char>(value >> 8));
  out->push_back(static_cast<char>(value & 0xFF));
}

}  // namespace

std::string build_proxy_v2_header(const NetAddress& source, const NetAddress& destination) {
  std::string header(reinterpret_cast<const char*>(signature), sizeof signature);
  header.push_back(static_cast<char>(version_2_proxy));

  const auto known = [](const NetAddress& a) {
    return is_family(a, AF_INET) || is_family(a, AF_INET6);
  };
  if (!known(source) || !known(destination)) {
    // UNSPEC: the receiver falls back to the connection's own addresses.
    header.push_back(static_cast<char>(family_unspec));
    append_be16(&header, 0);
    return header;
  }

  if (is_ipv4_client(source) && is_ipv4_client(destination)) {
    header.push_back(static_cast<char>(tcp_over_ipv4));
    append_be16(&header, 4 + 4 + 2 + 2);
    append_ipv4(&header, source);
    append_ipv4(&header, destination);
  } else {
    header.push_back(static_cast<char>(tcp_over_ipv6));
    append_be16(&header, 16 + 16 + 2 + 2);
    append_ipv6(&header, source);
    append_ipv6(&header, destination);
  }
  append_be16(&header, source.port());
  append_be16(&header, destination.port());
  return header;
}

std::string build_proxy_v2_local_header() {
  std::string header(reinterpret_cast<const char*>(signature), sizeof signature);
  header.push_back(static_cast<char>(0x20));  // version 2, command LOCAL
  header.push_back(static_cast<char>(0x00));  // UNSPEC
  header.push_back(static_cast<char>(0x00));  // no address block
  header.push_back(static_cast<char>(0x00));
  return header;
}

}  // namespace portcullis
