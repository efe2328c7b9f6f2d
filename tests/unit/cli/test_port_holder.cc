// find_port_holder(): the process listening on an address, found through /proc; this test's own
// sockets are the holders to find.
#define BOOST_TEST_MODULE port_holder
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "net_address.h"
#include "port_holder.h"

using portcullis::comparable_path;
using portcullis::find_port_holder;
using portcullis::NetAddress;
namespace fs = std::filesystem;

namespace {

// A socket bound to `ip` on a port the kernel picks; listening when asked. Closed at the end.
class Socket {
 public:
  Socket(const std::string& ip, bool listening) {
    const auto address = NetAddress::parse_ip(ip, 0);
    BOOST_TEST_REQUIRE(address.has_value());
    fd_ = ::socket(address->storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BOOST_TEST_REQUIRE(fd_ >= 0);
    BOOST_TEST_REQUIRE(::bind(fd_, address->sa(), address->length) == 0);
    if (listening) BOOST_TEST_REQUIRE(::listen(fd_, 1) == 0);
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    BOOST_TEST_REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &length) == 0);
    address_ = *NetAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&bound), length);
  }
  ~Socket() { ::close(fd_); }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  const NetAddress& address() const { return address_; }

 private:
  int fd_ = -1;
  NetAddress address_;
};

std::string own_name() {
  std::ifstream comm("/proc/self/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_listener_on_an_ipv4_address_is_this_process) {
  const Socket socket("127.0.0.1", true);
  const auto holder = find_port_holder(socket.address());
  BOOST_TEST_REQUIRE(holder.has_value());
  BOOST_TEST(holder->pid == ::getpid());
  BOOST_TEST(holder->name == own_name());
  BOOST_TEST(!holder->portcullis_run);
}

BOOST_AUTO_TEST_CASE(the_listener_on_an_ipv6_address_is_this_process) {
  const Socket socket("::1", true);
  const auto holder = find_port_holder(socket.address());
  BOOST_TEST_REQUIRE(holder.has_value());
  BOOST_TEST(holder->pid == ::getpid());
}

BOOST_AUTO_TEST_CASE(a_wildcard_listener_holds_every_address_of_its_port) {
  const Socket socket("0.0.0.0", true);
  const auto asked = NetAddress::parse_ip("127.0.0.2", socket.address().port());
  const auto holder = find_port_holder(*asked);
  BOOST_TEST_REQUIRE(holder.has_value());
  BOOST_TEST(holder->pid == ::getpid());
}

BOOST_AUTO_TEST_CASE(a_bound_socket_that_does_not_listen_holds_nothing) {
  // Only listening sockets refuse a listener's bind on Linux with SO_REUSEADDR on both sides.
  const Socket socket("127.0.0.1", false);
  BOOST_TEST(!find_port_holder(socket.address()).has_value());
}

BOOST_AUTO_TEST_CASE(paths_compare_after_resolving_the_directory_and_links) {
  const fs::path dir =
      fs::temp_directory_path() / ("portcullis-port-holder-" + std::to_string(::getpid()));
  fs::create_directories(dir / "real");
  fs::create_directory_symlink(dir / "real", dir / "link");
  std::ofstream(dir / "real" / "p.toml") << "\n";
  BOOST_TEST(comparable_path("link/p.toml", dir.string()) == (dir / "real" / "p.toml").string());
  BOOST_TEST(comparable_path((dir / "real" / ".." / "link" / "p.toml").string(), "/") ==
             (dir / "real" / "p.toml").string());
  // A file that does not exist keeps its spelling, normalised.
  BOOST_TEST(comparable_path("missing/./x.toml", dir.string()) ==
             (dir / "missing" / "x.toml").string());
  fs::remove_all(dir);
}
