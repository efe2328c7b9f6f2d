// SECURITY: the answers come from the lists' servers (or whoever can spoof them). Only A
// records are read, as parsed addresses; nothing from an answer reaches the facts but the
// configured zone names, and the warning text carries at most the addresses, which are
// formatted by IpAddress and so are plain text.
#include "dnsbl/dnsbl_filter.h"

#include <fmt/format.h>

#include "dns_hook.h"

namespace portcullis {

namespace {

constexpr std::uint32_t loopback_first = 0x7f000000u;     // 127.0.0.0
constexpr std::uint32_t loopback_last = 0x7fffffffu;      // 127.255.255.255
constexpr std::uint32_t error_codes_first = 0x7fffff00u;  // 127.255.255.0

std::string dnsbl_pass_key(const IpAddress& client) {
  return store_key({"pass", "dnsbl", client.unmapped().to_string()});
}

// The facts of a client no list lists: a clean lookup's, and a cached pass's.
FilterResult clean_result() {
  FilterResult result;
  result.facts.set("dnsbl.score", std::int64_t{0});
  result.facts.set("dnsbl.lists", FactList{});
  return result;
}

class DnsblFactory : public FilterFactory {
 public:
  explicit DnsblFactory(DnsblSettings settings)
      : settings_(std::make_shared<const DnsblSettings>(std::move(settings))) {}
  std::unique_ptr<SessionFilter> create() const override {
    return std::make_unique<DnsblFilter>(settings_);
  }

 private:
  std::shared_ptr<const DnsblSettings> settings_;
};

}  // namespace

DnsblVerdict classify_dnsbl_answer(const DnsblList& list, const DnsAnswer& answer,
                                   std::string& why) {
  switch (answer.outcome) {
    case DnsOutcome::nxdomain:
    case DnsOutcome::no_data:
      return DnsblVerdict::not_listed;
    case DnsOutcome::temporary_failure:
    case DnsOutcome::failure:
      why = fmt::format("{}{}{}", dns_outcome_name(answer.outcome),
                        answer.reason.empty() ? "" : ": ", answer.reason);
      return DnsblVerdict::error;
    case DnsOutcome::answer:
      break;
  }
  bool listed = false;
  for (const DnsRecord& record : answer.records) {
    if (!record.address) continue;
    const IpAddress address = record.address->unmapped();
    const std::uint32_t number = address.is_v4() ? ipv4_number(address) : 0;
    if (!address.is_v4() || number < loopback_first || number > loopback_last) {
      // One bad record spoils the answer: a server that says this cannot be trusted for the
      // rest of it either.
      why = fmt::format("answered {}, outside 127.0.0.0/8", address.to_string());
      return DnsblVerdict::error;
    }
    if (number >= error_codes_first) {
      why = fmt::format("answered {}, an error code (127.255.255.0/24)", address.to_string());
      return DnsblVerdict::error;
    }
    for (const Ipv4Range& range : list.answers) {
      if (range.contains(number)) listed = true;
    }
  }
  return listed ? DnsblVerdict::listed : DnsblVerdict::not_listed;
}

std::shared_ptr<const FilterFactory> build_dnsbl_filter(const SettingTable& table,
                                                        std::vector<SettingError>& errors) {
  const std::size_t errors_before = errors.size();
  DnsblSettings settings = read_dnsbl_settings(table, errors);
  if (errors.size() != errors_before) return nullptr;
  return std::make_shared<DnsblFactory>(std::move(settings));
}

HookStatus DnsblFilter::on_phase(HookContext& context) {
  if (context.phase() != Phase::connect) return HookStatus::continue_chain;
  const auto start = start_dns_hook(context);
  if (!start) return HookStatus::continue_chain;
  resolver_ = &start->resolver;
  labels_ = reversed_labels(start->client);
  completion_ = context.park();
  store_ = settings_->pass_ttl.count() > 0 ? context.services().store() : nullptr;
  if (store_ == nullptr) {
    start_queries();
    return HookStatus::stop_iteration;
  }
  // Asked first: a remembered client costs one store read instead of a query per list.
  pass_key_ = dnsbl_pass_key(start->client);
  cache_call_ = store_->get(pass_key_, [this](StoreReply reply) {
    if (finished_) return;
    if (reply.status == StoreStatus::ok && reply.record) {
      finish(clean_result());
      return;
    }
    // Absent, expired, or the store failed: without the cache, the lists are asked.
    start_queries();
  });
  return HookStatus::stop_iteration;
}

void DnsblFilter::start_queries() {
  queries_.resize(settings_->lists.size());
  // resolve() never calls back before it returns, so every entry exists before any answer.
  for (std::size_t index = 0; index < queries_.size(); ++index) {
    queries_[index].query = resolver_->resolve(
        labels_ + "." + settings_->lists[index].zone, DnsType::a,
        [this, index](DnsAnswer answer) { on_answer(index, std::move(answer)); });
  }
}

void DnsblFilter::cancel() {
  finished_ = true;
  queries_.clear();
  cache_call_.reset();
}

void DnsblFilter::on_answer(std::size_t index, DnsAnswer answer) {
  if (finished_ || queries_[index].verdict) return;
  queries_[index].verdict =
      classify_dnsbl_answer(settings_->lists[index], answer, queries_[index].why);
  if (++answered_ < queries_.size()) return;

  FilterResult result = clean_result();
  std::int64_t score = 0;
  FactList hits;
  bool passed = true;
  for (std::size_t list = 0; list < queries_.size(); ++list) {
    const DnsblList& config = settings_->lists[list];
    switch (*queries_[list].verdict) {
      case DnsblVerdict::listed:
        score += config.weight;
        hits.push_back(config.zone);
        passed = false;
        break;
      case DnsblVerdict::error:
        result.warnings.push_back(
            fmt::format("{}: {} (counted as not listed)", config.zone, queries_[list].why));
        passed = false;  // an unanswered list says nothing about the client
        break;
      case DnsblVerdict::not_listed:
        break;
    }
  }
  result.facts.set("dnsbl.score", score);
  result.facts.set("dnsbl.lists", std::move(hits));
  if (passed && store_ != nullptr) {
    const auto ttl = settings_->pass_ttl;
    // Nothing waits for the answer (destroying the handle keeps the write); a failed write
    // only costs the next session its queries.
    cache_call_ = store_->update(
        pass_key_,
        [ttl](const std::optional<StoreRecord>&, StoreClock::time_point now) {
          return StoreChange{StoreRecord{"1", now + ttl}, "remembered"};
        },
        [](StoreReply) {});
  }
  finish(std::move(result));
}

void DnsblFilter::finish(FilterResult result) {
  finished_ = true;
  // A local copy: finishing may end the phase and destroy this filter.
  const Completion completion = completion_;
  completion.finish(std::move(result));
}

}  // namespace portcullis
