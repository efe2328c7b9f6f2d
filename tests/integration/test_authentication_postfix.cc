// SPF, DKIM and DMARC end to end (issue 14): swaks, bound to 127.0.0.2, sends through Portcullis
// to a real Postfix that relays to an smtp-sink. Portcullis runs policies/default.toml (its
// trusted networks narrowed to 127.0.0.1, as the quick start does, so 127.0.0.2 is a stranger,
// and its greylist rule taken out, so that each message is delivered at its first attempt:
// greylisting end to end is test_greylist_postfix.cc) with the whole DNS chain against the
// in-process test DNS server. The DKIM key is made for the
// run with openssl and the messages are signed with dkimpy's dkimsign (Debian python3-dkim), an
// implementation other than the one Portcullis verifies with.
//
// Checked: an aligned, signed message arrives with Authentication-Results spf=pass, dkim=pass
// and dmarc=pass; a message altered after signing arrives with dkim=fail; a From of a domain
// whose DMARC policy is p=reject, sent by a client that domain does not authorise and without
// its signature, is refused and logged in the rejection log with its evidence.
#define BOOST_TEST_MODULE integration_authentication_postfix
#include <fmt/core.h>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>

#include "fixtures.h"
#include "json_value.h"
#include "test_dns_server.h"
#include "test_support.h"

using namespace portcullis::test;
namespace fs = std::filesystem;

namespace {

constexpr const char* client_address = "127.0.0.2";

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

std::string run_or_throw(const std::vector<std::string>& argv) {
  const CommandResult result = run_command(argv, 60s);
  if (!result.status.success()) {
    throw std::runtime_error(argv.front() + " failed: " + result.status.describe() + "\n" +
                             result.out + result.err);
  }
  return result.out;
}

// TXT strings hold at most 255 bytes (RFC 1035 3.3.14): a 2048-bit key is several strings.
std::vector<std::string> txt_strings(const std::string& text) {
  std::vector<std::string> strings;
  for (size_t at = 0; at < text.size(); at += 255)
    strings.push_back(text.substr(at, 255));
  return strings;
}

struct AuthEnvironment {
  AuthEnvironment() {
    if (!running_as_root()) throw std::runtime_error("a private Postfix needs root");
    dir.chmod(0755);
    key_path = dir / "dkim.key";
    run_or_throw({"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                  "-out", key_path.string()});
    run_or_throw({"openssl", "pkey", "-in", key_path.string(), "-pubout", "-outform", "DER", "-out",
                  (dir / "dkim.der").string()});
    std::string public_key =
        run_or_throw({"openssl", "base64", "-A", "-in", (dir / "dkim.der").string()});
    while (!public_key.empty() && (public_key.back() == '\n' || public_key.back() == '\r'))
      public_key.pop_back();

    // example.test: the sender's domain, signing with selector "sel", SPF for the client,
    // DMARC p=reject. bank.test: p=reject, no SPF for this client, no key.
    dns.add_txt("sel._domainkey.example.test", txt_strings("v=DKIM1; k=rsa; p=" + public_key));
    dns.add_txt("example.test", {"v=spf1 ip4:127.0.0.2 -all"});
    dns.add_txt("_dmarc.example.test", {"v=DMARC1; p=reject"});
    dns.add_txt("bank.test", {"v=spf1 ip4:192.0.2.0/24 -all"});
    dns.add_txt("_dmarc.bank.test", {"v=DMARC1; p=reject"});
    dns.add_ptr("2.0.0.127.in-addr.arpa", "client.example.test");
    dns.add_a("client.example.test", client_address);

    policy_path = dir / "policy.toml";
    const std::string shipped =
        without_policy_rule(read_text(fs::path(source_root()) / "policies" / "default.toml"),
                            "greylist unknown triplets");
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
    options.settings["server"]["authserv_id"] = "\"mx.portcullis.test\"";
    options.settings["dns"] = {{"resolvers", fmt::format("[\"{}\"]", dns.address())},
                               {"timeout", "2"}};
    options.settings["filters"] = {
        {"chain", "[\"pregreet\", \"helo\", \"fcrdns\", \"dnsbl\", \"spf\", \"dkim\", \"dmarc\"]"}};
    options.settings["filter.pregreet"] = {{"wait_ms", "200"}, {"teaser", "false"}};
    options.settings["filter.dnsbl"] = {
        {"list", "[{ zone = \"dnsbl.example.test\", weight = 3 }]"}};
    options.settings["policy"] = {{"files", fmt::format("[\"{}\"]", policy_path.string())}};
    options.settings["log"]["rejections"] = fmt::format("\"{}\"", rejections_path.string());
    proxy = std::make_unique<PortcullisFixture>(options);
    instance = this;
  }
  ~AuthEnvironment() {
    instance = nullptr;
    proxy.reset();
  }

  TempDir dir{"portcullis-auth"};
  TestDnsServer dns;
  fs::path key_path;
  fs::path policy_path;
  fs::path rejections_path;
  std::unique_ptr<PostfixFixture> postfix;
  std::unique_ptr<PortcullisFixture> proxy;
  int messages = 0;

  static AuthEnvironment* instance;
};
AuthEnvironment* AuthEnvironment::instance = nullptr;

BOOST_TEST_GLOBAL_FIXTURE(AuthEnvironment);

AuthEnvironment& env() {
  return *AuthEnvironment::instance;
}

std::string message_text(const std::string& from, const std::string& marker) {
  return fmt::format(
      "From: {}\n"
      "To: bob@example.test\n"
      "Subject: authentication {}\n"
      "Date: Mon, 07 Dec 2026 10:00:00 +0000\n"
      "Message-ID: <{}@example.test>\n"
      "\n"
      "{}\n"
      "A second line of the body.\n",
      from, marker, marker, marker);
}

// dkimsign's output: the DKIM-Signature field, then the message unchanged.
std::string signed_message(const std::string& message) {
  const fs::path unsigned_path = env().dir / "unsigned.eml";
  write_text(unsigned_path, message);
  const CommandResult result =
      run_command({"bash", "-c",
                   fmt::format("dkimsign --hcanon relaxed --bcanon relaxed sel example.test '{}' "
                               "<'{}'",
                               env().key_path.string(), unsigned_path.string())},
                  60s);
  BOOST_TEST_REQUIRE(result.status.success(), result.status.describe() << "\n" << result.err);
  BOOST_TEST_REQUIRE(contains(result.out, "DKIM-Signature: "), result.out);
  return result.out;
}

CommandResult swaks(const std::string& envelope_from, const std::string& message) {
  const fs::path path = env().dir / fmt::format("message-{}.eml", ++env().messages);
  write_text(path, message);
  return run_command(
      {"swaks", "--server", "127.0.0.1", "--port", std::to_string(env().proxy->port()),
       "--local-interface", client_address, "--helo", "client.example.test", "--from",
       envelope_from, "--to", "bob@example.test", "--data", path.string(), "--timeout", "30"},
      90s);
}

// The Authentication-Results field Portcullis wrote (our authserv-id), unfolded.
std::string our_authentication_results(const std::string& message) {
  static const std::regex field(
      R"(Authentication-Results: mx\.portcullis\.test;((?:[^\r\n]|\r?\n[ \t])*))");
  std::smatch match;
  if (!std::regex_search(message, match, field)) return {};
  static const std::regex folding(R"(\r?\n[ \t]+)");
  return std::regex_replace(match[1].str(), folding, " ");
}

std::string delivered(const std::string& marker) {
  auto& sink = env().postfix->relay_sink();
  BOOST_TEST_REQUIRE(wait_until([&] { return !sink.message_with(marker).empty(); }, 30s),
                     "no message with " << marker << " at Postfix's sink\n"
                                        << env().postfix->log());
  return sink.message_with(marker);
}

}  // namespace

BOOST_AUTO_TEST_CASE(an_aligned_signed_message_passes_spf_dkim_and_dmarc) {
  const std::string marker = "AUTH-ALIGNED-MARKER";
  const CommandResult sent =
      swaks("alice@example.test", signed_message(message_text("alice@example.test", marker)));
  BOOST_TEST_REQUIRE(sent.status.success(), sent.status.describe()
                                                << "\n"
                                                << sent.out << env().proxy->diagnostics());
  const std::string results = our_authentication_results(delivered(marker));
  BOOST_TEST(contains(results, "spf=pass smtp.mailfrom=example.test"), results);
  BOOST_TEST(contains(results, "dkim=pass"), results);
  BOOST_TEST(contains(results, "header.d=example.test"), results);
  BOOST_TEST(contains(results, "header.s=sel"), results);
  BOOST_TEST(contains(results, "dmarc=pass header.from=example.test"), results);
}

BOOST_AUTO_TEST_CASE(a_message_altered_after_signing_shows_dkim_fail) {
  const std::string marker = "AUTH-TAMPERED-MARKER";
  std::string message = signed_message(message_text("alice@example.test", marker));
  const size_t at = message.find("A second line");
  BOOST_TEST_REQUIRE(at != std::string::npos);
  message.replace(at, 1, "X");  // "X second line": the body hash no longer matches
  const CommandResult sent = swaks("alice@example.test", message);
  BOOST_TEST_REQUIRE(sent.status.success(), sent.status.describe()
                                                << "\n"
                                                << sent.out << env().proxy->diagnostics());
  const std::string results = our_authentication_results(delivered(marker));
  BOOST_TEST(contains(results, "dkim=fail"), results);
  BOOST_TEST(!contains(results, "dkim=pass"), results);
  // SPF still passes for example.test and is aligned with the From domain.
  BOOST_TEST(contains(results, "spf=pass"), results);
  BOOST_TEST(contains(results, "dmarc=pass"), results);
}

BOOST_AUTO_TEST_CASE(a_spoofed_from_of_a_reject_domain_is_refused_and_logged) {
  const std::string marker = "AUTH-SPOOFED-MARKER";
  // The envelope is example.test's (SPF passes), the From is bank.test's: not aligned, and no
  // signature of bank.test.
  const CommandResult sent = swaks("alice@example.test", message_text("ceo@bank.test", marker));
  BOOST_TEST(!sent.status.success(), sent.out);
  BOOST_TEST(contains(sent.out, "<** 550 5.7.1"), sent.out);
  BOOST_TEST(env().postfix->relay_sink().message_with(marker).empty());

  BOOST_TEST_REQUIRE(wait_until(
      [&] {
        return fs::exists(env().rejections_path) &&
               contains(read_text(env().rejections_path), "dmarc");
      },
      10s));
  std::optional<JsonValue> record;
  for (const auto& line : split_lines(read_text(env().rejections_path))) {
    if (!contains(line, "dmarc")) continue;
    std::string error;
    record = parse_json(line, &error);
    BOOST_TEST_REQUIRE(record.has_value(), line << ": " << error);
  }
  BOOST_TEST_REQUIRE(record.has_value());
  BOOST_TEST(record->find("phase")->to_text() == "data");
  BOOST_TEST(record->find("action")->to_text() == "reject");
  const JsonValue* evidence = record->find("evidence");
  BOOST_TEST_REQUIRE(evidence != nullptr);
  BOOST_TEST(evidence->find("dmarc") != nullptr, evidence->to_text());
  BOOST_TEST(evidence->find("dmarc")->to_text() == "fail", evidence->to_text());
  BOOST_TEST(evidence->find("dmarc.policy")->to_text() == "reject", evidence->to_text());
}
