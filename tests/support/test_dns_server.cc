#include "test_dns_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace portcullis::test {

namespace {

constexpr std::uint16_t type_a = 1;
constexpr std::uint16_t type_cname = 5;
constexpr std::uint16_t type_ptr = 12;
constexpr std::uint16_t type_mx = 15;
constexpr std::uint16_t type_txt = 16;
constexpr std::uint16_t type_aaaa = 28;
constexpr int rcode_servfail = 2;
constexpr int rcode_nxdomain = 3;
constexpr int max_zone_cname_hops = 16;

std::string lower_name(std::string name) {
  if (!name.empty() && name.back() == '.') name.pop_back();
  for (auto& c : name)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

std::string wire_name(const std::string& name) {
  std::string wire;
  std::size_t start = 0;
  const std::string plain = lower_name(name);
  while (start < plain.size()) {
    auto dot = plain.find('.', start);
    if (dot == std::string::npos) dot = plain.size();
    const std::size_t length = dot - start;
    if (length == 0 || length > 63) throw std::invalid_argument("bad DNS name: " + name);
    wire.push_back(static_cast<char>(length));
    wire.append(plain, start, length);
    start = dot + 1;
  }
  wire.push_back('\0');
  return wire;
}

void put16(std::string& out, unsigned value) {
  out.push_back(static_cast<char>((value >> 8) & 0xff));
  out.push_back(static_cast<char>(value & 0xff));
}
void put32(std::string& out, std::uint32_t value) {
  put16(out, value >> 16);
  put16(out, value & 0xffff);
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("TestDnsServer: " + what + ": " + std::strerror(errno));
}

struct ParsedQuery {
  std::uint16_t id = 0;
  bool recursion_desired = false;
  std::string name;      // lower case
  std::string question;  // wire form of the question section
  std::uint16_t type = 0;
};

// Reads the header and the one question; false for anything else.
bool parse_query(const std::string& packet, ParsedQuery& query) {
  if (packet.size() < 12) return false;
  const auto* bytes = reinterpret_cast<const unsigned char*>(packet.data());
  query.id = static_cast<std::uint16_t>((bytes[0] << 8) | bytes[1]);
  query.recursion_desired = (bytes[2] & 0x01) != 0;
  if (((bytes[4] << 8) | bytes[5]) != 1) return false;
  std::size_t at = 12;
  std::string name;
  while (true) {
    if (at >= packet.size()) return false;
    const std::size_t length = bytes[at];
    if (length == 0) break;
    if (length > 63 || at + 1 + length > packet.size()) return false;
    if (!name.empty()) name.push_back('.');
    name.append(packet, at + 1, length);
    at += 1 + length;
  }
  ++at;
  if (at + 4 > packet.size()) return false;
  query.type = static_cast<std::uint16_t>((bytes[at] << 8) | bytes[at + 1]);
  query.question = packet.substr(12, at + 4 - 12);
  query.name = lower_name(name);
  return true;
}

}  // namespace

TestDnsServer::TestDnsServer() {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // The same port for UDP and TCP: retry when the TCP side of the port UDP got is taken.
  for (int attempt = 0; attempt < 50 && tcp_fd_ < 0; ++attempt) {
    udp_fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (udp_fd_ < 0) fail("socket");
    address.sin_port = 0;
    if (bind(udp_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) fail("bind");
    socklen_t length = sizeof address;
    getsockname(udp_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    tcp_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int on = 1;
    setsockopt(tcp_fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(tcp_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        listen(tcp_fd_, 16) != 0) {
      close(tcp_fd_);
      close(udp_fd_);
      tcp_fd_ = udp_fd_ = -1;
    }
  }
  if (tcp_fd_ < 0) fail("no port free for both UDP and TCP");
  port_ = ntohs(address.sin_port);
  if (pipe2(wake_fds_, O_CLOEXEC) != 0) fail("pipe2");
  thread_ = std::thread([this] { run(); });
}

TestDnsServer::~TestDnsServer() {
  stopping_ = true;
  const char byte = 'x';
  (void)!write(wake_fds_[1], &byte, 1);
  thread_.join();
  close(udp_fd_);
  close(tcp_fd_);
  close(wake_fds_[0]);
  close(wake_fds_[1]);
}

std::string TestDnsServer::address() const {
  return "127.0.0.1:" + std::to_string(port_);
}

void TestDnsServer::add(const std::string& name, std::uint16_t type, std::uint32_t ttl,
                        std::string rdata) {
  std::lock_guard lock(mutex_);
  zone_[lower_name(name)].push_back(Record{type, ttl, std::move(rdata)});
}

void TestDnsServer::add_a(const std::string& name, const std::string& address, std::uint32_t ttl) {
  in_addr bytes{};
  if (inet_pton(AF_INET, address.c_str(), &bytes) != 1) {
    throw std::invalid_argument("not an IPv4 address: " + address);
  }
  add(name, type_a, ttl, std::string(reinterpret_cast<const char*>(&bytes), 4));
}

void TestDnsServer::add_aaaa(const std::string& name, const std::string& address,
                             std::uint32_t ttl) {
  in6_addr bytes{};
  if (inet_pton(AF_INET6, address.c_str(), &bytes) != 1) {
    throw std::invalid_argument("not an IPv6 address: " + address);
  }
  add(name, type_aaaa, ttl, std::string(reinterpret_cast<const char*>(&bytes), 16));
}

void TestDnsServer::add_txt(const std::string& name, const std::vector<std::string>& strings,
                            std::uint32_t ttl) {
  std::string rdata;
  for (const auto& piece : strings) {
    if (piece.size() > 255) throw std::invalid_argument("TXT string over 255 bytes");
    rdata.push_back(static_cast<char>(piece.size()));
    rdata += piece;
  }
  add(name, type_txt, ttl, std::move(rdata));
}

void TestDnsServer::add_mx(const std::string& name, std::uint16_t preference,
                           const std::string& exchange, std::uint32_t ttl) {
  std::string rdata;
  put16(rdata, preference);
  rdata += wire_name(exchange);
  add(name, type_mx, ttl, std::move(rdata));
}

void TestDnsServer::add_ptr(const std::string& name, const std::string& target, std::uint32_t ttl) {
  add(name, type_ptr, ttl, wire_name(target));
}

void TestDnsServer::add_cname(const std::string& name, const std::string& target,
                              std::uint32_t ttl) {
  add(name, type_cname, ttl, wire_name(target));
}

void TestDnsServer::set_behaviour(const std::string& name, Behaviour behaviour,
                                  std::chrono::milliseconds delay) {
  std::lock_guard lock(mutex_);
  rules_[lower_name(name)] = Rule{behaviour, delay};
}

std::vector<TestDnsServer::Query> TestDnsServer::queries() const {
  std::lock_guard lock(mutex_);
  return queries_;
}

std::size_t TestDnsServer::query_count(const std::string& name) const {
  std::lock_guard lock(mutex_);
  const std::string wanted = lower_name(name);
  return static_cast<std::size_t>(std::count_if(queries_.begin(), queries_.end(),
                                                [&](const Query& q) { return q.name == wanted; }));
}

std::size_t TestDnsServer::late_answers_sent() const {
  std::lock_guard lock(mutex_);
  return late_answers_sent_;
}

std::string TestDnsServer::reply_to(const std::string& packet, Transport transport,
                                    std::chrono::milliseconds& delay) {
  delay = std::chrono::milliseconds(0);
  ParsedQuery query;
  if (!parse_query(packet, query)) return {};
  std::lock_guard lock(mutex_);
  queries_.push_back(Query{query.name, query.type, transport});
  Rule rule;
  if (const auto found = rules_.find(query.name); found != rules_.end()) rule = found->second;
  if (rule.behaviour == Behaviour::withhold) return {};
  if (rule.behaviour == Behaviour::delay) delay = rule.delay;

  int rcode = 0;
  bool truncated = false;
  std::string answers;
  int answer_count = 0;
  if (rule.behaviour == Behaviour::servfail) {
    rcode = rcode_servfail;
  } else if (rule.behaviour == Behaviour::truncate && transport == Transport::udp) {
    truncated = true;
  } else {
    std::string current = query.name;
    std::set<std::string> seen;
    for (int hop = 0; hop <= max_zone_cname_hops; ++hop) {
      const auto found = zone_.find(current);
      if (found == zone_.end()) {
        rcode = rcode_nxdomain;
        break;
      }
      const Record* alias = nullptr;
      for (const auto& record : found->second) {
        if (record.type == type_cname && query.type != type_cname) alias = &record;
      }
      const std::string owner = wire_name(current);
      auto append = [&](const Record& record) {
        answers += owner;
        put16(answers, record.type);
        put16(answers, 1);
        put32(answers, record.ttl);
        put16(answers, static_cast<unsigned>(record.rdata.size()));
        answers += record.rdata;
        ++answer_count;
      };
      if (alias == nullptr) {
        for (const auto& record : found->second) {
          if (record.type == query.type) append(record);
        }
        break;
      }
      append(*alias);
      if (!seen.insert(current).second) break;
      // The target, read back from its wire form.
      std::string target;
      for (std::size_t at = 0; at < alias->rdata.size() && alias->rdata[at] != '\0';) {
        const std::size_t length = static_cast<unsigned char>(alias->rdata[at]);
        if (!target.empty()) target.push_back('.');
        target.append(alias->rdata, at + 1, length);
        at += 1 + length;
      }
      current = target;
    }
  }

  std::string reply;
  put16(reply, query.id);
  // QR, AA, RD as asked; TC when truncated.
  const unsigned flags = 0x8000u | 0x0400u | (truncated ? 0x0200u : 0u) |
                         (query.recursion_desired ? 0x0100u : 0u) | static_cast<unsigned>(rcode);
  put16(reply, flags);
  put16(reply, 1);
  put16(reply, truncated ? 0 : static_cast<unsigned>(answer_count));
  put16(reply, 0);
  put16(reply, 0);
  reply += query.question;
  if (!truncated) reply += answers;
  return reply;
}

void TestDnsServer::serve_udp() {
  char buffer[4096];
  sockaddr_in peer{};
  socklen_t peer_length = sizeof peer;
  const ssize_t got = recvfrom(udp_fd_, buffer, sizeof buffer, MSG_DONTWAIT,
                               reinterpret_cast<sockaddr*>(&peer), &peer_length);
  if (got <= 0) return;
  std::chrono::milliseconds delay{0};
  std::string reply =
      reply_to(std::string(buffer, static_cast<std::size_t>(got)), Transport::udp, delay);
  if (reply.empty()) return;
  if (delay.count() > 0) {
    const auto* peer_bytes = reinterpret_cast<const unsigned char*>(&peer);
    scheduled_.push_back(
        Scheduled{std::chrono::steady_clock::now() + delay, std::move(reply),
                  std::vector<unsigned char>(peer_bytes, peer_bytes + sizeof peer)});
    return;
  }
  sendto(udp_fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&peer), sizeof peer);
}

void TestDnsServer::serve_tcp_connection(int fd) {
  // One client at a time, each query answered at once (the TCP fallback after a TC answer;
  // behaviours other than withhold and servfail do not apply over TCP).
  while (!stopping_) {
    pollfd waiting{fd, POLLIN, 0};
    if (poll(&waiting, 1, 2000) <= 0) break;
    unsigned char length_bytes[2];
    if (recv(fd, length_bytes, 2, MSG_WAITALL) != 2) break;
    const std::size_t length = (length_bytes[0] << 8) | length_bytes[1];
    std::string packet(length, '\0');
    if (length == 0 ||
        recv(fd, packet.data(), length, MSG_WAITALL) != static_cast<ssize_t>(length)) {
      break;
    }
    std::chrono::milliseconds ignored_delay{0};
    const std::string reply = reply_to(packet, Transport::tcp, ignored_delay);
    if (reply.empty()) continue;
    std::string framed;
    put16(framed, static_cast<unsigned>(reply.size()));
    framed += reply;
    if (send(fd, framed.data(), framed.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(framed.size())) {
      break;
    }
  }
  close(fd);
}

void TestDnsServer::run() {
  while (!stopping_) {
    int timeout_ms = -1;
    const auto now = std::chrono::steady_clock::now();
    for (const auto& item : scheduled_) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(item.due - now).count();
      const int wait = static_cast<int>(std::max<long long>(0, left));
      timeout_ms = timeout_ms < 0 ? wait : std::min(timeout_ms, wait);
    }
    pollfd fds[3] = {{udp_fd_, POLLIN, 0}, {tcp_fd_, POLLIN, 0}, {wake_fds_[0], POLLIN, 0}};
    poll(fds, 3, timeout_ms);
    if (stopping_) break;
    if (fds[0].revents & POLLIN) serve_udp();
    if (fds[1].revents & POLLIN) {
      const int client = accept4(tcp_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client >= 0) serve_tcp_connection(client);
    }
    const auto later = std::chrono::steady_clock::now();
    for (auto item = scheduled_.begin(); item != scheduled_.end();) {
      if (item->due > later) {
        ++item;
        continue;
      }
      {
        // Counted first: the client may read the answer before this thread runs on.
        std::lock_guard lock(mutex_);
        ++late_answers_sent_;
      }
      sendto(udp_fd_, item->packet.data(), item->packet.size(), 0,
             reinterpret_cast<const sockaddr*>(item->peer.data()),
             static_cast<socklen_t>(item->peer.size()));
      item = scheduled_.erase(item);
    }
  }
}

}  // namespace portcullis::test
