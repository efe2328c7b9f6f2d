#include "unbound_query.h"

#include <utility>

#include "unbound_resolver.h"

namespace portcullis {

UnboundQuery::UnboundQuery(std::weak_ptr<UnboundResolver> resolver, std::uint64_t id)
    : resolver_(std::move(resolver)), id_(id) {}

UnboundQuery::~UnboundQuery() {
  if (auto resolver = resolver_.lock()) resolver->cancel(id_);
}

}  // namespace portcullis
