// explain's view of the DNS: a DnsResolver that forwards every query to the real one and keeps
// what was asked and what came back, so that the trace can show the queries a result rests on.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dns_resolver.h"

namespace portcullis {

struct DnsExchange {
  std::string name;
  DnsType type = DnsType::a;
  // Empty while the query is in flight, and for a query cancelled before its answer (the
  // filter ended first, e.g. its timeout).
  std::optional<DnsAnswer> answer;
};

// "TXT example.test → answer \"v=spf1 -all\"", "A x.test → temporary_failure (timeout)".
std::string describe_exchange(const DnsExchange& exchange);
// {"name":…,"type":"TXT","outcome":"answer"|…|null,"records":[…],"reason":…}
std::string exchange_json(const DnsExchange& exchange);

class RecordingResolver final : public DnsResolver {
 public:
  explicit RecordingResolver(std::shared_ptr<DnsResolver> inner);

  std::unique_ptr<DnsQuery> resolve(std::string_view name, DnsType type,
                                    std::function<void(DnsAnswer)> callback) override;

  // The queries asked since the last take(), in the order they were asked.
  std::vector<DnsExchange> take();

 private:
  std::shared_ptr<DnsResolver> inner_;
  // Shared with the callbacks: an answer may arrive after take() moved the earlier entries out,
  // so entries are kept by a per-query slot, never by index into a vector that is taken.
  std::vector<std::shared_ptr<DnsExchange>> asked_;
};

}  // namespace portcullis
