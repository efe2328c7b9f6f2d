// The fcrdns filter (DESIGN §4, §5): forward-confirmed reverse DNS of the client at connect.
// The PTR names of the client address are looked up, then the A (IPv4 client; an IPv4-mapped
// client counts as IPv4) or AAAA records of each name, at most `max_names` (10, as SPF's ptr
// limit), all in parallel; a name whose addresses include the client's is confirmed.
//
// Facts:
//   client.ptr   the first PTR name that is a valid host name (unverified)
//   client.name  the first PTR name (in answer order) confirmed by its forward lookup
//   fcrdns       "pass" (confirmed), "fail" (PTR names, none confirmed), "none" (no PTR
//                record), "temperror" (a lookup failed temporarily and nothing was confirmed)
//
// SECURITY: PTR names are chosen by whoever controls the client's reverse zone. A name that is
// not a plain host name (letters, digits, '-', '_', dots; labels of 1..63 octets; at most 253
// octets; a last label that is not all digits) is ignored, so nothing else reaches the facts,
// XCLIENT or our headers; the work is bounded by `max_names` forward queries.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dns_resolver.h"
#include "filter.h"
#include "filter_settings.h"
#include "ip_address.h"

namespace portcullis {

// The words recorded in the fact `fcrdns`.
namespace fcrdns_result {
inline constexpr std::string_view pass = "pass";
inline constexpr std::string_view fail = "fail";
inline constexpr std::string_view none = "none";
inline constexpr std::string_view temperror = "temperror";
}  // namespace fcrdns_result

// Forward lookups per client at most (RFC 7208 4.6.4's limit for the ptr mechanism).
inline constexpr std::size_t fcrdns_max_names = 10;

// True for a name that may become client.ptr / client.name (see SECURITY above).
bool is_plain_host_name(std::string_view name);

// The factory for a valid [filter.fcrdns] block (it takes no keys); nullptr with `errors`
// appended otherwise.
std::shared_ptr<const FilterFactory> build_fcrdns_filter(const SettingTable& table,
                                                         std::vector<SettingError>& errors);

// One session's lookups: the PTR query, then one forward query per name.
class FcrdnsFilter : public SessionFilter {
 public:
  HookStatus on_phase(HookContext& context) override;
  // Destroying the handles cancels the queries; no callback runs after this.
  void cancel() override;

 private:
  struct ForwardLookup {
    std::string name;
    std::unique_ptr<DnsQuery> query;
    bool done = false;
    bool matched = false;
    bool temporary = false;
  };

  void on_ptr_answer(DnsAnswer answer);
  void on_forward_answer(std::size_t index, DnsAnswer answer);
  void finish_if_done();
  void finish(FilterResult result);

  DnsResolver* resolver_ = nullptr;
  std::optional<IpAddress> client_;
  Completion completion_;
  std::unique_ptr<DnsQuery> ptr_query_;
  std::vector<ForwardLookup> lookups_;
  bool finished_ = false;
};

}  // namespace portcullis
