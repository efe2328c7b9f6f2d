// A redis-server of the test's own: on 127.0.0.1 and a port found free at run time (or a given
// one, to come back on the same port), without persistence, in a temporary directory, stopped
// by its pid.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "test_support.h"

namespace portcullis::test {

class TestRedisServer {
 public:
  // Starts it and waits until it listens; throws std::runtime_error when it does not.
  explicit TestRedisServer(std::string password = "");
  std::uint16_t port() const { return port_; }
  const std::string& password() const { return password_; }
  // "127.0.0.1:PORT", as [store.redis] address takes it.
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  ChildProcess& process() { return *process_; }

  // SIGKILL, and waits until it is gone.
  void kill();
  // Starts it again on the same port.
  void start();

 private:
  TempDir directory_{"portcullis-redis"};
  std::uint16_t port_;
  std::string password_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace portcullis::test
