// An in-memory DnsResolver for filter tests, keeping the contract of filters/api/dns_resolver.h:
// resolve() only queues the query; answers are delivered later, by the test, through
// deliver_next() / deliver_all(), on the test's thread. A destroyed handle's query is never
// answered. Names without an answer set get NXDOMAIN; withheld names are never answered (a
// query the runner's deadline or cancel() must end).
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dns_resolver.h"

namespace portcullis::test {

class FakeDnsResolver : public DnsResolver {
 public:
  struct Asked {
    std::string name;
    DnsType type;
  };

  void set(std::string name, DnsType type, DnsAnswer answer) {
    answers_[{std::move(name), type}] = std::move(answer);
  }
  void set_addresses(std::string name, DnsType type, const std::vector<std::string>& addresses) {
    DnsAnswer answer{DnsOutcome::answer, {}, 300, ""};
    for (const auto& text : addresses)
      answer.records.push_back(DnsRecord{IpAddress::parse(text), "", 0, {}});
    set(std::move(name), type, std::move(answer));
  }
  void set_names(std::string name, const std::vector<std::string>& targets) {
    DnsAnswer answer{DnsOutcome::answer, {}, 300, ""};
    for (const auto& target : targets)
      answer.records.push_back(DnsRecord{std::nullopt, target, 0, {}});
    set(std::move(name), DnsType::ptr, std::move(answer));
  }
  void set_outcome(std::string name, DnsType type, DnsOutcome outcome, std::string reason = "") {
    set(std::move(name), type, DnsAnswer{outcome, {}, 0, std::move(reason)});
  }
  void withhold(std::string name) { withheld_.push_back(std::move(name)); }

  std::unique_ptr<DnsQuery> resolve(std::string_view name, DnsType type,
                                    std::function<void(DnsAnswer)> callback) override {
    asked.push_back(Asked{std::string(name), type});
    auto pending = std::make_shared<Pending>(Pending{std::string(name), type, std::move(callback)});
    queue_.push_back(pending);
    return std::make_unique<Handle>(pending, cancelled);
  }

  // Answers the oldest query still wanted; false when there is none. Withheld names stay.
  bool deliver_next() {
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      auto pending = *it;
      if (pending->cancelled) {
        queue_.erase(it);
        return deliver_next();
      }
      if (is_withheld(pending->name)) continue;
      queue_.erase(it);
      // Moved out first: the callback may destroy the handle (and the filter) while it runs.
      auto callback = std::move(pending->callback);
      pending->cancelled = true;
      callback(answer_for(pending->name, pending->type));
      return true;
    }
    return false;
  }
  int deliver_all() {
    int delivered = 0;
    while (deliver_next())
      ++delivered;
    return delivered;
  }
  // Queries neither answered nor cancelled.
  std::size_t in_flight() const {
    std::size_t count = 0;
    for (const auto& pending : queue_)
      count += pending->cancelled ? 0 : 1;
    return count;
  }

  std::vector<Asked> asked;
  std::shared_ptr<int> cancelled = std::make_shared<int>(0);

 private:
  struct Pending {
    std::string name;
    DnsType type;
    std::function<void(DnsAnswer)> callback;
    bool cancelled = false;
  };
  class Handle : public DnsQuery {
   public:
    Handle(std::shared_ptr<Pending> pending, std::shared_ptr<int> cancelled)
        : pending_(std::move(pending)), cancelled_(std::move(cancelled)) {}
    ~Handle() override {
      if (!pending_->cancelled) ++*cancelled_;
      pending_->cancelled = true;
    }

   private:
    std::shared_ptr<Pending> pending_;
    std::shared_ptr<int> cancelled_;
  };

  bool is_withheld(const std::string& name) const {
    for (const auto& withheld : withheld_)
      if (withheld == name) return true;
    return false;
  }
  DnsAnswer answer_for(const std::string& name, DnsType type) const {
    auto it = answers_.find({name, type});
    if (it != answers_.end()) return it->second;
    return DnsAnswer{DnsOutcome::nxdomain, {}, 0, ""};
  }

  std::map<std::pair<std::string, DnsType>, DnsAnswer> answers_;
  std::vector<std::string> withheld_;
  std::deque<std::shared_ptr<Pending>> queue_;
};

}  // namespace portcullis::test
