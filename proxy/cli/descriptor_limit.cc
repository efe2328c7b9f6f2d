#include "descriptor_limit.h"

#include <sys/resource.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace portcullis {

namespace {

std::uint64_t as_count(rlim_t value) {
  return value == RLIM_INFINITY ? UINT64_MAX : static_cast<std::uint64_t>(value);
}

// The largest RLIMIT_NOFILE the kernel accepts (fs.nr_open); 1048576, its default, when the
// file cannot be read.
rlim_t kernel_descriptor_maximum() {
  std::ifstream file("/proc/sys/fs/nr_open");
  unsigned long long value = 0;
  if (file >> value && value > 0) return static_cast<rlim_t>(value);
  return 1048576;
}

}  // namespace

std::optional<DescriptorLimit::Limits> DescriptorLimit::current(std::string* error) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    if (error) *error = fmt::format("getrlimit(RLIMIT_NOFILE): {}", std::strerror(errno));
    return std::nullopt;
  }
  return Limits{as_count(limit.rlim_cur), as_count(limit.rlim_max)};
}

DescriptorLimit::Raised DescriptorLimit::raise_soft_to_hard() {
  Raised raised;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    raised.error = fmt::format("getrlimit(RLIMIT_NOFILE): {}", std::strerror(errno));
    return raised;
  }
  raised.known = true;
  raised.before = Limits{as_count(limit.rlim_cur), as_count(limit.rlim_max)};
  raised.after = raised.before;
  const rlim_t target =
      limit.rlim_max == RLIM_INFINITY ? kernel_descriptor_maximum() : limit.rlim_max;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur >= target) return raised;
  rlimit wanted = limit;
  wanted.rlim_cur = target;
  if (::setrlimit(RLIMIT_NOFILE, &wanted) != 0) {
    raised.error = fmt::format("setrlimit(RLIMIT_NOFILE, {}): {}",
                               static_cast<unsigned long long>(target), std::strerror(errno));
    return raised;
  }
  raised.after.soft = as_count(target);
  return raised;
}

std::optional<std::string> DescriptorLimit::shortfall(const Config& config, std::uint64_t available,
                                                      const std::string& available_is) {
  const DescriptorBudget budget = descriptor_budget(config);
  const std::uint64_t needed = budget.total();
  if (available >= needed) return std::nullopt;
  return fmt::format(
      "{} sessions need about {} file descriptors ({}), but only {} are available "
      "(RLIMIT_NOFILE: {}); raise the limit (systemd: LimitNOFILE=) or lower max_sessions",
      config.limits.max_sessions, needed, budget.breakdown(), available, available_is);
}

}  // namespace portcullis
