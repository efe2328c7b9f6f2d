// Policies end to end with the real binary: policies/default.toml with its chain (pregreet,
// helo, and the DNS filters against a test DNS server) in front of smtp-sink. Its greylist rule
// is taken out (and greylist left out of the chain), so that a client's first message is
// delivered; greylisting end to end is test_greylist_postfix.cc. Clients reach the
// proxy on loopback with a PROXY v1 header naming a documentation address (192.0.2.0/24), so they
// are not in default.toml's trusted loopback networks. Checks: the refusals and their replies,
// observe mode, tags, delayed rejection on and off, SIGHUP (a session keeps the policy it started
// with; a broken file keeps the old policy), the rejection log's records, /metrics, `portcullis
// report` and `portcullis explain` against what the live session did.
#define BOOST_TEST_MODULE integration_policy
#include <fmt/core.h>
#include <signal.h>
#include <sys/stat.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>

#include "fixtures.h"
#include "test_dns_server.h"
#include "test_support.h"

using namespace portcullis::test;
namespace fs = std::filesystem;

namespace {

std::string source_root() {
  const char* root = std::getenv("PORTCULLIS_SOURCE_ROOT");
  if (!root) throw std::runtime_error("PORTCULLIS_SOURCE_ROOT is not set");
  return root;
}

std::string file_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_file(const fs::path& path, const std::string& text) {
  // Written beside, then renamed: the proxy never reads half a file.
  const fs::path temporary = path.string() + ".new";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << text;
  }
  fs::permissions(temporary, fs::perms::owner_read | fs::perms::owner_write |
                                 fs::perms::group_read | fs::perms::others_read);
  fs::rename(temporary, path);
}

struct PolicyProxyOptions {
  std::string policy_text;  // "" = policies/default.toml without its greylist rule
  bool delay_reject = true;
  int pregreet_wait_ms = 300;
  uint16_t upstream_port = 0;  // 0 = our own smtp-sink (no XCLIENT)
  bool all_transactions = false;
};

// smtp-sink, a policy file and the proxy, with a rejection log and a metrics listener.
class PolicyProxy {
 public:
  explicit PolicyProxy(const PolicyProxyOptions& policy_options = {}) {
    dir_.chmod(0755);
    policy_path_ = dir_ / "policy.toml";
    write_file(policy_path_, policy_options.policy_text.empty()
                                 ? without_policy_rule(file_text(fs::path(source_root()) /
                                                                 "policies" / "default.toml"),
                                                       "greylist unknown triplets")
                                 : policy_options.policy_text);
    const fs::path log_dir = dir_.make_subdir("log", 0777);
    rejections_path_ = log_dir / "rejections.jsonl";
    metrics_port_ = free_loopback_port();

    PortcullisOptions options;
    options.upstream_port =
        policy_options.upstream_port ? policy_options.upstream_port : sink_.port();
    options.pass_client = policy_options.upstream_port ? "xclient" : "none";
    if (policy_options.all_transactions) options.settings["log"]["all_transactions"] = "true";
    options.listen_settings = {{"proxy_protocol", "true"}};
    options.settings["trust"] = {{"proxy_peers", "[\"127.0.0.1/32\"]"}};
    // The chain policies/default.toml is written for, without greylist. The DNS filters ask dns_,
    // which knows no name unless a test adds it (NXDOMAIN: fcrdns none, not listed, spf none).
    options.settings["filters"] = {
        {"chain", "[\"pregreet\", \"helo\", \"fcrdns\", \"dnsbl\", \"spf\", \"dkim\", \"dmarc\"]"}};
    options.settings["filter.dnsbl"] = {
        {"list", "[{ zone = \"dnsbl.example.test\", weight = 3 }]"}};
    options.settings["dns"] = {{"resolvers", fmt::format("[\"{}\"]", dns_.address())},
                               {"timeout", "2"}};
    options.settings["filter.pregreet"] = {
        {"wait_ms", std::to_string(policy_options.pregreet_wait_ms)}, {"teaser", "true"}};
    options.settings["policy"] = {{"files", fmt::format("[\"{}\"]", policy_path_.string())},
                                  {"delay_reject", policy_options.delay_reject ? "true" : "false"}};
    options.settings["log"]["rejections"] = fmt::format("\"{}\"", rejections_path_.string());
    options.settings["metrics"] = {{"address", fmt::format("\"127.0.0.1:{}\"", metrics_port_)}};
    // A client without the PROXY header is closed: the fixture's readiness probe cannot work.
    options.wait_ready = false;
    proxy_ = std::make_unique<PortcullisFixture>(options);
    if (!proxy_->wait_for_event("upstream_reachable", 20s)) {
      throw std::runtime_error("portcullis never reached its upstream\n" + proxy_->diagnostics());
    }
    config_path_ = dir_ / "portcullis.toml";
    write_file(config_path_, proxy_->config_text());
  }

  PortcullisFixture& proxy() { return *proxy_; }
  SmtpSinkFixture& sink() { return sink_; }
  const fs::path& policy_path() const { return policy_path_; }
  const fs::path& rejections_path() const { return rejections_path_; }
  const fs::path& config_path() const { return config_path_; }
  uint16_t metrics_port() const { return metrics_port_; }
  TestDnsServer& dns() { return dns_; }

  // Connects as `client_ip` (PROXY v1 header); with `pregreet`, sends EHLO before the banner.
  SmtpTestClient connect_as(const std::string& client_ip, const std::string& pregreet_helo = "") {
    SmtpTestClient client("127.0.0.1", proxy_->port(), {.timeout = 10s});
    std::string header = fmt::format("PROXY TCP4 {} 127.0.0.1 40000 25\r\n", client_ip);
    if (!pregreet_helo.empty()) header += "EHLO " + pregreet_helo + "\r\n";
    client.send(header);
    return client;
  }

  // Every record of the rejection log (each line must be one JSON object).
  std::vector<JsonValue> records() const {
    std::vector<JsonValue> out;
    if (!fs::exists(rejections_path_)) return out;
    for (const auto& line : split_lines(file_text(rejections_path_))) {
      if (line.empty()) continue;
      std::string error;
      auto value = parse_json(line, &error);
      BOOST_TEST_REQUIRE(value.has_value(), "not JSON: " << line << " (" << error << ")");
      BOOST_TEST_REQUIRE(value->is_object(), "not an object: " << line);
      out.push_back(*value);
    }
    return out;
  }
  bool wait_for_records(size_t count) const {
    return wait_until([&] { return records().size() >= count; }, 5s);
  }

  std::string http_get(const std::string& path) const {
    SmtpTestClient http("127.0.0.1", metrics_port_, {.timeout = 5s});
    http.send(fmt::format("GET {} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path));
    return http.read_until_close(5s);
  }

 private:
  TempDir dir_{"portcullis-policy"};
  TestDnsServer dns_;
  SmtpSinkFixture sink_;
  fs::path policy_path_;
  fs::path rejections_path_;
  fs::path config_path_;
  uint16_t metrics_port_ = 0;
  std::unique_ptr<PortcullisFixture> proxy_;
};

// A whole transaction after the banner; returns the final reply's code (or the first refusal's).
int transaction(SmtpTestClient& client, const std::string& helo, const std::string& rcpt,
                const std::string& marker, SmtpReply* refusal = nullptr) {
  SmtpReply reply = client.command("EHLO " + helo);
  if (reply.code != 250) {
    if (refusal) *refusal = reply;
    return reply.code;
  }
  reply = client.command("MAIL FROM:<a@sender.example>");
  if (reply.code != 250) {
    if (refusal) *refusal = reply;
    return reply.code;
  }
  reply = client.command("RCPT TO:<" + rcpt + ">");
  if (reply.code != 250) {
    if (refusal) *refusal = reply;
    return reply.code;
  }
  BOOST_TEST(client.command("DATA").code == 354);
  client.send(dot_stuff(make_message(400, "policy", marker)) + ".\r\n");
  reply = client.read_reply();
  if (refusal) *refusal = reply;
  return reply.code;
}

std::string field(const JsonValue& record, const std::string& key) {
  const JsonValue* value = record.find(key);
  return value ? value->to_text() : "<missing>";
}

const std::vector<std::string> kFixedFields = {
    "ts",     "session", "client_ip", "client_port", "client_name", "helo",
    "tls",    "sender",  "rcpts",     "phase",       "rule",        "mode",
    "action", "reply",   "source",    "queue_id",    "evidence"};

void check_record_shape(const JsonValue& record) {
  for (const auto& key : kFixedFields) {
    BOOST_TEST(record.find(key) != nullptr, "record lacks " << key);
  }
  static const std::regex rfc3339(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  BOOST_TEST(std::regex_match(field(record, "ts"), rfc3339), field(record, "ts"));
  BOOST_TEST(record.find("session")->is_number());
  BOOST_TEST(record.find("client_port")->is_number());
  BOOST_TEST(record.find("tls")->is_bool());
  BOOST_TEST(record.find("rcpts")->is_array());
  BOOST_TEST(record.find("evidence")->is_object());
}

// Prometheus text format 0.0.4: every sample line is `name{labels} value`, its metric family
// declared by a TYPE line first. Returns sample → value.
std::map<std::string, double> parse_prometheus(const std::string& body) {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  static const std::regex type_line(
      R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped))");
  static const std::regex help_line(R"(# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*)");
  static const std::regex sample_line(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*)?\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf))");
  for (const auto& line : split_lines(body)) {
    if (line.empty()) continue;
    std::smatch match;
    if (std::regex_match(line, match, type_line)) {
      types[match[1]] = match[2];
      continue;
    }
    if (std::regex_match(line, help_line)) continue;
    BOOST_TEST_REQUIRE(std::regex_match(line, match, sample_line), "bad line: " << line);
    std::string family = match[1];
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s(suffix);
      if (!types.count(family) && family.size() > s.size() &&
          family.compare(family.size() - s.size(), s.size(), s) == 0) {
        family = family.substr(0, family.size() - s.size());
      }
    }
    BOOST_TEST(types.count(family) == 1, "no TYPE before " << line);
    samples[line.substr(0, line.rfind(' '))] = std::stod(match[7]);
  }
  return samples;
}

// Sum of the samples of `name` whose label text contains every one of `labels`.
double sample_sum(const std::map<std::string, double>& samples, const std::string& name,
                  const std::vector<std::string>& labels = {}) {
  double sum = 0;
  for (const auto& [key, value] : samples) {
    const std::string metric = key.substr(0, key.find('{'));
    if (metric != name) continue;
    bool all = true;
    for (const auto& label : labels)
      all = all && contains(key, label);
    if (all) sum += value;
  }
  return sum;
}

std::string http_body(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

}  // namespace

BOOST_AUTO_TEST_CASE(pregreeting_client_is_refused_with_the_default_policy) {
  PolicyProxy env;
  auto client = env.connect_as("192.0.2.55", "bot.example.net");
  SmtpReply banner = client.read_reply();
  BOOST_TEST(banner.code == 220);
  // postscreen's teaser: "220-" first, the real banner after the wait.
  BOOST_TEST(banner.lines.size() == 2u, printable(banner.raw));
  // The early EHLO is answered (delay_reject: refused at RCPT, so the log shows who and whom).
  BOOST_TEST(client.read_reply().code == 250);
  BOOST_TEST(client.command("MAIL FROM:<a@sender.example>").code == 250);
  SmtpReply refused = client.command("RCPT TO:<b@example.test>");
  BOOST_TEST(refused.code == 554);
  BOOST_TEST(contains(refused.raw, "5.5.1 Protocol error: you spoke before my greeting"),
             printable(refused.raw));
  // Every later RCPT gets it too.
  BOOST_TEST(client.command("RCPT TO:<c@example.test>").code == 554);
  BOOST_TEST(client.command("QUIT").code == 221);
  BOOST_TEST(env.sink().message_count() == 0u);

  BOOST_TEST_REQUIRE(env.wait_for_records(2));
  const auto records = env.records();
  BOOST_TEST(records.size() == 2u);
  const JsonValue& record = records.front();
  check_record_shape(record);
  BOOST_TEST(field(record, "client_ip") == "192.0.2.55");
  BOOST_TEST(field(record, "client_port") == "40000");
  BOOST_TEST(field(record, "helo") == "bot.example.net");
  BOOST_TEST(field(record, "sender") == "a@sender.example");
  BOOST_TEST(field(record, "rcpts") == "[\"b@example.test\"]");
  BOOST_TEST(field(record, "phase") == "rcpt");
  BOOST_TEST(field(record, "decided_at") == "helo");
  BOOST_TEST(field(record, "rule") == "pregreeting client");
  BOOST_TEST(field(record, "mode") == "enforce");
  BOOST_TEST(field(record, "action") == "reject");
  BOOST_TEST(field(record, "source") == "policy");
  BOOST_TEST(field(record, "reply") == "554 5.5.1 Protocol error: you spoke before my greeting");
  BOOST_TEST(field(record, "evidence") == "{\"pregreet\":true}");
  BOOST_TEST(field(record, "tls") == "false");
  BOOST_TEST(record.find("queue_id")->is_null());
}

BOOST_AUTO_TEST_CASE(well_behaved_client_delivers_and_nothing_is_logged) {
  PolicyProxy env;
  auto client = env.connect_as("192.0.2.56");
  SmtpReply banner = client.read_reply();
  BOOST_TEST(banner.code == 220);
  BOOST_TEST(transaction(client, "mail.example.org", "b@example.test", "WELLBEHAVED") == 250);
  BOOST_TEST(client.command("QUIT").code == 221);
  BOOST_TEST(env.sink().wait_for_messages(1, 5s));
  const std::string message = env.sink().message_with("WELLBEHAVED");
  BOOST_TEST(!message.empty());
  BOOST_TEST(!contains(message, "X-Portcullis"));
  BOOST_TEST(env.records().empty());
}

BOOST_AUTO_TEST_CASE(observe_rule_logs_but_lets_mail_through) {
  PolicyProxy env;
  auto client = env.connect_as("192.0.2.57");
  BOOST_TEST(client.read_reply().code == 220);
  // "helo syntax" is an observe rule in default.toml: a single label is not a host name.
  BOOST_TEST(transaction(client, "localhost", "b@example.test", "OBSERVED") == 250);
  BOOST_TEST(env.sink().wait_for_messages(1, 5s));
  BOOST_TEST_REQUIRE(env.wait_for_records(1));
  const auto records = env.records();
  BOOST_TEST_REQUIRE(records.size() == 1u);
  check_record_shape(records[0]);
  BOOST_TEST(field(records[0], "rule") == "helo syntax");
  BOOST_TEST(field(records[0], "mode") == "observe");
  BOOST_TEST(field(records[0], "action") == "reject");
  BOOST_TEST(field(records[0], "phase") == "helo");
  BOOST_TEST(field(records[0], "reply") == "554 5.5.2 HELO/EHLO argument is not a valid host name");
}

BOOST_AUTO_TEST_CASE(tag_rule_adds_its_header_to_the_message) {
  PolicyProxy env;
  auto client = env.connect_as("192.0.2.58");
  BOOST_TEST(client.read_reply().code == 220);
  BOOST_TEST(transaction(client, "[192.0.2.99]", "b@example.test", "TAGGED") == 250);
  BOOST_TEST(env.sink().wait_for_messages(1, 5s));
  const std::string message = env.sink().message_with("TAGGED");
  BOOST_TEST(contains(message,
                      "X-Portcullis-Helo: literal [192.0.2.99] is not the client address "
                      "192.0.2.58"),
             message.substr(0, 800));
  BOOST_TEST_REQUIRE(env.wait_for_records(1));
  BOOST_TEST(field(env.records()[0], "action") == "tag");
  BOOST_TEST(field(env.records()[0], "rule") == "helo literal mismatch");
}

BOOST_AUTO_TEST_CASE(bare_ip_helo_is_refused_at_rcpt_and_trusted_clients_skip_checks) {
  PolicyProxy env;
  {
    auto client = env.connect_as("192.0.2.59");
    BOOST_TEST(client.read_reply().code == 220);
    SmtpReply refusal;
    BOOST_TEST(transaction(client, "192.0.2.59", "b@example.test", "BAREIP", &refusal) == 554);
    BOOST_TEST(contains(refusal.raw, "5.5.2 HELO/EHLO: write an address as a literal"));
  }
  {
    // 127.0.0.1 is in trusted_networks: accepted at connect, even though it pregreets and
    // greets with a bare address.
    auto client = env.connect_as("127.0.0.1", "127.0.0.1");
    BOOST_TEST(client.read_reply().code == 220);
    BOOST_TEST(client.read_reply().code == 250);
    BOOST_TEST(client.command("MAIL FROM:<a@sender.example>").code == 250);
    BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
    BOOST_TEST(client.command("DATA").code == 354);
    client.send(dot_stuff(make_message(300, "trusted", "TRUSTED")) + ".\r\n");
    BOOST_TEST(client.read_reply().code == 250);
  }
  BOOST_TEST(env.sink().wait_for_messages(1, 5s));
  BOOST_TEST(!env.sink().message_with("TRUSTED").empty());
}

BOOST_AUTO_TEST_CASE(without_delay_reject_the_helo_is_refused_at_once) {
  PolicyProxyOptions options;
  options.delay_reject = false;
  PolicyProxy env(options);
  auto client = env.connect_as("192.0.2.60", "bot.example.net");
  BOOST_TEST(client.read_reply().code == 220);
  SmtpReply refused = client.read_reply();
  BOOST_TEST(refused.code == 554);
  BOOST_TEST(contains(refused.raw, "Protocol error"));
  // The HELO was refused: no transaction without one.
  BOOST_TEST(client.command("MAIL FROM:<a@sender.example>").code == 503);
  BOOST_TEST_REQUIRE(env.wait_for_records(1));
  BOOST_TEST(field(env.records()[0], "phase") == "helo");
  BOOST_TEST(env.records()[0].find("decided_at") == nullptr);
}

BOOST_AUTO_TEST_CASE(sighup_applies_to_new_sessions_only_and_a_broken_file_keeps_the_old_one) {
  const std::string version1 =
      "[[rule]]\nname = \"v1 nothing\"\nwhen = \"rcpt == 'never@example.test'\"\n"
      "then = \"reject\"\n";
  const std::string version2 =
      "[[rule]]\nname = \"v2 blocks late\"\nwhen = \"rcpt == 'late@example.test'\"\n"
      "then = \"reject 550 5.7.1 late is blocked\"\n";
  PolicyProxyOptions options;
  options.policy_text = version1;
  PolicyProxy env(options);

  auto before = env.connect_as("192.0.2.61");
  BOOST_TEST(before.read_reply().code == 220);
  BOOST_TEST(before.command("EHLO mail.example.org").code == 250);
  BOOST_TEST(before.command("MAIL FROM:<a@sender.example>").code == 250);

  write_file(env.policy_path(), version2);
  const size_t reloads = env.proxy().events_named("reloaded").size();
  kill(env.proxy().pid(), SIGHUP);
  BOOST_TEST_REQUIRE(env.proxy().wait_for_event("reloaded", 10s, [&](const LogEvent&) {
    return env.proxy().events_named("reloaded").size() > reloads;
  }));

  // The session in progress keeps the policy it started with.
  BOOST_TEST(before.command("RCPT TO:<late@example.test>").code == 250);
  BOOST_TEST(before.command("DATA").code == 354);
  before.send(dot_stuff(make_message(300, "old policy", "OLDPOLICY")) + ".\r\n");
  BOOST_TEST(before.read_reply().code == 250);
  BOOST_TEST(env.sink().wait_for_messages(1, 5s));

  // The next one sees the new policy.
  auto after = env.connect_as("192.0.2.62");
  BOOST_TEST(after.read_reply().code == 220);
  SmtpReply refusal;
  BOOST_TEST(transaction(after, "mail.example.org", "late@example.test", "NEWPOLICY", &refusal) ==
             550);
  BOOST_TEST(contains(refusal.raw, "5.7.1 late is blocked"));

  // A broken file: logged with file:line, the policy in force stays.
  write_file(env.policy_path(), version2 +
                                    "[[rule]]\nname = \"broken\"\nwhen = \"rcpt ==\"\n"
                                    "then = \"reject\"\n");
  kill(env.proxy().pid(), SIGHUP);
  BOOST_TEST_REQUIRE(
      env.proxy().wait_for_event(
          "reload_failed", 10s,
          [&](const LogEvent& e) { return contains(e.raw, env.policy_path().string() + ":7"); }),
      env.proxy().diagnostics());
  auto third = env.connect_as("192.0.2.63");
  BOOST_TEST(third.read_reply().code == 220);
  BOOST_TEST(transaction(third, "mail.example.org", "late@example.test", "THIRD") == 550);
  BOOST_TEST(env.proxy().running());
}

BOOST_AUTO_TEST_CASE(metrics_report_and_explain_agree_with_the_live_sessions) {
  PolicyProxy env;
  // Two pregreeting clients (refused at RCPT), one bare-IP HELO, one delivered message.
  for (const char* ip : {"192.0.2.70", "192.0.2.71"}) {
    auto client = env.connect_as(ip, "bot.example.net");
    BOOST_TEST(client.read_reply().code == 220);
    BOOST_TEST(client.read_reply().code == 250);
    BOOST_TEST(client.command("MAIL FROM:<spam@spammer.example>").code == 250);
    BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 554);
    BOOST_TEST(client.command("QUIT").code == 221);
  }
  SmtpReply bare_refusal;
  {
    auto client = env.connect_as("192.0.2.72");
    BOOST_TEST(client.read_reply().code == 220);
    BOOST_TEST(transaction(client, "192.0.2.72", "b@example.test", "X", &bare_refusal) == 554);
    client.command("QUIT");
  }
  {
    auto client = env.connect_as("192.0.2.73");
    BOOST_TEST(client.read_reply().code == 220);
    BOOST_TEST(transaction(client, "mail.example.org", "b@example.test", "DELIVERED") == 250);
    client.command("QUIT");
  }
  BOOST_TEST_REQUIRE(env.wait_for_records(3));

  // /metrics: Prometheus text that counts what happened.
  const std::string response = env.http_get("/metrics");
  BOOST_TEST(contains(response, "200 OK"), printable(response));
  const auto samples = parse_prometheus(http_body(response));
  BOOST_TEST(sample_sum(samples, "portcullis_sessions_total") >= 4);
  BOOST_TEST(sample_sum(samples, "portcullis_decisions_total",
                        {"rule=\"pregreeting client\"", "action=\"reject\"", "mode=\"enforce\""}) ==
             2);
  BOOST_TEST(
      sample_sum(samples, "portcullis_decisions_total", {"rule=\"helo is a bare address\""}) == 1);
  BOOST_TEST(sample_sum(samples, "portcullis_filter_results_total",
                        {"filter=\"pregreet\"", "result=\"ok\""}) >= 8);
  BOOST_TEST(sample_sum(samples, "portcullis_filter_duration_seconds_count", {"filter=\"helo\""}) >=
             4);
  BOOST_TEST(sample_sum(samples, "portcullis_messages_total", {"result=\"delivered\""}) == 1);
  BOOST_TEST(sample_sum(samples, "portcullis_upstream_replies_total", {"class=\"2xx\""}) >= 3);
  BOOST_TEST(contains(env.http_get("/healthz"), "200 OK"));
  BOOST_TEST(contains(env.http_get("/readyz"), "200 OK"));

  // report: the counts of the log this test made.
  CommandResult report =
      run_command({portcullis_binary(), "report", "--json", env.rejections_path().string()}, 20s);
  BOOST_TEST_REQUIRE(report.status.success(), report.err);
  auto summary = parse_json(report.out);
  BOOST_TEST_REQUIRE(summary.has_value(), report.out);
  BOOST_TEST(contains(report.out, "pregreeting client"));
  CommandResult text_report =
      run_command({portcullis_binary(), "report", env.rejections_path().string()}, 20s);
  BOOST_TEST(text_report.status.success());
  // The text report lists each count before its name: two pregreeters, one bare-IP HELO, the
  // three refusals from 192.0.2.0/24.
  static const std::regex pregreet_row(R"(\n +2  pregreeting client\n)");
  BOOST_TEST(std::regex_search(text_report.out, pregreet_row), text_report.out);
  static const std::regex bare_row(R"(\n +1  helo is a bare address\n)");
  BOOST_TEST(std::regex_search(text_report.out, bare_row), text_report.out);
  static const std::regex net_row(R"(\n +3  192\.0\.2\.0/24\n)");
  BOOST_TEST(std::regex_search(text_report.out, net_row), text_report.out);
  static const std::regex refusals_row(R"(\n  refusals +3\n)");
  BOOST_TEST(std::regex_search(text_report.out, refusals_row), text_report.out);

  // explain: the same input gives the same verdict and reply as the live session.
  CommandResult explain =
      run_command({portcullis_binary(), "explain", "--config", env.config_path().string(),
                   "--client", "192.0.2.72", "--helo", "192.0.2.72", "--from", "a@sender.example",
                   "--rcpt", "b@example.test"},
                  20s);
  BOOST_TEST_REQUIRE(explain.status.success(), explain.err);
  BOOST_TEST(contains(explain.out, "rule \"helo is a bare address\""), explain.out);
  const std::string live_reply =
      bare_refusal.lines.empty() ? std::string()
                                 : fmt::format("{} {}", bare_refusal.code, bare_refusal.lines[0]);
  BOOST_TEST(contains(explain.out, live_reply), explain.out << "\nlive: " << live_reply);
  BOOST_TEST(contains(explain.out, "pregreet = false"), explain.out);
  BOOST_TEST(contains(explain.out, "outcome: every recipient refused: " + live_reply), explain.out);

  // A pregreeting client, told as evidence, gets the live refusal too.
  CommandResult explain_pregreet = run_command(
      {portcullis_binary(), "explain", "--config", env.config_path().string(), "--client",
       "192.0.2.70", "--helo", "bot.example.net", "--from", "spam@spammer.example", "--rcpt",
       "b@example.test", "--evidence", "pregreet=true", "--json"},
      20s);
  BOOST_TEST_REQUIRE(explain_pregreet.status.success(), explain_pregreet.err);
  auto explained = parse_json(explain_pregreet.out);
  BOOST_TEST_REQUIRE(explained.has_value(), explain_pregreet.out);
  BOOST_TEST(
      contains(explain_pregreet.out, "554 5.5.1 Protocol error: you spoke before my greeting"),
      explain_pregreet.out);
  const auto records = env.records();
  BOOST_TEST(std::count_if(records.begin(), records.end(), [](const JsonValue& r) {
               return field(r, "rule") == "pregreeting client" &&
                      field(r, "reply") == "554 5.5.1 Protocol error: you spoke before my greeting";
             }) == 2);
}

BOOST_AUTO_TEST_CASE(postfix_refusals_are_logged_and_sigusr1_reopens_the_log) {
  BOOST_TEST_REQUIRE(running_as_root(), "a private Postfix needs root");
  PostfixFixture postfix;
  PolicyProxyOptions options;
  options.upstream_port = postfix.port();
  options.all_transactions = true;
  PolicyProxy env(options);

  // Postfix sees 192.0.2.80 (XCLIENT), not in its mynetworks: relaying elsewhere is refused by
  // Postfix itself; example.test is its relay domain.
  auto client = env.connect_as("192.0.2.80");
  BOOST_TEST(client.read_reply().code == 220);
  BOOST_TEST(client.command("EHLO mail.example.org").code == 250);
  BOOST_TEST(client.command("MAIL FROM:<a@sender.example>").code == 250);
  const SmtpReply denied = client.command("RCPT TO:<x@elsewhere.example>");
  BOOST_TEST(denied.code == 554, printable(denied.raw));
  BOOST_TEST(client.command("RCPT TO:<b@example.test>").code == 250);
  BOOST_TEST(client.command("DATA").code == 354);
  client.send(dot_stuff(make_message(300, "postfix", "VIAPOSTFIX")) + ".\r\n");
  const SmtpReply queued = client.read_reply();
  BOOST_TEST(queued.code == 250);
  BOOST_TEST_REQUIRE(env.wait_for_records(2));
  const auto records = env.records();
  BOOST_TEST_REQUIRE(records.size() == 2u);
  check_record_shape(records[0]);
  BOOST_TEST(field(records[0], "source") == "upstream");
  BOOST_TEST(field(records[0], "phase") == "rcpt");
  BOOST_TEST(field(records[0], "action") == "reject");
  BOOST_TEST(records[0].find("rule")->is_null());
  BOOST_TEST(field(records[0], "rcpts") == "[\"x@elsewhere.example\"]");
  BOOST_TEST(contains(field(records[0], "reply"), "Relay access denied"),
             field(records[0], "reply"));
  // all_transactions: the delivered message, with Postfix's queue id.
  check_record_shape(records[1]);
  BOOST_TEST(field(records[1], "action") == "accept");
  BOOST_TEST(field(records[1], "source") == "upstream");
  BOOST_TEST(field(records[1], "phase") == "data");
  BOOST_TEST(!field(records[1], "queue_id").empty());
  BOOST_TEST(contains(queued.raw, field(records[1], "queue_id")), printable(queued.raw));
  BOOST_TEST(client.command("QUIT").code == 221);

  // The files were opened as root before the switch to nobody, and handed to nobody: a
  // SIGUSR1 that finds them in place (logrotate's copytruncate, or a stray signal) reopens them.
  if (running_as_root()) {
    const UserIds nobody = lookup_user("nobody");
    struct stat status {};
    BOOST_TEST_REQUIRE(::stat(env.rejections_path().c_str(), &status) == 0);
    BOOST_TEST(status.st_uid == nobody.uid);
    BOOST_TEST_REQUIRE(::stat(env.proxy().log_path().c_str(), &status) == 0);
    BOOST_TEST(status.st_uid == nobody.uid);
  }
  kill(env.proxy().pid(), SIGUSR1);
  BOOST_TEST_REQUIRE(
      wait_until([&] { return !env.proxy().events_named("logs_reopened").empty(); }, 5s));
  BOOST_TEST(env.proxy().events_named("log_reopen_failed").empty(), env.proxy().log_text());

  // Rotation: the old file is moved away, SIGUSR1, the next record goes to a new file.
  const fs::path rotated = env.rejections_path().string() + ".1";
  fs::rename(env.rejections_path(), rotated);
  kill(env.proxy().pid(), SIGUSR1);
  BOOST_TEST_REQUIRE(wait_until([&] { return fs::exists(env.rejections_path()); }, 5s));
  auto second = env.connect_as("192.0.2.81");
  BOOST_TEST(second.read_reply().code == 220);
  BOOST_TEST(second.command("EHLO mail.example.org").code == 250);
  BOOST_TEST(second.command("MAIL FROM:<a@sender.example>").code == 250);
  BOOST_TEST(second.command("RCPT TO:<y@elsewhere.example>").code == 554);
  BOOST_TEST_REQUIRE(env.wait_for_records(1));
  BOOST_TEST(field(env.records()[0], "rcpts") == "[\"y@elsewhere.example\"]");
  BOOST_TEST(split_lines(file_text(rotated)).size() >= 2u);
}
