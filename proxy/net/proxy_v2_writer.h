#pragma once

#include <string>

#include "net_address.h"

namespace portcullis {

// A PROXY protocol v2 header (PROXY command, TCP over IPv4 or IPv6) announcing the client's
// address as source and the address it connected to as destination. Mixed families are sent
// as IPv6 with IPv4-mapped addresses.
std::string build_proxy_v2_header(const NetAddress& source, const NetAddress& destination);

// A PROXY protocol v2 LOCAL header: a connection the proxy makes for itself (the start-up
// probe, a health check); the receiver keeps the real endpoints.
std::string build_proxy_v2_local_header();

}  // namespace portcullis
