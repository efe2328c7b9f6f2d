// Greylisting end to end (issue 15): swaks, bound to 127.0.0.2, sends through Portcullis to a
// real Postfix that relays to an smtp-sink. Portcullis runs policies/default.toml as shipped
// (its trusted networks narrowed to 127.0.0.1, as the quick start does, so 127.0.0.2 is a
// stranger) with the chain it is written for, against the in-process test DNS server, and
// [filter.greylist] delay = 3 s.
//
// Checked: the first attempt is refused at RCPT with 451 4.7.1 and the rule's retry_after,
// and logged in the rejection log (rule, phase rcpt, evidence greylist = new); a retry before
// the delay is refused again (early); the retry after the delay is delivered through Postfix.
// Neither refused attempt reaches Postfix's sink.
#define BOOST_TEST_MODULE integration_greylist_postfix
#include <fmt/core.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>

#include "fixtures.h"
#include "json_value.h"
#include "test_dns_server.h"
#include "test_support.h"

using namespace portcullis::test;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* client_address = "127.0.0.2";
// Short, so the test is quick; long enough that a retry made at once is still early on a
// loaded machine (checked where it matters).
constexpr auto greylist_delay = 3s;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  BOOST_REQUIRE_MESSAGE(out.good(), "could not write " << path);
}

struct GreylistEnvironment {
  GreylistEnvironment() {
    if (!running_as_root()) throw std::runtime_error("a private Postfix needs root");
    dir.chmod(0755);
    // A well-configured sender: SPF passes, the client's name is forward-confirmed. Greylisting
    // delays it anyway (skip_spf_pass is off by default).
    dns.add_txt("example.test", {"v=spf1 ip4:127.0.0.2 -all"});
    dns.add_ptr("2.0.0.127.in-addr.arpa", "client.example.test");
    dns.add_a("client.example.test", client_address);

    policy_path = dir / "policy.toml";
    const std::string shipped = read_text(fs::path(source_root()) / "policies" / "default.toml");
    static const std::regex trusted(R"(\ntrusted_networks = [^\n]*)");
    BOOST_REQUIRE_MESSAGE(std::regex_search(shipped, trusted),
                          "policies/default.toml has no trusted_networks line");
    write_text(policy_path,
               std::regex_replace(shipped, trusted, "\ntrusted_networks = [\"127.0.0.1/32\"]"));
    const fs::path log_dir = dir.make_subdir("log", 0777);
    rejections_path = log_dir / "rejections.jsonl";

    postfix = std::make_unique<PostfixFixture>("127.0.0.1/32");
    PortcullisOptions options;
    options.upstream_port = postfix->port();
    options.pass_client = "xclient";
    options.settings["upstream"]["reply_timeout"] = "30";
    options.settings["dns"] = {{"resolvers", fmt::format("[\"{}\"]", dns.address())},
                               {"timeout", "2"}};
    // The chain policies/default.toml is written for.
    options.settings["filters"] = {{"chain",
                                    "[\"pregreet\", \"helo\", \"fcrdns\", \"dnsbl\", \"spf\", "
                                    "\"greylist\", \"dkim\", \"dmarc\"]"}};
    options.settings["filter.pregreet"] = {{"wait_ms", "200"}, {"teaser", "false"}};
    options.settings["filter.dnsbl"] = {
        {"list", "[{ zone = \"dnsbl.example.test\", weight = 3 }]"}};
    options.settings["filter.greylist"] = {{"delay", std::to_string(greylist_delay.count())}};
    options.settings["policy"] = {{"files", fmt::format("[\"{}\"]", policy_path.string())}};
    options.settings["log"]["rejections"] = fmt::format("\"{}\"", rejections_path.string());
    proxy = std::make_unique<PortcullisFixture>(options);
    instance = this;
  }
  ~GreylistEnvironment() {
    instance = nullptr;
    proxy.reset();
  }

  TempDir dir{"portcullis-greylist"};
  TestDnsServer dns;
  fs::path policy_path;
  fs::path rejections_path;
  std::unique_ptr<PostfixFixture> postfix;
  std::unique_ptr<PortcullisFixture> proxy;
  int messages = 0;

  static GreylistEnvironment* instance;
};
GreylistEnvironment* GreylistEnvironment::instance = nullptr;

BOOST_TEST_GLOBAL_FIXTURE(GreylistEnvironment);

GreylistEnvironment& env() {
  return *GreylistEnvironment::instance;
}

// One delivery attempt of the same envelope (the triplet 127.0.0.0/24, alice, bob), the
// message marked with `marker`.
CommandResult swaks_attempt(const std::string& marker) {
  const fs::path path = env().dir / fmt::format("message-{}.eml", ++env().messages);
  write_text(path, fmt::format("From: alice@example.test\n"
                               "To: bob@example.test\n"
                               "Subject: greylist {}\n"
                               "Date: Mon, 07 Dec 2026 10:00:00 +0000\n"
                               "Message-ID: <{}@example.test>\n"
                               "\n"
                               "{}\n",
                               marker, marker, marker));
  return run_command({"swaks", "--server", "127.0.0.1", "--port",
                      std::to_string(env().proxy->port()), "--local-interface", client_address,
                      "--helo", "client.example.test", "--from", "alice@example.test", "--to",
                      "bob@example.test", "--data", path.string(), "--timeout", "30"},
                     90s);
}

// The rejection log's records, in order (every line must be a JSON object).
std::vector<JsonValue> records() {
  std::vector<JsonValue> out;
  if (!fs::exists(env().rejections_path)) return out;
  for (const auto& line : split_lines(read_text(env().rejections_path))) {
    if (line.empty()) continue;
    std::string error;
    auto value = parse_json(line, &error);
    BOOST_TEST_REQUIRE(value.has_value(), line << ": " << error);
    out.push_back(*value);
  }
  return out;
}

std::string text_of(const JsonValue& record, const std::string& key) {
  const JsonValue* member = record.find(key);
  return member != nullptr ? member->to_text() : "(absent)";
}

}  // namespace

BOOST_AUTO_TEST_CASE(first_attempt_and_early_retry_are_greylisted_the_late_retry_is_delivered) {
  // 1. The first attempt: 451 4.7.1 at RCPT, retry_after = the whole delay.
  const CommandResult first = swaks_attempt("GREYLIST-FIRST-MARKER");
  const Clock::time_point first_answered = Clock::now();
  BOOST_TEST(!first.status.success(), first.out);
  const std::string first_reply =
      fmt::format("<** 451 4.7.1 Greylisted, please retry in {}s", greylist_delay.count());
  BOOST_TEST(contains(first.out, first_reply), first.out << env().proxy->diagnostics());

  BOOST_TEST_REQUIRE(wait_until([] { return records().size() >= 1; }, 10s),
                     "no rejection log record\n"
                         << env().proxy->diagnostics());
  const JsonValue record = records().front();
  BOOST_TEST(text_of(record, "rule") == "greylist unknown triplets", record.to_text());
  BOOST_TEST(text_of(record, "phase") == "rcpt", record.to_text());
  BOOST_TEST(text_of(record, "action") == "tempfail", record.to_text());
  BOOST_TEST(text_of(record, "mode") == "enforce", record.to_text());
  BOOST_TEST(text_of(record, "source") == "policy", record.to_text());
  BOOST_TEST(text_of(record, "reply") ==
                 fmt::format("451 4.7.1 Greylisted, please retry in {}s", greylist_delay.count()),
             record.to_text());
  BOOST_TEST(text_of(record, "client_ip") == client_address, record.to_text());
  BOOST_TEST(text_of(record, "sender") == "alice@example.test", record.to_text());
  BOOST_TEST(text_of(record, "rcpts") == "[\"bob@example.test\"]", record.to_text());
  const JsonValue* evidence = record.find("evidence");
  BOOST_TEST_REQUIRE(evidence != nullptr, record.to_text());
  BOOST_TEST(text_of(*evidence, "greylist") == "new", evidence->to_text());
  const JsonValue* retry_after = evidence->find("greylist.retry_after");
  BOOST_TEST_REQUIRE(retry_after != nullptr, evidence->to_text());
  BOOST_TEST(retry_after->is_number(), evidence->to_text());
  BOOST_TEST(text_of(*evidence, "greylist.retry_after") == std::to_string(greylist_delay.count()),
             evidence->to_text());

  // 2. A retry at once, before the delay is over: refused again, as early.
  const CommandResult early = swaks_attempt("GREYLIST-EARLY-MARKER");
  BOOST_TEST_REQUIRE((Clock::now() < first_answered + greylist_delay),
                     "the retry took longer than the greylist delay: it proves nothing");
  BOOST_TEST(!early.status.success(), early.out);
  static const std::regex early_reply(R"(<\*\* 451 4\.7\.1 Greylisted, please retry in [1-3]s)");
  BOOST_TEST(std::regex_search(early.out, early_reply), early.out);
  BOOST_TEST_REQUIRE(wait_until([] { return records().size() >= 2; }, 10s),
                     "no rejection log record of the early retry\n"
                         << env().proxy->diagnostics());
  const JsonValue early_record = records()[1];
  BOOST_TEST(text_of(early_record, "rule") == "greylist unknown triplets", early_record.to_text());
  BOOST_TEST_REQUIRE(early_record.find("evidence") != nullptr, early_record.to_text());
  BOOST_TEST(text_of(*early_record.find("evidence"), "greylist") == "early",
             early_record.to_text());

  // 3. The retry after the delay: delivered through Postfix to its sink.
  std::this_thread::sleep_until(first_answered + greylist_delay + 500ms);
  const std::string marker = "GREYLIST-LATE-MARKER";
  const CommandResult late = swaks_attempt(marker);
  BOOST_TEST_REQUIRE(late.status.success(), late.status.describe()
                                                << "\n"
                                                << late.out << env().proxy->diagnostics());
  BOOST_TEST(contains(late.out, "<-  250 2.0.0 Ok: queued as"), late.out);
  auto& sink = env().postfix->relay_sink();
  BOOST_TEST_REQUIRE(wait_until([&] { return !sink.message_with(marker).empty(); }, 30s),
                     "no message with " << marker << " at Postfix's sink\n"
                                        << env().postfix->log());
  // Postfix saw the real client (XCLIENT), not the proxy.
  BOOST_TEST(contains(sink.message_with(marker), "client.example.test [127.0.0.2]"),
             sink.message_with(marker));
  // The refused attempts never reached Postfix's DATA, and the delivery is not a refusal.
  BOOST_TEST(sink.message_with("GREYLIST-FIRST-MARKER").empty());
  BOOST_TEST(sink.message_with("GREYLIST-EARLY-MARKER").empty());
  BOOST_TEST(records().size() == 2u);
}
