// A small authoritative DNS server for tests, in-process on its own thread: it listens on
// 127.0.0.1 (UDP and TCP, the same free port) and answers from the records a test gives it.
// Unknown names get NXDOMAIN, known names without the asked type NODATA; a CNAME is followed
// inside the zone as an authoritative server does (bounded, so a CNAME loop ends). Per name,
// a test can make it withhold answers (a silent server), answer SERVFAIL, truncate UDP
// answers (TC; the full answer over TCP) or answer late. Stopped (thread joined, sockets
// closed) by its destructor.
//
// Independent of the proxy's code (it parses and writes the wire form itself), so a packet
// bug in the resolver cannot hide in a helper both share.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace portcullis::test {

class TestDnsServer {
 public:
  enum class Behaviour { answer, withhold, servfail, truncate, delay };
  enum class Transport { udp, tcp };
  struct Query {
    std::string name;  // lower case, no trailing dot
    std::uint16_t type;
    Transport transport;
  };

  // Binds 127.0.0.1 on a free port (UDP and TCP) and starts answering; throws on failure.
  TestDnsServer();
  ~TestDnsServer();
  TestDnsServer(const TestDnsServer&) = delete;
  TestDnsServer& operator=(const TestDnsServer&) = delete;

  std::uint16_t port() const { return port_; }
  // "127.0.0.1:PORT", the form of [dns] resolvers.
  std::string address() const;

  // Records (names with or without the trailing dot, any case). Thread-safe; may be called
  // while the server runs.
  void add_a(const std::string& name, const std::string& address, std::uint32_t ttl = 300);
  void add_aaaa(const std::string& name, const std::string& address, std::uint32_t ttl = 300);
  void add_txt(const std::string& name, const std::vector<std::string>& strings,
               std::uint32_t ttl = 300);
  void add_mx(const std::string& name, std::uint16_t preference, const std::string& exchange,
              std::uint32_t ttl = 300);
  void add_ptr(const std::string& name, const std::string& target, std::uint32_t ttl = 300);
  void add_cname(const std::string& name, const std::string& target, std::uint32_t ttl = 300);

  // How queries for `name` are treated (answer is the default). `delay` applies to
  // Behaviour::delay only.
  void set_behaviour(const std::string& name, Behaviour behaviour,
                     std::chrono::milliseconds delay = std::chrono::milliseconds(0));

  // Every query received so far, in order.
  std::vector<Query> queries() const;
  std::size_t query_count(const std::string& name) const;
  // Delayed answers sent so far (a late answer that did go out).
  std::size_t late_answers_sent() const;

 private:
  struct Record {
    std::uint16_t type;
    std::uint32_t ttl;
    std::string rdata;  // wire form
  };
  struct Rule {
    Behaviour behaviour = Behaviour::answer;
    std::chrono::milliseconds delay{0};
  };
  struct Scheduled {
    std::chrono::steady_clock::time_point due;
    std::string packet;
    std::vector<unsigned char> peer;  // sockaddr_in bytes
  };

  void add(const std::string& name, std::uint16_t type, std::uint32_t ttl, std::string rdata);
  void run();
  void serve_udp();
  void serve_tcp_connection(int fd);
  // The reply to `query` (empty when it is to be withheld); sets `delay` for a late answer.
  std::string reply_to(const std::string& query, Transport transport,
                       std::chrono::milliseconds& delay);

  int udp_fd_ = -1;
  int tcp_fd_ = -1;
  int wake_fds_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};

  mutable std::mutex mutex_;
  std::map<std::string, std::vector<Record>> zone_;
  std::map<std::string, Rule> rules_;
  std::vector<Query> queries_;
  std::size_t late_answers_sent_ = 0;
  std::vector<Scheduled> scheduled_;  // the server thread's only

  std::thread thread_;
};

}  // namespace portcullis::test
