#include "test_redis_server.h"

#include <signal.h>

#include <stdexcept>

namespace portcullis::test {

TestRedisServer::TestRedisServer(std::string password)
    : port_(free_loopback_port()), password_(std::move(password)) {
  start();
}

void TestRedisServer::start() {
  ChildProcess::Options options;
  options.argv = {"redis-server",
                  "--port",
                  std::to_string(port_),
                  "--bind",
                  "127.0.0.1",
                  "--save",
                  "",
                  "--appendonly",
                  "no",
                  "--dir",
                  directory_.path().string(),
                  "--daemonize",
                  "no"};
  if (!password_.empty()) {
    options.argv.push_back("--requirepass");
    options.argv.push_back(password_);
  }
  options.stdout_file = directory_ / "redis.out";
  options.stderr_file = directory_ / "redis.err";
  process_ = std::make_unique<ChildProcess>(options);
  if (!wait_until_listens(port_, 10s)) {
    throw std::runtime_error("redis-server did not listen on port " + std::to_string(port_) + ": " +
                             printable(read_file(directory_ / "redis.out")));
  }
}

void TestRedisServer::kill() {
  process_->send_signal(SIGKILL);
  process_->wait_for(10s);
  process_.reset();
}

}  // namespace portcullis::test
