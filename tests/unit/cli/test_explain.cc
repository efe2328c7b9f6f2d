// `portcullis explain` with the DNS filters: the queries asked of the resolver given with --dns
// (not [dns] resolvers), their answers in the trace per phase (text and JSON), a silent server
// shown as a temporary failure, --evidence standing for a filter's DNS, and a --message that
// streams to dkim and is dmarc's message at the data phase.
#define BOOST_TEST_MODULE explain
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "explain_command.h"
#include "json_value.h"
#include "test_dns_server.h"
#include "test_support.h"

using namespace portcullis;
using portcullis::test::TestDnsServer;

namespace {

constexpr std::uint16_t kTxt = 16;

// [dns] resolvers points at a port where nothing answers: only --dns can make these pass.
struct DnsChain {
  test::TempDir dir{"portcullis-explain"};
  TestDnsServer server;

  DnsChain() {
    test::write_file(dir / "policy.toml", R"([[rule]]
name = "spf fail"
when = "spf == 'fail'"
then = "reject 550 5.7.23 SPF check failed"

[[rule]]
name = "spf temperror"
when = "spf == 'temperror'"
then = "tempfail 451 4.7.24 SPF temporarily failing"

[[rule]]
name = "listed"
when = "dnsbl.score >= 3 or fcrdns == 'fail'"
then = "reject 554 5.7.1 listed"
)");
    test::write_file(dir / "portcullis.toml", R"([[listen]]
address = "127.0.0.1:2525"

[upstream]
address = "127.0.0.1:10025"

[dns]
resolvers = ["127.0.0.1:9"]
timeout = 1

[filters]
chain = ["fcrdns", "dnsbl", "spf"]

[[filter.dnsbl.list]]
zone = "bl.example.test"

[policy]
files = ["policy.toml"]
)");
    server.add_ptr("10.2.0.192.in-addr.arpa", "mail.example.test");
    server.add_a("mail.example.test", "192.0.2.10");
    server.add_a("10.2.0.192.bl.example.test", "127.0.0.2");
    server.add_txt("example.test", {"v=spf1 -all"});
  }

  ExplainOptions options(bool json = false) const {
    ExplainOptions options;
    options.config_path = (dir / "portcullis.toml").string();
    options.client = "192.0.2.10";
    options.helo = "mail.example.test";
    options.from = "a@example.test";
    options.from_given = true;
    options.rcpts = {"b@example.net"};
    options.dns = {server.address()};
    options.json = json;
    return options;
  }

  std::size_t txt_queries() const {
    std::size_t count = 0;
    for (const auto& query : server.queries())
      count += query.type == kTxt ? 1 : 0;
    return count;
  }
};

struct Run {
  int status;
  std::string out;
  std::string err;
};

Run explain(const ExplainOptions& options) {
  std::ostringstream out;
  std::ostringstream err;
  const int status = run_explain(options, out, err);
  return {status, out.str(), err.str()};
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_CASE(trace_shows_each_query_and_answer_the_facts_rest_on) {
  DnsChain chain;
  const Run run = explain(chain.options());
  BOOST_TEST_REQUIRE(run.status == 0, run.err);
  BOOST_TEST(contains(run.out,
                      "phase connect\n  dns: PTR 10.2.0.192.in-addr.arpa → answer "
                      "mail.example.test\n"),
             run.out);
  BOOST_TEST(contains(run.out, "  dns: A mail.example.test → answer 192.0.2.10\n"), run.out);
  BOOST_TEST(contains(run.out, "  dns: A 10.2.0.192.bl.example.test → answer 127.0.0.2\n"),
             run.out);
  BOOST_TEST(contains(run.out, "phase mail\n  dns: TXT example.test → answer \"v=spf1 -all\"\n"),
             run.out);
  BOOST_TEST(contains(run.out, "fcrdns = 'pass'"), run.out);
  BOOST_TEST(contains(run.out, "dnsbl.score = 1"), run.out);
  BOOST_TEST(contains(run.out, "spf = 'fail'"), run.out);
  BOOST_TEST(contains(run.out, "outcome: refused at mail: 550 5.7.23 SPF check failed"), run.out);
  BOOST_TEST(chain.txt_queries() == 1u);
}

BOOST_AUTO_TEST_CASE(json_trace_has_the_queries_of_each_phase) {
  DnsChain chain;
  const Run run = explain(chain.options(true));
  BOOST_TEST_REQUIRE(run.status == 0, run.err);
  auto parsed = test::parse_json(run.out);
  BOOST_TEST_REQUIRE(parsed.has_value(), run.out);
  const auto& verdicts = parsed->find("verdicts")->as_array();
  BOOST_TEST_REQUIRE(verdicts.size() == 3u, run.out);  // connect, helo, mail (refused)
  const auto& connect_dns = verdicts[0].find("dns")->as_array();
  BOOST_TEST_REQUIRE(connect_dns.size() == 3u, run.out);  // PTR, A of the name, the list's A
  bool saw_ptr = false;
  for (const auto& query : connect_dns) {
    if (query.find("type")->as_string() != "PTR") continue;
    saw_ptr = true;
    BOOST_TEST(query.find("name")->as_string() == "10.2.0.192.in-addr.arpa");
    BOOST_TEST(query.find("outcome")->as_string() == "answer");
    BOOST_TEST(query.find("records")->as_array().at(0).as_string() == "mail.example.test");
    BOOST_TEST(query.find("reason")->is_null());
  }
  BOOST_TEST(saw_ptr, run.out);
  BOOST_TEST(verdicts[1].find("dns")->as_array().empty());
  const auto& mail_dns = verdicts[2].find("dns")->as_array();
  BOOST_TEST_REQUIRE(mail_dns.size() == 1u, run.out);
  BOOST_TEST(mail_dns[0].find("type")->as_string() == "TXT");
  BOOST_TEST(mail_dns[0].find("records")->as_array().at(0).as_string() == "\"v=spf1 -all\"");
}

BOOST_AUTO_TEST_CASE(a_withheld_answer_is_a_timeout_and_spf_temperror) {
  DnsChain chain;
  chain.server.set_behaviour("example.test", TestDnsServer::Behaviour::withhold);
  const Run run = explain(chain.options());
  BOOST_TEST_REQUIRE(run.status == 0, run.err);
  BOOST_TEST(contains(run.out, "  dns: TXT example.test → temporary_failure (timeout)\n"), run.out);
  BOOST_TEST(contains(run.out, "spf = 'temperror'"), run.out);
  BOOST_TEST(contains(run.out, "outcome: refused at mail: 451 4.7.24 SPF temporarily failing"),
             run.out);
}

BOOST_AUTO_TEST_CASE(evidence_for_spf_asks_no_txt) {
  DnsChain chain;
  ExplainOptions options = chain.options();
  options.evidence = {"spf=pass"};
  const Run run = explain(options);
  BOOST_TEST_REQUIRE(run.status == 0, run.err);
  BOOST_TEST(chain.txt_queries() == 0u);
  BOOST_TEST(!contains(run.out, "dns: TXT"), run.out);
  BOOST_TEST(contains(run.out, "note: filter spf not run: --evidence gives spf"), run.out);
  BOOST_TEST(contains(run.out, "spf = 'pass'"), run.out);
  // The other filters still ask: evidence stands for one filter only.
  BOOST_TEST(chain.server.query_count("10.2.0.192.in-addr.arpa") >= 1u);
  BOOST_TEST(contains(run.out, "outcome: the transaction would go on to DATA"), run.out);
}

BOOST_AUTO_TEST_CASE(dns_that_is_not_an_address_and_port_is_refused) {
  DnsChain chain;
  ExplainOptions options = chain.options();
  options.dns = {"resolver.example"};
  const Run run = explain(options);
  BOOST_TEST(run.status == 2);
  BOOST_TEST(contains(run.err, "--dns resolver.example: expected IP:PORT"), run.err);
  BOOST_TEST(chain.server.queries().empty());
}

// The client's PTR gives two names: the first is confirmed while the second's A query is still
// unanswered, so fcrdns ends and the query it no longer needs shows as cancelled.
BOOST_AUTO_TEST_CASE(a_query_the_filter_no_longer_needed_shows_as_cancelled) {
  DnsChain chain;
  chain.server.add_ptr("10.2.0.192.in-addr.arpa", "slow.example.test");
  chain.server.set_behaviour("slow.example.test", TestDnsServer::Behaviour::withhold);
  const Run run = explain(chain.options());
  BOOST_TEST_REQUIRE(run.status == 0, run.err);
  BOOST_TEST(contains(run.out, "fcrdns = 'pass'"), run.out);
  BOOST_TEST(
      contains(run.out,
               "  dns: A slow.example.test → no answer (cancelled: the filter ended first)\n"),
      run.out);
}

namespace {

// RFC 8463 A.3 (tests/corpora/dkim/mail-auth/001.txt): its two key records, then the message
// signed with both, with LF line ends as a message file usually has them.
struct SignedMessage {
  std::vector<std::pair<std::string, std::string>> keys;
  std::string message;
};

SignedMessage rfc8463_message() {
  const char* corpora = std::getenv("PORTCULLIS_CORPORA");
  BOOST_REQUIRE(corpora != nullptr);
  std::ifstream in(std::string(corpora) + "/dkim/mail-auth/001.txt", std::ios::binary);
  BOOST_REQUIRE(in.good());
  std::ostringstream text;
  text << in.rdbuf();
  const std::string all = text.str();
  const auto blank = all.find("\n\n");
  BOOST_REQUIRE(blank != std::string::npos);
  SignedMessage signed_message;
  std::istringstream lines(all.substr(0, blank));
  std::string line;
  while (std::getline(lines, line)) {
    const auto space = line.find(' ');
    signed_message.keys.push_back({line.substr(0, space), line.substr(space + 1)});
  }
  signed_message.message = all.substr(blank + 2);
  return signed_message;
}

// dkim and dmarc, whose message comes from --message: it has to stream to dkim and be dmarc's
// MessageView at the data phase, as in a live session.
struct AuthChain {
  test::TempDir dir{"portcullis-explain-auth"};
  TestDnsServer server;
  SignedMessage vector = rfc8463_message();

  AuthChain() {
    test::write_file(dir / "policy.toml", R"([[rule]]
name = "dkim result"
when = "dkim != 'none'"
then = "tag X-Test-DKIM: {dkim}"

[[rule]]
name = "dmarc reject"
when = "dmarc == 'fail' and dmarc.policy == 'reject'"
then = "reject 550 5.7.1 DMARC policy of {dmarc.domain}"
)");
    test::write_file(dir / "portcullis.toml", R"([[listen]]
address = "127.0.0.1:2525"

[upstream]
address = "127.0.0.1:10025"

[dns]
resolvers = ["127.0.0.1:9"]
timeout = 1

[filters]
chain = ["dkim", "dmarc"]

[policy]
files = ["policy.toml"]
)");
    for (const auto& [name, record] : vector.keys)
      server.add_txt(name, {record});
    server.add_txt("_dmarc.football.example.com", {"v=DMARC1; p=reject"});
  }

  Run explain_message(const std::string& message) const {
    test::write_file(dir / "message.eml", message);
    ExplainOptions options;
    options.config_path = (dir / "portcullis.toml").string();
    options.client = "192.0.2.10";
    options.helo = "mail.example.test";
    options.from = "joe@football.example.com";
    options.from_given = true;
    options.rcpts = {"suzie@shopping.example.net"};
    options.message_file = (dir / "message.eml").string();
    options.dns = {server.address()};
    return explain(options);
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_signed_message_file_passes_dkim_and_dmarc) {
  const AuthChain chain;
  const Run run = chain.explain_message(chain.vector.message);
  BOOST_TEST_REQUIRE(run.status == 0, run.err);
  BOOST_TEST(contains(run.out, "dns: TXT brisbane._domainkey.football.example.com → answer"),
             run.out);
  BOOST_TEST(contains(run.out, "dkim = 'pass'"), run.out);
  BOOST_TEST(contains(run.out, "dmarc = 'pass'"), run.out);
  BOOST_TEST(contains(run.out, "outcome: the message would be relayed to the upstream"), run.out);
}

BOOST_AUTO_TEST_CASE(an_altered_message_file_fails_dkim_and_is_refused_by_dmarc) {
  const AuthChain chain;
  std::string message = chain.vector.message;
  const auto at = message.find("We lost the game.");
  BOOST_REQUIRE(at != std::string::npos);
  message.replace(at, 6, "We won");
  const Run run = chain.explain_message(message);
  BOOST_TEST_REQUIRE(run.status == 0, run.err);
  BOOST_TEST(contains(run.out, "dkim = 'fail'"), run.out);
  BOOST_TEST(contains(run.out, "dmarc = 'fail'"), run.out);
  BOOST_TEST(
      contains(run.out, "outcome: refused at data: 550 5.7.1 DMARC policy of football.example.com"),
      run.out);
}
