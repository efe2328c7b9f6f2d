// Log files opened as root before the privilege drop (so that a root-owned log directory, or a
// port below 1024, stays possible) are handed to [server] user: otherwise the process, once
// switched, could not reopen them after a rotation and logrotate's `su` could not touch them.
#pragma once

#include <sys/types.h>

#include <string>

namespace portcullis {

// Makes the open file `fd` (named `path` in the error) owned by uid:gid unless it already is;
// false, with `error` set, when the kernel refuses.
bool give_log_file_to(int fd, const std::string& path, uid_t uid, gid_t gid, std::string* error);

}  // namespace portcullis
