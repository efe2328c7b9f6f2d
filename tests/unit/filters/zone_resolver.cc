#include "zone_resolver.h"

#include <algorithm>

namespace portcullis {

namespace {

constexpr int max_cname_hops = 8;

std::string canonical(std::string_view name) {
  std::string out(name);
  if (!out.empty() && out.back() == '.') out.pop_back();
  std::transform(out.begin(), out.end(), out.begin(),
                 [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; });
  return out;
}

DnsAnswer outcome(DnsOutcome value, std::string reason = {}) {
  DnsAnswer answer;
  answer.outcome = value;
  answer.reason = std::move(reason);
  return answer;
}

}  // namespace

class ZoneResolver::Handle : public DnsQuery {
 public:
  Handle(std::weak_ptr<Queue> queue, std::uint64_t id) : queue_(std::move(queue)), id_(id) {}
  ~Handle() override {
    if (auto queue = queue_.lock()) {
      auto& entries = queue->entries;
      entries.erase(std::remove_if(entries.begin(), entries.end(),
                                   [&](const Pending& p) { return p.id == id_; }),
                    entries.end());
    }
  }

 private:
  std::weak_ptr<Queue> queue_;
  std::uint64_t id_;
};

ZoneResolver::ZoneResolver() : queue_(std::make_shared<Queue>()) {}
ZoneResolver::~ZoneResolver() = default;

ZoneResolver::Node& ZoneResolver::node(std::string_view name) {
  return zone_[canonical(name)];
}

void ZoneResolver::add_name(std::string_view name) {
  node(name);
}

void ZoneResolver::add_record(std::string_view name, DnsType type, DnsRecord record) {
  node(name).records[type].push_back(std::move(record));
}

void ZoneResolver::add_empty(std::string_view name, DnsType type) {
  node(name).records[type];
}

void ZoneResolver::add_txt(std::string_view name, std::vector<std::string> strings) {
  DnsRecord record;
  record.strings = std::move(strings);
  add_record(name, DnsType::txt, std::move(record));
}

void ZoneResolver::add_a(std::string_view name, std::string_view address) {
  DnsRecord record;
  record.address = IpAddress::parse(address);
  if (!record.address) return;
  add_record(name, record.address->is_v4() ? DnsType::a : DnsType::aaaa, std::move(record));
}

void ZoneResolver::add_mx(std::string_view name, std::uint16_t preference,
                          std::string_view exchange) {
  DnsRecord record;
  record.preference = preference;
  record.name = canonical(exchange);
  add_record(name, DnsType::mx, std::move(record));
}

void ZoneResolver::add_ptr(std::string_view name, std::string_view target) {
  DnsRecord record;
  record.name = canonical(target);
  add_record(name, DnsType::ptr, std::move(record));
}

void ZoneResolver::add_cname(std::string_view name, std::string_view target) {
  node(name).cname = canonical(target);
}

void ZoneResolver::time_out(std::string_view name, std::optional<DnsType> type) {
  if (type) {
    node(name).timeouts.insert(*type);
  } else {
    node(name).timeout_unlisted = true;
  }
}

void ZoneResolver::serve_failure(std::string_view name) {
  node(name).servfail = true;
}

void ZoneResolver::fail_names_containing(std::string fragment) {
  failing_fragments_.push_back(canonical(fragment));
}

DnsAnswer ZoneResolver::answer_for(std::string name, DnsType type) const {
  for (int hop = 0; hop <= max_cname_hops; ++hop) {
    for (const auto& fragment : failing_fragments_)
      if (name.find(fragment) != std::string::npos)
        return outcome(DnsOutcome::temporary_failure, "SERVFAIL");
    if (name.rfind("error.", 0) == 0) return outcome(DnsOutcome::temporary_failure, "timeout");
    auto found = zone_.find(name);
    if (found == zone_.end()) return outcome(DnsOutcome::nxdomain);
    const Node& n = found->second;
    if (n.servfail) return outcome(DnsOutcome::temporary_failure, "SERVFAIL");
    if (n.timeouts.count(type) != 0) return outcome(DnsOutcome::temporary_failure, "timeout");
    auto records = n.records.find(type);
    if (records != n.records.end()) {
      if (records->second.empty()) return outcome(DnsOutcome::no_data);
      DnsAnswer answer = outcome(DnsOutcome::answer);
      answer.records = records->second;
      answer.ttl = 300;
      return answer;
    }
    if (n.cname) {
      name = *n.cname;
      continue;
    }
    if (n.timeout_unlisted) return outcome(DnsOutcome::temporary_failure, "timeout");
    return outcome(DnsOutcome::no_data);
  }
  return outcome(DnsOutcome::failure, "CNAME chain too long");
}

std::unique_ptr<DnsQuery> ZoneResolver::resolve(std::string_view name, DnsType type,
                                                std::function<void(DnsAnswer)> callback) {
  ++queries_;
  asked_.push_back(canonical(name) + " " + std::string(dns_type_name(type)));
  const std::uint64_t id = next_id_++;
  queue_->entries.push_back(Pending{id, std::move(callback), answer_for(canonical(name), type)});
  most_in_flight_ = std::max(most_in_flight_, queue_->entries.size());
  return std::make_unique<Handle>(queue_, id);
}

std::vector<ZoneEntry> ZoneResolver::entries() const {
  std::vector<ZoneEntry> out;
  for (const auto& [name, node] : zone_) {
    for (const auto& [type, records] : node.records)
      for (const auto& record : records)
        out.push_back(ZoneEntry{name, ZoneEntry::Kind::record, type, record, {}});
    for (DnsType type : node.timeouts)
      out.push_back(ZoneEntry{name, ZoneEntry::Kind::timeout_type, type, {}, {}});
    if (node.timeout_unlisted)
      out.push_back(ZoneEntry{name, ZoneEntry::Kind::timeout_unlisted, DnsType::a, {}, {}});
    if (node.servfail)
      out.push_back(ZoneEntry{name, ZoneEntry::Kind::servfail, DnsType::a, {}, {}});
    if (node.cname)
      out.push_back(ZoneEntry{name, ZoneEntry::Kind::cname, DnsType::a, {}, *node.cname});
  }
  return out;
}

bool ZoneResolver::deliver_one() {
  if (queue_->entries.empty()) return false;
  Pending next = std::move(queue_->entries.front());
  queue_->entries.pop_front();
  // Taken out of the queue first: the callback may drop its own handle (or every handle).
  next.callback(std::move(next.answer));
  return true;
}

std::size_t ZoneResolver::run() {
  std::size_t delivered = 0;
  while (deliver_one())
    ++delivered;
  return delivered;
}

std::size_t ZoneResolver::pending() const {
  return queue_->entries.size();
}

}  // namespace portcullis
