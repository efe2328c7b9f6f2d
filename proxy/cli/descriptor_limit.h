#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "config.h"
#include "descriptor_budget.h"

namespace portcullis {

// This process's RLIMIT_NOFILE: what `run` raises at start (the soft limit to the hard one:
// distributions start services with a soft limit of 1024 whatever the hard limit allows), and
// the comparison with what the configuration needs (descriptor_budget.h) that `run` logs and
// `check` reports.
class DescriptorLimit {
 public:
  struct Limits {
    std::uint64_t soft = 0;
    std::uint64_t hard = 0;
  };
  struct Raised {
    bool known = false;  // false: getrlimit failed, `before` and `after` mean nothing
    Limits before;
    Limits after;
    std::string error;  // "" when the soft limit is now the hard one
  };

  // nullopt (with `error` set) when getrlimit fails.
  static std::optional<Limits> current(std::string* error);
  // Raises the soft limit to the hard one (to fs.nr_open when the hard limit is unlimited,
  // the most the kernel grants).
  static Raised raise_soft_to_hard();
  // The warning about limits.max_sessions when `available` descriptors are fewer than
  // `config` needs: both numbers, what needs them and what to do; nullopt when enough.
  // `available_is` says which limit `available` is, e.g. "the hard limit, to which `run`
  // raises the soft one".
  static std::optional<std::string> shortfall(const Config& config, std::uint64_t available,
                                              const std::string& available_is);
};

}  // namespace portcullis
