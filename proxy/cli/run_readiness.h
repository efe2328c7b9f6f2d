#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "net_address.h"
#include "user_access.h"

namespace portcullis {

// What `check` verifies beyond the file: that `run`, started the way `check` was started (as
// root under systemd: the unit's ExecStartPre), finds on this machine what it needs — the
// [server] user, the state directory and the log directories, the files a reload re-reads after
// the privilege drop, and listener addresses that can be bound. Each miss is an error at the
// key it is about; something `run` creates or fixes itself is a warning. docs/configuration.md
// ("What check looks at") lists each rule and why.
class RunReadiness {
 public:
  struct Report {
    std::vector<ConfigMessage> errors;
    std::vector<ConfigMessage> warnings;
  };

  static Report check(const Config& config);

 private:
  explicit RunReadiness(const Config& config);

  void check_user();
  void check_state_dir();
  void check_state_dir_capabilities();
  void check_log_file(const std::string& key, const std::string& path);
  void check_reload_reads();
  void check_listeners();
  // RLIMIT_NOFILE against what limits.max_sessions and the rest need (a warning: `run` starts,
  // and fails accept() and open() only once that many are in use).
  void check_descriptor_limit();
  // After a bind of `address` (`written` as in the file) that failed with errno `error_number`
  // (0 when not known, `detail` saying what happened): an error naming what `run` would log
  // (`event`), or a warning when the holder is this configuration's own running proxy.
  void report_bind_failure(const std::string& key, const NetAddress& address,
                           const std::string& written, int error_number, const std::string& detail,
                           const char* event);

  void error(const std::string& key, std::string text);
  void warning(const std::string& key, std::string text);

  const Config& config_;
  const bool as_root_;
  // `run` started like this check switches to [server] user after binding (it starts as root).
  bool switches_ = false;
  // What `run` does before the switch can be tried by this process (false: a check as a user
  // other than root for a `run` that will start as root).
  bool start_seen_ = true;
  uid_t user_uid_ = 0;
  // Whose access counts once `run` has started (nullopt: the user is unusable, already an error).
  std::optional<UserAccess> after_start_;
  Report report_;
};

}  // namespace portcullis
