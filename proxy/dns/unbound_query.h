// The handle UnboundResolver::resolve() returns: it knows its query by id and its resolver
// weakly, so destroying it cancels the query if the resolver still exists, and does nothing
// once the resolver is gone.
#pragma once

#include <cstdint>
#include <memory>

#include "dns_resolver.h"

namespace portcullis {

class UnboundResolver;

class UnboundQuery final : public DnsQuery {
 public:
  UnboundQuery(std::weak_ptr<UnboundResolver> resolver, std::uint64_t id);
  ~UnboundQuery() override;
  UnboundQuery(const UnboundQuery&) = delete;
  UnboundQuery& operator=(const UnboundQuery&) = delete;

 private:
  std::weak_ptr<UnboundResolver> resolver_;
  std::uint64_t id_;
};

}  // namespace portcullis
