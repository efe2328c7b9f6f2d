// The dnsbl filter (DESIGN §4, §5; postscreen's dnsbl_sites with weights): at connect, one A
// query per configured list, all in parallel, for the client's reversed address under the
// list's zone (IPv6 clients in nibble form; IPv4-mapped clients as IPv4).
//
// Per list, the answer is one of:
//   listed      an A record inside the list's `answers`: its weight counts
//   not listed  NXDOMAIN, NODATA, or 127/8 records outside `answers` (another sub-list of a
//               combined list, such as a policy block list the operator does not count)
//   error       a record in 127.255.255.0/24 (the lists' error codes: "query refused",
//               "open resolver") or outside 127.0.0.0/8, a timeout, SERVFAIL or another DNS
//               failure: not listed, and a warning for the log and
//               portcullis_filter_warnings_total — never a refusal (a list that answers
//               everything with an error code must not block every client)
//
// Facts: dnsbl.score (sum of the weights of the lists that list the client; 0 when none) and
// dnsbl.lists (their zones, in configuration order).
//
// Pass cache (postscreen's postscreen_dnsbl_ttl, as pregreet's pass_ttl): with `pass_ttl`
// seconds, a client that passed — every list answered and none listed it (no error, no
// timeout, no allow-list hit either: its facts would not be the cached ones) — is remembered
// in the state store ("pass:dnsbl:ADDR") for that long. Its next sessions ask no list and get
// the facts of a clean lookup: dnsbl.score 0, dnsbl.lists empty. A store that fails or is
// absent costs only the cache: the lists are asked.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dns_resolver.h"
#include "dnsbl_settings.h"
#include "filter.h"
#include "filter_settings.h"
#include "ip_address.h"
#include "state_store.h"

namespace portcullis {

enum class DnsblVerdict { listed, not_listed, error };

// How one list's answer counts; for `error`, `why` says what was wrong.
DnsblVerdict classify_dnsbl_answer(const DnsblList& list, const DnsAnswer& answer,
                                   std::string& why);

// The factory for a valid [filter.dnsbl] block; nullptr with `errors` appended otherwise.
std::shared_ptr<const FilterFactory> build_dnsbl_filter(const SettingTable& table,
                                                        std::vector<SettingError>& errors);

// One session's queries, one per list.
class DnsblFilter : public SessionFilter {
 public:
  explicit DnsblFilter(std::shared_ptr<const DnsblSettings> settings)
      : settings_(std::move(settings)) {}

  HookStatus on_phase(HookContext& context) override;
  // Destroying the handles cancels the queries; no callback runs after this.
  void cancel() override;

 private:
  struct ListQuery {
    std::unique_ptr<DnsQuery> query;
    std::optional<DnsblVerdict> verdict;
    std::string why;
  };

  void start_queries();
  void on_answer(std::size_t index, DnsAnswer answer);
  // Ends the connect phase with `result`: the last thing done, since it may destroy this.
  void finish(FilterResult result);

  std::shared_ptr<const DnsblSettings> settings_;
  Completion completion_;
  // Set at connect; the resolver and the store belong to the worker, which outlives this.
  DnsResolver* resolver_ = nullptr;
  StateStore* store_ = nullptr;  // nullptr: no pass cache (pass_ttl 0 or no store)
  std::string labels_;           // the client's reversed address
  std::string pass_key_;
  std::unique_ptr<StoreCall> cache_call_;
  std::vector<ListQuery> queries_;
  std::size_t answered_ = 0;
  bool finished_ = false;
};

}  // namespace portcullis
