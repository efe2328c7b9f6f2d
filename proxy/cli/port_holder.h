#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "net_address.h"

namespace portcullis {

// The process that holds a listening TCP socket, as /proc shows it (Linux).
struct PortHolder {
  pid_t pid = 0;
  std::string name;  // /proc/PID/comm
  // `portcullis run` and the configuration file it was started with (made absolute; the
  // default file when it was given none): a running proxy holds its own listeners.
  bool portcullis_run = false;
  std::string config_path;
};

// The process listening on `address` (or on a wildcard address of its port, or any address of
// it on a dual-stack socket), when this process may see it: nullopt when no listening socket is
// found or its owner is hidden (another user's /proc entries without root, or hidepid).
std::optional<PortHolder> find_port_holder(const NetAddress& address);

// `path` made absolute against `directory` and with symlinks resolved as far as they exist, so
// that two spellings of one file compare equal.
std::string comparable_path(const std::string& path, const std::string& directory);

}  // namespace portcullis
