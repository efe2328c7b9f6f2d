// The policy engine through its public API: loading (in memory and policies/default.toml),
// PolicySession semantics the golden cases do not show, JSON rendering, sanitising of
// client-controlled facts, and sharing one compiled policy across threads and reloads.
#define BOOST_TEST_MODULE policy_engine
#include <fmt/format.h>

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <thread>

#include "fact_catalog.h"
#include "policy.h"
#include "policy_session.h"

using namespace portcullis;
using namespace portcullis::policy;

namespace {

const FactCatalog& full_catalog() {
  static const FactCatalog catalog = builtin_fact_catalog(builtin_filter_names());
  return catalog;
}

// Policy files from memory: name -> text.
FileReader memory_reader(std::map<std::string, std::string> files) {
  return [files = std::move(files)](const std::string& path, std::string* error) {
    auto it = files.find(path);
    if (it == files.end()) {
      *error = "no such file";
      return std::optional<std::string>();
    }
    return std::optional<std::string>(it->second);
  };
}

std::shared_ptr<const Policy> compile(const std::string& text,
                                      const FactCatalog& catalog = full_catalog()) {
  const LoadResult result = load_policy({"p.toml"}, catalog, memory_reader({{"p.toml", text}}));
  if (!result.ok()) BOOST_FAIL("policy does not load:\n" << result.error_text());
  return result.policy;
}

std::string source_root() {
  const char* root = std::getenv("PORTCULLIS_SOURCE_ROOT");
  BOOST_REQUIRE(root != nullptr);
  return root;
}

Facts connect_facts(const char* ip) {
  Facts facts;
  facts.set("client.ip", *IpAddress::parse(ip));
  facts.set("client.port", std::int64_t{40000});
  return facts;
}

// A strict JSON syntax check (RFC 8259), enough to prove the renderer's output parses.
class JsonChecker {
 public:
  explicit JsonChecker(std::string_view text) : text_(text) {}
  bool valid() {
    skip_space();
    if (!value()) return false;
    skip_space();
    return pos_ == text_.size();
  }

 private:
  void skip_space() {
    while (pos_ < text_.size() &&
           std::string_view(" \t\r\n").find(text_[pos_]) != std::string_view::npos)
      ++pos_;
  }
  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  bool string() {
    if (!literal("\"")) return false;
    while (pos_ < text_.size()) {
      const unsigned char c = text_[pos_++];
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c == '\\') {
        if (pos_ >= text_.size()) return false;
        const char escape = text_[pos_++];
        if (escape == 'u') {
          for (int i = 0; i < 4; ++i) {
            if (pos_ >= text_.size() || !std::isxdigit(static_cast<unsigned char>(text_[pos_++])))
              return false;
          }
        } else if (std::string_view("\"\\/bfnrt").find(escape) == std::string_view::npos) {
          return false;
        }
      }
    }
    return false;
  }
  bool number() {
    const std::size_t start = pos_;
    if (pos_ < text_.size() && text_[pos_] == '-') ++pos_;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_])))
      ++pos_;
    return pos_ > start && std::isdigit(static_cast<unsigned char>(text_[pos_ - 1]));
  }
  bool value() {
    skip_space();
    if (pos_ >= text_.size()) return false;
    const char c = text_[pos_];
    if (c == '{') return container('}', true);
    if (c == '[') return container(']', false);
    if (c == '"') return string();
    if (c == 't') return literal("true");
    if (c == 'f') return literal("false");
    if (c == 'n') return literal("null");
    return number();
  }
  bool container(char close, bool object) {
    ++pos_;
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == close) return ++pos_, true;
    while (true) {
      skip_space();
      if (object) {
        if (!string()) return false;
        skip_space();
        if (!literal(":")) return false;
      }
      if (!value()) return false;
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      return pos_ < text_.size() && text_[pos_++] == close;
    }
  }
  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(default_policy)

// The chain policies/default.toml is written for.
const std::vector<std::string> default_chain = {"pregreet", "helo",     "fcrdns", "dnsbl",
                                                "spf",      "greylist", "dkim",   "dmarc"};

std::shared_ptr<const Policy> load_default(const std::vector<std::string>& chain,
                                           std::string* errors = nullptr) {
  const std::string path = source_root() + "/policies/default.toml";
  const LoadResult result = load_policy({path}, builtin_fact_catalog(chain));
  if (errors != nullptr) *errors = result.error_text();
  return result.policy;
}

BOOST_AUTO_TEST_CASE(loads_against_its_chain) {
  std::string errors;
  auto policy = load_default(default_chain, &errors);
  BOOST_TEST(errors == "");
  BOOST_REQUIRE(policy);
  BOOST_TEST(policy->rules().size() == 13u);
  // trusted networks, dnsbl listed | five HELO rules | spf fail, spf temperror | greylist
  // unknown triplets | dmarc reject, dmarc quarantine, dkim not passing
  BOOST_TEST(policy->rules_at(Phase::connect).size() == 2u);
  BOOST_TEST(policy->rules_at(Phase::helo).size() == 5u);
  BOOST_TEST(policy->rules_at(Phase::mail).size() == 2u);
  BOOST_TEST(policy->rules_at(Phase::rcpt).size() == 1u);
  BOOST_TEST(policy->rules_at(Phase::data).size() == 3u);
}

BOOST_AUTO_TEST_CASE(needs_those_filters) {
  std::string errors;
  BOOST_TEST(!load_default({}, &errors));
  BOOST_TEST(
      errors.find("reads fact pregreet of filter pregreet, which is not in [filters] chain") !=
      std::string::npos);
  BOOST_TEST(errors.find("reads fact helo.check of filter helo, which is not in [filters] chain") !=
             std::string::npos);
  BOOST_TEST(
      errors.find("reads fact dnsbl.score of filter dnsbl, which is not in [filters] chain") !=
      std::string::npos);
  BOOST_TEST(errors.find("reads fact spf of filter spf, which is not in [filters] chain") !=
             std::string::npos);
  BOOST_TEST(
      errors.find("reads fact greylist of filter greylist, which is not in [filters] chain") !=
      std::string::npos);
  // The chain of the release before greylisting: the greylist rule alone refuses it.
  std::vector<std::string> without_greylist = default_chain;
  std::erase(without_greylist, "greylist");
  BOOST_TEST(!load_default(without_greylist, &errors));
  BOOST_TEST(errors.find("rule \"greylist unknown triplets\" reads fact greylist of filter "
                         "greylist, which is not in [filters] chain") != std::string::npos,
             errors);
  // Without the DNS filters (a chain of the previous releases' default) it is refused too.
  BOOST_TEST(!load_default({"pregreet", "helo"}, &errors));
}

// The DNS rules: an SPF fail is refused at MAIL unless the sender's domain is allow-listed,
// a temperror is tempfailed, a listed client (score 3) is refused at RCPT (delayed).
BOOST_AUTO_TEST_CASE(spf_and_dnsbl_rules) {
  const auto mail_verdict = [](const std::string& spf, const std::string& sender) {
    PolicySession session(load_default(default_chain));
    Facts facts = connect_facts("203.0.113.5");
    facts.set("dnsbl.score", std::int64_t{0});
    session.evaluate(Phase::connect, facts);
    facts.set("helo", std::string("mail.example.org"));
    facts.set("helo.check", std::string("ok"));
    facts.set("pregreet", false);
    session.evaluate(Phase::helo, facts);
    facts.set("sender", sender);
    facts.set("sender.domain", sender.substr(sender.find('@') + 1));
    facts.set("spf", spf);
    return session.evaluate(Phase::mail, facts);
  };
  const Verdict fail = mail_verdict("fail", "a@example.org");
  BOOST_TEST((fail.action == Action::reject));
  BOOST_TEST(fail.rule == "spf fail");
  BOOST_REQUIRE(fail.reply);
  BOOST_TEST(fail.reply->to_string() == "550 5.7.23 SPF validation failed for example.org");
  const Verdict temporary = mail_verdict("temperror", "a@example.org");
  BOOST_TEST((temporary.action == Action::tempfail));
  BOOST_REQUIRE(temporary.reply);
  BOOST_TEST(temporary.reply->to_string() ==
             "451 4.7.24 SPF temporary error for example.org, try again later");
  for (const char* quiet : {"pass", "softfail", "neutral", "none", "permerror"}) {
    BOOST_TEST((mail_verdict(quiet, "a@example.org").action == Action::none), quiet);
  }

  PolicySession listed(load_default(default_chain));
  Facts facts = connect_facts("203.0.113.5");
  facts.set("dnsbl.score", std::int64_t{3});
  const Verdict connect = listed.evaluate(Phase::connect, facts);
  BOOST_TEST((connect.action == Action::reject));
  BOOST_TEST(connect.rule == "dnsbl listed");
  BOOST_TEST((connect.answer == AnswerTime::at_rcpt));
  facts.set("dnsbl.score", std::int64_t{2});
  PolicySession below(load_default(default_chain));
  BOOST_TEST((below.evaluate(Phase::connect, facts).action == Action::none));
}

BOOST_AUTO_TEST_CASE(refuses_a_pregreeting_client_at_rcpt) {
  PolicySession session(load_default(default_chain));
  Facts facts = connect_facts("203.0.113.5");
  BOOST_TEST((session.evaluate(Phase::connect, facts).answer == AnswerTime::none));
  facts.set("helo", std::string("bot.example"));
  facts.set("helo.check", std::string("ok"));
  facts.set("pregreet", true);
  const Verdict helo = session.evaluate(Phase::helo, facts);
  BOOST_TEST((helo.action == Action::reject));
  BOOST_TEST((helo.answer == AnswerTime::at_rcpt));
  BOOST_TEST(helo.rule == "pregreeting client");
  facts.set("sender", std::string("a@bot.example"));
  BOOST_TEST((session.evaluate(Phase::mail, facts).answer == AnswerTime::none));
  facts.set("rcpt", std::string("victim@example.org"));
  const Verdict rcpt = session.evaluate(Phase::rcpt, facts);
  BOOST_TEST((rcpt.answer == AnswerTime::now));
  BOOST_REQUIRE(rcpt.reply);
  BOOST_TEST(rcpt.reply->to_string() == "554 5.5.1 Protocol error: you spoke before my greeting");
  BOOST_TEST((rcpt.decided_at == Phase::helo));
  BOOST_REQUIRE(rcpt.evidence.size() == 1u);
  BOOST_TEST(rcpt.evidence[0].fact == "pregreet");
}

BOOST_AUTO_TEST_CASE(lets_a_well_behaved_client_through) {
  PolicySession session(load_default(default_chain));
  Facts facts = connect_facts("203.0.113.6");
  facts.set("helo", std::string("mx.example.net"));
  facts.set("helo.check", std::string("ok"));
  facts.set("pregreet", false);
  facts.set("tls", false);
  facts.set("sender", std::string("a@example.net"));
  facts.set("rcpt", std::string("b@example.org"));
  facts.set("greylist", std::string("passed"));
  facts.set("greylist.retry_after", std::int64_t{0});
  for (Phase phase : all_phases) {
    const Verdict verdict = session.evaluate(phase, facts);
    BOOST_TEST_CONTEXT(phase_name(phase)) {
      BOOST_TEST((verdict.action == Action::none));
      BOOST_TEST((verdict.answer == AnswerTime::none));
      BOOST_TEST(verdict.observed.empty());
    }
  }
  BOOST_TEST(session.message_tags().empty());
}

// The greylist rule (DESIGN §4): new and early triplets are tempfailed at RCPT with the
// filter's retry_after in the reply; passed, allowed and skipped ones go through. A refusal
// decided earlier (a listed client) is answered instead, the greylist rule not tried.
BOOST_AUTO_TEST_CASE(greylists_new_and_early_triplets_at_rcpt) {
  const auto rcpt_verdict = [](const std::string& state, std::int64_t retry_after,
                               std::int64_t dnsbl_score = 0) {
    PolicySession session(load_default(default_chain));
    Facts facts = connect_facts("203.0.113.9");
    facts.set("dnsbl.score", dnsbl_score);
    session.evaluate(Phase::connect, facts);
    facts.set("helo", std::string("mx.example.net"));
    facts.set("helo.check", std::string("ok"));
    facts.set("pregreet", false);
    session.evaluate(Phase::helo, facts);
    facts.set("sender", std::string("a@example.net"));
    facts.set("sender.domain", std::string("example.net"));
    facts.set("spf", std::string("none"));
    session.evaluate(Phase::mail, facts);
    facts.set("rcpt", std::string("b@example.org"));
    facts.set("greylist", state);
    facts.set("greylist.retry_after", retry_after);
    return session.evaluate(Phase::rcpt, facts);
  };
  for (const auto& [state, retry_after] :
       std::vector<std::pair<std::string, std::int64_t>>{{"new", 300}, {"early", 17}}) {
    BOOST_TEST_CONTEXT(state) {
      const Verdict verdict = rcpt_verdict(state, retry_after);
      BOOST_TEST((verdict.action == Action::tempfail));
      BOOST_TEST(verdict.rule == "greylist unknown triplets");
      BOOST_TEST((verdict.answer == AnswerTime::now));
      BOOST_REQUIRE(verdict.reply);
      BOOST_TEST(verdict.reply->to_string() ==
                 fmt::format("451 4.7.1 Greylisted, please retry in {}s", retry_after));
      // Evidence: the facts the rule reads, in its condition and its reply.
      std::vector<std::string> evidence;
      for (const auto& item : verdict.evidence)
        evidence.push_back(item.fact);
      std::sort(evidence.begin(), evidence.end());
      BOOST_TEST(evidence == (std::vector<std::string>{"greylist", "greylist.retry_after"}),
                 boost::test_tools::per_element());
    }
  }
  for (const char* through : {"passed", "allowed", "skipped"}) {
    BOOST_TEST((rcpt_verdict(through, 0).action == Action::none), through);
  }
  const Verdict listed = rcpt_verdict("new", 300, 3);
  BOOST_TEST(listed.rule == "dnsbl listed");
  BOOST_TEST((listed.action == Action::reject));
}

BOOST_AUTO_TEST_CASE(trusts_loopback_and_observes_bad_helo_syntax) {
  PolicySession trusted(load_default(default_chain));
  Facts facts = connect_facts("127.0.0.1");
  BOOST_TEST((trusted.evaluate(Phase::connect, facts).action == Action::accept));
  facts.set("pregreet", true);
  BOOST_TEST((trusted.evaluate(Phase::helo, facts).action == Action::accept));
  BOOST_TEST((trusted.evaluate(Phase::rcpt, facts).answer == AnswerTime::none));

  PolicySession observed(load_default(default_chain));
  facts = connect_facts("203.0.113.7");
  facts.set("pregreet", false);
  facts.set("helo", std::string("bad_host"));
  facts.set("helo.check", std::string("syntax"));
  observed.evaluate(Phase::connect, facts);
  const Verdict helo = observed.evaluate(Phase::helo, facts);
  BOOST_TEST((helo.action == Action::none));
  BOOST_REQUIRE(helo.observed.size() == 1u);
  BOOST_TEST(helo.observed[0].rule == "helo syntax");
  BOOST_TEST(helo.observed[0].reply->code == 554);
  BOOST_TEST((observed.evaluate(Phase::rcpt, facts).action == Action::none));
}

BOOST_AUTO_TEST_CASE(tags_a_literal_mismatch_without_letting_the_client_inject_lines) {
  PolicySession session(load_default(default_chain));
  Facts facts = connect_facts("203.0.113.8");
  facts.set("pregreet", false);
  facts.set("helo", std::string("[10.0.0.1]\r\nX-Injected: yes"));
  facts.set("helo.check", std::string("ip_mismatch"));
  session.evaluate(Phase::connect, facts);
  const Verdict helo = session.evaluate(Phase::helo, facts);
  BOOST_REQUIRE(helo.tags.size() == 1u);
  BOOST_TEST(helo.tags[0].header == "X-Portcullis-Helo");
  BOOST_TEST(helo.tags[0].value ==
             "literal [10.0.0.1]??X-Injected: yes is not the client address 203.0.113.8");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(session_semantics)

BOOST_AUTO_TEST_CASE(an_empty_policy_passes_everything) {
  const LoadResult result = load_policy({}, full_catalog());
  BOOST_REQUIRE(result.ok());
  PolicySession session(result.policy);
  const Verdict verdict = session.evaluate(Phase::connect, connect_facts("192.0.2.1"));
  BOOST_TEST((verdict.action == Action::none));
  BOOST_TEST(verdict.trace.rules.empty());
  PolicySession null_policy(nullptr);
  BOOST_TEST((null_policy.evaluate(Phase::data, Facts{}).action == Action::none));
}

BOOST_AUTO_TEST_CASE(starttls_drops_helo_tags_but_keeps_connect_tags) {
  PolicySession session(compile(R"toml(
[[rule]]
name = "c"
when = "true"
then = "tag X-Connect: yes"
[[rule]]
name = "h"
when = "helo != ''"
then = "tag X-Helo: {helo}"
)toml"));
  Facts facts = connect_facts("192.0.2.1");
  session.evaluate(Phase::connect, facts);
  facts.set("helo", std::string("first"));
  session.evaluate(Phase::helo, facts);
  BOOST_TEST(session.message_tags().size() == 2u);
  session.starttls();
  BOOST_REQUIRE(session.message_tags().size() == 1u);
  BOOST_TEST(session.message_tags()[0].header == "X-Connect");
  facts.set("helo", std::string("second"));
  session.evaluate(Phase::helo, facts);
  BOOST_REQUIRE(session.message_tags().size() == 2u);
  BOOST_TEST(session.message_tags()[1].value == "second");
}

BOOST_AUTO_TEST_CASE(transaction_tags_are_per_message_and_deduplicated) {
  PolicySession session(compile(R"toml(
[[rule]]
name = "per rcpt"
when = "rcpt.domain == 'example.org'"
then = "tag X-Local: yes"
)toml"));
  Facts facts = connect_facts("192.0.2.1");
  facts.set("rcpt.domain", std::string("example.org"));
  BOOST_TEST(session.evaluate(Phase::rcpt, facts).tags.size() == 1u);
  BOOST_TEST(session.evaluate(Phase::rcpt, facts).tags.empty());
  BOOST_TEST(session.message_tags().size() == 1u);
  session.reset_transaction();
  BOOST_TEST(session.message_tags().empty());
}

BOOST_AUTO_TEST_CASE(replies_and_answer_times) {
  auto policy = compile(R"toml(
[[rule]]
name = "busy"
when = "sender == 'busy@example.org'"
then = "tempfail 421 4.7.0 Too busy"
[[rule]]
name = "late"
when = "dkim == 'fail'"
then = "reject"
)toml");
  PolicySession session(policy);
  Facts facts = connect_facts("192.0.2.1");
  facts.set("sender", std::string("busy@example.org"));
  const Verdict busy = session.evaluate(Phase::mail, facts);
  BOOST_TEST((busy.answer == AnswerTime::now_and_close));
  BOOST_TEST(busy.reply->to_string() == "421 4.7.0 Too busy");
  facts.set("dkim", std::string("fail"));
  const Verdict late = session.evaluate(Phase::data, facts);
  BOOST_TEST((late.answer == AnswerTime::now));
  BOOST_TEST(late.reply->to_string() == "550 5.7.1 Rejected by policy");
  // A filter failure at rcpt or data is answered at once.
  PolicySession failing(policy);
  const Verdict rcpt = failing.evaluate(Phase::rcpt, facts, {"greylist"});
  BOOST_TEST(rcpt.reply->to_string() == "451 4.3.0 Temporary failure, try again later");
  BOOST_TEST((rcpt.answer == AnswerTime::now));
  BOOST_TEST(rcpt.failed_filter == "greylist");
  BOOST_TEST(default_reply(Action::disconnect, Phase::mail).to_string() ==
             "421 4.7.0 Closing connection");
  BOOST_TEST(default_reply(Action::tempfail, Phase::connect).to_string() ==
             "421 4.7.0 Try again later");
  BOOST_TEST(default_reply(Action::reject, Phase::helo).to_string() ==
             "554 5.7.1 Rejected by policy");
}

BOOST_AUTO_TEST_CASE(a_fact_of_the_wrong_type_counts_as_absent) {
  PolicySession session(compile(R"toml(
[[rule]]
name = "spf"
when = "spf == 'fail'"
then = "reject"
)toml"));
  Facts facts;
  facts.set("spf", std::int64_t{1});
  const Verdict verdict = session.evaluate(Phase::mail, facts);
  BOOST_TEST((verdict.action == Action::none));
  BOOST_REQUIRE(verdict.trace.rules.size() == 1u);
  BOOST_TEST((verdict.trace.rules[0].result == Truth::unknown));
}

BOOST_AUTO_TEST_CASE(large_file_lists_match) {
  std::string list;
  for (int i = 0; i < 100000; ++i)
    list += "host" + std::to_string(i) + ".example\n";
  for (int i = 0; i < 256; ++i)
    list += "10.0." + std::to_string(i) + ".0/24\n";
  const LoadResult result = load_policy(
      {"dir/p.toml"}, full_catalog(),
      memory_reader({{"dir/p.toml",
                      "[lists]\nbig = \"file:big.txt\"\n[[rule]]\nname = \"r\"\n"
                      "when = \"helo in big or client.ip in big\"\nthen = \"reject\"\n"},
                     {"dir/big.txt", list}}));
  BOOST_REQUIRE(result.ok());
  PolicySession session(result.policy);
  Facts facts = connect_facts("10.0.255.9");
  facts.set("helo", std::string("nothing.example"));
  const Verdict by_ip = session.evaluate(Phase::helo, facts);
  BOOST_TEST((by_ip.action == Action::reject));
  BOOST_TEST(by_ip.trace.rules[0].checks[1].detail ==
             "client.ip is 10.0.255.9, listed as '10.0.255.0/24' at dir/big.txt:100256");
  PolicySession other(result.policy);
  facts.set("helo", std::string("mx.HOST99999.example"));
  const Verdict by_name = other.evaluate(Phase::helo, facts);
  BOOST_TEST(by_name.trace.rules[0].checks[0].detail ==
             "helo is 'mx.HOST99999.example', listed as 'host99999.example' at dir/big.txt:100000");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(loading)

BOOST_AUTO_TEST_CASE(reports_unreadable_files_and_deep_toml) {
  LoadResult missing = load_policy({"nope.toml"}, full_catalog(), memory_reader({}));
  BOOST_TEST(!missing.ok());
  BOOST_TEST(missing.error_text() == "nope.toml: cannot read the policy file: no such file\n");

  const std::string deep = "x = " + std::string(100000, '[') + "\n";
  LoadResult nested =
      load_policy({"deep.toml"}, full_catalog(), memory_reader({{"deep.toml", deep}}));
  BOOST_TEST(nested.error_text() ==
             "deep.toml:1:1: arrays and tables nest deeper than 32 levels\n");
  // toml11 must never see malformed UTF-8 (it reads out of bounds on some of it).
  LoadResult bad_utf8 =
      load_policy({"u.toml"}, full_catalog(), memory_reader({{"u.toml", "# ok\n'he\xb3'x = 1\n"}}));
  BOOST_TEST(bad_utf8.error_text() == "u.toml:2:4: invalid UTF-8; a policy file must be UTF-8\n");
  // Brackets inside strings and comments do not count.
  const std::string quoted =
      "# [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n[lists]\nx = [\"" + std::string(40, '[') + "\"]\n";
  LoadResult fine = load_policy({"q.toml"}, full_catalog(), memory_reader({{"q.toml", quoted}}));
  BOOST_TEST(fine.error_text().find("nest deeper") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(policy_records_rules_in_order_with_their_phase) {
  auto policy = compile(R"toml(
[lists]
a = ["example.org"]
[[rule]]
name = "one"
when = "sender in a"
then = "continue"
[[rule]]
name = "two"
when = "true"
mode = "observe"
then = "reject"
)toml");
  BOOST_REQUIRE(policy->rules().size() == 2u);
  BOOST_TEST(policy->rules()[0].name == "one");
  BOOST_TEST((policy->rules()[0].phase == Phase::mail));
  BOOST_TEST(!policy->rules()[0].phase_explicit);
  BOOST_TEST(policy->rules()[0].location() == "p.toml:4");
  BOOST_TEST((policy->rules()[1].mode == Mode::observe));
  BOOST_TEST((policy->rules()[1].phase == Phase::connect));
  BOOST_TEST(policy->lists().at("a")->entries().size() == 1u);
  BOOST_TEST(policy->files() == std::vector<std::string>{"p.toml"});
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(rendering)

BOOST_AUTO_TEST_CASE(json_is_what_the_spec_says) {
  PolicySession session(compile(R"toml([[rule]]
name = "r"
when = "spf == 'fail'"
then = "reject 550 5.7.23 SPF fail for {sender.domain}"
)toml"));
  Facts facts;
  facts.set("spf", std::string("fail"));
  facts.set("sender.domain", std::string("x\x01.example"));
  const std::string json = render_json(session.evaluate(Phase::mail, facts));
  // Written by hand from the field list in docs/policy-language.md.
  const std::string expected =
      R"({"phase":"mail","evidence":[{"fact":"sender.domain","type":"string","value":"x\u0001.example"},)"
      R"({"fact":"spf","type":"string","value":"fail"}],"failed_filters":[],"notes":[],)"
      R"("rules":[{"rule":"r","location":"p.toml:1","mode":"enforce","when":"spf == 'fail'",)"
      R"("result":"match","checks":[{"test":"spf == 'fail'","result":"true","detail":"spf is 'fail'"}],)"
      R"("then":"reject 550 5.7.23 SPF fail for x?.example"}],)"
      R"("verdict":{"action":"reject","reply":{"code":550,"enhanced":"5.7.23","text":"SPF fail for x?.example"},)"
      R"("answer":"now","rule":"r","mode":"enforce","decided_at":"mail","failed_filter":null,)"
      R"("evidence":[{"fact":"spf","type":"string","value":"fail"},)"
      R"({"fact":"sender.domain","type":"string","value":"x\u0001.example"}],"tags":[],"observed":[]}})";
  BOOST_TEST(json == expected);
  BOOST_TEST(JsonChecker(json).valid());
}

BOOST_AUTO_TEST_CASE(json_stays_valid_whatever_the_facts_hold) {
  PolicySession session(compile(R"toml(
[[rule]]
name = "quote \" and backslash \\ in a name"
when = "helo != '' or present(dnsbl.lists)"
then = "tag X-H: {helo}"
[[rule]]
name = "observe"
when = "true"
mode = "observe"
then = "tempfail 451 4.7.1 {helo}"
)toml"));
  Facts facts = connect_facts("2001:db8::1");
  facts.set("helo", std::string("\"\\\x00\x7f\xff\r\n\t", 8));
  facts.set("dnsbl.lists", FactList{"a\"b", "\\"});
  std::vector<Verdict> verdicts;
  verdicts.push_back(session.evaluate(Phase::connect, facts));
  verdicts.push_back(session.evaluate(Phase::helo, facts, {"helo"}));
  const std::string json = render_json(verdicts);
  BOOST_TEST(JsonChecker(json).valid());
  BOOST_TEST(json.find("\\u0000") != std::string::npos);
  BOOST_TEST(!JsonChecker(json.substr(0, json.size() - 1)).valid());
  // Text traces stay one line per item too: no raw control bytes.
  const std::string text = render_text(verdicts);
  for (char c : text)
    BOOST_TEST((c == '\n' || static_cast<unsigned char>(c) >= 0x20));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(sharing)

BOOST_AUTO_TEST_CASE(one_policy_serves_many_threads) {
  auto policy = compile(R"toml(
[lists]
bad = ["198.51.100.0/24"]
[[rule]]
name = "bad"
when = "client.ip in bad"
then = "reject"
[[rule]]
name = "tag"
when = "sender.domain == 'example.org'"
then = "tag X-T: {sender}"
)toml");
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        PolicySession session(policy, SessionOptions{false});
        const bool bad = (i + t) % 2 == 0;
        Facts facts = connect_facts(bad ? "198.51.100.7" : "192.0.2.7");
        const Verdict verdict = session.evaluate(Phase::connect, facts);
        if ((verdict.action == Action::reject) != bad) ++wrong;
        facts.set("sender", "u" + std::to_string(i) + "@example.org");
        facts.set("sender.domain", std::string("example.org"));
        const Verdict mail = session.evaluate(Phase::mail, facts);
        if (mail.tags.size() != 1 ||
            mail.tags[0].value != "u" + std::to_string(i) + "@example.org") {
          ++wrong;
        }
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  BOOST_TEST(wrong.load() == 0);
}

BOOST_AUTO_TEST_CASE(a_reload_swaps_the_policy_for_new_sessions_only) {
  std::atomic<std::shared_ptr<const Policy>> current{compile(R"toml([[rule]]
name = "old"
when = "true"
then = "tag X-Policy: old"
)toml")};
  PolicySession running(current.load());
  current.store(compile(R"toml([[rule]]
name = "new"
when = "true"
then = "tag X-Policy: new"
)toml"));
  PolicySession fresh(current.load());
  BOOST_TEST(running.evaluate(Phase::connect, Facts{}).tags.at(0).value == "old");
  BOOST_TEST(fresh.evaluate(Phase::connect, Facts{}).tags.at(0).value == "new");
}

BOOST_AUTO_TEST_SUITE_END()
