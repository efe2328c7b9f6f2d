// SECURITY: key values come from the client (HELO, MAIL FROM, RCPT TO). They reach the store
// only through store_key(), which escapes every byte that could reach into another part, and
// are bounded (hashed past max_store_key_bytes); nothing the store answers reaches the facts
// but numbers that decode_rate_decision() checked.
#include "ratelimit/ratelimit_filter.h"

#include <algorithm>

#include <fmt/format.h>

namespace portcullis {

namespace {

class RatelimitFactory : public FilterFactory {
 public:
  explicit RatelimitFactory(RatelimitSettings settings)
      : settings_(std::make_shared<const RatelimitSettings>(std::move(settings))) {}
  std::unique_ptr<SessionFilter> create() const override {
    return std::make_unique<RatelimitFilter>(settings_);
  }
  const RatelimitSettings& settings() const { return *settings_; }

 private:
  std::shared_ptr<const RatelimitSettings> settings_;
};

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return out;
}

std::uint64_t fnv1a64(std::string_view text) {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (const char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

const char* fact_of_key(RateLimitKey key) {
  switch (key) {
    case RateLimitKey::helo:
      return "helo";
    case RateLimitKey::sender:
      return "sender";
    case RateLimitKey::sender_domain:
      return "sender.domain";
    case RateLimitKey::rcpt:
      return "rcpt";
    case RateLimitKey::rcpt_domain:
      return "rcpt.domain";
    case RateLimitKey::client_ip:
    case RateLimitKey::client_net:
      break;
  }
  return "";
}

GcraLimit gcra_of(const RateLimit& limit) {
  return GcraLimit{limit.limit, limit.per_seconds};
}

}  // namespace

std::shared_ptr<const FilterFactory> build_ratelimit_filter(const SettingTable& table,
                                                            std::vector<SettingError>& errors) {
  const std::size_t errors_before = errors.size();
  RatelimitSettings settings = read_ratelimit_settings(table, errors);
  if (errors.size() != errors_before) return nullptr;
  return std::make_shared<RatelimitFactory>(std::move(settings));
}

std::vector<RateLimitFacts> rate_limit_facts_of(const FilterFactory& factory) {
  const auto* ours = dynamic_cast<const RatelimitFactory*>(&factory);
  return ours != nullptr ? rate_limit_facts(ours->settings()) : std::vector<RateLimitFacts>{};
}

std::optional<std::string> rate_limit_store_key(const RateLimit& limit, const SessionView& view) {
  std::string value;
  if (limit.key == RateLimitKey::client_ip || limit.key == RateLimitKey::client_net) {
    if (!view.client_ip) return std::nullopt;
    const IpAddress address = view.client_ip->unmapped();
    const unsigned prefix = address.is_v4() ? limit.ipv4_prefix : limit.ipv6_prefix;
    value = fmt::format("{}/{}", address.masked(prefix).to_string(), prefix);
  } else {
    const std::string* fact =
        view.facts != nullptr ? view.facts->string(fact_of_key(limit.key)) : nullptr;
    if (fact == nullptr) return std::nullopt;
    value = fact->empty() ? "<>" : lowercase(*fact);
  }
  std::string key = store_key({"rl", limit.name, value});
  if (key.size() > max_store_key_bytes) {
    key = store_key({"rl", limit.name, fmt::format("fnv1a64-{:016x}", fnv1a64(value))});
  }
  return key;
}

RatelimitFilter::RatelimitFilter(std::shared_ptr<const RatelimitSettings> settings)
    : settings_(std::move(settings)),
      keys_(settings_->limits.size()),
      holds_concurrent_(settings_->limits.size(), false) {}

HookStatus RatelimitFilter::on_phase(HookContext& context) {
  const Phase phase = context.phase();
  std::vector<std::size_t> due;
  for (std::size_t index = 0; index < settings_->limits.size(); ++index) {
    if (counter_phase(settings_->limits[index].counter) == phase) due.push_back(index);
  }
  if (due.empty()) return HookStatus::continue_chain;
  StateStore* store = context.services().store();
  if (store == nullptr) {
    context.fail("no store");
    return HookStatus::continue_chain;
  }
  store_ = store;

  calls_.clear();
  warnings_.clear();
  answered_ = 0;
  for (const std::size_t index : due) {
    const RateLimit& limit = settings_->limits[index];
    auto key = rate_limit_store_key(limit, context.session());
    if (!key) {
      warnings_.push_back(fmt::format("limit {}: the session has no {}; not counted", limit.name,
                                      rate_limit_key_name(limit.key)));
      continue;
    }
    if (limit.counter == RateLimitCounter::bytes && context.message() == nullptr) {
      warnings_.push_back(
          fmt::format("limit {}: no message at the data phase; not counted", limit.name));
      continue;
    }
    keys_[index] = std::move(*key);
    calls_.push_back(Call{index, nullptr, std::nullopt, ""});
  }
  if (calls_.empty()) {
    for (auto& warning : warnings_)
      context.warn(std::move(warning));
    warnings_.clear();
    return HookStatus::continue_chain;
  }

  completion_ = context.park();
  finished_ = false;
  const StoreClock::time_point now = context.services().now();
  const std::int64_t size =
      context.message() != nullptr ? static_cast<std::int64_t>(context.message()->size()) : 0;
  // The store never calls back before it returns, so every entry exists before any answer.
  for (std::size_t call = 0; call < calls_.size(); ++call) {
    const RateLimit& limit = settings_->limits[calls_[call].limit];
    const std::string& key = *keys_[calls_[call].limit];
    auto done = [this, call, now](StoreReply reply) { on_reply(call, std::move(reply), now); };
    const GcraLimit gcra = gcra_of(limit);
    switch (limit.counter) {
      case RateLimitCounter::errors:
        calls_[call].handle = store->get(key, std::move(done));
        break;
      case RateLimitCounter::concurrent:
        calls_[call].handle = store->update(
            key,
            [limit = limit.limit, lifetime = limit.per_seconds](
                const std::optional<StoreRecord>& current, StoreClock::time_point store_now) {
              return concurrent_enter(current, store_now, limit, lifetime);
            },
            std::move(done));
        break;
      case RateLimitCounter::connections:
      case RateLimitCounter::messages:
      case RateLimitCounter::recipients:
      case RateLimitCounter::bytes: {
        const std::int64_t cost = limit.counter == RateLimitCounter::bytes ? size : 1;
        calls_[call].handle = store->update(
            key,
            [gcra, cost](const std::optional<StoreRecord>& current,
                         StoreClock::time_point store_now) {
              return gcra_admit(current, store_now, gcra, cost);
            },
            std::move(done));
        break;
      }
    }
  }
  return HookStatus::stop_iteration;
}

void RatelimitFilter::cancel() {
  finished_ = true;
  calls_.clear();
}

void RatelimitFilter::on_reply(std::size_t index, StoreReply reply,
                               StoreClock::time_point asked_at) {
  if (finished_ || index >= calls_.size() || calls_[index].decision ||
      !calls_[index].error.empty()) {
    return;
  }
  Call& call = calls_[index];
  const RateLimit& limit = settings_->limits[call.limit];
  if (reply.status != StoreStatus::ok) {
    call.error = fmt::format("limit {}: store {}{}{}", limit.name, store_status_name(reply.status),
                             reply.error.empty() ? "" : ": ", reply.error);
  } else if (limit.counter == RateLimitCounter::errors) {
    call.decision = gcra_peek(reply.record, asked_at, gcra_of(limit));
  } else if (auto decision = decode_rate_decision(reply.result)) {
    call.decision = *decision;
  } else {
    call.error = fmt::format("limit {}: the store returned an unexpected result", limit.name);
  }
  if (call.decision && limit.counter == RateLimitCounter::concurrent && !call.decision->exceeded) {
    holds_concurrent_[call.limit] = true;
  }
  if (++answered_ == calls_.size()) finish();
}

void RatelimitFilter::finish() {
  FilterResult result;
  result.warnings = std::move(warnings_);
  std::vector<std::string> errors;
  for (const Call& call : calls_) {
    const RateLimit& limit = settings_->limits[call.limit];
    if (!call.decision) {
      errors.push_back(call.error);
      continue;
    }
    if (call.decision->unreadable_record) {
      result.warnings.push_back(fmt::format(
          "limit {}: the stored record was unreadable and counted as empty", limit.name));
    }
    const std::string fact = "rate." + limit.name;
    result.facts.set(fact, call.decision->count);
    result.facts.set(fact + ".exceeded", call.decision->exceeded);
    result.facts.set(fact + ".retry_after", call.decision->retry_after);
  }
  if (!errors.empty()) {
    std::string joined;
    for (const auto& error : errors)
      joined += (joined.empty() ? "" : "; ") + error;
    result.error = std::move(joined);
  }
  finished_ = true;
  calls_.clear();
  // Last action: finishing may end the phase and destroy this filter.
  const Completion completion = completion_;
  completion.finish(std::move(result));
}

void RatelimitFilter::on_session_end(const SessionView& view) {
  if (store_ == nullptr) return;
  for (std::size_t index = 0; index < settings_->limits.size(); ++index) {
    const RateLimit& limit = settings_->limits[index];
    if (!keys_[index]) continue;
    // The handles are dropped at once: the callback is cancelled, the update still applied.
    if (limit.counter == RateLimitCounter::concurrent && holds_concurrent_[index]) {
      holds_concurrent_[index] = false;
      store_->update(
          *keys_[index],
          [lifetime = limit.per_seconds](const std::optional<StoreRecord>& current,
                                         StoreClock::time_point now) {
            return concurrent_leave(current, now, lifetime);
          },
          [](StoreReply) {});
    } else if (limit.counter == RateLimitCounter::errors && view.errors > 0) {
      store_->update(
          *keys_[index],
          [gcra = gcra_of(limit), cost = static_cast<std::int64_t>(view.errors)](
              const std::optional<StoreRecord>& current, StoreClock::time_point now) {
            return gcra_charge(current, now, gcra, cost);
          },
          [](StoreReply) {});
    }
  }
}

}  // namespace portcullis
