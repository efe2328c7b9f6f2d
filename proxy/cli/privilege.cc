#include "privilege.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

namespace portcullis {

bool lookup_user(const std::string& user, uid_t* uid, gid_t* gid, std::string* error) {
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  int rc = getpwnam_r(user.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (rc != 0 || !found) {
    *error = fmt::format("unknown user '{}'{}", user,
                         rc != 0 ? std::string(": ") + std::strerror(rc) : std::string());
    return false;
  }
  *uid = found->pw_uid;
  *gid = found->pw_gid;
  return true;
}

bool prepare_state_dir(const std::string& path, const std::string& user, std::string* error) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    *error = fmt::format("cannot create state_dir {}: {}", path, ec.message());
    return false;
  }
  if (geteuid() != 0 || user.empty()) return true;
  uid_t uid;
  gid_t gid;
  if (!lookup_user(user, &uid, &gid, error)) return false;
  // A directory the administrator prepared as it should be is left alone, so that the service
  // needs no CAP_CHOWN or CAP_FOWNER for it.
  struct stat status {};
  if (stat(path.c_str(), &status) == 0 && status.st_uid == uid && status.st_gid == gid &&
      (status.st_mode & 07777) == 0700) {
    return true;
  }
  if (chown(path.c_str(), uid, gid) != 0 || chmod(path.c_str(), 0700) != 0) {
    *error = fmt::format("cannot give state_dir {} to {}: {}", path, user, std::strerror(errno));
    return false;
  }
  return true;
}

bool drop_privileges(const std::string& user, std::string* error) {
  uid_t uid;
  gid_t gid;
  if (!lookup_user(user, &uid, &gid, error)) return false;
  if (uid == 0) {
    *error = fmt::format("[server] user '{}' is root; choose an unprivileged user", user);
    return false;
  }
  if (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
    *error = fmt::format("cannot switch to user {}: {}", user, std::strerror(errno));
    return false;
  }
  // Verify: the ids are the user's, and the way back to root is closed.
  if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid ||
      setuid(0) == 0 || seteuid(0) == 0) {
    *error = fmt::format("privilege drop to {} did not take effect", user);
    return false;
  }
  return true;
}

}  // namespace portcullis
