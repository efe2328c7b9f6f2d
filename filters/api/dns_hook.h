// What every DNS filter needs before it can ask anything about its client: the client's address
// and the worker's resolver. Missing either is the filter's failure (its failure_mode applies),
// reported the same way by each of them.
#pragma once

#include <optional>

#include "dns_resolver.h"
#include "filter.h"
#include "ip_address.h"

namespace portcullis {

struct DnsHookStart {
  IpAddress client;
  DnsResolver& resolver;
};

// nullopt after HookContext::fail() ("no client address" / "no resolver"): the hook then
// returns HookStatus::continue_chain.
inline std::optional<DnsHookStart> start_dns_hook(HookContext& context) {
  const SessionView& view = context.session();
  if (!view.client_ip) {
    context.fail("no client address");
    return std::nullopt;
  }
  DnsResolver* resolver = context.services().resolver();
  if (resolver == nullptr) {
    context.fail("no resolver");
    return std::nullopt;
  }
  return DnsHookStart{*view.client_ip, *resolver};
}

}  // namespace portcullis
