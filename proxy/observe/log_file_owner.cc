#include "log_file_owner.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace portcullis {

bool give_log_file_to(int fd, const std::string& path, uid_t uid, gid_t gid, std::string* error) {
  struct stat status {};
  if (::fstat(fd, &status) != 0) {
    *error = fmt::format("cannot stat {}: {}", path, std::strerror(errno));
    return false;
  }
  // Not a regular file (a FIFO, /dev/null): not ours to give away.
  if (!S_ISREG(status.st_mode)) return true;
  if (status.st_uid == uid && status.st_gid == gid) return true;
  if (::fchown(fd, uid, gid) != 0) {
    *error = fmt::format("cannot give {} to uid {}: {}", path, uid, std::strerror(errno));
    return false;
  }
  return true;
}

}  // namespace portcullis
