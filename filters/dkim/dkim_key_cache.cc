#include "dkim_key_cache.h"

namespace portcullis {

DkimKeyCache& DkimKeyCache::for_this_thread() {
  thread_local DkimKeyCache cache;
  return cache;
}

std::shared_ptr<const DkimKeyRecord> DkimKeyCache::get(const std::string& record,
                                                       std::uint32_t ttl_seconds,
                                                       Clock::time_point now) {
  const auto found = entries_.find(record);
  if (found != entries_.end()) {
    if (now < found->second->expires) {
      ++hits_;
      order_.splice(order_.begin(), order_, found->second);
      return found->second->parsed;
    }
    order_.erase(found->second);
    entries_.erase(found);
  }
  ++misses_;
  std::shared_ptr<const DkimKeyRecord> parsed = DkimKeyRecord::parse(record);
  if (ttl_seconds == 0 || capacity_ == 0) return parsed;
  while (entries_.size() >= capacity_) {
    entries_.erase(order_.back().record);
    order_.pop_back();
  }
  order_.push_front(Entry{record, parsed, now + std::chrono::seconds(ttl_seconds)});
  entries_.emplace(record, order_.begin());
  return parsed;
}

}  // namespace portcullis
