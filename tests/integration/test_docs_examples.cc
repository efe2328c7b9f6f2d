// The docs say what exists: every example shown as a file or a command is loaded or run by the
// real binary.
//
// Each fenced block of docs/*.md, contrib/grafana/README.md and contrib/multi-node/README.md says
// what it is in its info string (README.md: the blocks whose info string has a second word; its
// other sections are checked elsewhere):
//
//   ```toml config          part of portcullis.toml: put into a minimal config (listener,
//                           upstream, state_dir), `portcullis check` must pass
//   ```toml config-refused  the same, `check` must fail; the next block, ```text check-output,
//                           is check's error stream, exactly
//   ```toml policy          a policy file: loaded by `check` with the pregreet and helo filters
//                           in the chain
//   ```toml policy-refused  the same, `check` must fail, followed by ```text check-output
//   ```text list-file PATH  a list file a policy example of the same page reads (PATH relative
//                           to the policy file)
//   ```sh command           run with bash -euo pipefail, must exit 0; a ```text output block
//                           right after it must equal its standard output
//   ```sh follow            a command that runs until stopped (tail -f …): it must print, and
//                           print a record written after it started
//   ```sh service           `portcullis run …`: it must listen, and stop on SIGTERM with exit 0
//   ```LANG sample          shown, not run (sample output, a grammar, a code sketch, another
//                           program's config); not for toml or sh
//
// Commands run in a sandbox that stands for an installed machine: `portcullis` on PATH is the
// binary under test, /etc/portcullis, /var/lib/portcullis and /var/log/portcullis are
// directories of the sandbox, "127.0.0.1:9325" (the example metrics address) is the sandbox's
// metrics listener, and `systemctl show --property=MainPID --value portcullis.service` prints
// the pid of the sandbox's own `portcullis run` (behind a PROXY-protocol listener, so the test
// can send sessions from documentation addresses such as 192.0.2.10), which writes a real
// rejection log. Outputs are compared after the sandbox's paths are turned back into those.
#define BOOST_TEST_MODULE integration_docs_examples
#include <fmt/core.h>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fixtures.h"
#include "test_dns_server.h"
#include "test_support.h"

using namespace portcullis::test;
namespace fs = std::filesystem;

namespace {

struct DocBlock {
  std::string page;  // relative to the source root
  int line = 0;      // of the opening fence
  std::string language;
  std::string kind;
  std::string argument;
  std::string text;
  bool strict = true;  // every block of the page must say what it is

  std::string where() const { return fmt::format("{}:{}: ```{} {}", page, line, language, kind); }
};

// The pages whose every block says what it is, and README.md.
std::vector<std::pair<std::string, bool>> documentation_pages() {
  std::vector<std::pair<std::string, bool>> pages;
  for (const auto& entry : fs::directory_iterator(source_root() / "docs")) {
    if (entry.path().extension() == ".md")
      pages.emplace_back("docs/" + entry.path().filename().string(), true);
  }
  std::sort(pages.begin(), pages.end());
  pages.emplace_back("contrib/grafana/README.md", true);
  pages.emplace_back("contrib/multi-node/README.md", true);
  pages.emplace_back("README.md", false);
  return pages;
}

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> words;
  std::istringstream stream(text);
  for (std::string word; stream >> word;)
    words.push_back(word);
  return words;
}

// Fenced blocks (``` only, indented by at most three spaces, as in a list item).
std::vector<DocBlock> blocks_of(const std::string& page, bool strict) {
  const std::vector<std::string> lines = split_lines(read_file(source_root() / page));
  static const std::regex opening(R"(^( {0,3})```(.*)$)");
  static const std::regex closing(R"(^ {0,3}```\s*$)");
  std::vector<DocBlock> blocks;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::smatch match;
    if (!std::regex_match(lines[i], match, opening)) continue;
    const size_t indent = match[1].length();
    DocBlock block;
    block.page = page;
    block.line = static_cast<int>(i + 1);
    block.strict = strict;
    const std::vector<std::string> info = words_of(match[2].str());
    if (!info.empty()) block.language = info[0];
    if (info.size() > 1) block.kind = info[1];
    for (size_t w = 2; w < info.size(); ++w)
      block.argument += (block.argument.empty() ? "" : " ") + info[w];
    size_t j = i + 1;
    for (; j < lines.size() && !std::regex_match(lines[j], closing); ++j) {
      const std::string& line = lines[j];
      const size_t blanks = std::min(indent, line.find_first_not_of(' ') == std::string::npos
                                                 ? line.size()
                                                 : line.find_first_not_of(' '));
      block.text += line.substr(blanks) + "\n";
    }
    BOOST_REQUIRE_MESSAGE(j < lines.size(), page << ":" << block.line << ": unclosed ``` block");
    i = j;
    blocks.push_back(std::move(block));
  }
  return blocks;
}

std::vector<DocBlock> all_blocks() {
  std::vector<DocBlock> blocks;
  for (const auto& [page, strict] : documentation_pages()) {
    std::vector<DocBlock> page_blocks = blocks_of(page, strict);
    blocks.insert(blocks.end(), page_blocks.begin(), page_blocks.end());
  }
  return blocks;
}

const std::map<std::string, std::set<std::string>>& kinds_by_language() {
  static const std::map<std::string, std::set<std::string>> kinds = {
      {"toml", {"config", "config-refused", "policy", "policy-refused"}},
      {"sh", {"command", "follow", "service"}},
      {"text", {"output", "check-output", "list-file", "sample"}},
  };
  return kinds;
}

// An empty string when the block says what it is, else what is wrong.
std::string classification_problem(const DocBlock& block) {
  if (block.language.empty())
    return "a ``` block without an info string: say what it is (see "
           "tests/integration/test_docs_examples.cc)";
  auto known = kinds_by_language().find(block.language);
  if (known == kinds_by_language().end()) {
    if (block.kind == "sample") return "";
    return fmt::format("```{} {}: a block in {} is a `sample` (shown, not run)", block.language,
                       block.kind, block.language);
  }
  if (!known->second.contains(block.kind)) {
    std::string names;
    for (const auto& name : known->second)
      names += (names.empty() ? "" : ", ") + name;
    return fmt::format("```{} {}: the kind must be one of {}", block.language, block.kind, names);
  }
  if (block.kind == "list-file" && block.argument.empty())
    return "```text list-file needs the list file's path";
  if (block.kind == "service" && split_lines(block.text).size() != 1)
    return "```sh service is one command line";
  return "";
}

// The blocks the test acts on: every block of a strict page; of README.md, those whose info
// string has a second word (so that a misspelt kind there fails too).
std::vector<DocBlock> example_blocks() {
  std::vector<DocBlock> examples;
  for (auto& block : all_blocks()) {
    if (block.strict || !block.kind.empty()) examples.push_back(std::move(block));
  }
  return examples;
}

// ---- TOML fragments ----

struct TomlSection {
  std::string header;  // "server", or "[listen]" for an array of tables
  std::vector<std::string> lines;
};

std::string key_of(const std::string& line) {
  static const std::regex key(R"(^\s*([A-Za-z0-9_-]+)\s*=)");
  std::smatch match;
  return std::regex_search(line, match, key) ? match[1].str() : "";
}

std::string header_of(const std::string& line) {
  static const std::regex header(R"(^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(#.*)?$)");
  std::smatch match;
  if (!std::regex_match(line, match, header)) return "";
  return match[1].str() == "[[" ? "[" + match[2].str() + "]" : match[2].str();
}

// The fragment with the base's sections it lacks appended and, in the sections both have, the
// base's keys the fragment does not set added at the end of the fragment's section (lines
// before that point keep their numbers).
std::string merge_config(const std::string& fragment, const std::vector<TomlSection>& base) {
  const std::vector<std::string> lines = split_lines(fragment);
  std::map<std::string, std::pair<size_t, std::set<std::string>>> sections;  // end line, keys
  std::string current;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string header = header_of(lines[i]);
    if (!header.empty()) {
      current = header;
      sections[current].first = i + 1;
      continue;
    }
    if (current.empty()) continue;
    if (lines[i].find_first_not_of(" \t") != std::string::npos) sections[current].first = i + 1;
    const std::string key = key_of(lines[i]);
    if (!key.empty()) sections[current].second.insert(key);
  }
  std::map<size_t, std::vector<std::string>> inserted_after;
  std::string appended;
  for (const auto& section : base) {
    auto found = sections.find(section.header);
    if (found == sections.end()) {
      // "[listen]" (an array of tables) becomes "[[listen]]", "server" "[server]".
      appended += fmt::format("\n[{}]\n", section.header);
      for (const auto& line : section.lines)
        appended += line + "\n";
      continue;
    }
    if (section.header.front() == '[') continue;  // the fragment has its own [[...]] blocks
    for (const auto& line : section.lines) {
      if (!found->second.second.contains(key_of(line)))
        inserted_after[found->second.first].push_back(line);
    }
  }
  std::string merged;
  for (size_t i = 0; i <= lines.size(); ++i) {
    if (auto extra = inserted_after.find(i); extra != inserted_after.end()) {
      for (const auto& line : extra->second)
        merged += line + "\n";
    }
    if (i < lines.size()) merged += lines[i] + "\n";
  }
  return merged + appended;
}

// ---- the sandbox ----

std::string toml_string(const std::string& text) {
  return "\"" + text + "\"";
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  if (from.empty()) return text;
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

// A directory that stands for an installed machine, a `portcullis run` on it when asked
// for, and the sessions that fill its rejection log.
class DocsSandbox {
 public:
  DocsSandbox() {
    dir_.chmod(0755);
    for (const char* sub :
         {"bin", "etc/portcullis/policies", "var/lib/portcullis", "var/log/portcullis", "checks"})
      fs::create_directories(root() / sub);
    fs::create_symlink(portcullis_binary(), root() / "bin" / "portcullis");
    write_file(etc() / "policies" / "default.toml",
               read_file(source_root() / "policies" / "default.toml"));
    if (running_as_root()) {
      chown_to_user(root() / "var/lib/portcullis", "nobody");
      chown_to_user(root() / "var/log/portcullis", "nobody");
    }
    listen_port_ = free_loopback_port();
    metrics_port_ = free_loopback_port();
    while (metrics_port_ == listen_port_)
      metrics_port_ = free_loopback_port();
  }

  const fs::path& root() const { return dir_.path(); }
  fs::path etc() const { return root() / "etc/portcullis"; }
  fs::path rejection_log() const { return root() / "var/log/portcullis/rejections.jsonl"; }
  fs::path main_log() const { return root() / "var/log/portcullis/portcullis.log"; }
  uint16_t listen_port() const { return listen_port_; }

  // What every config example is put into.
  std::vector<TomlSection> base_config(uint16_t upstream_port) const {
    std::vector<std::string> server = {
        "hostname = \"mx.example.org\"",
        "state_dir = " + toml_string((root() / "var/lib/portcullis").string()), "workers = 1"};
    if (running_as_root()) server.push_back("user = \"nobody\"");
    return {{"server", server},
            {"[listen]", {fmt::format("address = \"127.0.0.1:{}\"", listen_port_)}},
            {"upstream", {fmt::format("address = \"127.0.0.1:{}\"", upstream_port)}}};
  }

  // /etc/portcullis/portcullis.toml of the sandbox: the default policy, both filters, the
  // rejection log and the metrics, behind a PROXY listener.
  void write_installed_config(uint16_t upstream_port) const {
    std::vector<TomlSection> sections = base_config(upstream_port);
    sections[1].lines.push_back("proxy_protocol = true");
    sections.push_back({"trust", {"proxy_peers = [\"127.0.0.1\"]"}});
    sections.push_back(
        {"log",
         {"main = " + toml_string(main_log().string()),
          "rejections = " + toml_string(rejection_log().string()), "all_transactions = true"}});
    sections.push_back({"metrics", {fmt::format("address = \"127.0.0.1:{}\"", metrics_port_)}});
    // The chain policies/default.toml is written for; the DNS filters ask a test server that
    // knows no name (NXDOMAIN: fcrdns none, not listed, spf none).
    sections.push_back(
        {"dns", {"resolvers = [" + toml_string(dns_.address()) + "]", "timeout = 2"}});
    sections.push_back({"filters",
                        {"chain = [\"pregreet\", \"helo\", \"fcrdns\", \"dnsbl\", \"spf\", "
                         "\"greylist\", \"dkim\", \"dmarc\"]"}});
    sections.push_back({"filter.pregreet", {"wait_ms = 200"}});
    sections.push_back({"[filter.dnsbl.list]", {"zone = \"dnsbl.example.test\"", "weight = 3"}});
    sections.push_back(
        {"policy", {"files = [" + toml_string((etc() / "policies/default.toml").string()) + "]"}});
    write_file(etc() / "portcullis.toml", merge_config("", sections));
  }

  // Doc text → sandbox.
  std::string to_sandbox(std::string text) const {
    for (const auto& [doc, here] : mapping())
      text = replace_all(text, doc, here);
    return text;
  }
  // Sandbox → doc text (for comparing outputs).
  std::string from_sandbox(std::string text) const {
    for (const auto& [doc, here] : mapping())
      text = replace_all(text, here, doc);
    return text;
  }

  std::vector<std::string> command_env() const {
    const char* path = std::getenv("PATH");
    return {fmt::format("PATH={}:{}", (root() / "bin").string(),
                        path ? path : "/usr/local/bin:/usr/bin:/bin")};
  }

  // `check --config portcullis.toml` in its own directory under checks/, as an operator
  // runs it next to the file.
  CommandResult check_in(const fs::path& dir) const {
    return run_command(
        {"/bin/sh", "-c", "cd \"$1\" && exec portcullis check --config portcullis.toml", "sh",
         dir.string()},
        30s, command_env());
  }
  fs::path new_check_dir() {
    fs::path dir = root() / "checks" / std::to_string(++checks_);
    fs::create_directories(dir);
    return dir;
  }

  // ---- the service ----

  void start_service() {
    upstream_ = std::make_unique<SmtpSinkFixture>();
    write_installed_config(upstream_->port());
    service_ = std::make_unique<ChildProcess>(ChildProcess::Options{
        {portcullis_binary(), "run", "--config", (etc() / "portcullis.toml").string()},
        {},
        root() / "service.out",
        root() / "service.err"});
    BOOST_REQUIRE_MESSAGE(wait_until(
                              [&] {
                                return contains(read_file(main_log()), "upstream_reachable") ||
                                       !service_->running();
                              },
                              20s) &&
                              service_->running(),
                          "portcullis run did not reach its upstream: " << service_diagnostics());
    BOOST_REQUIRE(wait_until_listens(listen_port_, 10s));
  }
  ChildProcess& service() { return *service_; }
  std::string service_diagnostics() const {
    return fmt::format("stderr: {}\nmain log: {}",
                       printable(read_file(root() / "service.err"), 2000),
                       printable(read_file(main_log()), 2000));
  }

  // A session from client_ip:client_port (a PROXY v1 header) that greets with `helo` and
  // sends one message; returns the RCPT reply. Its record is in the rejection log on return
  // (a refusal, an observe-mode match or, with all_transactions, the delivery).
  SmtpReply send_session(const std::string& client_ip, const std::string& helo) {
    const int client_port = 41000 + static_cast<int>(++sessions_);
    last_client_port_ = client_port;
    SmtpTestClient client("127.0.0.1", listen_port_);
    client.send(fmt::format("PROXY TCP4 {} 192.0.2.25 {} 25\r\n", client_ip, client_port));
    SmtpReply banner = client.read_reply();
    BOOST_REQUIRE_MESSAGE(banner.code == 220, "banner: " << banner.describe());
    BOOST_REQUIRE_EQUAL(client.command("EHLO " + helo).code, 250);
    BOOST_REQUIRE_EQUAL(client.command("MAIL FROM:<alice@example.org>").code, 250);
    SmtpReply rcpt = client.command("RCPT TO:<bob@example.com>");
    if (rcpt.code == 250) {
      BOOST_REQUIRE_EQUAL(client.command("DATA").code, 354);
      client.send("Subject: docs example\r\n\r\nA message for the docs examples.\r\n.\r\n");
      BOOST_REQUIRE_EQUAL(client.read_reply().code, 250);
    }
    client.command("QUIT");
    const std::string marker = fmt::format("\"client_port\":{},", client_port);
    BOOST_REQUIRE_MESSAGE(
        wait_until([&] { return contains(read_file(rejection_log()), marker); }, 10s),
        "no record of the session from port "
            << client_port << " in the rejection log: " << service_diagnostics());
    return rcpt;
  }
  int last_client_port() const { return last_client_port_; }

 private:
  std::vector<std::pair<std::string, std::string>> mapping() const {
    std::vector<std::pair<std::string, std::string>> pairs = {
        {"/etc/portcullis", etc().string()},
        {"/var/lib/portcullis", (root() / "var/lib/portcullis").string()},
        {"/var/log/portcullis", (root() / "var/log/portcullis").string()},
        {"127.0.0.1:9325", fmt::format("127.0.0.1:{}", metrics_port_)}};
    if (service_)
      pairs.emplace_back("systemctl show --property=MainPID --value portcullis.service",
                         fmt::format("echo {}", service_->pid()));
    return pairs;
  }

  TempDir dir_{"portcullis-docs"};
  TestDnsServer dns_;
  uint16_t listen_port_ = 0;
  uint16_t metrics_port_ = 0;
  int checks_ = 0;
  unsigned sessions_ = 0;
  int last_client_port_ = 0;
  std::unique_ptr<SmtpSinkFixture> upstream_;
  std::unique_ptr<ChildProcess> service_;
};

// The ```text `kind` block after blocks[i] on the same page (past the list files a refused
// policy reads), or nullptr.
const DocBlock* following(const std::vector<DocBlock>& blocks, size_t i, const std::string& kind) {
  for (size_t j = i + 1; j < blocks.size() && blocks[j].page == blocks[i].page; ++j) {
    if (blocks[j].kind == "list-file") continue;
    return blocks[j].language == "text" && blocks[j].kind == kind ? &blocks[j] : nullptr;
  }
  return nullptr;
}

// The block before blocks[i] on the same page, list files skipped, or nullptr.
const DocBlock* preceding(const std::vector<DocBlock>& blocks, size_t i) {
  for (size_t j = i; j-- > 0 && blocks[j].page == blocks[i].page;) {
    if (blocks[j].kind != "list-file") return &blocks[j];
  }
  return nullptr;
}

// The policy examples' chain: no dkim, so that docs/policy-language.md can show the error of a
// rule reading the fact of a filter the chain lacks.
std::vector<TomlSection> policy_config() {
  return {
      {"filters", {"chain = [\"pregreet\", \"helo\", \"fcrdns\", \"dnsbl\", \"spf\", \"dmarc\"]"}},
      {"filter.dnsbl", {"list = [{ zone = \"zen.example.net\", weight = 3 }]"}},
      {"policy", {"files = [\"policy.toml\"]"}}};
}

void check_refusal_output(const DocBlock& block, const DocBlock* expected,
                          const CommandResult& result, const DocsSandbox& sandbox) {
  BOOST_TEST(result.status.exited);
  BOOST_TEST(result.status.code == 1, block.where() << ": check should refuse it; stdout: "
                                                    << result.out << " stderr: " << result.err);
  BOOST_REQUIRE_MESSAGE(expected != nullptr,
                        block.where() << ": a refused example is followed by ```text check-output");
  BOOST_TEST(sandbox.from_sandbox(result.err) == expected->text,
             block.where() << ": check's error stream differs from the ```text check-output "
                              "block; it is:\n"
                           << sandbox.from_sandbox(result.err));
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_example_says_what_it_is) {
  const std::vector<DocBlock> blocks = example_blocks();
  std::map<std::string, int> counts;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const DocBlock& block = blocks[i];
    BOOST_TEST_CONTEXT(block.where()) {
      const std::string problem = classification_problem(block);
      BOOST_TEST(problem.empty(), block.page << ":" << block.line << ": " << problem);
      ++counts[block.kind];
      const DocBlock* before = preceding(blocks, i);
      const bool after_command = before != nullptr && before->kind == "command";
      const bool after_refused = before != nullptr && before->kind.ends_with("-refused");
      if (block.kind == "output")
        BOOST_TEST(after_command, block.where() << ": an output block follows a ```sh command");
      if (block.kind == "check-output")
        BOOST_TEST(after_refused, block.where()
                                      << ": a check-output block follows a refused example");
      if (block.kind.ends_with("-refused"))
        BOOST_TEST(following(blocks, i, "check-output") != nullptr,
                   block.where() << ": a refused example is followed by ```text check-output");
    }
  }
  // The scanner found what the pages hold (so that a broken scanner cannot pass quietly).
  for (const char* kind : {"config", "config-refused", "policy", "policy-refused", "command",
                           "follow", "service", "output", "list-file"})
    BOOST_TEST(counts[kind] > 0, "no ```" << kind << " block found in the docs");
}

BOOST_AUTO_TEST_CASE(config_examples_pass_check) {
  DocsSandbox sandbox;
  const std::vector<DocBlock> blocks = example_blocks();
  const uint16_t upstream_port = free_loopback_port();
  int checked = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const DocBlock& block = blocks[i];
    if (block.language != "toml" || !block.kind.starts_with("config")) continue;
    BOOST_TEST_CONTEXT(block.where()) {
      const fs::path dir = sandbox.new_check_dir();
      write_file(dir / "portcullis.toml",
                 merge_config(sandbox.to_sandbox(block.text), sandbox.base_config(upstream_port)));
      const CommandResult result = sandbox.check_in(dir);
      if (block.kind == "config") {
        BOOST_TEST(result.status.success(), block.where() << ": portcullis check refused it:\n"
                                                          << result.err << "\nthe file:\n"
                                                          << read_file(dir / "portcullis.toml"));
        BOOST_TEST(contains(result.out, "portcullis.toml: ok ("), result.out);
      } else {
        check_refusal_output(block, following(blocks, i, "check-output"), result, sandbox);
      }
      BOOST_TEST_MESSAGE(block.where() << ": checked");
      ++checked;
    }
  }
  BOOST_TEST(checked > 0);
}

BOOST_AUTO_TEST_CASE(policy_examples_pass_check) {
  DocsSandbox sandbox;
  const std::vector<DocBlock> blocks = example_blocks();
  const uint16_t upstream_port = free_loopback_port();
  std::vector<TomlSection> config = sandbox.base_config(upstream_port);
  for (auto& section : policy_config())
    config.push_back(section);
  int checked = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const DocBlock& block = blocks[i];
    if (block.language != "toml" || !block.kind.starts_with("policy")) continue;
    BOOST_TEST_CONTEXT(block.where()) {
      const fs::path dir = sandbox.new_check_dir();
      for (const auto& list : blocks) {
        if (list.page != block.page || list.kind != "list-file") continue;
        fs::create_directories((dir / list.argument).parent_path());
        write_file(dir / list.argument, list.text);
      }
      write_file(dir / "policy.toml", sandbox.to_sandbox(block.text));
      write_file(dir / "portcullis.toml", merge_config("", config));
      const CommandResult result = sandbox.check_in(dir);
      if (block.kind == "policy") {
        BOOST_TEST(result.status.success(), block.where() << ": portcullis check refused it:\n"
                                                          << result.err);
        BOOST_TEST(contains(result.out, "portcullis.toml: ok ("), result.out);
      } else {
        check_refusal_output(block, following(blocks, i, "check-output"), result, sandbox);
      }
      BOOST_TEST_MESSAGE(block.where() << ": checked");
      ++checked;
    }
  }
  BOOST_TEST(checked > 0);
}

BOOST_AUTO_TEST_CASE(commands_run) {
  DocsSandbox sandbox;
  sandbox.start_service();
  // Yesterday's log, rotated as logrotate does it, and the day before, compressed. The first
  // message of a well-behaved client is greylisted by the default policy (451 4.7.1).
  BOOST_TEST(sandbox.send_session("192.0.2.10", "mail.example.net").code == 451);
  BOOST_TEST(sandbox.send_session("198.51.100.7", "localhost").code == 451);
  const fs::path log = sandbox.rejection_log();
  fs::rename(log, log.string() + ".1");
  sandbox.service().send_signal(SIGUSR1);
  BOOST_TEST(sandbox.send_session("192.0.2.10", "192.0.2.10").code == 554);
  write_file(log.string() + ".2", read_file(log.string() + ".1"));
  BOOST_REQUIRE(run_command({"gzip", log.string() + ".2"}, 10s).status.success());

  const std::vector<DocBlock> blocks = example_blocks();
  int ran = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const DocBlock& block = blocks[i];
    if (block.language != "sh" || (block.kind != "command" && block.kind != "follow")) continue;
    BOOST_TEST_CONTEXT(block.where()) {
      // A fresh refusal before every example, so that the current log is never empty (an
      // example may have rotated it).
      BOOST_TEST(sandbox.send_session("192.0.2.10", "192.0.2.10").code == 554);
      const std::string script = fmt::format(
          "set -euo pipefail\ncd {}\n{}", sandbox.root().string(), sandbox.to_sandbox(block.text));
      if (block.kind == "command") {
        const CommandResult result =
            run_command({"/bin/bash", "-c", script}, 60s, sandbox.command_env());
        BOOST_TEST(result.status.success(), block.where() << ": " << result.status.describe()
                                                          << "\nstdout: " << result.out
                                                          << "\nstderr: " << result.err);
        if (const DocBlock* expected = following(blocks, i, "output"))
          BOOST_TEST(sandbox.from_sandbox(result.out) == expected->text,
                     block.where() << ": its output differs from the ```text output block; it "
                                      "is:\n"
                                   << sandbox.from_sandbox(result.out));
      } else {
        // stdbuf: jq writes at once to a pipe as it does to a terminal. timeout stops the
        // whole pipeline (its process group), and bounds it should this test die first.
        const fs::path out = sandbox.root() / fmt::format("follow-{}.out", block.line);
        ChildProcess follow({{"timeout", "60", "stdbuf", "-oL", "/bin/bash", "-c", script},
                             sandbox.command_env(),
                             out,
                             sandbox.root() / "follow.err"});
        const std::string earlier = std::to_string(sandbox.last_client_port());
        BOOST_TEST(wait_until([&] { return contains(read_file(out), earlier); }, 10s),
                   block.where() << ": it did not show the last record: " << read_file(out));
        sandbox.send_session("192.0.2.10", "192.0.2.10");
        const std::string later = std::to_string(sandbox.last_client_port());
        BOOST_TEST(wait_until([&] { return contains(read_file(out), later); }, 10s),
                   block.where() << ": it did not show a record written after it started: "
                                 << read_file(out));
        BOOST_TEST(follow.running(), block.where() << ": it ended by itself");
        follow.stop();
      }
      BOOST_TEST_MESSAGE(block.where() << ": ran");
      ++ran;
    }
  }
  BOOST_TEST(ran > 0);
  BOOST_TEST(sandbox.service().running(),
             "an example stopped the service: " << sandbox.service_diagnostics());
  BOOST_TEST(sandbox.service().stop().success(), sandbox.service_diagnostics());
}

BOOST_AUTO_TEST_CASE(service_examples_start_and_stop) {
  const std::vector<DocBlock> blocks = example_blocks();
  int ran = 0;
  for (const auto& block : blocks) {
    if (block.language != "sh" || block.kind != "service") continue;
    BOOST_TEST_CONTEXT(block.where()) {
      DocsSandbox sandbox;
      SmtpSinkFixture upstream;
      sandbox.write_installed_config(upstream.port());
      ChildProcess service({{"/bin/bash", "-c", "exec " + sandbox.to_sandbox(block.text)},
                            sandbox.command_env(),
                            sandbox.root() / "service.out",
                            sandbox.root() / "service.err"});
      BOOST_TEST(wait_until(
          [&] { return port_listens(sandbox.listen_port()) || !service.running(); }, 20s));
      BOOST_TEST(service.running(),
                 block.where() << ": it exited: " << read_file(sandbox.root() / "service.err"));
      BOOST_TEST(port_listens(sandbox.listen_port()));
      const ExitStatus status = service.stop(35s);
      BOOST_TEST(status.success(), block.where() << ": " << status.describe());
      BOOST_TEST_MESSAGE(block.where() << ": started and stopped");
      ++ran;
    }
  }
  BOOST_TEST(ran > 0);
}
