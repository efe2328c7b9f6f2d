// The greylist filter (DESIGN §4, §9 [filter.greylist]): at RCPT, a triplet of the client's
// network, the normalised sender and the recipient is looked up and stepped in the state store
// (greylist_state.h): facts `greylist` (new, early, passed, allowed, skipped) and
// `greylist.retry_after`. The policy decides: default.toml tempfails new and early.
//   - allowed: the client's network has had auto_allow_after triplets pass (0: never), so it
//     is not delayed again (as postgrey's auto-whitelist does);
//   - skipped: skip_spf_pass and the sender's SPF passed — a trade-off: spammers publish SPF
//     too, but most legitimate mail then goes through at once (docs/filters.md).
// SECURITY: the sender and recipient come from the client; they reach the store only through
// store_key, which escapes them, and are cut to what a key can hold.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "filter.h"
#include "filter_settings.h"
#include "greylist_state.h"

namespace portcullis {

struct GreylistSettings {
  GreylistTimes times;
  unsigned ipv4_prefix = 24;
  unsigned ipv6_prefix = 64;
  long auto_allow_after = 5;  // 0: never
  bool skip_spf_pass = false;
};

GreylistSettings read_greylist_settings(const SettingTable& table,
                                        std::vector<SettingError>& errors);

std::shared_ptr<const FilterFactory> build_greylist_filter(const SettingTable& table,
                                                           std::vector<SettingError>& errors);

// The store keys: "gl:NET:SENDER:RCPT" for a triplet, "gla:NET" for a network's pass count.
std::string greylist_triplet_key(const std::string& network, const std::string& sender,
                                 const std::string& rcpt);
std::string greylist_network_key(const std::string& network);
// The client's network as the triplet names it ("192.0.2.0/24", "2001:db8:1:2::/64").
std::string greylist_network(const IpAddress& client, const GreylistSettings& settings);

class GreylistFilter : public SessionFilter {
 public:
  explicit GreylistFilter(std::shared_ptr<const GreylistSettings> settings);
  HookStatus on_phase(HookContext& context) override;
  void cancel() override;

 private:
  void on_allow_count(StoreReply reply);
  void on_attempt(StoreReply reply);
  void finish(FilterResult result);

  std::shared_ptr<const GreylistSettings> settings_;
  StateStore* store_ = nullptr;
  Completion completion_;
  std::string network_;
  std::string triplet_key_;
  std::unique_ptr<StoreCall> call_;
  // The network's pass count is raised after a first pass; the reply is not waited for.
  std::unique_ptr<StoreCall> count_call_;
};

}  // namespace portcullis
