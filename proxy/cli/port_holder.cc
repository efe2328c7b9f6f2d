#include "port_holder.h"

#include <dirent.h>
#include <netinet/in.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "config.h"

namespace portcullis {

namespace {

constexpr const char* kListenState = "0A";  // TCP_LISTEN in /proc/net/tcp's "st" column

struct ListeningSocket {
  std::array<uint32_t, 4> address{};  // as the kernel prints it: one word (IPv4) or four
  bool ipv6 = false;
  uint16_t port = 0;
  std::string inode;
};

// The kernel prints each 32-bit word of the address as the integer it holds in memory, so a
// word parsed back compares equal to the same word of a sockaddr on any byte order.
bool parse_local_address(const std::string& text, ListeningSocket* out) {
  const auto colon = text.find(':');
  if (colon == std::string::npos) return false;
  const std::string address = text.substr(0, colon);
  if (address.size() != 8 && address.size() != 32) return false;
  out->ipv6 = address.size() == 32;
  for (size_t word = 0; word * 8 < address.size(); ++word) {
    out->address[word] =
        static_cast<uint32_t>(std::strtoul(address.substr(word * 8, 8).c_str(), nullptr, 16));
  }
  out->port = static_cast<uint16_t>(std::strtoul(text.substr(colon + 1).c_str(), nullptr, 16));
  return true;
}

std::vector<ListeningSocket> listening_sockets(const char* table) {
  std::vector<ListeningSocket> out;
  std::ifstream in(table);
  std::string line;
  std::getline(in, line);  // the column names
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
    if (!(fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode)) {
      continue;
    }
    ListeningSocket socket;
    if (state != kListenState || !parse_local_address(local, &socket)) continue;
    socket.inode = inode;
    out.push_back(socket);
  }
  return out;
}

std::array<uint32_t, 4> words_of(const NetAddress& address) {
  std::array<uint32_t, 4> words{};
  if (address.is_ipv6()) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&address.storage);
    std::memcpy(words.data(), &sin6->sin6_addr, sizeof sin6->sin6_addr);
  } else {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&address.storage);
    words[0] = sin->sin_addr.s_addr;
  }
  return words;
}

bool is_wildcard(const std::array<uint32_t, 4>& words) {
  return words[0] == 0 && words[1] == 0 && words[2] == 0 && words[3] == 0;
}

// The inode of the socket that most likely refused our bind: the same address first, then a
// wildcard of the same family, then anything on the port (a dual-stack [::] takes IPv4 too).
std::string holder_inode(const NetAddress& address) {
  std::vector<ListeningSocket> sockets = listening_sockets("/proc/net/tcp");
  for (auto& socket : listening_sockets("/proc/net/tcp6"))
    sockets.push_back(socket);
  const auto wanted = words_of(address);
  std::string same_family, same_port;
  for (const auto& socket : sockets) {
    if (socket.port != address.port()) continue;
    if (socket.ipv6 == address.is_ipv6()) {
      if (socket.address == wanted) return socket.inode;
      if (same_family.empty() && (is_wildcard(socket.address) || is_wildcard(wanted))) {
        same_family = socket.inode;
      }
    }
    if (same_port.empty()) same_port = socket.inode;
  }
  return !same_family.empty() ? same_family : same_port;
}

std::string read_link(const std::string& path) {
  std::array<char, 4096> buffer{};
  const ssize_t length = ::readlink(path.c_str(), buffer.data(), buffer.size() - 1);
  return length > 0 ? std::string(buffer.data(), static_cast<size_t>(length)) : std::string();
}

bool holds_socket(const std::string& pid, const std::string& link) {
  const std::string fd_dir = "/proc/" + pid + "/fd";
  DIR* dir = ::opendir(fd_dir.c_str());
  if (!dir) return false;
  bool found = false;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    if (read_link(fd_dir + "/" + entry->d_name) == link) {
      found = true;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

std::vector<std::string> command_line(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/cmdline", std::ios::binary);
  std::vector<std::string> argv;
  std::string argument;
  while (std::getline(in, argument, '\0'))
    argv.push_back(argument);
  return argv;
}

void describe_portcullis(const std::string& pid, PortHolder* holder) {
  const std::vector<std::string> argv = command_line(pid);
  if (argv.empty() || std::filesystem::path(argv[0]).filename() != "portcullis") return;
  bool run = false;
  std::string config = default_config_path;
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& argument = argv[i];
    if (argument == "run") run = true;
    if ((argument == "-c" || argument == "--config") && i + 1 < argv.size()) {
      config = argv[++i];
    } else if (argument.rfind("--config=", 0) == 0) {
      config = argument.substr(9);
    } else if (argument.rfind("-c", 0) == 0 && argument.size() > 2) {
      config = argument.substr(2);
    }
  }
  if (!run) return;
  holder->portcullis_run = true;
  holder->config_path = comparable_path(config, read_link("/proc/" + pid + "/cwd"));
}

}  // namespace

std::string comparable_path(const std::string& path, const std::string& directory) {
  std::filesystem::path full(path);
  if (full.is_relative()) full = std::filesystem::path(directory) / full;
  std::error_code ec;
  const std::filesystem::path resolved = std::filesystem::weakly_canonical(full, ec);
  return (ec ? full.lexically_normal() : resolved).string();
}

std::optional<PortHolder> find_port_holder(const NetAddress& address) {
  const std::string inode = holder_inode(address);
  if (inode.empty() || inode == "0") return std::nullopt;
  const std::string link = "socket:[" + inode + "]";
  DIR* proc = ::opendir("/proc");
  if (!proc) return std::nullopt;
  std::optional<PortHolder> holder;
  while (const dirent* entry = ::readdir(proc)) {
    const std::string pid = entry->d_name;
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (!holds_socket(pid, link)) continue;
    holder.emplace();
    holder->pid = static_cast<pid_t>(std::stol(pid));
    std::ifstream comm("/proc/" + pid + "/comm");
    std::getline(comm, holder->name);
    describe_portcullis(pid, &*holder);
    break;
  }
  ::closedir(proc);
  return holder;
}

}  // namespace portcullis
