#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace portcullis {

// Whether [server] user may read, write or enter a path, asked the way `run` will be answered
// once it has switched to that user: by the kernel, for a process with the user's uid and
// primary gid and no supplementary groups (drop_privileges() keeps none).
class UserAccess {
 public:
  enum class Outcome { allowed, denied, unknown };
  struct Answer {
    Outcome outcome = Outcome::allowed;
    std::string reason;  // why not (denied), or why it cannot be told (unknown)
  };

  // The kernel asked by this process: `run` started like it does not switch (not root, or
  // already the user).
  static UserAccess as_this_process(std::string who);
  // The kernel asked by a child process that switched to `user` with drop_privileges(), as
  // `run` does: ACLs, read-only mounts and security modules count. Needs root.
  static UserAccess as_switched_user(std::string user);
  // Judged from the permission bits of the path and of every directory on the way, for `uid`
  // and `gid` only: for a check that cannot switch (not root). ACLs, mount options and
  // capabilities are not seen; symbolic links are followed as stat() follows them.
  static UserAccess by_permission_bits(std::string user, uid_t uid, gid_t gid);

  // `mode`: R_OK, W_OK, X_OK or'ed, as for access(2).
  Answer check(const std::string& path, int mode) const;
  // Runs `probe` as the user (in the switched child, or in this process) and returns the lines
  // it produced; nullopt with *error when the switch failed or the probe cannot run as the user
  // (by_permission_bits).
  std::optional<std::vector<std::string>> run_as(
      const std::function<std::vector<std::string>()>& probe, std::string* error) const;

  // "user 'portcullis'" or the description given to as_this_process().
  const std::string& who() const { return who_; }
  // False when judged from permission bits.
  bool exact() const { return method_ != Method::permission_bits; }

 private:
  enum class Method { this_process, switched_user, permission_bits };
  UserAccess(Method method, std::string user, std::string who, uid_t uid, gid_t gid)
      : method_(method), user_(std::move(user)), who_(std::move(who)), uid_(uid), gid_(gid) {}

  Answer check_permission_bits(const std::string& path, int mode) const;

  Method method_;
  std::string user_;
  std::string who_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
};

}  // namespace portcullis
