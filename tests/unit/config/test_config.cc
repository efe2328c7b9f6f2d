#define BOOST_TEST_MODULE config
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "config.h"

using portcullis::BareLfMode;
using portcullis::Config;
using portcullis::ConfigMessage;
using portcullis::ConfigResult;
using portcullis::CpuScheduling;
using portcullis::FailureMode;
using portcullis::FilterInstance;
using portcullis::ListenMode;
using portcullis::load_config;
using portcullis::load_config_text;
using portcullis::LogFormat;
using portcullis::PassClient;

namespace {

std::string data_path(const std::string& name) {
  const char* root = std::getenv("PORTCULLIS_SOURCE_ROOT");
  BOOST_REQUIRE_MESSAGE(root != nullptr, "PORTCULLIS_SOURCE_ROOT is not set");
  return std::string(root) + "/tests/unit/data/config/" + name;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  BOOST_REQUIRE_MESSAGE(in, "cannot read " << path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    lines.push_back(line);
  return lines;
}

std::vector<std::string> texts(const std::vector<ConfigMessage>& messages) {
  std::vector<std::string> out;
  for (const auto& message : messages)
    out.push_back(message.to_string());
  return out;
}

const std::string required = R"(
[[listen]]
address = "127.0.0.1:2525"
[upstream]
address = "127.0.0.1:10025"
)";

// The errors of `text` (with the required parts appended unless told otherwise).
std::vector<std::string> errors_of(const std::string& text, bool add_required = true) {
  const ConfigResult result = load_config_text(add_required ? text + required : text, "t.toml");
  BOOST_TEST(result.config.has_value() == result.errors.empty());
  return texts(result.errors);
}

Config loads(const std::string& text) {
  ConfigResult result = load_config_text(text + required, "t.toml");
  BOOST_REQUIRE_MESSAGE(
      result.config.has_value(),
      "unexpected errors, first: " << (result.errors.empty() ? "" : result.errors[0].to_string()));
  return *result.config;
}

std::string system_host_name() {
  char buffer[256] = {};
  BOOST_REQUIRE(::gethostname(buffer, sizeof buffer - 1) == 0);
  return buffer;
}

}  // namespace

BOOST_AUTO_TEST_CASE(minimal_file_gets_the_documented_defaults) {
  const std::string path = data_path("minimal.toml");
  const ConfigResult result = load_config(path);
  BOOST_REQUIRE(result.errors.empty());
  BOOST_TEST(result.warnings.empty());
  BOOST_REQUIRE(result.config.has_value());
  const Config& config = *result.config;
  BOOST_TEST(config.path == path);

  BOOST_TEST(config.server.hostname == system_host_name());
  BOOST_TEST(config.server.authserv_id == config.server.hostname);
  BOOST_TEST(config.server.state_dir == "/var/lib/portcullis");
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  BOOST_TEST(config.server.workers == cores);
  BOOST_TEST(config.server.user == "");
  BOOST_TEST((config.server.cpu_scheduling == CpuScheduling::batch));
  BOOST_TEST(!config.server.pin_workers);

  BOOST_REQUIRE(config.listeners.size() == 1u);
  BOOST_TEST(config.listeners[0].address.host_port() == "127.0.0.1:2525");
  BOOST_TEST(config.listeners[0].address_text == "127.0.0.1:2525");
  BOOST_TEST((config.listeners[0].mode == ListenMode::smtp));
  BOOST_TEST(config.listeners[0].tls == "");
  BOOST_TEST(!config.listeners[0].proxy_protocol);

  BOOST_REQUIRE(config.upstream.addresses.size() == 1u);
  BOOST_TEST(config.upstream.addresses[0].host_port() == "127.0.0.1:10025");
  BOOST_TEST((config.upstream.pass_client == PassClient::xclient));
  BOOST_TEST(config.upstream.ca_file == "");
  BOOST_TEST(config.upstream.verify_name == "");
  BOOST_TEST(config.upstream.max_connections == 100u);
  BOOST_TEST(config.upstream.reply_timeout == 300u);
  BOOST_TEST(config.upstream.idle_timeout == 5u);

  BOOST_TEST(config.limits.max_sessions == 10000u);
  BOOST_TEST(config.limits.max_sessions_per_ip == 50u);
  BOOST_TEST(config.limits.max_message_size == 52428800u);
  BOOST_TEST(config.limits.max_recipients == 1000u);
  BOOST_TEST(config.limits.max_errors == 20u);
  BOOST_TEST(config.limits.max_junk_commands == 100u);
  BOOST_TEST(config.limits.max_line_length == 65536u);
  BOOST_TEST(config.limits.max_header_size == 102400u);
  BOOST_TEST(config.limits.spill_threshold == 1048576u);
  BOOST_TEST((config.limits.bare_lf == BareLfMode::reject));

  BOOST_TEST(config.timeouts.command == 300u);
  BOOST_TEST(config.timeouts.data_block == 180u);
  BOOST_TEST(config.log.main == "stderr");
  BOOST_TEST((config.log.format == LogFormat::text));
}

BOOST_AUTO_TEST_CASE(full_file_sets_every_key) {
  const ConfigResult result = load_config(data_path("full.toml"));
  BOOST_REQUIRE_MESSAGE(
      result.errors.empty(),
      "first error: " << (result.errors.empty() ? "" : result.errors[0].to_string()));
  BOOST_TEST(result.warnings.empty());
  const Config& config = *result.config;

  BOOST_TEST(config.server.hostname == "mx1.example.org");
  BOOST_TEST(config.server.authserv_id == "auth.example.org");
  BOOST_TEST(config.server.state_dir == "/srv/portcullis/state");
  BOOST_TEST(config.server.workers == 3u);
  BOOST_TEST(config.server.user == "portcullis");
  BOOST_TEST((config.server.cpu_scheduling == CpuScheduling::normal));
  BOOST_TEST(config.server.pin_workers);

  BOOST_REQUIRE(config.listeners.size() == 2u);
  BOOST_TEST(config.listeners[0].address.host_port() == "192.0.2.10:25");
  BOOST_TEST(config.listeners[0].proxy_protocol);
  BOOST_TEST(config.listeners[1].address.host_port() == "[2001:db8::10]:2525");
  BOOST_TEST(config.listeners[1].address.is_ipv6());
  BOOST_TEST(config.listeners[1].address_text == "[2001:db8::10]:2525");
  BOOST_TEST(!config.listeners[1].proxy_protocol);
  BOOST_TEST((config.listeners[1].mode == portcullis::ListenMode::smtps));
  BOOST_TEST(config.listeners[1].tls == "default");

  BOOST_REQUIRE(config.tls.size() == 1u);
  const portcullis::TlsBlockConfig& tls = config.tls[0];
  BOOST_TEST(tls.name == "default");
  BOOST_REQUIRE(tls.certificates.size() == 2u);
  BOOST_TEST(tls.certificates[0].certificate == "/etc/portcullis/rsa.crt");
  BOOST_TEST(tls.certificates[0].key == "/etc/portcullis/rsa.key");
  BOOST_TEST(tls.certificates[1].certificate == "/etc/portcullis/ecdsa.crt");
  BOOST_TEST(tls.certificates[1].key == "/etc/portcullis/ecdsa.key");
  BOOST_TEST(tls.sni == (std::vector<std::string>{"mx1.example.org", "*.mail.example.org"}),
             boost::test_tools::per_element());
  BOOST_TEST(tls.min_version == "TLSv1.3");
  BOOST_TEST(tls.ciphers == "ECDHE+AESGCM");
  BOOST_TEST(tls.ciphersuites == "TLS_AES_256_GCM_SHA384");
  BOOST_TEST(tls.groups == "X25519");
  BOOST_TEST(tls.request_client_certificate);
  BOOST_TEST(
      config.trust.proxy_peers == (std::vector<std::string>{"192.0.2.1/32", "2001:db8::/64"}),
      boost::test_tools::per_element());
  BOOST_TEST(config.trust.proxy_timeout == 7u);

  BOOST_REQUIRE(config.upstream.addresses.size() == 2u);
  BOOST_TEST(config.upstream.addresses[0].host_port() == "127.0.0.1:10025");
  BOOST_TEST(config.upstream.addresses[1].host_port() == "[::1]:10026");
  BOOST_TEST((config.upstream.pass_client == PassClient::proxy_v2));
  BOOST_TEST((config.upstream.tls == portcullis::UpstreamTls::required));
  BOOST_TEST(config.upstream.ca_file == "/etc/ssl/certs/ca.pem");
  BOOST_TEST(config.upstream.verify_name == "postfix.example.org");
  BOOST_TEST(config.upstream.max_connections == 40u);
  BOOST_TEST(config.upstream.reply_timeout == 120u);

  BOOST_TEST(config.limits.max_sessions == 500u);
  BOOST_TEST(config.limits.max_sessions_per_ip == 5u);
  BOOST_TEST(config.limits.max_message_size == 10485760u);
  BOOST_TEST(config.limits.max_recipients == 100u);
  BOOST_TEST(config.limits.max_errors == 10u);
  BOOST_TEST(config.limits.max_line_length == 1000u);
  BOOST_TEST(config.limits.max_header_size == 65536u);
  BOOST_TEST(config.limits.spill_threshold == 0u);
  BOOST_TEST((config.limits.bare_lf == BareLfMode::normalize));

  BOOST_TEST(config.timeouts.command == 60u);
  BOOST_TEST(config.timeouts.data_block == 3600u);
  BOOST_TEST(config.log.main == "/var/log/portcullis/main.log");
  BOOST_TEST((config.log.format == LogFormat::json));
}

BOOST_AUTO_TEST_CASE(every_error_of_a_file_is_reported_in_order) {
  const std::string text = read_file(data_path("errors.toml"));
  const ConfigResult result = load_config_text(text, "portcullis.toml");
  BOOST_TEST(!result.config.has_value());
  const auto expected = lines_of(read_file(data_path("errors.ref")));
  BOOST_TEST(texts(result.errors) == expected, boost::test_tools::per_element());
  BOOST_TEST(texts(result.warnings) ==
                 std::vector<std::string>{
                     "portcullis.toml:25:15: upstream.pass_client: the upstream sees "
                     "Portcullis's address as the client; use xclient or proxy-v2 unless the "
                     "upstream needs no client identity"},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(pass_client_none_is_a_warning_not_an_error) {
  const ConfigResult result = load_config_text(required + "pass_client = \"none\"\n", "t.toml");
  BOOST_REQUIRE(result.config.has_value());
  BOOST_TEST((result.config->upstream.pass_client == PassClient::none));
  BOOST_REQUIRE(result.warnings.size() == 1u);
  BOOST_TEST(result.warnings[0].line == 6);
  BOOST_TEST(result.warnings[0].column == 15);
  BOOST_TEST(result.warnings[0].key == "upstream.pass_client");
}

BOOST_AUTO_TEST_CASE(messages_about_loaded_values_point_where_they_were_written) {
  // `check` reports what it finds on the machine at the value, like a load error.
  const Config config = loads("[server]\nuser    = \"mail\"\n");
  BOOST_TEST(config.message_about("server.user", "unknown user").to_string() ==
             "t.toml:2:11: server.user: unknown user");
  // listen[0].address is in `required`, appended after the text.
  BOOST_TEST(config.message_about("listen[0].address", "in use").to_string() ==
             "t.toml:5:11: listen[0].address: in use");
  // A key left at its default: about the file.
  BOOST_TEST(config.message_about("server.state_dir", "missing").to_string() ==
             "t.toml: server.state_dir: missing");
}

BOOST_AUTO_TEST_CASE(syntax_errors_give_one_message_with_position) {
  BOOST_TEST(errors_of("[server]\nworkers = 4x\n", false) ==
                 std::vector<std::string>{"t.toml:2:12: toml::parse_table: invalid line format"},
             boost::test_tools::per_element());
  BOOST_TEST(errors_of("[server]\nworkers = 1\nworkers = 2\n", false) ==
                 std::vector<std::string>{
                     "t.toml:3:11: toml::insert_value: value (\"workers\") already exists."},
             boost::test_tools::per_element());
  const auto unterminated = errors_of("[log]\nmain = \"stderr\n", false);
  BOOST_REQUIRE(unterminated.size() == 1u);
  BOOST_TEST(unterminated[0].rfind("t.toml:2:", 0) == 0u);
  BOOST_TEST(unterminated[0].find("toml::parse_basic_string") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(unreadable_files_name_the_file_and_the_reason) {
  const std::string missing = "/nonexistent-portcullis-dir/portcullis.toml";
  ConfigResult result = load_config(missing);
  BOOST_TEST(!result.config.has_value());
  BOOST_TEST(
      texts(result.errors) ==
          std::vector<std::string>{missing + ": cannot read the file: No such file or directory"},
      boost::test_tools::per_element());

  result = load_config(data_path(""));  // a directory
  BOOST_TEST(
      texts(result.errors) ==
          std::vector<std::string>{data_path("") + ": cannot read the file: not a regular file"},
      boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(listen_and_upstream_are_required) {
  BOOST_TEST(errors_of("", false) ==
                 (std::vector<std::string>{
                     "t.toml: listen: missing required key (at least one [[listen]] block)",
                     "t.toml: upstream.address: missing required key"}),
             boost::test_tools::per_element());
  BOOST_TEST(errors_of("listen = []\n[upstream]\n", false) ==
                 (std::vector<std::string>{
                     "t.toml:1:10: listen: at least one [[listen]] block is required",
                     "t.toml:2:1: upstream.address: missing required key"}),
             boost::test_tools::per_element());
  BOOST_TEST(errors_of("[listen]\naddress = \"127.0.0.1:25\"\n[upstream]\naddress = "
                       "\"127.0.0.1:26\"\n",
                       false) ==
                 std::vector<std::string>{
                     "t.toml:1:1: listen: expected an array of tables ([[listen]]), got a table"},
             boost::test_tools::per_element());
  BOOST_TEST(
      errors_of("[[listen]]\nmode = \"smtp\"\n[upstream]\naddress = \"127.0.0.1:26\"\n", false) ==
          std::vector<std::string>{"t.toml:1:1: listen[0].address: missing required key"},
      boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(upstream_address_forms) {
  auto errors = [](const std::string& value) {
    return errors_of(
        "[[listen]]\naddress = \"127.0.0.1:25\"\n[upstream]\naddress = " + value + "\n", false);
  };
  BOOST_TEST(errors("\"[::1]:10025\"").empty());
  BOOST_TEST(errors("[\"127.0.0.1:1\", \"127.0.0.1:2\"]").empty());
  BOOST_TEST(errors("[]") ==
                 std::vector<std::string>{"t.toml:4:11: upstream.address: must list at least one "
                                          "address"},
             boost::test_tools::per_element());
  BOOST_TEST(errors("[\"127.0.0.1:1\", 25]") ==
                 std::vector<std::string>{
                     "t.toml:4:27: upstream.address[1]: expected a string, got an integer"},
             boost::test_tools::per_element());
  BOOST_TEST(errors("25") ==
                 std::vector<std::string>{"t.toml:4:11: upstream.address: expected a string or "
                                          "an array of strings, got an integer"},
             boost::test_tools::per_element());
  BOOST_TEST(errors("\"::1:25\"") ==
                 std::vector<std::string>{"t.toml:4:11: upstream.address: expected a numeric "
                                          "\"IP:PORT\" or \"[IPv6]:PORT\", got \"::1:25\""},
             boost::test_tools::per_element());
  BOOST_TEST(errors("\"127.0.0.1:0\"") ==
                 std::vector<std::string>{"t.toml:4:11: upstream.address: port must be between 1 "
                                          "and 65535, got \"127.0.0.1:0\""},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(duplicate_listeners_are_errors) {
  const std::string upstream = "[upstream]\naddress = \"127.0.0.1:10025\"\n";
  BOOST_TEST(errors_of("[[listen]]\naddress = \"[::1]:25\"\n[[listen]]\naddress = \"[::1]:25\"\n" +
                           upstream,
                       false) ==
                 std::vector<std::string>{"t.toml:4:11: listen[1].address: duplicate listener "
                                          "address \"[::1]:25\", also used by listen[0].address"},
             boost::test_tools::per_element());
  // The same IPv4 address written as IPv4-mapped IPv6 is the same listener.
  BOOST_TEST(errors_of("[[listen]]\naddress = \"127.0.0.1:25\"\n[[listen]]\naddress = "
                       "\"[::ffff:127.0.0.1]:25\"\n" +
                           upstream,
                       false)
                 .size() == 1u);
  // Same address, other port: fine.
  BOOST_TEST(errors_of("[[listen]]\naddress = \"127.0.0.1:25\"\n[[listen]]\naddress = "
                       "\"127.0.0.1:587\"\n" +
                           upstream,
                       false)
                 .empty());
}

BOOST_AUTO_TEST_CASE(cpu_scheduling_is_batch_or_normal) {
  const std::string rest =
      "[[listen]]\naddress = \"127.0.0.1:25\"\n[upstream]\naddress = "
      "\"127.0.0.1:10025\"\n";
  const ConfigResult normal =
      load_config_text("[server]\ncpu_scheduling = \"normal\"\n" + rest, "t.toml");
  BOOST_REQUIRE(normal.config.has_value());
  BOOST_TEST((normal.config->server.cpu_scheduling == CpuScheduling::normal));
  BOOST_TEST(errors_of("[server]\ncpu_scheduling = \"fifo\"\n" + rest, false) ==
                 std::vector<std::string>{"t.toml:2:18: server.cpu_scheduling: must be one of "
                                          "batch, normal, got \"fifo\""},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(tls_settings_refer_to_tls_blocks) {
  const std::string upstream = "[upstream]\naddress = \"127.0.0.1:10025\"\n";
  const std::string listen = "[[listen]]\naddress = \"127.0.0.1:25\"\n";
  BOOST_TEST(errors_of(listen + "mode = \"submission\"\n" + upstream, false) ==
                 std::vector<std::string>{"t.toml:3:8: listen[0].mode: mode \"submission\" needs "
                                          "TLS: set tls to the name of a [tls.NAME] block"},
             boost::test_tools::per_element());
  BOOST_TEST(errors_of(listen + "mode = \"lmtp\"\n" + upstream, false) ==
                 std::vector<std::string>{"t.toml:3:8: listen[0].mode: must be one of smtp, "
                                          "smtps, submission, got \"lmtp\""},
             boost::test_tools::per_element());
  BOOST_TEST(errors_of(listen + "tls = \"mx\"\n" + upstream, false) ==
                 std::vector<std::string>{"t.toml:3:7: listen[0].tls: there is no [tls.mx] block"},
             boost::test_tools::per_element());
  // The block may come after the listener that names it.
  const std::string block =
      "[tls.mx]\ncertificate = [\"/etc/a.crt\", \"/etc/b.crt\"]\nkey = [\"/etc/a.key\", "
      "\"/etc/b.key\"]\nsni = [\"mx.example.org\", \"*.example.net\"]\nmin_version = "
      "\"TLSv1.3\"\n";
  auto loaded = portcullis::load_config_text(
      listen + "mode = \"smtps\"\ntls = \"mx\"\n" + upstream + block, "t.toml");
  BOOST_REQUIRE(loaded.errors.empty());
  const portcullis::TlsBlockConfig* mx = loaded.config->tls_block("mx");
  BOOST_REQUIRE(mx != nullptr);
  BOOST_TEST(mx->certificates.size() == 2u);
  BOOST_TEST(mx->certificates[1].certificate == "/etc/b.crt");
  BOOST_TEST(mx->certificates[1].key == "/etc/b.key");
  BOOST_TEST(mx->sni.size() == 2u);
  BOOST_TEST(mx->min_version == "TLSv1.3");
  BOOST_TEST(mx->request_client_certificate == false);

  BOOST_TEST(
      errors_of(listen + upstream +
                    "[tls.mx]\ncertificate = [\"/a.crt\", \"/b.crt\"]\nkey = \"/a.key\"\n",
                false) == std::vector<std::string>{"t.toml:7:7: tls.mx.key: lists 1 key(s) for 2 "
                                                   "certificate(s); they are paired in order"},
      boost::test_tools::per_element());
  BOOST_TEST(errors_of(listen + upstream + "[tls.mx]\ncertificate = \"/a.crt\"\n", false) ==
                 std::vector<std::string>{"t.toml:5:1: tls.mx.key: missing required key"},
             boost::test_tools::per_element());
  BOOST_TEST(errors_of(listen + upstream +
                           "[tls.mx]\ncertificate = \"a.crt\"\nkey = \"/a.key\"\nmin_version = "
                           "\"SSLv3\"\n",
                       false) ==
                 (std::vector<std::string>{
                     "t.toml:6:15: tls.mx.certificate: must be an absolute path, got \"a.crt\"",
                     "t.toml:8:15: tls.mx.min_version: must be one of TLSv1, TLSv1.1, TLSv1.2, "
                     "TLSv1.3, got \"SSLv3\""}),
             boost::test_tools::per_element());
  BOOST_TEST(errors_of(listen + upstream + "tls = \"always\"\n", false) ==
                 std::vector<std::string>{"t.toml:5:7: upstream.tls: must be one of none, "
                                          "opportunistic, required, got \"always\""},
             boost::test_tools::per_element());
  auto required = portcullis::load_config_text(
      listen + upstream + "tls = \"required\"\nverify_name = \"mx.example.org\"\n", "t.toml");
  BOOST_REQUIRE(required.errors.empty());
  BOOST_TEST(static_cast<int>(required.config->upstream.tls) ==
             static_cast<int>(portcullis::UpstreamTls::required));
  // "required" without a name to check would take any trusted certificate for the upstream.
  BOOST_TEST(errors_of(listen + upstream + "tls = \"required\"\n", false) ==
                 std::vector<std::string>{
                     "t.toml:5:7: upstream.verify_name: required when upstream.tls is "
                     "\"required\": the name the upstream's certificate must carry"},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(trust_lists_proxy_peers) {
  const std::string base =
      "[[listen]]\naddress = \"127.0.0.1:25\"\nproxy_protocol = true\n[upstream]\naddress = "
      "\"127.0.0.1:10025\"\n";
  auto loaded = portcullis::load_config_text(
      base +
          "[trust]\nproxy_peers = [\"192.0.2.10/32\", \"2001:db8::/64\", \"127.0.0.1\"]\n"
          "proxy_timeout = 3\n",
      "t.toml");
  BOOST_REQUIRE(loaded.errors.empty());
  BOOST_TEST(loaded.config->trust.proxy_peers.size() == 3u);
  BOOST_TEST(loaded.config->trust.proxy_timeout == 3u);
  BOOST_TEST(loaded.warnings.empty());
  BOOST_TEST(errors_of(base + "[trust]\nproxy_peers = [\"192.0.2.0/33\"]\n", false) ==
                 std::vector<std::string>{"t.toml:7:15: trust.proxy_peers: expected addresses or "
                                          "CIDR prefixes, got \"192.0.2.0/33\""},
             boost::test_tools::per_element());
  // A PROXY listener that trusts nobody closes every connection: said at load time.
  auto untrusted = portcullis::load_config_text(base, "t.toml");
  BOOST_REQUIRE(untrusted.errors.empty());
  BOOST_REQUIRE(untrusted.warnings.size() == 1u);
  BOOST_TEST(untrusted.warnings[0].key == "listen[0].proxy_protocol");
}

BOOST_AUTO_TEST_CASE(ranges_accept_their_bounds_and_refuse_beyond) {
  struct Case {
    std::string section;
    std::string key;
    long long low;
    long long high;  // -1: no upper bound worth testing
  };
  const std::vector<Case> cases = {
      {"server", "workers", 0, 256},
      {"upstream", "max_connections", 1, 10000},
      {"upstream", "reply_timeout", 1, 599},
      {"upstream", "idle_timeout", 0, 60},
      {"limits", "max_sessions", 1, 1000000},
      {"limits", "max_sessions_per_ip", 1, 1000000},
      {"limits", "max_message_size", 1024, 1099511627776LL},
      {"limits", "max_recipients", 1, 100000},
      {"limits", "max_errors", 1, 1000},
      {"limits", "max_junk_commands", 1, 1000000000},
      {"limits", "max_line_length", 1000, 1073741824},
      {"limits", "max_header_size", 1000, 1073741824},
      {"limits", "spill_threshold", 0, 1073741824},
      {"timeouts", "command", 1, 3600},
      {"timeouts", "data_block", 1, 3600},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.section << "." << c.key) {
      // [upstream] already appears in the required part, so its keys go there.
      const auto text_with = [&](long long value) {
        const std::string line = c.key + " = " + std::to_string(value) + "\n";
        if (c.section == "upstream") {
          return std::string(
                     "[[listen]]\naddress = \"127.0.0.1:2525\"\n[upstream]\naddress = "
                     "\"127.0.0.1:10025\"\n") +
                 line;
        }
        return "[" + c.section + "]\n" + line + required;
      };
      BOOST_TEST(errors_of(text_with(c.low), false).empty());
      BOOST_TEST(errors_of(text_with(c.high), false).empty());
      const auto below = errors_of(text_with(c.low - 1), false);
      BOOST_REQUIRE(below.size() == 1u);
      BOOST_TEST(below[0].find(c.section + "." + c.key + ": must be between " +
                               std::to_string(c.low) + " and " + std::to_string(c.high)) !=
                 std::string::npos);
      const std::string got = "got " + std::to_string(c.low - 1);
      BOOST_TEST(below[0].substr(below[0].size() - got.size()) == got);
      BOOST_TEST(errors_of(text_with(c.high + 1), false).size() == 1u);
    }
  }
}

BOOST_AUTO_TEST_CASE(wrong_types_name_both_types) {
  BOOST_TEST(errors_of("[server]\nworkers = \"4\"\n") ==
                 std::vector<std::string>{
                     "t.toml:2:11: server.workers: expected an integer, got a string"},
             boost::test_tools::per_element());
  BOOST_TEST(errors_of("[server]\nuser = 0\n") ==
                 std::vector<std::string>{"t.toml:2:8: server.user: expected a string, got an "
                                          "integer"},
             boost::test_tools::per_element());
  BOOST_TEST(
      errors_of("[server]\nhostname = [\"a\"]\n") ==
          std::vector<std::string>{"t.toml:2:12: server.hostname: expected a string, got an array"},
      boost::test_tools::per_element());
  BOOST_TEST(
      errors_of("[log]\nformat = { a = 1 }\n") ==
          std::vector<std::string>{"t.toml:2:10: log.format: expected a string, got a table"},
      boost::test_tools::per_element());
  BOOST_TEST(errors_of("[limits]\nmax_errors = true\n") ==
                 std::vector<std::string>{
                     "t.toml:2:14: limits.max_errors: expected an integer, got a boolean"},
             boost::test_tools::per_element());
  BOOST_TEST(errors_of("[timeouts]\ncommand = 1979-05-27\n") ==
                 std::vector<std::string>{
                     "t.toml:2:11: timeouts.command: expected an integer, got a date"},
             boost::test_tools::per_element());
  BOOST_TEST(errors_of("server = 5\n") ==
                 std::vector<std::string>{"t.toml:1:10: server: expected a table, got an integer"},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(store_section_defaults_values_and_errors) {
  const Config defaults = loads("");
  BOOST_TEST((defaults.store.backend == portcullis::StoreBackend::lmdb));
  BOOST_TEST(defaults.store.lmdb_map_size == std::uint64_t{1} << 30);
  BOOST_TEST(portcullis::lmdb_store_path(defaults.server) == "/var/lib/portcullis/store.mdb");

  const Config set = loads(
      "[server]\nstate_dir = \"/srv/state/\"\n[store]\nbackend = \"lmdb\"\n"
      "lmdb_map_size = 2097152\n");
  BOOST_TEST(set.store.lmdb_map_size == 2097152u);
  BOOST_TEST(portcullis::lmdb_store_path(set.server) == "/srv/state/store.mdb");

  BOOST_TEST(defaults.store.redis.address.host_port() == "127.0.0.1:6379");
  BOOST_TEST(defaults.store.redis.prefix == "portcullis:");
  BOOST_TEST(defaults.store.redis.timeout_ms == 200);
  const Config redis = loads(
      "[store]\nbackend = \"redis\"\n[store.redis]\naddress = \"[::1]:6390\"\n"
      "database = 2\nprefix = \"pc1:\"\npassword = \"pw\"\ntimeout_ms = 50\n");
  BOOST_TEST((redis.store.backend == portcullis::StoreBackend::redis));
  BOOST_TEST(redis.store.redis.address.host_port() == "[::1]:6390");
  BOOST_TEST(redis.store.redis.database == 2);
  BOOST_TEST(redis.store.redis.prefix == "pc1:");
  BOOST_TEST(redis.store.redis.password == "pw");
  BOOST_TEST(redis.store.redis.timeout_ms == 50);
  const std::vector<std::string> redis_errors{
      "t.toml:2:11: store.redis.address: expected a numeric \"IP:PORT\" or \"[IPv6]:PORT\", "
      "got \"localhost:6379\"",
      "t.toml:3:14: store.redis.timeout_ms: must be between 10 and 60000, got 5",
      "t.toml:4:10: store.redis.prefix: must be printable ASCII without spaces (it starts every "
      "key)",
      "t.toml:5:8: store.redis.port: unknown key"};
  BOOST_TEST(errors_of("[store.redis]\naddress = \"localhost:6379\"\ntimeout_ms = 5\n"
                       "prefix = \"a b\"\nport = 1\n") == redis_errors,
             boost::test_tools::per_element());
  BOOST_TEST(errors_of("[store]\nbackend = \"memory\"\n") ==
                 std::vector<std::string>{
                     "t.toml:2:11: store.backend: must be one of lmdb, redis, got \"memory\""},
             boost::test_tools::per_element());
  BOOST_TEST(errors_of("[store]\nlmdb_map_size = 1000\n") ==
                 std::vector<std::string>{"t.toml:2:17: store.lmdb_map_size: must be between "
                                          "1048576 and 1099511627776, got 1000"},
             boost::test_tools::per_element());
  BOOST_TEST(
      errors_of("[store]\nx = 1\n") == std::vector<std::string>{"t.toml:2:5: store.x: unknown key"},
      boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(unknown_top_level_keys_are_errors) {
  BOOST_TEST(errors_of("top_level = 1\n") ==
                 std::vector<std::string>{"t.toml:1:13: top_level: unknown key"},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(log_rejections_and_all_transactions) {
  const Config config =
      loads("[log]\nrejections = \"/var/log/r.jsonl\"\nall_transactions = true\n");
  BOOST_TEST(config.log.rejections == "/var/log/r.jsonl");
  BOOST_TEST(config.log.all_transactions);
  BOOST_TEST(loads("").log.rejections.empty());
  BOOST_TEST(!loads("").log.all_transactions);
  BOOST_TEST(errors_of("[log]\nrejections = \"r.jsonl\"\n") ==
                 std::vector<std::string>{"t.toml:2:14: log.rejections: must be an absolute "
                                          "path, got \"r.jsonl\""},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(metrics_address) {
  BOOST_TEST(!loads("").metrics.address.has_value());
  const Config config = loads("[metrics]\naddress = \"127.0.0.1:9325\"\n");
  BOOST_TEST_REQUIRE(config.metrics.address.has_value());
  BOOST_TEST(config.metrics.address->host_port() == "127.0.0.1:9325");
  BOOST_TEST(errors_of("[metrics]\naddress = \"localhost\"\nport = 1\n") ==
                 (std::vector<std::string>{
                     "t.toml:2:11: metrics.address: expected a numeric \"IP:PORT\" or "
                     "\"[IPv6]:PORT\", got \"localhost\"",
                     "t.toml:3:8: metrics.port: unknown key"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(no_filters_section_means_no_filters) {
  const Config config = loads("");
  BOOST_TEST(config.filters.chain.empty());
  BOOST_TEST_REQUIRE(config.policy.policy != nullptr);
  BOOST_TEST(config.policy.policy->rules().empty());
  BOOST_TEST(config.policy.delay_reject);
  BOOST_TEST_REQUIRE(config.filters.catalog != nullptr);
  BOOST_TEST(!config.filters.catalog->filter_enabled("pregreet"));
}

BOOST_AUTO_TEST_CASE(filter_chain_is_built_in_order_with_its_settings) {
  const Config config = loads(R"([filters]
chain = ["pregreet", "helo"]
[filter.pregreet]
wait_ms = 250
teaser = false
timeout = 7
failure_mode = "continue"
)");
  BOOST_TEST_REQUIRE(config.filters.chain.size() == 2u);
  const FilterInstance& pregreet = config.filters.chain[0];
  BOOST_TEST(pregreet.name == "pregreet");
  BOOST_TEST(pregreet.timeout.count() == 7000);
  BOOST_TEST((pregreet.failure_mode == FailureMode::continue_session));
  BOOST_TEST(pregreet.factory != nullptr);
  BOOST_TEST((pregreet.facts == std::vector<std::string>{"pregreet"}));
  const FilterInstance& helo = config.filters.chain[1];
  BOOST_TEST(helo.name == "helo");
  BOOST_TEST(helo.timeout.count() == 20000);  // the default
  BOOST_TEST((helo.failure_mode == FailureMode::tempfail));
  BOOST_TEST(config.filters.catalog->filter_enabled("helo"));
  BOOST_TEST(!config.filters.catalog->filter_enabled("spf"));
}

BOOST_AUTO_TEST_CASE(filter_chain_errors) {
  BOOST_TEST(errors_of("[filters]\nchain = [\"pregreet\", \"nope\"]\n") ==
                 std::vector<std::string>{"t.toml:2:22: filters.chain[1]: unknown filter \"nope\" "
                                          "(built-in filters: pregreet, helo, fcrdns, dnsbl, spf, "
                                          "ratelimit, greylist, dkim, dmarc)"},
             boost::test_tools::per_element());
  BOOST_TEST(errors_of("[filters]\nchain = [\"helo\", \"helo\"]\n") ==
                 std::vector<std::string>{
                     "t.toml:2:18: filters.chain[1]: filter \"helo\" is listed twice"},
             boost::test_tools::per_element());
  BOOST_TEST(errors_of("[filters]\nlist = []\n") ==
                 std::vector<std::string>{"t.toml:2:8: filters.list: unknown key (expected chain)"},
             boost::test_tools::per_element());
  BOOST_TEST(errors_of("[filters]\nchain = \"helo\"\n") ==
                 std::vector<std::string>{
                     "t.toml:2:9: filters.chain: expected an array of strings, got a string"},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(dnsbl_lists_are_validated_at_load_with_their_place) {
  const auto errors = errors_of(R"([filters]
chain = ["dnsbl"]
[[filter.dnsbl.list]]
zone = "zen.example.net"
answers = ["127.0.0.2", "127.255.255.254"]
[[filter.dnsbl.list]]
zone = "bl.example.org"
weight = 1000
)");
  BOOST_TEST_REQUIRE(errors.size() == 2u);
  BOOST_TEST(errors[0].rfind("t.toml:5:25: filter.dnsbl.list[0].answers[1]: '127.255.255.254' "
                             "reaches into 127.255.255.0/24",
                             0) == 0,
             errors[0]);
  BOOST_TEST(
      errors[1] ==
      "t.toml:8:10: filter.dnsbl.list[1].weight: expected an integer from -100 to 100, got 1000");
}

BOOST_AUTO_TEST_CASE(filter_blocks_are_validated_at_load) {
  const auto errors = errors_of(R"([filters]
chain = ["pregreet"]
[filter.pregreet]
wait_ms = 70000
teaser = "yes"
timeout = 0
failure_mode = "ignore"
foo = 1
)");
  BOOST_TEST_REQUIRE(errors.size() == 5u);
  BOOST_TEST(
      errors[0] ==
      "t.toml:4:11: filter.pregreet.wait_ms: expected an integer from 0 to 60000, got 70000");
  BOOST_TEST(errors[1] == "t.toml:5:10: filter.pregreet.teaser: expected a bool, got a string");
  BOOST_TEST(errors[2] ==
             "t.toml:6:11: filter.pregreet.timeout: must be between 1 and 3600, got 0");
  BOOST_TEST(errors[3] ==
             "t.toml:7:16: filter.pregreet.failure_mode: must be one of tempfail, "
             "continue, got \"ignore\"");
  BOOST_TEST(errors[4].rfind("t.toml:8:7: filter.pregreet.foo: unknown key", 0) == 0, errors[4]);

  const auto unknown = errors_of("[filter.nope]\nx = 1\n");
  BOOST_TEST_REQUIRE(unknown.size() == 1u);
  BOOST_TEST(unknown[0].find("filter.nope: unknown filter \"nope\" (built-in filters: pregreet, "
                             "helo, fcrdns, dnsbl, spf, ratelimit, greylist, dkim, dmarc)") !=
                 std::string::npos,
             unknown[0]);

  // A block for a filter that is not in the chain: validated, then a warning.
  const ConfigResult result =
      load_config_text("[filter.pregreet]\nwait_ms = 100\n" + required, "t.toml");
  BOOST_TEST(result.errors.empty());
  BOOST_TEST_REQUIRE(result.warnings.size() == 1u);
  BOOST_TEST(result.warnings[0].to_string().find(
                 "filter.pregreet: this filter is not in [filters] chain") != std::string::npos,
             result.warnings[0].to_string());
  BOOST_TEST(errors_of("[filter.pregreet]\nwait_ms = -1\n").size() == 1u);
}

BOOST_AUTO_TEST_CASE(policy_files_are_compiled_with_the_chain) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("portcullis-config-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string good = (dir / "good.toml").string();
  const std::string spf = (dir / "spf.toml").string();
  {
    std::ofstream(good) << "[[rule]]\nname = \"pregreeters\"\nwhen = \"pregreet\"\n"
                           "then = \"reject\"\n";
    std::ofstream(spf) << "[[rule]]\nname = \"spf fail\"\nwhen = \"spf == 'fail'\"\n"
                          "then = \"reject\"\n";
  }
  const Config config = loads(fmt::format(
      "[filters]\nchain = [\"pregreet\"]\n[policy]\nfiles = [\"{}\"]\ndelay_reject = false\n",
      good));
  BOOST_TEST_REQUIRE(config.policy.policy != nullptr);
  BOOST_TEST(config.policy.policy->rules().size() == 1u);
  BOOST_TEST(config.policy.policy->rules()[0].name == "pregreeters");
  BOOST_TEST(!config.policy.delay_reject);
  BOOST_TEST((config.policy.files == std::vector<std::string>{good}));

  // The same rule without the filter in the chain: an error in the policy file's own place.
  const auto missing_filter = errors_of(fmt::format("[policy]\nfiles = [\"{}\"]\n", good));
  BOOST_TEST_REQUIRE(missing_filter.size() == 1u);
  BOOST_TEST(missing_filter[0].rfind(good + ":3:", 0) == 0, missing_filter[0]);
  BOOST_TEST(missing_filter[0].find("pregreet") != std::string::npos, missing_filter[0]);
  BOOST_TEST(missing_filter[0].find("[filters] chain") != std::string::npos, missing_filter[0]);

  const auto spf_errors =
      errors_of(fmt::format("[filters]\nchain = [\"helo\"]\n[policy]\nfiles = [\"{}\"]\n", spf));
  BOOST_TEST_REQUIRE(spf_errors.size() == 1u);
  BOOST_TEST(spf_errors[0].rfind(spf + ":3:", 0) == 0, spf_errors[0]);

  // Relative paths are read from the config file's directory.
  {
    std::ofstream(dir / "portcullis.toml")
        << "[filters]\nchain = [\"pregreet\"]\n[policy]\nfiles = [\"good.toml\"]\n"
        << required;
  }
  const ConfigResult relative = load_config((dir / "portcullis.toml").string());
  BOOST_TEST(relative.errors.empty(),
             (relative.errors.empty() ? "" : relative.errors[0].to_string()));
  BOOST_TEST_REQUIRE(relative.config.has_value());
  BOOST_TEST((relative.config->policy.files == std::vector<std::string>{good}));

  const auto absent = errors_of("[policy]\nfiles = [\"/nonexistent/p.toml\"]\n");
  BOOST_TEST_REQUIRE(absent.size() == 1u);
  BOOST_TEST(absent[0].rfind("/nonexistent/p.toml", 0) == 0, absent[0]);
  std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(rate_limits_declare_their_facts_for_the_chain_and_the_policy) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("portcullis-rate-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string rules = (dir / "rates.toml").string();
  std::ofstream(rules) << "[[rule]]\nname = \"too fast\"\nwhen = \"rate.conn.exceeded\"\n"
                          "then = \"tempfail 451 4.7.1 retry in {rate.conn.retry_after}s\"\n";
  const std::string limits = R"([filters]
chain = ["ratelimit"]
[[filter.ratelimit.limit]]
name = "conn"
key = "client.ip"
counter = "connections"
limit = 30
per = 60
)";
  const Config config = loads(limits + fmt::format("[policy]\nfiles = [\"{}\"]\n", rules));
  BOOST_TEST_REQUIRE(config.filters.chain.size() == 1u);
  BOOST_TEST(
      (config.filters.chain[0].facts ==
       std::vector<std::string>{"rate.conn", "rate.conn.exceeded", "rate.conn.retry_after"}));
  const portcullis::FactSpec* exceeded = config.filters.catalog->find("rate.conn.exceeded");
  BOOST_TEST_REQUIRE(exceeded != nullptr);
  BOOST_TEST((exceeded->known_from == portcullis::Phase::connect));
  BOOST_TEST(config.policy.policy->rules().size() == 1u);

  // A limit that could never be counted is refused in its own place.
  const auto errors = errors_of(R"([filters]
chain = ["ratelimit"]
[[filter.ratelimit.limit]]
name = "conn"
key = "rcpt"
counter = "connections"
limit = 30
per = 60
)");
  BOOST_TEST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].rfind("t.toml:5:7: filter.ratelimit.limit[0].key: rcpt is known only "
                             "from the rcpt phase",
                             0) == 0,
             errors[0]);
  std::filesystem::remove_all(dir);
}

BOOST_AUTO_TEST_CASE(string_values_are_checked) {
  BOOST_TEST(errors_of("[server]\nhostname = \"mx.example.org\\r\\nX\"\n") ==
                 std::vector<std::string>{
                     "t.toml:2:12: server.hostname: must be a domain name (letters, digits, '-' "
                     "and '.'), got \"mx.example.org\\x0D\\x0AX\""},
             boost::test_tools::per_element());
  BOOST_TEST(errors_of("[server]\nauthserv_id = \"\"\n").size() == 1u);
  BOOST_TEST(errors_of("[server]\nstate_dir = \"var/lib\"\n") ==
                 std::vector<std::string>{"t.toml:2:13: server.state_dir: must be an absolute "
                                          "path, got \"var/lib\""},
             boost::test_tools::per_element());
  BOOST_TEST(loads("[log]\nmain = \"syslog\"\n").log.main == "syslog");
  BOOST_TEST(loads("[log]\nmain = \"stderr\"\n").log.main == "stderr");
  BOOST_TEST(errors_of("[log]\nmain = \"\"\n").size() == 1u);
}

BOOST_AUTO_TEST_CASE(hostname_sets_authserv_id_unless_given) {
  Config config = loads("[server]\nhostname = \"mx.example.net\"\nworkers = 2\n");
  BOOST_TEST(config.server.hostname == "mx.example.net");
  BOOST_TEST(config.server.authserv_id == "mx.example.net");
  BOOST_TEST(config.server.workers == 2u);
  config = loads("[server]\nauthserv_id = \"auth.example.net\"\n");
  BOOST_TEST(config.server.authserv_id == "auth.example.net");
  BOOST_TEST(config.server.hostname == system_host_name());
}

BOOST_AUTO_TEST_CASE(message_text_forms) {
  ConfigMessage message{"f.toml", 12, 17, "limits.max_errors", "must be between 1 and 1000, got 0"};
  BOOST_TEST(message.to_string() ==
             "f.toml:12:17: limits.max_errors: must be between 1 and 1000, got 0");
  message.column = 0;
  BOOST_TEST(message.to_string() ==
             "f.toml:12: limits.max_errors: must be between 1 and 1000, got 0");
  message.line = 0;
  BOOST_TEST(message.to_string() == "f.toml: limits.max_errors: must be between 1 and 1000, got 0");
  message.key.clear();
  BOOST_TEST(message.to_string() == "f.toml: must be between 1 and 1000, got 0");
}

BOOST_AUTO_TEST_CASE(pregreet_wait_must_fit_in_its_timeout) {
  BOOST_TEST(errors_of("[filters]\nchain = [\"pregreet\"]\n[filter.pregreet]\nwait_ms = 30000\n") ==
                 std::vector<std::string>{"t.toml:3:1: filter.pregreet.timeout: must be at least "
                                          "31 s with these settings (every call would time out), "
                                          "got 20 s"},
             boost::test_tools::per_element());
  BOOST_TEST(errors_of("[filters]\nchain = [\"pregreet\"]\n[filter.pregreet]\nwait_ms = 30000\n"
                       "timeout = 31\n")
                 .empty());
}

namespace {

// A fresh directory for files a case writes (removed with its contents at the end).
struct ScratchDir {
  ScratchDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "portcullis-config-XXXXXX").string();
    BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::filesystem::path path;
};

}  // namespace

BOOST_AUTO_TEST_CASE(nesting_deeper_than_32_is_refused_before_the_toml_parser) {
  // 10,000 levels overflowed the stack inside toml11 (SIGSEGV).
  const std::string deep = "[policy]\nx = " + std::string(10000, '[') + std::string(10000, ']');
  BOOST_TEST(errors_of(deep) ==
                 std::vector<std::string>{"t.toml: arrays and tables nest deeper than 32 levels"},
             boost::test_tools::per_element());
  const std::string inline_tables = "[policy]\nx = " + [] {
    std::string text;
    for (int i = 0; i < 40; ++i)
      text += "{a=";
    return text + "1" + std::string(40, '}');
  }();
  BOOST_TEST(errors_of(inline_tables).size() == 1u);
  // 32 levels are parsed (and judged as any key is); brackets in strings and comments do not
  // count.
  const auto at_limit =
      errors_of("[server]\nx = " + std::string(32, '[') + std::string(32, ']') + "\nhostname = \"" +
                std::string(40, '[') + "\" # " + std::string(40, '{') + "\n");
  BOOST_TEST_REQUIRE(!at_limit.empty());
  for (const auto& error : at_limit)
    BOOST_TEST(error.find("nest deeper") == std::string::npos, error);
}

BOOST_AUTO_TEST_CASE(only_regular_files_of_bounded_size_are_read) {
  // /dev/zero was read until std::bad_alloc.
  BOOST_TEST(texts(load_config("/dev/zero").errors) ==
                 std::vector<std::string>{"/dev/zero: cannot read the file: not a regular file"},
             boost::test_tools::per_element());
  ScratchDir dir;
  const std::string fifo = (dir.path / "fifo.toml").string();
  BOOST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  BOOST_TEST(texts(load_config(fifo).errors) ==
                 std::vector<std::string>{fifo + ": cannot read the file: not a regular file"},
             boost::test_tools::per_element());

  const std::string big = (dir.path / "big.toml").string();
  {
    std::ofstream out(big);
    out << required;
    const std::string comment = "# " + std::string(1021, 'x') + "\n";
    for (size_t written = required.size(); written <= portcullis::max_config_file_size;
         written += comment.size())
      out << comment;
  }
  BOOST_TEST(
      texts(load_config(big).errors) ==
          std::vector<std::string>{big + ": cannot read the file: larger than 16777216 bytes"},
      boost::test_tools::per_element());

  // A policy file and a list file: the same refusal, naming the file.
  const std::string policy = (dir.path / "policy.toml").string();
  std::ofstream(policy) << "[lists]\nzeros = \"file:/dev/zero\"\n";
  const auto list_errors = errors_of(fmt::format("[policy]\nfiles = [\"{}\"]\n", policy));
  BOOST_TEST_REQUIRE(list_errors.size() == 1u);
  BOOST_TEST(list_errors[0].find("/dev/zero: not a regular file") != std::string::npos,
             list_errors[0]);
  const auto policy_errors = errors_of("[policy]\nfiles = [\"/dev/zero\"]\n");
  BOOST_TEST_REQUIRE(policy_errors.size() == 1u);
  BOOST_TEST(policy_errors[0].find("/dev/zero") != std::string::npos, policy_errors[0]);
  BOOST_TEST(policy_errors[0].find("not a regular file") != std::string::npos, policy_errors[0]);
}

BOOST_AUTO_TEST_CASE(a_bad_list_file_line_is_quoted_short_and_escaped) {
  // file:/etc/shadow printed shadow's first line when `check` ran as root.
  ScratchDir dir;
  const std::string secret = "root:$6$SALTSALTSALTSALT$THEHASHTHATMUSTNOTLEAK:19000:0:99999:7:::";
  std::ofstream(dir.path / "secret") << secret << "\n"
                                     << "caf\xc3\xa9-\x1b[31m-example-and-then-THEHASH.example\n";
  const std::string policy = (dir.path / "policy.toml").string();
  std::ofstream(policy) << "[lists]\nsecrets = \"file:secret\"\n";
  const auto errors = errors_of(fmt::format("[policy]\nfiles = [\"{}\"]\n", policy));
  BOOST_TEST_REQUIRE(errors.size() == 2u);
  BOOST_TEST(errors[0].find("'root:$6$SALTSALTSALTSALT'...") != std::string::npos, errors[0]);
  BOOST_TEST(errors[1].find("'caf\\xc3\\xa9-\\x1b[31m-example-and-'...") != std::string::npos,
             errors[1]);
  for (const auto& error : errors)
    BOOST_TEST(error.find("THEHASH") == std::string::npos, error);
}

BOOST_AUTO_TEST_CASE(load_time_is_linear_in_the_number_of_tables) {
  // Every message's position was counted from the start of the file: 10k [filter.fN] tables
  // took 1.3 s, 40k 18 s. The ratio of 4x the tables stays far below quadratic's 16x.
  const auto tables = [](int count) {
    std::string text = required;
    for (int i = 0; i < count; ++i)
      text += fmt::format("[filter.f{}]\nx = 1\n", i);
    return text;
  };
  const auto fastest = [](const std::string& text, size_t* errors) {
    auto best = std::chrono::steady_clock::duration::max();
    for (int round = 0; round < 3; ++round) {
      const auto start = std::chrono::steady_clock::now();
      const ConfigResult result = load_config_text(text, "t.toml");
      best = std::min(best, std::chrono::steady_clock::now() - start);
      *errors = result.errors.size();
    }
    return std::chrono::duration<double>(best).count();
  };
  const std::string small_text = tables(5000);
  const std::string large_text = tables(20000);
  size_t small_errors = 0;
  size_t large_errors = 0;
  const double small = fastest(small_text, &small_errors);
  const double large = fastest(large_text, &large_errors);
  BOOST_TEST(small_errors == 5000u);
  BOOST_TEST(large_errors == 20000u);
  BOOST_TEST(large / small < 9.0, "5k tables " << small << " s, 20k tables " << large << " s");
  // Positions still right at the end of a large file.
  const ConfigResult result = load_config_text(large_text, "t.toml");
  BOOST_TEST_REQUIRE(!result.errors.empty());
  BOOST_TEST(result.errors.back().line == 6 + 2 * 19999, result.errors.back().to_string());
  BOOST_TEST(result.errors.back().column == 1);
}

BOOST_AUTO_TEST_CASE(dns_resolvers_default_to_resolv_conf) {
  const Config config = loads("");
  std::ifstream in("/etc/resolv.conf");
  std::ostringstream text;
  text << in.rdbuf();
  auto expected = portcullis::resolv_conf_nameservers(text.str());
  if (expected.empty()) expected.push_back("127.0.0.1:53");
  BOOST_TEST(config.dns.resolvers == expected, boost::test_tools::per_element());
  BOOST_TEST(config.dns.resolvers_from_resolv_conf);
  BOOST_TEST(config.dns.timeout == 5u);
}

BOOST_AUTO_TEST_CASE(resolv_conf_nameservers_on_port_53) {
  const auto servers = portcullis::resolv_conf_nameservers(
      "# comment\nsearch example.test\nnameserver 192.0.2.53\nnameserver   2001:db8::53\n"
      "nameserver fe80::1%eth0\nnameserver not-an-address\noptions ndots:2\n");
  BOOST_TEST(servers == (std::vector<std::string>{"192.0.2.53:53", "[2001:db8::53]:53"}),
             boost::test_tools::per_element());
  BOOST_TEST(portcullis::resolv_conf_nameservers("search example.test\n").empty());
}

BOOST_AUTO_TEST_CASE(dns_section_is_read_and_checked) {
  const Config config =
      loads("[dns]\nresolvers = [\"127.0.0.1:5353\", \"[::1]:53\"]\ntimeout = 2\n");
  BOOST_TEST(config.dns.resolvers == (std::vector<std::string>{"127.0.0.1:5353", "[::1]:53"}),
             boost::test_tools::per_element());
  BOOST_TEST(!config.dns.resolvers_from_resolv_conf);
  BOOST_TEST(config.dns.timeout == 2u);

  BOOST_TEST(errors_of("[dns]\nresolvers = []\n") ==
                 std::vector<std::string>{
                     "t.toml:2:13: dns.resolvers: must list at least one resolver "
                     "(\"IP:PORT\"); leave the key out to use the nameservers of /etc/resolv.conf"},
             boost::test_tools::per_element());
  BOOST_TEST(errors_of("[dns]\nresolvers = [\"resolver.example:53\"]\n") ==
                 std::vector<std::string>{
                     "t.toml:2:14: dns.resolvers[0]: expected a numeric \"IP:PORT\" or "
                     "\"[IPv6]:PORT\", got \"resolver.example:53\""},
             boost::test_tools::per_element());
  BOOST_TEST(errors_of("[dns]\nresolvers = [\"127.0.0.1:0\"]\n").size() == 1u);
  BOOST_TEST(errors_of("[dns]\nresolvers = \"127.0.0.1:53\"\n") ==
                 std::vector<std::string>{
                     "t.toml:2:13: dns.resolvers: expected an array of strings, got a string"},
             boost::test_tools::per_element());
  BOOST_TEST(
      errors_of("[dns]\ntimeout = 0\n") ==
          std::vector<std::string>{"t.toml:2:11: dns.timeout: must be between 1 and 60, got 0"},
      boost::test_tools::per_element());
  BOOST_TEST(errors_of("[dns]\ntimeout = 61\n").size() == 1u);
  BOOST_TEST(errors_of("[dns]\nretries = 3\n") ==
                 std::vector<std::string>{"t.toml:2:11: dns.retries: unknown key"},
             boost::test_tools::per_element());
}
