#pragma once

#include <sys/types.h>

#include <string>

namespace portcullis {

// The uid and primary gid of `user`; false with "unknown user 'NAME'" when there is none.
bool lookup_user(const std::string& user, uid_t* uid, gid_t* gid, std::string* error);

// Creates `path` (and its parents) when missing; as root, hands it to `user` (0700) so the
// process can still write there after dropping privileges.
bool prepare_state_dir(const std::string& path, const std::string& user, std::string* error);

// Switches to `user` (its primary group, no supplementary groups) and verifies the switch:
// real and effective ids are the user's and root cannot be regained. Only meaningful as root.
bool drop_privileges(const std::string& user, std::string* error);

}  // namespace portcullis
