// The DNS filters end to end with the real binary: fcrdns, spf and dnsbl asking the in-process
// TestDnsServer (the proxy's [dns] resolvers), a RecordingUpstream in Postfix's place. Clients
// reach the proxy from 127.0.0.1, a trusted PROXY peer, with a PROXY v1 header naming a
// documentation address, so each case picks the client address its DNS records are about.
// Checks: what the facts become upstream (XCLIENT NAME/REVERSE_NAME, Received,
// Authentication-Results), policy refusals and their rejection-log evidence, dnsbl error
// answers as warnings (main log, /metrics), a slow DNS answer holding only its own session,
// and `portcullis check` on the dns.timeout rule. dmarc: the From domain's _dmarc record and
// its alignment with spf, in Authentication-Results, and a policy refusing a p=reject failure.
#define BOOST_TEST_MODULE integration_dns_filters
#include <fmt/core.h>
#include <fmt/ranges.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "fixtures.h"
#include "recording_upstream.h"
#include "test_dns_server.h"
#include "test_support.h"

using namespace portcullis::test;
namespace fs = std::filesystem;

namespace {

std::string file_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                            fs::perms::others_read);
}

// A rule that never fires, for cases that only look at facts.
const std::string kQuietPolicy =
    "[[rule]]\nname = \"never\"\nwhen = \"rcpt == 'never@example.test'\"\nthen = \"reject\"\n";

struct DnsProxyOptions {
  std::string chain;  // TOML array, e.g. ["fcrdns"]
  std::string policy_text = kQuietPolicy;
  int dns_timeout = 1;
  int filter_timeout = 3;
  // More settings by section (raw TOML values), e.g. the dnsbl lists or server.workers.
  std::map<std::string, std::map<std::string, std::string>> settings = {};
};

// The test DNS server, a RecordingUpstream and the proxy asking that server, with a policy
// file, a rejection log and a metrics listener.
class DnsProxy {
 public:
  explicit DnsProxy(const DnsProxyOptions& dns_options) {
    dir_.chmod(0755);
    policy_path_ = dir_ / "policy.toml";
    write_file(policy_path_, dns_options.policy_text);
    const fs::path log_dir = dir_.make_subdir("log", 0777);
    rejections_path_ = log_dir / "rejections.jsonl";
    metrics_port_ = free_loopback_port();

    PortcullisOptions options;
    options.upstream_port = upstream_.port();
    options.pass_client = "xclient";
    // One upstream connection per session, so each connection's XCLIENT is one session's.
    options.settings["upstream"]["idle_timeout"] = "0";
    options.listen_settings = {{"proxy_protocol", "true"}};
    options.settings["trust"] = {{"proxy_peers", "[\"127.0.0.1/32\"]"}};
    options.settings["dns"] = {{"resolvers", fmt::format("[\"{}\"]", dns_.address())},
                               {"timeout", std::to_string(dns_options.dns_timeout)}};
    options.settings["filters"] = {{"chain", dns_options.chain}};
    for (const char* filter : {"fcrdns", "spf", "dnsbl", "dmarc"}) {
      if (contains(dns_options.chain, fmt::format("\"{}\"", filter))) {
        options.settings[fmt::format("filter.{}", filter)]["timeout"] =
            std::to_string(dns_options.filter_timeout);
      }
    }
    options.settings["policy"] = {{"files", fmt::format("[\"{}\"]", policy_path_.string())}};
    options.settings["log"]["rejections"] = fmt::format("\"{}\"", rejections_path_.string());
    options.settings["metrics"] = {{"address", fmt::format("\"127.0.0.1:{}\"", metrics_port_)}};
    for (const auto& [section, keys] : dns_options.settings) {
      for (const auto& [key, value] : keys)
        options.settings[section][key] = value;
    }
    // A client without the PROXY header is closed: the fixture's readiness probe cannot work.
    options.wait_ready = false;
    proxy_ = std::make_unique<PortcullisFixture>(options);
    if (!proxy_->wait_for_event("upstream_reachable", 20s)) {
      throw std::runtime_error("portcullis never reached its upstream\n" + proxy_->diagnostics());
    }
  }

  TestDnsServer& dns() { return dns_; }
  RecordingUpstream& upstream() { return upstream_; }
  PortcullisFixture& proxy() { return *proxy_; }

  SmtpTestClient connect_as(const std::string& client_ip) {
    SmtpTestClient client("127.0.0.1", proxy_->port(), {.timeout = 15s});
    client.send(fmt::format("PROXY TCP4 {} 127.0.0.1 40000 25\r\n", client_ip));
    return client;
  }

  std::vector<JsonValue> records() const {
    std::vector<JsonValue> out;
    if (!fs::exists(rejections_path_)) return out;
    for (const auto& line : split_lines(file_text(rejections_path_))) {
      if (line.empty()) continue;
      std::string error;
      auto value = parse_json(line, &error);
      BOOST_TEST_REQUIRE(value.has_value(), "not JSON: " << line << " (" << error << ")");
      out.push_back(*value);
    }
    return out;
  }
  bool wait_for_records(size_t count) const {
    return wait_until([&] { return records().size() >= count; }, 5s);
  }

  std::string metrics() const {
    SmtpTestClient http("127.0.0.1", metrics_port_, {.timeout = 5s});
    http.send("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    return http.read_until_close(5s);
  }

  // The upstream connection whose message carries `marker`; fails the case when none does.
  RecordedConnection connection_with(const std::string& marker) const {
    RecordedConnection found;
    const bool delivered = upstream_.wait_for(
        [&](const std::vector<RecordedConnection>& connections) {
          for (const auto& connection : connections) {
            for (const auto& message : connection.messages) {
              if (message.acknowledged && contains(message.raw, marker)) {
                found = connection;
                return true;
              }
            }
          }
          return false;
        },
        10s);
    BOOST_TEST_REQUIRE(delivered, "no upstream message with " << marker << "\n"
                                                              << proxy_->diagnostics());
    return found;
  }

 private:
  TestDnsServer dns_;
  RecordingUpstream upstream_;
  TempDir dir_{"portcullis-dns-filters"};
  fs::path policy_path_;
  fs::path rejections_path_;
  uint16_t metrics_port_ = 0;
  std::unique_ptr<PortcullisFixture> proxy_;
};

// The banner, then a whole transaction; returns the final reply (or the first refusal).
SmtpReply transaction(SmtpTestClient& client, const std::string& sender,
                      const std::string& marker) {
  SmtpReply reply = client.read_reply();
  if (reply.code != 220) return reply;
  for (const std::string& command :
       {std::string("EHLO helo.client.test"), "MAIL FROM:<" + sender + ">",
        std::string("RCPT TO:<b@example.test>")}) {
    reply = client.command(command);
    if (reply.code != 250) return reply;
  }
  reply = client.command("DATA");
  if (reply.code != 354) return reply;
  client.send(dot_stuff(make_message(300, "dns filters", marker)) + ".\r\n");
  return client.read_reply();
}

// The same with the message's From field replaced by `from_field` (a whole line, CRLF included).
SmtpReply transaction_from(SmtpTestClient& client, const std::string& sender,
                           const std::string& from_field, const std::string& marker) {
  SmtpReply reply = client.read_reply();
  if (reply.code != 220) return reply;
  for (const std::string& command :
       {std::string("EHLO helo.client.test"), "MAIL FROM:<" + sender + ">",
        std::string("RCPT TO:<b@example.test>")}) {
    reply = client.command(command);
    if (reply.code != 250) return reply;
  }
  reply = client.command("DATA");
  if (reply.code != 354) return reply;
  std::string message = make_message(300, "dmarc", marker);
  const std::string original_from = "From: <sender@example.test>\r\n";
  message.replace(message.find(original_from), original_from.size(), from_field);
  client.send(dot_stuff(message) + ".\r\n");
  return client.read_reply();
}

// The attributes of every XCLIENT command on the connection (xtext left as sent).
std::map<std::string, std::string> xclient_attributes(const RecordedConnection& connection) {
  std::map<std::string, std::string> attributes;
  for (const auto& command : connection.commands) {
    std::istringstream words(command);
    std::string verb;
    words >> verb;
    if (verb != "XCLIENT" && verb != "xclient") continue;
    std::string word;
    while (words >> word) {
      const size_t equals = word.find('=');
      if (equals != std::string::npos) attributes[word.substr(0, equals)] = word.substr(equals + 1);
    }
  }
  return attributes;
}

std::string attribute(const std::map<std::string, std::string>& attributes,
                      const std::string& key) {
  const auto found = attributes.find(key);
  return found == attributes.end() ? "<absent>" : found->second;
}

// The header field `name` of a message (CRLF line ends), unfolded, each run of white space one
// space; "" when absent.
std::string header_field(const std::string& message, const std::string& name) {
  const std::string header = message.substr(0, message.find("\r\n\r\n") + 2);
  const std::string start = name + ":";
  size_t at = 0;
  if (header.compare(0, start.size(), start) == 0) {
    at = 0;
  } else {
    at = header.find("\r\n" + start);
    if (at == std::string::npos) return {};
    at += 2;
  }
  std::string field;
  size_t end = at;
  while (true) {
    const size_t line_end = header.find("\r\n", end);
    for (const char c : header.substr(end, line_end - end)) {
      const bool space = c == ' ' || c == '\t';
      if (!space) {
        field.push_back(c);
      } else if (!field.empty() && field.back() != ' ') {
        field.push_back(' ');
      }
    }
    end = line_end + 2;
    if (end >= header.size() || (header[end] != ' ' && header[end] != '\t')) break;
  }
  return field;
}

std::string field(const JsonValue& record, const std::string& key) {
  const JsonValue* value = record.find(key);
  return value ? value->to_text() : "<missing>";
}

// The value of the sample whose line starts with `prefix` (name and labels); -1 when absent.
double sample(const std::string& metrics, const std::string& prefix) {
  for (const auto& line : split_lines(metrics)) {
    if (line.compare(0, prefix.size(), prefix) == 0 && line.size() > prefix.size() &&
        line[prefix.size()] == ' ') {
      return std::stod(line.substr(prefix.size() + 1));
    }
  }
  return -1;
}

}  // namespace

BOOST_AUTO_TEST_CASE(fcrdns_names_reach_xclient_received_and_authentication_results) {
  DnsProxy env({.chain = "[\"fcrdns\"]"});
  // Confirmed: the PTR name's A record leads back to the client.
  env.dns().add_ptr("10.2.0.192.in-addr.arpa", "mail.client.test");
  env.dns().add_a("mail.client.test", "192.0.2.10");
  // Not confirmed: the PTR name points elsewhere.
  env.dns().add_ptr("11.2.0.192.in-addr.arpa", "liar.client.test");
  env.dns().add_a("liar.client.test", "192.0.2.99");
  // The reverse zone is silent: a temporary failure.
  env.dns().set_behaviour("12.2.0.192.in-addr.arpa", TestDnsServer::Behaviour::withhold);

  struct Case {
    std::string ip, marker, name, reverse_name, received_name, iprev;
  };
  const std::vector<Case> cases = {
      {"192.0.2.10", "FCRDNS-PASS", "mail.client.test", "mail.client.test", "mail.client.test",
       "iprev=pass"},
      {"192.0.2.11", "FCRDNS-FAIL", "[UNAVAILABLE]", "liar.client.test", "unknown", "iprev=fail"},
      {"192.0.2.12", "FCRDNS-TEMP", "[TEMPUNAVAIL]", "[TEMPUNAVAIL]", "unknown", "iprev=temperror"},
  };
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT(c.ip) {
      auto client = env.connect_as(c.ip);
      const SmtpReply final_reply = transaction(client, "a@sender.example", c.marker);
      BOOST_TEST_REQUIRE(final_reply.code == 250, final_reply.describe()
                                                      << "\n"
                                                      << env.proxy().diagnostics());
      client.command("QUIT");

      const RecordedConnection connection = env.connection_with(c.marker);
      const auto attributes = xclient_attributes(connection);
      const std::string commands = fmt::format("{}", fmt::join(connection.commands, " | "));
      BOOST_TEST(attribute(attributes, "ADDR") == c.ip, commands);
      BOOST_TEST(attribute(attributes, "NAME") == c.name, commands);
      BOOST_TEST(attribute(attributes, "REVERSE_NAME") == c.reverse_name, commands);

      const std::string& message = connection.messages.front().raw;
      const std::string received = header_field(message, "Received");
      BOOST_TEST(
          contains(received, fmt::format("from helo.client.test ({} [{}])", c.received_name, c.ip)),
          printable(received));
      const std::string results = header_field(message, "Authentication-Results");
      BOOST_TEST(contains(results, c.iprev), printable(results));
      BOOST_TEST(contains(results, "policy.iprev=" + c.ip), printable(results));
      if (c.iprev == "iprev=pass") {
        BOOST_TEST(contains(results, "mail.client.test"), printable(results));
      }
    }
  }
  // Each reverse name was asked of the test server: the facts came from DNS, not elsewhere.
  BOOST_TEST(env.dns().query_count("10.2.0.192.in-addr.arpa") >= 1u);
  BOOST_TEST(env.dns().query_count("mail.client.test") >= 1u);
  BOOST_TEST(env.dns().query_count("12.2.0.192.in-addr.arpa") >= 1u);
  BOOST_TEST(env.proxy().running(), env.proxy().diagnostics());
}

BOOST_AUTO_TEST_CASE(spf_pass_is_in_authentication_results_and_a_fail_rule_refuses) {
  DnsProxy env({.chain = "[\"spf\"]",
                .policy_text = "[[rule]]\nname = \"SPF hard fail\"\nwhen = \"spf == 'fail'\"\n"
                               "then = \"reject 550 5.7.23 SPF validation failed for "
                               "{spf.domain}\"\n"});
  env.dns().add_txt("spf.client.test", {"v=spf1 ip4:192.0.2.0/24 -all"});

  {
    auto client = env.connect_as("192.0.2.20");
    const SmtpReply final_reply = transaction(client, "a@spf.client.test", "SPF-PASS");
    BOOST_TEST_REQUIRE(final_reply.code == 250, final_reply.describe()
                                                    << "\n"
                                                    << env.proxy().diagnostics());
    client.command("QUIT");
    const RecordedConnection connection = env.connection_with("SPF-PASS");
    const std::string results =
        header_field(connection.messages.front().raw, "Authentication-Results");
    BOOST_TEST(contains(results, "; spf=pass smtp.mailfrom=spf.client.test"), printable(results));
  }
  BOOST_TEST(env.records().empty());

  {
    auto client = env.connect_as("198.51.100.7");
    const SmtpReply refusal = transaction(client, "a@spf.client.test", "SPF-FAIL");
    BOOST_TEST(refusal.code == 550, refusal.describe());
    BOOST_TEST(refusal.enhanced() == "5.7.23", refusal.describe());
    BOOST_TEST(contains(refusal.raw, "SPF validation failed for spf.client.test"),
               refusal.describe());
    client.command("QUIT");
  }
  BOOST_TEST_REQUIRE(env.wait_for_records(1));
  const auto records = env.records();
  BOOST_TEST_REQUIRE(records.size() == 1u);
  BOOST_TEST(field(records[0], "client_ip") == "198.51.100.7");
  BOOST_TEST(field(records[0], "rule") == "SPF hard fail");
  BOOST_TEST(field(records[0], "action") == "reject");
  const std::string evidence = field(records[0], "evidence");
  BOOST_TEST(contains(evidence, "\"spf\":\"fail\""), evidence);
  BOOST_TEST(contains(evidence, "\"spf.domain\":\"spf.client.test\""), evidence);
  BOOST_TEST(env.upstream().total_acknowledged() == 1u);
}

BOOST_AUTO_TEST_CASE(dmarc_aligned_passes_a_spoofed_reject_domain_is_refused) {
  DnsProxy env({.chain = "[\"spf\", \"dmarc\"]",
                .policy_text = "[[rule]]\nname = \"DMARC reject\"\n"
                               "when = \"dmarc == 'fail' and dmarc.policy == 'reject'\"\n"
                               "then = \"reject 550 5.7.1 DMARC policy of {dmarc.domain}\"\n"});
  env.dns().add_txt("spf.client.test", {"v=spf1 ip4:192.0.2.0/24 -all"});
  env.dns().add_txt("_dmarc.spf.client.test", {"v=DMARC1; p=reject"});
  env.dns().add_txt("_dmarc.bank.test", {"v=DMARC1; p=reject; sp=quarantine"});

  {  // SPF passed for the From domain: aligned
    auto client = env.connect_as("192.0.2.20");
    const SmtpReply reply = transaction_from(client, "a@spf.client.test",
                                             "From: A <a@spf.client.test>\r\n", "DMARC-PASS");
    BOOST_TEST_REQUIRE(reply.code == 250, reply.describe() << "\n" << env.proxy().diagnostics());
    client.command("QUIT");
    const std::string results = header_field(env.connection_with("DMARC-PASS").messages.front().raw,
                                             "Authentication-Results");
    BOOST_TEST(contains(results, "spf=pass smtp.mailfrom=spf.client.test"), printable(results));
    BOOST_TEST(contains(results, "dmarc=pass header.from=spf.client.test"), printable(results));
  }
  {  // Several From addresses: permerror, relayed (the policy refuses only p=reject failures)
    auto client = env.connect_as("192.0.2.20");
    const SmtpReply reply =
        transaction_from(client, "a@spf.client.test", "From: a@spf.client.test, ceo@bank.test\r\n",
                         "DMARC-PERMERROR");
    BOOST_TEST_REQUIRE(reply.code == 250, reply.describe() << "\n" << env.proxy().diagnostics());
    client.command("QUIT");
    const std::string results = header_field(
        env.connection_with("DMARC-PERMERROR").messages.front().raw, "Authentication-Results");
    BOOST_TEST(contains(results, "dmarc=permerror"), printable(results));
  }
  BOOST_TEST(env.records().empty());
  {  // SPF passed, but for another domain than the From of a p=reject domain: refused
    auto client = env.connect_as("192.0.2.20");
    const SmtpReply refusal = transaction_from(client, "a@spf.client.test",
                                               "From: CEO <ceo@bank.test>\r\n", "DMARC-FAIL");
    BOOST_TEST(refusal.code == 550, refusal.describe());
    BOOST_TEST(contains(refusal.raw, "DMARC policy of bank.test"), refusal.describe());
    client.command("QUIT");
  }
  BOOST_TEST_REQUIRE(env.wait_for_records(1));
  const auto records = env.records();
  BOOST_TEST_REQUIRE(records.size() == 1u);
  BOOST_TEST(field(records[0], "rule") == "DMARC reject");
  const std::string evidence = field(records[0], "evidence");
  BOOST_TEST(contains(evidence, "\"dmarc\":\"fail\""), evidence);
  BOOST_TEST(contains(evidence, "\"dmarc.policy\":\"reject\""), evidence);
  BOOST_TEST(contains(evidence, "\"dmarc.domain\":\"bank.test\""), evidence);
  BOOST_TEST(env.upstream().total_acknowledged() == 2u);
}

BOOST_AUTO_TEST_CASE(dnsbl_listing_refuses_and_an_error_code_is_a_counted_warning) {
  DnsProxyOptions options{
      .chain = "[\"dnsbl\"]",
      .policy_text =
          "[[rule]]\nname = \"dnsbl\"\nwhen = \"dnsbl.score >= 3\"\n"
          "then = \"reject 554 5.7.1 Service unavailable; client [{client.ip}] listed "
          "by {dnsbl.lists}\"\n",
      .settings = {{"filter.dnsbl", {{"list", "[{zone = \"bl.test\", weight = 3}]"}}}}};
  DnsProxy env(options);
  env.dns().add_a("30.2.0.192.bl.test", "127.0.0.2");
  env.dns().add_a("31.2.0.192.bl.test", "127.255.255.254");

  {
    auto client = env.connect_as("192.0.2.30");
    const SmtpReply refusal = transaction(client, "a@sender.example", "DNSBL-LISTED");
    BOOST_TEST(refusal.code == 554, refusal.describe());
    BOOST_TEST(contains(refusal.raw, "client [192.0.2.30] listed by"), refusal.describe());
    BOOST_TEST(contains(refusal.raw, "bl.test"), refusal.describe());
    client.command("QUIT");
  }
  BOOST_TEST_REQUIRE(env.wait_for_records(1));
  BOOST_TEST(field(env.records()[0], "rule") == "dnsbl");
  BOOST_TEST(contains(field(env.records()[0], "evidence"), "\"dnsbl.score\":3"),
             field(env.records()[0], "evidence"));

  {
    auto client = env.connect_as("192.0.2.31");
    const SmtpReply final_reply = transaction(client, "a@sender.example", "DNSBL-ERROR");
    BOOST_TEST(final_reply.code == 250, final_reply.describe());
    client.command("QUIT");
  }
  env.connection_with("DNSBL-ERROR");
  BOOST_TEST(env.records().size() == 1u);
  BOOST_TEST(env.proxy().wait_for_event("filter_problem", 5s,
                                        [](const LogEvent& event) {
                                          return event.field("filter") == "dnsbl" &&
                                                 event.field("what") == "warning" &&
                                                 contains(event.raw, "127.255.255.254");
                                        }),
             env.proxy().diagnostics());
  const std::string metrics = env.metrics();
  BOOST_TEST(sample(metrics, "portcullis_filter_warnings_total{filter=\"dnsbl\"}") == 1, metrics);
}

BOOST_AUTO_TEST_CASE(a_silent_dnsbl_answer_holds_only_its_own_session_on_a_single_worker) {
  // One worker: both sessions share one event loop and one resolver context, so a loop that
  // waited for DNS would hold B too. The DNS timeout is long enough that A is still waiting
  // when B is done, whatever the machine's speed; no case depends on it being short.
  DnsProxy env({.chain = "[\"dnsbl\"]",
                .dns_timeout = 5,
                .filter_timeout = 10,
                // [timeouts] command counts from the client's last read, not from the banner:
                // above the DNS timeout, so A's wait ends by DNS, not by the fixture's 5 s.
                .settings = {{"server", {{"workers", "1"}}},
                             {"timeouts", {{"command", "30"}}},
                             {"filter.dnsbl", {{"list", "[{zone = \"bl.test\", weight = 3}]"}}}}});
  const std::string slow_query = "40.2.0.192.bl.test";
  env.dns().add_a(slow_query, "127.0.0.2");
  env.dns().set_behaviour(slow_query, TestDnsServer::Behaviour::withhold);

  auto slow = env.connect_as("192.0.2.40");
  BOOST_TEST_REQUIRE(wait_until([&] { return env.dns().query_count(slow_query) >= 1; }, 5s),
                     env.proxy().diagnostics());

  auto quick = env.connect_as("192.0.2.41");
  const SmtpReply quick_reply = transaction(quick, "a@sender.example", "DNSBL-QUICK");
  BOOST_TEST(quick_reply.code == 250, quick_reply.describe());
  BOOST_TEST(quick.command("QUIT").code == 221);
  env.connection_with("DNSBL-QUICK");
  BOOST_TEST(env.dns().query_count("41.2.0.192.bl.test") >= 1u);

  // A is still at its connect phase: no banner yet, and its answer never went out.
  BOOST_TEST(slow.silent_for(100ms), "A got a reply while its DNS query was unanswered");
  BOOST_TEST(env.dns().late_answers_sent() == 0u);

  // Then its query times out: a warning, not a listing, and A's session goes on.
  const SmtpReply slow_reply = transaction(slow, "a@sender.example", "DNSBL-SLOW");
  BOOST_TEST(slow_reply.code == 250, slow_reply.describe() << "\n" << env.proxy().diagnostics());
  env.connection_with("DNSBL-SLOW");
  BOOST_TEST(env.proxy().wait_for_event("filter_problem", 5s,
                                        [](const LogEvent& event) {
                                          return event.field("filter") == "dnsbl" &&
                                                 event.field("what") == "warning" &&
                                                 contains(event.raw, "bl.test");
                                        }),
             env.proxy().diagnostics());
  BOOST_TEST(env.records().empty());
}

BOOST_AUTO_TEST_CASE(check_refuses_a_dns_filter_timeout_not_above_the_dns_timeout) {
  TempDir dir("portcullis-dns-check");
  dir.chmod(0755);
  const fs::path state_dir = dir.make_subdir("state", 0755, "nobody");
  const fs::path log_dir = dir.make_subdir("log", 0777);
  const auto config_with_spf_timeout = [&](int spf_timeout) {
    PortcullisOptions options;
    options.upstream_port = free_loopback_port();
    options.settings["dns"] = {{"resolvers", "[\"127.0.0.1:53\"]"}, {"timeout", "2"}};
    options.settings["filters"] = {{"chain", "[\"spf\"]"}};
    options.settings["filter.spf"] = {{"timeout", std::to_string(spf_timeout)}};
    const fs::path path = dir / fmt::format("spf-timeout-{}.toml", spf_timeout);
    write_file(path, render_portcullis_config(options, free_loopback_port(), state_dir,
                                              log_dir / "portcullis.log"));
    return path;
  };
  const auto check = [](const fs::path& path) {
    return run_command({portcullis_binary(), "check", "--config", path.string()}, 60s);
  };

  const CommandResult above = check(config_with_spf_timeout(3));
  BOOST_TEST(above.status.success(), above.out << above.err);
  BOOST_TEST(!contains(above.err, "filter.spf.timeout"), above.err);

  for (const int timeout : {2, 1}) {
    BOOST_TEST_CONTEXT("filter.spf.timeout = " << timeout) {
      const CommandResult refused = check(config_with_spf_timeout(timeout));
      BOOST_TEST((refused.status.exited && refused.status.code == 1), refused.out << refused.err);
      BOOST_TEST(contains(refused.err,
                          fmt::format("filter.spf.timeout: must be above [dns] timeout (2 s), "
                                      "got {} s",
                                      timeout)),
                 refused.out << refused.err);
      BOOST_TEST(contains(refused.err, "1 error(s)"), refused.out << refused.err);
    }
  }
}
