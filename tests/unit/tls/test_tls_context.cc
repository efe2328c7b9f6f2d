#define BOOST_TEST_MODULE tls_context
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "config.h"
#include "tls_context.h"
#include "tls_ticket_keys.h"

namespace fs = std::filesystem;
using portcullis::Config;
using portcullis::TlsBlockConfig;
using portcullis::TlsServerContexts;

namespace {

// Certificates are made at run time with the openssl command (never committed keys).
struct CertDir {
  fs::path dir;
  CertDir() {
    char pattern[] = "/tmp/portcullis-tls-unit.XXXXXX";
    BOOST_REQUIRE(mkdtemp(pattern) != nullptr);
    dir = pattern;
    make("rsa", "-newkey rsa:2048", 30);
    make("ecdsa", "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1", 30);
    make("soon", "-newkey rsa:2048", 5);
  }
  ~CertDir() { fs::remove_all(dir); }
  void make(const std::string& name, const std::string& key_options, int days) {
    const std::string command =
        "openssl req -x509 -nodes " + key_options + " -keyout " + (dir / (name + ".key")).string() +
        " -out " + (dir / (name + ".crt")).string() + " -days " + std::to_string(days) +
        " -subj /CN=" + name + ".example.test >/dev/null 2>&1";
    BOOST_REQUIRE_MESSAGE(std::system(command.c_str()) == 0, command);
  }
  std::string crt(const std::string& name) const { return (dir / (name + ".crt")).string(); }
  std::string key(const std::string& name) const { return (dir / (name + ".key")).string(); }
};

Config config_with(TlsBlockConfig block) {
  Config config;
  config.tls.push_back(std::move(block));
  return config;
}

bool any_contains(const std::vector<std::string>& texts, const std::string& part) {
  for (const auto& text : texts) {
    if (text.find(part) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

BOOST_AUTO_TEST_CASE(rsa_and_ecdsa_pairs_load_into_one_block) {
  CertDir certs;
  TlsBlockConfig block;
  block.name = "mx";
  block.certificates = {{certs.crt("rsa"), certs.key("rsa")},
                        {certs.crt("ecdsa"), certs.key("ecdsa")}};
  auto loaded = TlsServerContexts::load(config_with(block), nullptr);
  BOOST_TEST(loaded.errors.empty());
  BOOST_TEST(loaded.warnings.empty());
  BOOST_REQUIRE(loaded.contexts);
  BOOST_TEST(loaded.contexts->new_ssl("mx") != nullptr);
  BOOST_TEST(loaded.contexts->new_ssl("other") == nullptr);
}

BOOST_AUTO_TEST_CASE(a_key_that_does_not_match_its_certificate_is_an_error) {
  CertDir certs;
  TlsBlockConfig block;
  block.name = "mx";
  block.certificates = {{certs.crt("rsa"), certs.key("soon")}};
  auto loaded = TlsServerContexts::load(config_with(block), nullptr);
  BOOST_TEST(!loaded.contexts);
  BOOST_REQUIRE(loaded.errors.size() == 1u);
  BOOST_TEST(loaded.errors[0].find("tls.mx: key " + certs.key("soon")) == 0u, loaded.errors[0]);
  BOOST_TEST(loaded.errors[0].find("mismatch") != std::string::npos, loaded.errors[0]);
}

BOOST_AUTO_TEST_CASE(missing_files_and_bad_settings_are_named) {
  CertDir certs;
  TlsBlockConfig block;
  block.name = "mx";
  block.certificates = {{(certs.dir / "absent.crt").string(), certs.key("rsa")}};
  block.ciphersuites = "NOT_A_SUITE";
  auto loaded = TlsServerContexts::load(config_with(block), nullptr);
  BOOST_TEST(!loaded.contexts);
  BOOST_TEST(any_contains(loaded.errors, "tls.mx: ciphersuites"));
  BOOST_TEST(
      any_contains(loaded.errors, "tls.mx: certificate " + (certs.dir / "absent.crt").string()));
  TlsBlockConfig empty;
  empty.name = "bare";
  BOOST_TEST(any_contains(TlsServerContexts::load(config_with(empty), nullptr).errors,
                          "tls.bare: no certificate"));
}

BOOST_AUTO_TEST_CASE(a_certificate_expiring_within_14_days_is_a_warning) {
  CertDir certs;
  TlsBlockConfig block;
  block.name = "mx";
  block.certificates = {{certs.crt("soon"), certs.key("soon")}};
  auto loaded = TlsServerContexts::load(config_with(block), nullptr);
  BOOST_TEST(loaded.errors.empty());
  BOOST_REQUIRE(loaded.contexts);
  BOOST_REQUIRE(loaded.warnings.size() == 1u);
  const std::string& warning = loaded.warnings[0];
  const bool says_days = warning.find("expires in 4 day(s)") != std::string::npos ||
                         warning.find("expires in 5 day(s)") != std::string::npos;
  BOOST_TEST(says_days, warning);
}

BOOST_AUTO_TEST_CASE(ticket_keys_attach_to_every_context) {
  CertDir certs;
  portcullis::TlsTicketKeys keys;
  TlsBlockConfig a;
  a.name = "a";
  a.certificates = {{certs.crt("rsa"), certs.key("rsa")}};
  TlsBlockConfig b = a;
  b.name = "b";
  Config config;
  config.tls = {a, b};
  auto loaded = TlsServerContexts::load(config, &keys);
  BOOST_REQUIRE(loaded.contexts);
  portcullis::SslPtr ssl = loaded.contexts->new_ssl("b");
  BOOST_REQUIRE(ssl);
  // Tickets stay on (resumption across workers and SNI blocks uses the shared keys).
  BOOST_TEST((SSL_get_options(ssl.get()) & SSL_OP_NO_TICKET) == 0u);
  BOOST_TEST((SSL_get_options(ssl.get()) & SSL_OP_NO_RENEGOTIATION) != 0u);
}
