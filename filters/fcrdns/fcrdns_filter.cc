// SECURITY: every name here comes from DNS data an attacker may control (see the header). The
// names are checked before use, at most fcrdns_max_names forward queries are made whatever the
// PTR answer holds, and addresses are compared as parsed values, never as text.
#include "fcrdns/fcrdns_filter.h"

#include <algorithm>

#include "dns_hook.h"

namespace portcullis {

namespace {

constexpr std::size_t max_name_octets = 253;  // presentation form, no trailing dot
constexpr std::size_t max_label_octets = 63;  // RFC 1035 2.3.4

class FcrdnsFactory : public FilterFactory {
 public:
  std::unique_ptr<SessionFilter> create() const override {
    return std::make_unique<FcrdnsFilter>();
  }
};

bool is_host_name_octet(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool temporary(DnsOutcome outcome) {
  // REFUSED or a malformed packet says nothing about the client's names: like a timeout it is
  // no evidence either way, and a retry may succeed.
  return outcome == DnsOutcome::temporary_failure || outcome == DnsOutcome::failure;
}

}  // namespace

bool is_plain_host_name(std::string_view name) {
  if (name.empty() || name.size() > max_name_octets) return false;
  std::string_view rest = name;
  std::string_view last_label;
  while (true) {
    const std::size_t dot = rest.find('.');
    const std::string_view label = rest.substr(0, dot);
    if (label.empty() || label.size() > max_label_octets) return false;
    if (!std::all_of(label.begin(), label.end(), is_host_name_octet)) return false;
    last_label = label;
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  // "192.0.2.1" as a PTR target is an address dressed as a name (postfix's valid_hostname
  // refuses it too).
  return !std::all_of(last_label.begin(), last_label.end(), is_digit);
}

std::shared_ptr<const FilterFactory> build_fcrdns_filter(const SettingTable& table,
                                                         std::vector<SettingError>& errors) {
  const std::size_t errors_before = errors.size();
  SettingsReader reader(table, errors);
  reader.reject_unknown({});
  if (errors.size() != errors_before) return nullptr;
  return std::make_shared<FcrdnsFactory>();
}

HookStatus FcrdnsFilter::on_phase(HookContext& context) {
  if (context.phase() != Phase::connect) return HookStatus::continue_chain;
  const auto start = start_dns_hook(context);
  if (!start) return HookStatus::continue_chain;
  resolver_ = &start->resolver;
  client_ = start->client.unmapped();
  completion_ = context.park();
  ptr_query_ = resolver_->resolve(reverse_name(*client_), DnsType::ptr,
                                  [this](DnsAnswer answer) { on_ptr_answer(std::move(answer)); });
  return HookStatus::stop_iteration;
}

void FcrdnsFilter::cancel() {
  finished_ = true;
  ptr_query_.reset();
  lookups_.clear();
}

void FcrdnsFilter::on_ptr_answer(DnsAnswer answer) {
  if (finished_) return;
  FilterResult result;
  if (temporary(answer.outcome)) {
    result.facts.set("fcrdns", std::string(fcrdns_result::temperror));
    finish(std::move(result));
    return;
  }
  std::vector<std::string> names;
  for (const DnsRecord& record : answer.records) {
    if (names.size() == fcrdns_max_names) break;
    std::string name = record.name;
    if (!name.empty() && name.back() == '.') name.pop_back();
    std::transform(name.begin(), name.end(), name.begin(), [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    });
    if (!is_plain_host_name(name)) continue;
    if (std::find(names.begin(), names.end(), name) != names.end()) continue;
    names.push_back(std::move(name));
  }
  if (names.empty()) {
    // No PTR record, or only names we do not use: nothing to confirm. A PTR answer whose every
    // name is malformed is still "fail" (the client has reverse DNS, just not a usable name).
    const bool had_records = answer.outcome == DnsOutcome::answer && !answer.records.empty();
    result.facts.set("fcrdns",
                     std::string(had_records ? fcrdns_result::fail : fcrdns_result::none));
    finish(std::move(result));
    return;
  }
  lookups_.reserve(names.size());
  for (auto& name : names)
    lookups_.push_back(ForwardLookup{std::move(name), nullptr});
  const DnsType type = client_->is_v4() ? DnsType::a : DnsType::aaaa;
  // resolve() never calls back before it returns, so every lookup exists before any answer.
  for (std::size_t index = 0; index < lookups_.size(); ++index) {
    lookups_[index].query = resolver_->resolve(
        lookups_[index].name, type,
        [this, index](DnsAnswer forward) { on_forward_answer(index, std::move(forward)); });
  }
}

void FcrdnsFilter::on_forward_answer(std::size_t index, DnsAnswer answer) {
  if (finished_) return;
  ForwardLookup& lookup = lookups_[index];
  lookup.done = true;
  lookup.temporary = temporary(answer.outcome);
  if (answer.outcome == DnsOutcome::answer) {
    lookup.matched =
        std::any_of(answer.records.begin(), answer.records.end(), [&](const DnsRecord& record) {
          return record.address && record.address->same_address(*client_);
        });
  }
  finish_if_done();
}

void FcrdnsFilter::finish_if_done() {
  // The first name in PTR order that is confirmed wins, so a name is chosen only once every
  // name before it has answered.
  FilterResult result;
  result.facts.set("client.ptr", lookups_.front().name);
  bool any_temporary = false;
  for (const ForwardLookup& lookup : lookups_) {
    if (!lookup.done) return;
    if (lookup.matched) {
      result.facts.set("client.name", lookup.name);
      result.facts.set("fcrdns", std::string(fcrdns_result::pass));
      finish(std::move(result));
      return;
    }
    any_temporary = any_temporary || lookup.temporary;
  }
  result.facts.set("fcrdns",
                   std::string(any_temporary ? fcrdns_result::temperror : fcrdns_result::fail));
  finish(std::move(result));
}

void FcrdnsFilter::finish(FilterResult result) {
  if (finished_) return;
  finished_ = true;
  // Queries still in flight (names after the confirmed one) are no longer needed. The handle
  // of the query whose callback is running is kept: it goes with the filter.
  for (ForwardLookup& lookup : lookups_) {
    if (!lookup.done) lookup.query.reset();
  }
  // Last action: finishing may end the phase and destroy this filter.
  const Completion completion = completion_;
  completion.finish(std::move(result));
}

}  // namespace portcullis
