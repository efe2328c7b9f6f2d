#include "greylist_filter.h"

#include <fmt/format.h>

#include "greylist_sender.h"

namespace portcullis {

namespace {

// Addresses longer than this are cut: a key must stay within max_store_key_bytes even when
// every byte is escaped (3 bytes each) and both addresses are at their limit.
constexpr std::size_t max_address_bytes = 80;

class GreylistFactory : public FilterFactory {
 public:
  explicit GreylistFactory(GreylistSettings settings)
      : settings_(std::make_shared<const GreylistSettings>(std::move(settings))) {}
  std::unique_ptr<SessionFilter> create() const override {
    return std::make_unique<GreylistFilter>(settings_);
  }

 private:
  std::shared_ptr<const GreylistSettings> settings_;
};

std::string lower(std::string_view text) {
  std::string out(text.substr(0, max_address_bytes));
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

FilterResult facts_of(std::string_view state, std::chrono::seconds retry_after) {
  FilterResult result;
  result.facts.set("greylist", std::string(state));
  result.facts.set("greylist.retry_after", static_cast<std::int64_t>(retry_after.count()));
  return result;
}

std::string store_problem(const StoreReply& reply) {
  return std::string("store ") + store_status_name(reply.status) + ": " + reply.error;
}

}  // namespace

GreylistSettings read_greylist_settings(const SettingTable& table,
                                        std::vector<SettingError>& errors) {
  SettingsReader reader(table, errors);
  GreylistSettings settings;
  constexpr std::int64_t year = 366 * 86400;
  settings.times.delay = std::chrono::seconds(reader.integer("delay", 300, 1, 86400));
  settings.times.retry_window =
      std::chrono::seconds(reader.integer("retry_window", 172800, 60, year));
  settings.times.lifetime = std::chrono::seconds(reader.integer("lifetime", 3024000, 3600, year));
  settings.ipv4_prefix = static_cast<unsigned>(reader.integer("ipv4_prefix", 24, 8, 32));
  settings.ipv6_prefix = static_cast<unsigned>(reader.integer("ipv6_prefix", 64, 16, 128));
  settings.auto_allow_after = static_cast<long>(reader.integer("auto_allow_after", 5, 0, 1000000));
  settings.skip_spf_pass = reader.boolean("skip_spf_pass", false);
  reader.reject_unknown({"delay", "retry_window", "lifetime", "ipv4_prefix", "ipv6_prefix",
                         "auto_allow_after", "skip_spf_pass"});
  return settings;
}

std::shared_ptr<const FilterFactory> build_greylist_filter(const SettingTable& table,
                                                           std::vector<SettingError>& errors) {
  const std::size_t errors_before = errors.size();
  GreylistSettings settings = read_greylist_settings(table, errors);
  if (errors.size() != errors_before) return nullptr;
  return std::make_shared<GreylistFactory>(std::move(settings));
}

std::string greylist_triplet_key(const std::string& network, const std::string& sender,
                                 const std::string& rcpt) {
  return store_key({"gl", network, sender, rcpt});
}

std::string greylist_network_key(const std::string& network) {
  return store_key({"gla", network});
}

std::string greylist_network(const IpAddress& client, const GreylistSettings& settings) {
  const IpAddress address = client.unmapped();
  const unsigned prefix = address.is_v4() ? settings.ipv4_prefix : settings.ipv6_prefix;
  return fmt::format("{}/{}", address.masked(prefix).to_string(), prefix);
}

GreylistFilter::GreylistFilter(std::shared_ptr<const GreylistSettings> settings)
    : settings_(std::move(settings)) {}

HookStatus GreylistFilter::on_phase(HookContext& context) {
  if (context.phase() != Phase::rcpt) return HookStatus::continue_chain;
  const SessionView& view = context.session();
  const Facts* facts = view.facts;
  const std::string* rcpt = facts != nullptr ? facts->string("rcpt") : nullptr;
  const std::string* sender = facts != nullptr ? facts->string("sender") : nullptr;
  if (!view.client_ip || rcpt == nullptr || sender == nullptr) {
    context.fail("no client address, sender or recipient");
    return HookStatus::continue_chain;
  }
  if (settings_->skip_spf_pass) {
    const std::string* spf = facts->string("spf");
    if (spf != nullptr && *spf == "pass") {
      for (auto& [name, value] : facts_of("skipped", std::chrono::seconds(0)).facts)
        context.record(name, value);
      return HookStatus::continue_chain;
    }
  }
  store_ = context.services().store();
  if (store_ == nullptr) {
    context.fail("no store");
    return HookStatus::continue_chain;
  }
  network_ = greylist_network(*view.client_ip, *settings_);
  triplet_key_ =
      greylist_triplet_key(network_, lower(normalise_greylist_sender(*sender)), lower(*rcpt));
  completion_ = context.park();
  if (settings_->auto_allow_after > 0) {
    call_ = store_->get(greylist_network_key(network_),
                        [this](StoreReply reply) { on_allow_count(std::move(reply)); });
  } else {
    on_allow_count(StoreReply{});
  }
  return HookStatus::stop_iteration;
}

void GreylistFilter::on_allow_count(StoreReply reply) {
  if (reply.status != StoreStatus::ok) {
    FilterResult failed;
    failed.error = store_problem(reply);
    return finish(std::move(failed));
  }
  if (settings_->auto_allow_after > 0 &&
      passed_triplet_count(reply.record) >= settings_->auto_allow_after) {
    return finish(facts_of("allowed", std::chrono::seconds(0)));
  }
  const GreylistTimes times = settings_->times;
  call_ = store_->update(
      triplet_key_,
      [times](const std::optional<StoreRecord>& current, StoreClock::time_point now) {
        return greylist_attempt(times, current, now);
      },
      [this](StoreReply answer) { on_attempt(std::move(answer)); });
}

void GreylistFilter::on_attempt(StoreReply reply) {
  if (reply.status != StoreStatus::ok) {
    FilterResult failed;
    failed.error = store_problem(reply);
    return finish(std::move(failed));
  }
  const auto decision = decode_greylist_decision(reply.result);
  if (!decision) {
    FilterResult failed;
    failed.error = "store returned an unreadable greylist decision";
    return finish(std::move(failed));
  }
  if (decision->first_pass && settings_->auto_allow_after > 0) {
    const auto lifetime = settings_->times.lifetime;
    count_call_ = store_->update(
        greylist_network_key(network_),
        [lifetime](const std::optional<StoreRecord>& current, StoreClock::time_point now) {
          return count_passed_triplet(lifetime, current, now);
        },
        [](StoreReply) {});
  }
  finish(facts_of(greylist_state_name(decision->state), decision->retry_after));
}

void GreylistFilter::finish(FilterResult result) {
  // The completion's owner may destroy this filter: nothing runs after finish().
  Completion completion = completion_;
  completion.finish(std::move(result));
}

void GreylistFilter::cancel() {
  call_.reset();
}

}  // namespace portcullis
