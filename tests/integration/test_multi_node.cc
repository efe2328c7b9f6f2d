// contrib/multi-node/ as deployed, on this machine: the shipped haproxy.cfg (checked as it is
// with `haproxy -c`, then run with its example addresses replaced by loopback ports) in front
// of two portcullis nodes that share one redis-server. haproxy passes each connection with a
// PROXY v2 header and checks each node's /readyz; the nodes trust 127.0.0.1 and see the
// client's own address (127.0.0.9). A sender greylisted by one node is early, then passed,
// on whichever node its retries reach; a node that drains (SIGTERM) gets no new sessions and
// no client is refused meanwhile.
#define BOOST_TEST_MODULE integration_multi_node
#include <signal.h>

#include <fmt/core.h>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fixtures.h"
#include "recording_upstream.h"
#include "test_redis_server.h"
#include "test_support.h"

using namespace portcullis::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const char* const kHaproxy = "/usr/sbin/haproxy";
const char* const kClientAddress = "127.0.0.9";

fs::path shipped_haproxy_cfg() {
  return source_root() / "contrib/multi-node/haproxy.cfg";
}

std::string replace_once(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  if (at == std::string::npos) {
    throw std::runtime_error("contrib/multi-node/haproxy.cfg no longer has: " + from);
  }
  return text.replace(at, from.size(), to);
}

struct NodePorts {
  uint16_t smtp;
  uint16_t metrics;
};

// The shipped file with this machine's addresses: the front end on `front`, the nodes' lines
// replaced by ours (each with its own metrics port for the check), the log on stderr, and a
// small maxconn.
std::string local_haproxy_cfg(uint16_t front, const std::vector<NodePorts>& nodes) {
  std::string text = read_file(shipped_haproxy_cfg());
  text = replace_once(text, "bind 192.0.2.25:25", fmt::format("bind 127.0.0.1:{}", front));
  text = replace_once(text, "log /dev/log local0", "log stderr format raw local0");
  // The test's few sessions, within any file descriptor limit.
  text = replace_once(text, "maxconn 10000", "maxconn 100");
  text = std::regex_replace(text, std::regex(R"(\n    server node\d+ [^\n]*)"), "");
  std::string servers;
  for (size_t i = 0; i < nodes.size(); ++i) {
    servers += fmt::format("\n    server node{} 127.0.0.1:{} port {}", i + 1, nodes[i].smtp,
                           nodes[i].metrics);
  }
  const std::string defaults =
      "default-server send-proxy-v2 check port 9325 inter 2s fall 2 rise 2";
  return replace_once(text, defaults, defaults + servers);
}

// Free ports, none of them twice.
std::vector<uint16_t> distinct_ports(size_t count) {
  std::set<uint16_t> ports;
  while (ports.size() < count)
    ports.insert(free_loopback_port());
  return {ports.begin(), ports.end()};
}

// A node as contrib/multi-node/README.md sets it up: a PROXY listener trusting the load
// balancer, the metrics listener, [store] on the shared Redis; greylisting for `delay` s.
PortcullisOptions node_options(const RecordingUpstream& upstream, const TestRedisServer& redis,
                               const fs::path& policy, const NodePorts& ports, int delay) {
  std::ofstream(policy) << "[[rule]]\nname = \"greylisted\"\n"
                           "when = \"greylist == 'new' or greylist == 'early'\"\n"
                           "then = \"tempfail 451 4.7.1 Greylisted: {greylist}\"\n";
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  options.listen_settings = {{"proxy_protocol", "true"}};
  options.settings["trust"] = {{"proxy_peers", "[\"127.0.0.1/32\"]"}};
  options.settings["metrics"] = {{"address", fmt::format("\"127.0.0.1:{}\"", ports.metrics)}};
  options.settings["store"] = {{"backend", "\"redis\""}};
  options.settings["store.redis"] = {{"address", "\"" + redis.address() + "\""},
                                     {"prefix", "\"cluster:\""},
                                     {"timeout_ms", "1000"}};
  options.settings["filters"] = {{"chain", "[\"greylist\"]"}};
  options.settings["filter.greylist"] = {{"delay", std::to_string(delay)}};
  options.settings["policy"] = {{"files", "[\"" + policy.string() + "\"]"}};
  // The fixture's own readiness session would come without a PROXY header and be closed.
  options.wait_ready = false;
  return options;
}

// PortcullisFixture picks its listening port itself; the node's SMTP port is read back from it.
class Cluster {
 public:
  explicit Cluster(int delay) {
    const std::vector<uint16_t> ports = distinct_ports(3);
    front_ = ports[0];
    for (int i = 0; i < 2; ++i) {
      NodePorts node_ports{0, ports[1 + i]};
      nodes_.push_back(std::make_unique<PortcullisFixture>(node_options(
          upstream_, redis_, dir_ / fmt::format("greylist{}.toml", i), node_ports, delay)));
      if (!nodes_.back()->wait_for_event("upstream_reachable", 20s)) {
        throw std::runtime_error("node never reached its upstream\n" +
                                 nodes_.back()->diagnostics());
      }
      node_ports.smtp = nodes_.back()->port();
      node_ports_.push_back(node_ports);
    }
    write_file(dir_ / "haproxy.cfg", local_haproxy_cfg(front_, node_ports_));
    const CommandResult valid =
        run_command({kHaproxy, "-c", "-f", (dir_ / "haproxy.cfg").string()}, 30s);
    if (!valid.status.success()) {
      throw std::runtime_error("haproxy -c refused the local config: " + valid.out + valid.err);
    }
    haproxy_ = std::make_unique<ChildProcess>(ChildProcess::Options{
        {kHaproxy, "-db", "-f", (dir_ / "haproxy.cfg").string()}, {}, {}, dir_ / "haproxy.log"});
    if (!wait_until_listens(front_, 15s)) {
      throw std::runtime_error("haproxy did not listen: " + read_file(dir_ / "haproxy.log"));
    }
  }
  ~Cluster() {
    if (haproxy_) haproxy_->stop();
  }

  PortcullisFixture& node(size_t i) { return *nodes_.at(i); }
  std::string haproxy_log() const { return read_file(dir_ / "haproxy.log"); }

  // The sessions each node has taken from kClientAddress through haproxy (its PROXY header
  // named that client).
  std::vector<size_t> sessions_per_node() const {
    std::vector<size_t> counts;
    for (const auto& node : nodes_) {
      size_t count = 0;
      for (const LogEvent& event : node->events_named("proxy_header")) {
        if (event.field("client").starts_with(std::string(kClientAddress) + ":")) ++count;
      }
      counts.push_back(count);
    }
    return counts;
  }

  // The index of the node that took the one session `session` runs.
  template <typename Session>
  auto through_haproxy(Session session, size_t* node_index) {
    const std::vector<size_t> before = sessions_per_node();
    auto result = session();
    // The node logs proxy_header before its banner, so it is written by now.
    const std::vector<size_t> after = sessions_per_node();
    *node_index = before[0] != after[0] ? 0 : before[1] != after[1] ? 1 : 99;
    return result;
  }

  SmtpTestClient connect() const {
    return SmtpTestClient("127.0.0.1", front_, {.source_address = kClientAddress, .timeout = 10s});
  }

 private:
  TempDir dir_{"portcullis-multi-node"};
  TestRedisServer redis_;
  RecordingUpstream upstream_;
  std::vector<std::unique_ptr<PortcullisFixture>> nodes_;
  std::vector<NodePorts> node_ports_;
  uint16_t front_ = 0;
  std::unique_ptr<ChildProcess> haproxy_;
};

SmtpReply rcpt_to(const Cluster& cluster) {
  SmtpTestClient client = cluster.connect();
  BOOST_TEST(client.read_reply().code == 220);
  BOOST_TEST(client.command("EHLO client.example.test").code == 250);
  BOOST_TEST(client.command("MAIL FROM:<alice@example.test>").code == 250);
  const SmtpReply reply = client.command("RCPT TO:<bob@example.net>");
  client.command("QUIT");
  return reply;
}

int banner_code(const Cluster& cluster) {
  SmtpTestClient client = cluster.connect();
  const int code = client.read_reply().code;
  client.command("QUIT");
  return code;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_shipped_haproxy_cfg_is_valid) {
  const CommandResult result =
      run_command({kHaproxy, "-c", "-f", shipped_haproxy_cfg().string()}, 30s);
  BOOST_TEST(result.status.success(), result.out << result.err);
  BOOST_TEST(contains(result.out, "Configuration file is valid"), result.out << result.err);
}

BOOST_AUTO_TEST_CASE(behind_haproxy_a_greylisted_sender_passes_on_whichever_node_it_reaches) {
  constexpr int delay = 3;
  Cluster cluster(delay);
  // Both nodes in rotation, each seeing the client's address from the PROXY header.
  BOOST_TEST(wait_until(
                 [&] {
                   banner_code(cluster);
                   const auto counts = cluster.sessions_per_node();
                   return counts[0] > 0 && counts[1] > 0;
                 },
                 20s, 100ms),
             cluster.haproxy_log());

  const auto made = Clock::now();
  size_t maker = 0;
  const SmtpReply fresh = cluster.through_haproxy([&] { return rcpt_to(cluster); }, &maker);
  BOOST_TEST(contains(fresh.text(), "Greylisted: new"), fresh.describe());
  BOOST_REQUIRE(maker < 2);
  std::set<size_t> early_nodes;
  for (int i = 0; i < 3; ++i) {
    size_t node = 0;
    const SmtpReply early = cluster.through_haproxy([&] { return rcpt_to(cluster); }, &node);
    BOOST_TEST(contains(early.text(), "Greylisted: early"), early.describe());
    early_nodes.insert(node);
  }
  BOOST_REQUIRE_MESSAGE(elapsed_ms(made) < delay * 1000, "the early retries came too late");
  std::this_thread::sleep_for(std::chrono::milliseconds(delay * 1000 + 300) -
                              std::chrono::milliseconds(elapsed_ms(made)));
  std::set<size_t> passed_nodes;
  for (int i = 0; i < 3; ++i) {
    size_t node = 0;
    const SmtpReply passed = cluster.through_haproxy([&] { return rcpt_to(cluster); }, &node);
    BOOST_TEST(passed.code == 250, passed.describe());
    passed_nodes.insert(node);
  }
  // The node that did not make the triplet answered early and passed from what the other wrote.
  BOOST_TEST(early_nodes.contains(1 - maker));
  BOOST_TEST(passed_nodes.contains(1 - maker));
  BOOST_TEST(cluster.node(0).events_named("store_down").empty());
  BOOST_TEST(cluster.node(1).events_named("store_down").empty());
}

// SIGTERM to node 1: its /readyz answers 503 and its listeners close; haproxy tries the
// connections it still sends there again on node 2 and soon sends none. For 6 s, a session
// every 100 ms: every one gets its banner.
BOOST_AUTO_TEST_CASE(a_draining_node_gets_no_new_sessions_and_nobody_is_refused) {
  Cluster cluster(300);
  BOOST_TEST(wait_until(
                 [&] {
                   banner_code(cluster);
                   const auto counts = cluster.sessions_per_node();
                   return counts[0] > 0 && counts[1] > 0;
                 },
                 20s, 100ms),
             cluster.haproxy_log());

  BOOST_REQUIRE(::kill(cluster.node(0).pid(), SIGTERM) == 0);
  const auto start = Clock::now();
  int sessions = 0;
  int banners = 0;
  while (elapsed_ms(start) < 6000) {
    ++sessions;
    if (banner_code(cluster) == 220) ++banners;
    std::this_thread::sleep_for(100ms);
  }
  BOOST_TEST_MESSAGE(banners << " of " << sessions << " sessions got their banner");
  BOOST_TEST(banners == sessions, cluster.haproxy_log());
  BOOST_TEST(!cluster.node(0).running());
  BOOST_TEST(cluster.node(1).running());
  const size_t on_node_two = cluster.sessions_per_node()[1];
  BOOST_TEST(banner_code(cluster) == 220);
  BOOST_TEST(cluster.sessions_per_node()[1] == on_node_two + 1);
}
