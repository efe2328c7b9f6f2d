// How the client's identity reaches the upstream, byte by byte: the XCLIENT attributes
// (ADDR with IPV6: for v6, PORT, NAME [UNAVAILABLE], HELO xtext-encoded, PROTO, DESTADDR,
// DESTPORT), only those the upstream advertises, each command within 512 octets and split with
// NAME and ADDR last, then EHLO with the client's own HELO name; and the PROXY v2 header for an
// IPv6 client. Also the worker threads that relay: their names and scheduling policy.
#define BOOST_TEST_MODULE integration_relay
#include <sched.h>

#include <fmt/core.h>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "fixtures.h"
#include "recording_upstream.h"
#include "test_support.h"

using namespace portcullis::test;

namespace {

struct XclientSeen {
  std::vector<std::string> commands;              // every XCLIENT command line
  std::map<std::string, std::string> attributes;  // NAME -> value (as sent, xtext)
  std::string after;                              // the command that followed the last XCLIENT
};

XclientSeen xclient_of(const RecordedConnection& connection) {
  XclientSeen seen;
  for (size_t i = 0; i < connection.commands.size(); ++i) {
    const std::string& command = connection.commands[i];
    if (!starts_with_nocase(command, "XCLIENT ")) continue;
    seen.commands.push_back(command);
    seen.after = i + 1 < connection.commands.size() ? connection.commands[i + 1] : "";
    size_t start = 8;
    while (start < command.size()) {
      size_t end = command.find(' ', start);
      if (end == std::string::npos) end = command.size();
      const std::string pair = command.substr(start, end - start);
      const size_t equals = pair.find('=');
      if (equals != std::string::npos) {
        seen.attributes[pair.substr(0, equals)] = pair.substr(equals + 1);
      }
      start = end + 1;
    }
  }
  return seen;
}

// One session through `proxy`: EHLO/HELO `greeting`, one message; returns the client's port.
uint16_t one_transaction(const PortcullisFixture& proxy, const std::string& host,
                         const std::string& source, const std::string& greeting, uint16_t port) {
  SmtpTestClient client(host, port, {.source_address = source, .timeout = 10s});
  BOOST_TEST(client.read_reply().code == 220);
  BOOST_TEST(client.command(greeting).code == 250);
  BOOST_TEST(client.command("MAIL FROM:<a@example.test>").code == 250);
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  BOOST_TEST(client.command("DATA").code == 354);
  client.send(dot_stuff(make_message(500, "relay", "RELAY")) + ".\r\n");
  BOOST_TEST(client.read_reply().code == 250);
  BOOST_TEST(client.command("QUIT").code == 221);
  BOOST_TEST(proxy.pid() > 0);
  return client.local_port();
}

std::optional<RecordedConnection> only_session(const RecordingUpstream& upstream) {
  upstream.wait_for(
      [](const std::vector<RecordedConnection>& connections) {
        return std::none_of(connections.begin(), connections.end(),
                            [](const auto& c) { return c.open; });
      },
      5s);
  auto sessions = upstream.session_connections();
  if (sessions.size() != 1) return std::nullopt;
  return sessions[0];
}

// What /proc says about one thread of a process.
struct ThreadInfo {
  int policy = -1;   // sched(7): 0 SCHED_OTHER, 3 SCHED_BATCH
  std::string cpus;  // Cpus_allowed_list, e.g. "0", "0-3"
};

// Thread name (comm) -> ThreadInfo; the main thread carries the program's name.
std::map<std::string, ThreadInfo> threads_of(pid_t pid) {
  std::map<std::string, ThreadInfo> threads;
  for (const auto& task : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid))) {
    std::ifstream comm_file(task.path() / "comm");
    std::string name;
    std::getline(comm_file, name);
    ThreadInfo& info = threads[name];
    std::ifstream stat_file(task.path() / "stat");
    const std::string stat((std::istreambuf_iterator<char>(stat_file)), {});
    // The name, in parentheses, may hold spaces ("worker 1"); the fields after it do not.
    std::istringstream fields(stat.substr(stat.rfind(')') + 2));
    std::string field;
    for (int number = 3; number <= 41 && fields >> field; ++number) {
      if (number == 41) info.policy = std::stoi(field);
    }
    std::ifstream status_file(task.path() / "status");
    const std::string key = "Cpus_allowed_list:";
    for (std::string line; std::getline(status_file, line);) {
      if (line.rfind(key, 0) != 0) continue;
      const size_t value = line.find_first_not_of(" \t", key.size());
      info.cpus = value == std::string::npos ? "" : line.substr(value);
    }
  }
  return threads;
}

}  // namespace

BOOST_AUTO_TEST_CASE(worker_threads_are_named_and_batch_scheduled_by_default) {
  RecordingUpstream upstream;
  PortcullisOptions options;
  options.upstream_port = upstream.port();  // the fixture runs 2 workers
  PortcullisFixture proxy(options);
  one_transaction(proxy, "127.0.0.1", "127.0.0.2", "EHLO batch.example.test", proxy.port());
  const auto threads = threads_of(proxy.pid());
  BOOST_TEST(threads.count("worker 1") == 1u);
  BOOST_TEST(threads.count("worker 2") == 1u);
  BOOST_TEST(threads.count("worker 3") == 0u);
  for (const auto& [name, info] : threads) {
    BOOST_TEST_CONTEXT(name) {
      // Workers move to SCHED_BATCH; the main thread (accepting, signals) stays as it was.
      BOOST_TEST(info.policy == (name.rfind("worker ", 0) == 0 ? 3 : 0));
    }
  }
  BOOST_TEST(proxy.events_named("cpu_scheduling_failed").empty());
  BOOST_TEST(proxy.running(), proxy.diagnostics());
}

BOOST_AUTO_TEST_CASE(cpu_scheduling_normal_leaves_the_workers_policy_alone) {
  RecordingUpstream upstream;
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  options.settings["server"]["cpu_scheduling"] = "\"normal\"";
  PortcullisFixture proxy(options);
  one_transaction(proxy, "127.0.0.1", "127.0.0.2", "EHLO normal.example.test", proxy.port());
  const auto threads = threads_of(proxy.pid());
  BOOST_TEST(threads.count("worker 1") == 1u);
  for (const auto& [name, info] : threads)
    BOOST_TEST(info.policy == 0, name);
}

BOOST_AUTO_TEST_CASE(pin_workers_gives_each_worker_a_cpu_of_its_own) {
  // The CPUs this test (and so the proxy it starts) may run on, in order.
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  BOOST_REQUIRE(sched_getaffinity(0, sizeof allowed, &allowed) == 0);
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
  BOOST_REQUIRE(!cpus.empty());

  RecordingUpstream upstream;
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  options.settings["server"]["workers"] = "3";
  options.settings["server"]["pin_workers"] = "true";
  PortcullisFixture proxy(options);
  one_transaction(proxy, "127.0.0.1", "127.0.0.2", "EHLO pinned.example.test", proxy.port());
  const auto threads = threads_of(proxy.pid());
  for (unsigned worker = 1; worker <= 3; ++worker) {
    const std::string name = fmt::format("worker {}", worker);
    BOOST_TEST_CONTEXT(name) {
      BOOST_REQUIRE(threads.count(name) == 1u);
      // Worker N on the Nth allowed CPU, wrapping around (3 workers, maybe fewer CPUs).
      BOOST_TEST(threads.at(name).cpus == std::to_string(cpus[(worker - 1) % cpus.size()]));
    }
  }
  BOOST_TEST(proxy.events_named("pin_workers_failed").empty());
}

BOOST_AUTO_TEST_CASE(workers_are_not_pinned_by_default) {
  RecordingUpstream upstream;
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  PortcullisFixture proxy(options);
  const auto threads = threads_of(proxy.pid());
  BOOST_REQUIRE(threads.count("worker 1") == 1u);
  BOOST_REQUIRE(threads.count("worker 2") == 1u);
  BOOST_REQUIRE(threads.count("portcullis") == 1u);  // the main thread
  // Each worker may run wherever the main thread may.
  BOOST_TEST(threads.at("worker 1").cpus == threads.at("portcullis").cpus);
  BOOST_TEST(threads.at("worker 2").cpus == threads.at("portcullis").cpus);
}

BOOST_AUTO_TEST_CASE(xclient_carries_every_advertised_attribute) {
  RecordingUpstream upstream;
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  PortcullisFixture proxy(options);
  // '+' and '=' must be xtext-encoded (RFC 1891): +2B, +3D.
  const uint16_t client_port =
      one_transaction(proxy, "127.0.0.1", "127.0.0.2", "EHLO a+b=c.example.test", proxy.port());
  const auto session = only_session(upstream);
  BOOST_REQUIRE(session.has_value());
  XclientSeen seen = xclient_of(*session);
  BOOST_REQUIRE(!seen.commands.empty());
  const std::map<std::string, std::string> expected = {{"ADDR", "127.0.0.2"},
                                                       {"PORT", std::to_string(client_port)},
                                                       {"NAME", "[UNAVAILABLE]"},
                                                       {"HELO", "a+2Bb+3Dc.example.test"},
                                                       {"PROTO", "ESMTP"},
                                                       {"DESTADDR", "127.0.0.1"},
                                                       {"DESTPORT", std::to_string(proxy.port())}};
  for (const auto& [name, value] : expected) {
    BOOST_TEST(seen.attributes.count(name) == 1u, name << " missing");
    if (seen.attributes.count(name)) BOOST_TEST(seen.attributes.at(name) == value, name);
  }
  BOOST_TEST(seen.attributes.count("REVERSE_NAME") == 1u);
  for (const auto& command : seen.commands)
    BOOST_TEST(command.size() + 2 <= 512u);
  // Then EHLO again with the client's own name, before the transaction.
  BOOST_TEST(seen.after == "EHLO a+b=c.example.test");
  BOOST_TEST(proxy.running(), proxy.diagnostics());
}

BOOST_AUTO_TEST_CASE(helo_client_is_announced_as_smtp) {
  RecordingUpstream upstream;
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  PortcullisFixture proxy(options);
  one_transaction(proxy, "127.0.0.1", "127.0.0.2", "HELO old.example.test", proxy.port());
  const auto session = only_session(upstream);
  BOOST_REQUIRE(session.has_value());
  XclientSeen seen = xclient_of(*session);
  BOOST_TEST(seen.attributes["PROTO"] == "SMTP");
  BOOST_TEST(seen.attributes["HELO"] == "old.example.test");
  // The upstream is greeted the way the client greeted us (UpstreamGreeting::client_esmtp), so
  // Postfix records the same protocol and offers no ESMTP extensions the client never asked for.
  BOOST_TEST(seen.after == "HELO old.example.test");
}

BOOST_AUTO_TEST_CASE(long_helo_splits_xclient_with_name_and_addr_last) {
  RecordingUpstream upstream;
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  PortcullisFixture proxy(options);
  std::string long_helo;
  while (long_helo.size() < 440)
    long_helo += "label-0123456789.";
  long_helo += "example.test";
  one_transaction(proxy, "127.0.0.1", "127.0.0.2", "EHLO " + long_helo, proxy.port());
  const auto session = only_session(upstream);
  BOOST_REQUIRE(session.has_value());
  XclientSeen seen = xclient_of(*session);
  BOOST_TEST(seen.commands.size() >= 2u);
  for (const auto& command : seen.commands) {
    BOOST_TEST(command.size() + 2 <= 512u, command.size() + 2 << " octets");
  }
  BOOST_TEST(seen.attributes["HELO"] == long_helo);
  BOOST_TEST(seen.attributes["ADDR"] == "127.0.0.2");
  // After ADDR the upstream judges the new client, which may not send XCLIENT: so ADDR and
  // NAME travel in the last command.
  BOOST_TEST(contains(seen.commands.back(), " ADDR=127.0.0.2"));
  BOOST_TEST(contains(seen.commands.back(), " NAME="));
  for (size_t i = 0; i + 1 < seen.commands.size(); ++i) {
    BOOST_TEST(!contains(seen.commands[i], " ADDR="));
    BOOST_TEST(!contains(seen.commands[i], " NAME="));
  }
  BOOST_TEST(seen.after == "EHLO " + long_helo);
}

BOOST_AUTO_TEST_CASE(only_attributes_the_upstream_advertises) {
  UpstreamBehaviour behaviour;
  behaviour.ehlo_keywords = {"PIPELINING", "SIZE 52428800", "ENHANCEDSTATUSCODES",
                             "XCLIENT ADDR HELO"};
  RecordingUpstream upstream(behaviour);
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  PortcullisFixture proxy(options);
  one_transaction(proxy, "127.0.0.1", "127.0.0.2", "EHLO few.example.test", proxy.port());
  const auto session = only_session(upstream);
  BOOST_REQUIRE(session.has_value());
  XclientSeen seen = xclient_of(*session);
  std::vector<std::string> names;
  for (const auto& [name, value] : seen.attributes)
    names.push_back(name);
  BOOST_TEST(names == (std::vector<std::string>{"ADDR", "HELO"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(ipv6_client_is_announced_in_ipv6_form) {
  RecordingUpstream upstream;
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  const uint16_t v6_port = free_loopback_port();
  options.extra_listen = {fmt::format("[::1]:{}", v6_port)};
  PortcullisFixture proxy(options);
  BOOST_REQUIRE(wait_until_listens(v6_port, 5s));
  const uint16_t client_port = one_transaction(proxy, "::1", "", "EHLO v6.example.test", v6_port);
  const auto session = only_session(upstream);
  BOOST_REQUIRE(session.has_value());
  XclientSeen seen = xclient_of(*session);
  BOOST_TEST(seen.attributes["ADDR"] == "IPV6:::1");
  BOOST_TEST(seen.attributes["PORT"] == std::to_string(client_port));
  BOOST_TEST(seen.attributes["DESTADDR"] == "IPV6:::1");
  BOOST_TEST(seen.attributes["DESTPORT"] == std::to_string(v6_port));
}

BOOST_AUTO_TEST_CASE(proxy_v2_header_for_an_ipv6_client) {
  UpstreamBehaviour behaviour;
  behaviour.expect_proxy_v2 = true;
  behaviour.proxy_header_wait = 300ms;
  RecordingUpstream upstream(behaviour);
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  options.pass_client = "proxy-v2";
  const uint16_t v6_port = free_loopback_port();
  options.extra_listen = {fmt::format("[::1]:{}", v6_port)};
  PortcullisFixture proxy(options);
  BOOST_REQUIRE(wait_until_listens(v6_port, 5s));
  const uint16_t client_port = one_transaction(proxy, "::1", "", "EHLO v6.example.test", v6_port);
  const auto session = only_session(upstream);
  BOOST_REQUIRE(session.has_value());
  const ProxyV2Header header = parse_proxy_v2(session->proxy_header);
  BOOST_TEST(header.valid, header.error);
  BOOST_TEST(header.command == 1u);
  BOOST_TEST(header.family == 2u);  // AF_INET6
  BOOST_TEST(header.transport == 1u);
  BOOST_TEST(header.source_address == "::1");
  BOOST_TEST(header.source_port == client_port);
  BOOST_TEST(header.destination_address == "::1");
  BOOST_TEST(header.destination_port == v6_port);
  BOOST_TEST(session->count_verb("XCLIENT") == 0u);
}
