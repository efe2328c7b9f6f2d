// An in-memory DnsResolver for SPF tests: zones set up by the test, answers queued and handed
// out only when the test loop calls deliver_one()/run(), so every caller meets the real
// resolver's asynchrony (never a callback before resolve() returns; cancel by dropping the
// handle). It follows CNAMEs like the real one, so callers see only the asked type.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dns_resolver.h"

namespace portcullis {

// One entry of the zone, for handing the same data to another DNS layer (the libspf2 oracle).
struct ZoneEntry {
  enum class Kind { record, timeout_type, timeout_unlisted, servfail, cname };
  std::string name;
  Kind kind = Kind::record;
  DnsType type = DnsType::a;  // record, timeout_type
  DnsRecord record;           // record
  std::string target;         // cname
};

class ZoneResolver : public DnsResolver {
 public:
  ZoneResolver();
  ~ZoneResolver() override;

  // The name exists (NODATA for types without records).
  void add_name(std::string_view name);
  void add_record(std::string_view name, DnsType type, DnsRecord record);
  // The type exists at the name with no record (an explicit "TXT: NONE").
  void add_empty(std::string_view name, DnsType type);
  void add_txt(std::string_view name, std::vector<std::string> strings);
  void add_a(std::string_view name, std::string_view address);  // A or AAAA by its form
  void add_mx(std::string_view name, std::uint16_t preference, std::string_view exchange);
  void add_ptr(std::string_view name, std::string_view target);
  void add_cname(std::string_view name, std::string_view target);
  // Queries of `type` (or, with nullopt, of every type without records) time out.
  void time_out(std::string_view name, std::optional<DnsType> type);
  void serve_failure(std::string_view name);  // SERVFAIL for every type
  // Every name containing `fragment` (e.g. "_dns_error.") gets SERVFAIL, listed or not.
  void fail_names_containing(std::string fragment);

  std::unique_ptr<DnsQuery> resolve(std::string_view name, DnsType type,
                                    std::function<void(DnsAnswer)> callback) override;

  // The zone as entries, names in order (records in the order added).
  std::vector<ZoneEntry> entries() const;

  // Delivers the oldest queued answer; false when none is queued.
  bool deliver_one();
  // Delivers until nothing is queued; the number delivered.
  std::size_t run();
  std::size_t pending() const;
  std::size_t queries() const { return queries_; }
  std::size_t most_in_flight() const { return most_in_flight_; }
  // Every query asked, "NAME TYPE", in order.
  const std::vector<std::string>& asked() const { return asked_; }

 private:
  struct Node {
    std::map<DnsType, std::vector<DnsRecord>> records;
    std::set<DnsType> timeouts;
    bool timeout_unlisted = false;
    bool servfail = false;
    std::optional<std::string> cname;
  };
  struct Pending {
    std::uint64_t id = 0;
    std::function<void(DnsAnswer)> callback;
    DnsAnswer answer;
  };
  struct Queue {
    std::deque<Pending> entries;
  };
  class Handle;

  Node& node(std::string_view name);
  DnsAnswer answer_for(std::string name, DnsType type) const;

  std::map<std::string, Node> zone_;
  std::vector<std::string> failing_fragments_;
  std::shared_ptr<Queue> queue_;
  std::uint64_t next_id_ = 1;
  std::size_t queries_ = 0;
  std::size_t most_in_flight_ = 0;
  std::vector<std::string> asked_;
};

}  // namespace portcullis
