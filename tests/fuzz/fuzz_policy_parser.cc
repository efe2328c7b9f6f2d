// libFuzzer target for the policy language: conditions (parse, compile, evaluate), actions
// and reply templates, list entries, and whole policy files through the TOML loader and a
// PolicySession, rendered as text and JSON. It must never crash and nothing may throw out of
// LLVMFuzzerTestOneInput (an escaping exception aborts, which libFuzzer reports).
//
// The first input byte picks the part; the rest is the text.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "fact_catalog.h"
#include "policy.h"
#include "policy_action.h"
#include "policy_condition.h"
#include "policy_expression.h"
#include "policy_list.h"
#include "policy_session.h"

using namespace portcullis;
using namespace portcullis::policy;

namespace {

const FactCatalog& catalog() {
  static const FactCatalog instance =
      builtin_fact_catalog({"pregreet", "helo", "dnsbl", "spf", "ratelimit", "dkim"},
                           {{"conn", Phase::connect}, {"msgs", Phase::mail}});
  return instance;
}

const Facts& facts() {
  static const Facts instance = [] {
    Facts f;
    f.set("client.ip", *IpAddress::parse("192.0.2.7"));
    f.set("client.port", std::int64_t{25000});
    f.set("helo", std::string("mx.example.org\r\n\x00\xff", 18));
    f.set("helo.check", std::string("ok"));
    f.set("tls", true);
    f.set("sender", std::string("a@example.org"));
    f.set("sender.domain", std::string("example.org"));
    f.set("size", std::int64_t{1} << 40);
    f.set("dnsbl.lists", FactList{"zen.example", "b'l"});
    f.set("dnsbl.score", std::int64_t{-3});
    f.set("rate.conn.exceeded", false);
    return f;
  }();
  return instance;
}

std::shared_ptr<const NamedList> sample_list() {
  static const auto list = [] {
    std::vector<ListEntry> entries;
    std::string error;
    for (const char* text :
         {"192.0.2.0/24", "2001:db8::/32", "example.org", "=x.example", "a@b.example"}) {
      entries.push_back(*parse_list_entry(text, &error));
    }
    return std::make_shared<const NamedList>("known", "f:1", std::move(entries));
  }();
  return list;
}

void fuzz_condition(std::string_view text) {
  auto syntax = parse_condition(text);
  const auto* node = std::get_if<SyntaxNode>(&syntax);
  if (node == nullptr) return;
  CompileContext context;
  context.catalog = &catalog();
  context.find_list = [](std::string_view name) -> std::shared_ptr<const NamedList> {
    return name == "known" ? sample_list() : nullptr;
  };
  context.list_names = {"known"};
  context.rule_name = "fuzz";
  auto compiled = compile_condition(*node, context);
  if (const auto* condition = std::get_if<CompiledCondition>(&compiled)) {
    std::vector<CheckTrace> checks;
    evaluate(condition->root, facts(), &checks);
    evaluate(condition->root, Facts{}, nullptr);
    (void)condition->root.text();
  }
}

void fuzz_action(std::string_view text) {
  auto action = parse_action(text);
  if (const auto* spec = std::get_if<ActionSpec>(&action)) {
    if (spec->reply) (void)spec->reply->text.render(facts(), max_reply_text);
    (void)spec->header_value.render(facts(), max_header_value);
    (void)spec->header_value.source();
  }
}

void fuzz_list(std::string_view text) {
  std::vector<ListEntry> entries;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string error;
    if (auto entry = parse_list_entry(text.substr(start, end - start), &error)) {
      entries.push_back(std::move(*entry));
    }
    start = end + 1;
  }
  const NamedList list("fuzz", "", std::move(entries));
  (void)list.match_ip(*facts().ip("client.ip"));
  (void)list.match_ip(*IpAddress::parse("::ffff:192.0.2.9"));
  (void)list.match_string("user@sub.example.org");
  (void)list.match_string(text.substr(0, 64));
}

void fuzz_policy_file(std::string_view text) {
  // The same bytes serve as the policy and as any list file it names.
  const std::string content(text);
  FileReader reader = [&content](const std::string&, std::string*) {
    return std::optional<std::string>(content);
  };
  const LoadResult result = load_policy({"fuzz.toml"}, catalog(), reader);
  (void)result.error_text();
  if (!result.ok()) return;
  PolicySession session(result.policy, SessionOptions{content.size() % 2 == 0});
  std::vector<Verdict> verdicts;
  for (Phase phase : all_phases) {
    verdicts.push_back(session.evaluate(phase, facts(), {"spf"}));
    if (phase == Phase::helo) session.starttls();
  }
  session.reset_transaction();
  (void)render_text(verdicts);
  (void)render_json(verdicts);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 4) {
    case 0:
      fuzz_condition(text);
      break;
    case 1:
      fuzz_action(text);
      break;
    case 2:
      fuzz_list(text);
      break;
    default:
      fuzz_policy_file(text);
      break;
  }
  return 0;
}
