// The dkim filter through the DNS filters' harness (also its StreamContext) on the RFC 8463
// A.3 message and its keys: streaming in any chunking gives the one-chunk result, keys answered
// while the body streams need no parking, keys still in flight park the data hook, a tampered
// body fails, a key timeout is temperror and a missing key permerror, only max_signatures
// signatures are checked (the warning saying so handed over by a timer when the result is
// known at once), the message is read from the data phase's MessageView when nothing was
// streamed, and the settings are validated. The signatures pass through the cached-key check
// (a second message served from this thread's key cache), and what it does not pass is still
// libopendkim's: a rotated key record fails, an RSA key under min_key_bits is policy, a key whose
// h= refuses the signature's hash does not pass.
#define BOOST_TEST_MODULE dkim_filter
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "dkim_filter.h"
#include "dkim_key_cache.h"
#include "dkim_verification.h"
#include "filter_harness.h"

using namespace portcullis;
using portcullis::test::FilterHarness;
using portcullis::test::make_harness;

namespace {

const std::string kEd25519Key = "brisbane._domainkey.football.example.com";
const std::string kRsaKey = "test._domainkey.football.example.com";

std::string read_corpus(const std::string& relative) {
  const char* corpora = std::getenv("PORTCULLIS_CORPORA");
  BOOST_REQUIRE(corpora != nullptr);
  std::ifstream in(std::string(corpora) + "/" + relative, std::ios::binary);
  BOOST_REQUIRE(in.good());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// mail-auth 001.txt: the RFC 8463 A.2 key lines, a blank line, the A.3 message (LF ends).
struct Vector {
  std::map<std::string, std::string> keys;
  std::string message;  // CRLF
};

const Vector& rfc8463() {
  static const Vector vector = [] {
    Vector parsed;
    const std::string text = read_corpus("dkim/mail-auth/001.txt");
    const auto blank = text.find("\n\n");
    std::istringstream lines(text.substr(0, blank));
    std::string line;
    while (std::getline(lines, line)) {
      const auto space = line.find(' ');
      parsed.keys[line.substr(0, space)] = line.substr(space + 1);
    }
    for (char c : text.substr(blank + 2)) {
      if (c == '\n') parsed.message += '\r';
      parsed.message += c;
    }
    return parsed;
  }();
  return vector;
}

DnsAnswer txt_answer(const std::string& text) {
  return DnsAnswer{DnsOutcome::answer, {DnsRecord{std::nullopt, "", 0, {text}}}, 300, ""};
}

void serve_keys(FilterHarness& harness) {
  for (const auto& [name, record] : rfc8463().keys)
    harness.dns.set(name, DnsType::txt, txt_answer(record));
}

std::unique_ptr<SessionFilter> make_filter(const SettingTable& settings = {}) {
  std::vector<SettingError> errors;
  auto factory = build_dkim_filter(settings, errors);
  BOOST_REQUIRE(errors.empty());
  BOOST_REQUIRE(factory != nullptr);
  return factory->create();
}

const DkimOutcome& outcome_of(const SessionFilter& filter) {
  return static_cast<const DkimFilter&>(filter).last_outcome();
}

void stream(SessionFilter& filter, FilterHarness& harness, const std::string& message,
            std::size_t chunk) {
  filter.on_message_begin(harness);
  for (std::size_t at = 0; at < message.size(); at += chunk)
    filter.on_message_data(harness, std::string_view(message).substr(at, chunk));
}

HookStatus data_hook(SessionFilter& filter, FilterHarness& harness) {
  harness.hook_phase = Phase::data;
  return filter.on_phase(harness);
}

// A MessageView over a string, as the session's in-memory store gives it.
class StringMessage : public MessageView {
 public:
  explicit StringMessage(std::string bytes) : bytes_(std::move(bytes)) {}
  std::uint64_t size() const override { return bytes_.size(); }
  std::string_view header_section() const override {
    return std::string_view(bytes_).substr(0, bytes_.find("\r\n\r\n"));
  }
  std::unique_ptr<MessageReader> read_from_start() const override {
    return std::make_unique<Reader>(bytes_);
  }

 private:
  class Reader : public MessageReader {
   public:
    explicit Reader(const std::string& bytes) : bytes_(bytes) {}
    bool read(std::string* chunk, std::size_t max_bytes) override {
      if (at_ >= bytes_.size()) return false;
      *chunk = bytes_.substr(at_, max_bytes);
      at_ += chunk->size();
      return true;
    }
    const std::string& error() const override { return error_; }

   private:
    const std::string& bytes_;
    std::size_t at_ = 0;
    std::string error_;
  };
  std::string bytes_;
};

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  BOOST_REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

// The RFC 8463 message checked by a DkimVerification of its own library, keys answered.
struct DirectCheck {
  DkimOutcome outcome;
  std::size_t passed_with_cached_key = 0;
};

DirectCheck check_directly(FilterHarness& harness, const DkimSettings& settings = {}) {
  std::string error;
  std::shared_ptr<const DkimLibrary> library =
      DkimLibrary::create(settings, DkimVerification::callbacks(), error);
  BOOST_REQUIRE_MESSAGE(library != nullptr, error);
  DkimVerification verification(library, &harness.dns);
  verification.feed(rfc8463().message);
  verification.end_of_message();
  harness.dns.deliver_all();
  BOOST_REQUIRE(verification.keys_ready());
  DirectCheck checked;
  checked.outcome = verification.finish();
  checked.passed_with_cached_key = verification.passed_with_cached_key();
  return checked;
}

// A key record for a new RSA key, as a rollover would publish it under the same selector.
std::string another_rsa_record() {
  std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> key(EVP_RSA_gen(1024), EVP_PKEY_free);
  BOOST_REQUIRE(key != nullptr);
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(key.get(), &der);
  BOOST_REQUIRE(length > 0);
  std::string text((length + 2) / 3 * 4 + 1, '\0');
  text.resize(static_cast<std::size_t>(
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text.data()), der, length)));
  OPENSSL_free(der);
  return "v=DKIM1; k=rsa; p=" + text;
}

}  // namespace

BOOST_AUTO_TEST_CASE(both_signatures_pass_with_cached_keys_and_the_second_message_hits_the_cache) {
  auto harness = make_harness("192.0.2.1");
  serve_keys(*harness);
  const DirectCheck first = check_directly(*harness);
  BOOST_TEST((first.outcome.verdict == DkimVerdict::pass));
  BOOST_TEST(first.passed_with_cached_key == 2u);
  const std::uint64_t hits_before = DkimKeyCache::for_this_thread().hits();
  const DirectCheck second = check_directly(*harness);
  BOOST_TEST(DkimKeyCache::for_this_thread().hits() == hits_before + 2);
  BOOST_TEST(second.passed_with_cached_key == 2u);
  BOOST_REQUIRE_EQUAL(second.outcome.signatures.size(), 2u);
  BOOST_TEST((second.outcome.signatures[0].verdict == DkimVerdict::pass));
  BOOST_TEST(second.outcome.signatures[0].key_bits == 0u);  // Ed25519, as libopendkim says
  BOOST_TEST((second.outcome.signatures[1].verdict == DkimVerdict::pass));
  BOOST_TEST(second.outcome.signatures[1].key_bits == 1024u);
  BOOST_TEST(second.outcome.passing_domains == std::vector<std::string>{"football.example.com"});
}

BOOST_AUTO_TEST_CASE(a_rotated_key_record_is_not_checked_with_the_cached_key) {
  auto harness = make_harness("192.0.2.1");
  serve_keys(*harness);
  BOOST_TEST(check_directly(*harness).passed_with_cached_key == 2u);
  harness->dns.set(kRsaKey, DnsType::txt, txt_answer(another_rsa_record()));
  const DirectCheck rotated = check_directly(*harness);
  BOOST_TEST(rotated.passed_with_cached_key == 1u);  // the Ed25519 signature only
  BOOST_REQUIRE_EQUAL(rotated.outcome.signatures.size(), 2u);
  BOOST_TEST((rotated.outcome.signatures[0].verdict == DkimVerdict::pass));
  BOOST_TEST((rotated.outcome.signatures[1].verdict == DkimVerdict::fail));
  BOOST_TEST(rotated.outcome.signatures[1].reason == "signature mismatch");
}

BOOST_AUTO_TEST_CASE(an_rsa_key_under_min_key_bits_is_left_to_libopendkim_and_is_policy) {
  auto harness = make_harness("192.0.2.1");
  serve_keys(*harness);
  DkimSettings settings;
  settings.min_key_bits = 2048;
  const DirectCheck checked = check_directly(*harness, settings);
  BOOST_TEST(checked.passed_with_cached_key == 1u);
  BOOST_REQUIRE_EQUAL(checked.outcome.signatures.size(), 2u);
  BOOST_TEST((checked.outcome.signatures[1].verdict == DkimVerdict::policy));
  BOOST_TEST(checked.outcome.signatures[1].reason == "RSA key of 1024 bits, under 2048 (RFC 8301)");
}

BOOST_AUTO_TEST_CASE(a_key_whose_h_refuses_the_hash_does_not_pass) {
  auto harness = make_harness("192.0.2.1");
  serve_keys(*harness);
  const std::string record = rfc8463().keys.at(kRsaKey);
  harness->dns.set(kRsaKey, DnsType::txt, txt_answer("h=sha1; " + record));
  const DirectCheck checked = check_directly(*harness);
  BOOST_TEST(checked.passed_with_cached_key == 1u);
  BOOST_REQUIRE_EQUAL(checked.outcome.signatures.size(), 2u);
  BOOST_TEST((checked.outcome.signatures[1].verdict == DkimVerdict::permerror));
}

BOOST_AUTO_TEST_CASE(both_rfc8463_signatures_pass_in_one_chunk_without_parking) {
  auto harness = make_harness("192.0.2.1");
  serve_keys(*harness);
  auto filter = make_filter();
  stream(*filter, *harness, rfc8463().message, rfc8463().message.size());
  // The key queries started at the end of the header; they answer before end of data.
  BOOST_TEST(harness->dns.asked.size() == 2u);
  harness->dns.deliver_all();
  BOOST_TEST((data_hook(*filter, *harness) == HookStatus::continue_chain));
  BOOST_TEST(harness->parks == 0);
  BOOST_TEST(!harness->failure.has_value());
  BOOST_TEST(*harness->recorded.string("dkim") == "pass");
  BOOST_TEST(*harness->recorded.list("dkim.domains") == FactList{"football.example.com"});
  const DkimOutcome& outcome = outcome_of(*filter);
  BOOST_REQUIRE_EQUAL(outcome.signatures.size(), 2u);
  BOOST_TEST(outcome.signatures[0].algorithm == "ed25519-sha256");
  BOOST_TEST(outcome.signatures[0].selector == "brisbane");
  BOOST_TEST((outcome.signatures[0].verdict == DkimVerdict::pass));
  BOOST_TEST(outcome.signatures[1].algorithm == "rsa-sha256");
  BOOST_TEST(outcome.signatures[1].key_bits == 1024u);
  BOOST_TEST((outcome.signatures[1].verdict == DkimVerdict::pass));
}

BOOST_AUTO_TEST_CASE(odd_chunk_sizes_give_the_one_chunk_result) {
  for (std::size_t chunk : {1u, 2u, 3u, 5u, 7u, 13u, 64u, 333u}) {
    BOOST_TEST_CONTEXT("chunk " << chunk) {
      auto harness = make_harness("192.0.2.1");
      serve_keys(*harness);
      auto filter = make_filter();
      stream(*filter, *harness, rfc8463().message, chunk);
      harness->dns.deliver_all();
      data_hook(*filter, *harness);
      BOOST_TEST(*harness->recorded.string("dkim") == "pass");
      const DkimOutcome& outcome = outcome_of(*filter);
      BOOST_REQUIRE_EQUAL(outcome.signatures.size(), 2u);
      BOOST_TEST((outcome.signatures[0].verdict == DkimVerdict::pass));
      BOOST_TEST((outcome.signatures[1].verdict == DkimVerdict::pass));
    }
  }
}

BOOST_AUTO_TEST_CASE(keys_still_in_flight_park_the_data_hook_until_they_answer) {
  auto harness = make_harness("192.0.2.1");
  serve_keys(*harness);
  auto filter = make_filter();
  stream(*filter, *harness, rfc8463().message, 100);
  BOOST_TEST((data_hook(*filter, *harness) == HookStatus::stop_iteration));
  BOOST_TEST(harness->parks == 1);
  BOOST_TEST(harness->results.empty());
  BOOST_TEST(harness->dns.deliver_next());
  BOOST_TEST(harness->results.empty(), "one key is still in flight");
  BOOST_TEST(harness->dns.deliver_next());
  BOOST_REQUIRE_EQUAL(harness->results.size(), 1u);
  BOOST_TEST(*harness->results[0].facts.string("dkim") == "pass");
  BOOST_TEST(*harness->results[0].facts.list("dkim.domains") == FactList{"football.example.com"});
}

BOOST_AUTO_TEST_CASE(the_session_may_end_inside_the_completion) {
  auto harness = make_harness("192.0.2.1");
  serve_keys(*harness);
  auto filter = make_filter();
  stream(*filter, *harness, rfc8463().message, 100);
  data_hook(*filter, *harness);
  harness->on_deliver = [&] { filter.reset(); };
  harness->dns.deliver_all();
  BOOST_REQUIRE_EQUAL(harness->results.size(), 1u);
  BOOST_TEST(filter == nullptr);
}

BOOST_AUTO_TEST_CASE(a_tampered_body_fails_both_signatures) {
  auto harness = make_harness("192.0.2.1");
  serve_keys(*harness);
  auto filter = make_filter();
  stream(*filter, *harness, replaced(rfc8463().message, "We lost the game", "We won the game"), 17);
  harness->dns.deliver_all();
  data_hook(*filter, *harness);
  BOOST_TEST(*harness->recorded.string("dkim") == "fail");
  BOOST_TEST(harness->recorded.list("dkim.domains")->empty());
  const DkimOutcome& outcome = outcome_of(*filter);
  BOOST_REQUIRE_EQUAL(outcome.signatures.size(), 2u);
  for (const auto& signature : outcome.signatures) {
    BOOST_TEST((signature.verdict == DkimVerdict::fail));
    BOOST_TEST(signature.reason == "body hash mismatch");
  }
}

BOOST_AUTO_TEST_CASE(a_key_query_timeout_is_temperror) {
  auto harness = make_harness("192.0.2.1");
  harness->dns.set_outcome(kEd25519Key, DnsType::txt, DnsOutcome::temporary_failure, "timeout");
  harness->dns.set_outcome(kRsaKey, DnsType::txt, DnsOutcome::temporary_failure, "SERVFAIL");
  auto filter = make_filter();
  stream(*filter, *harness, rfc8463().message, 100);
  BOOST_TEST((data_hook(*filter, *harness) == HookStatus::stop_iteration));
  harness->dns.deliver_all();
  BOOST_REQUIRE_EQUAL(harness->results.size(), 1u);
  BOOST_TEST(*harness->results[0].facts.string("dkim") == "temperror");
  const DkimOutcome& outcome = outcome_of(*filter);
  BOOST_REQUIRE_EQUAL(outcome.signatures.size(), 2u);
  BOOST_TEST((outcome.signatures[0].verdict == DkimVerdict::temperror));
  BOOST_TEST(outcome.signatures[0].reason == "key query failed: timeout");
  BOOST_TEST(outcome.signatures[1].reason == "key query failed: SERVFAIL");
}

BOOST_AUTO_TEST_CASE(a_missing_key_is_permerror_and_the_other_signature_still_passes) {
  auto harness = make_harness("192.0.2.1");
  harness->dns.set(kRsaKey, DnsType::txt, txt_answer(rfc8463().keys.at(kRsaKey)));
  // The ed25519 key name is not set: NXDOMAIN.
  auto filter = make_filter();
  stream(*filter, *harness, rfc8463().message, 100);
  harness->dns.deliver_all();
  data_hook(*filter, *harness);
  BOOST_TEST(*harness->recorded.string("dkim") == "pass");
  const DkimOutcome& outcome = outcome_of(*filter);
  BOOST_REQUIRE_EQUAL(outcome.signatures.size(), 2u);
  BOOST_TEST((outcome.signatures[0].verdict == DkimVerdict::permerror));
  BOOST_TEST(outcome.signatures[0].reason == "no key");
  BOOST_TEST((outcome.signatures[1].verdict == DkimVerdict::pass));
}

BOOST_AUTO_TEST_CASE(only_max_signatures_signatures_are_checked) {
  // Seven signature fields with selectors sel0 … sel6 (the top-most first), then the message.
  const std::string& message = rfc8463().message;
  const std::string first_field = message.substr(0, message.find("\r\nDKIM-Signature:") + 2);
  std::string signed_message;
  for (int i = 0; i < 7; ++i)
    signed_message += replaced(first_field, "s=brisbane", "s=sel" + std::to_string(i));
  signed_message += message;  // the two real signatures come after: beyond the bound too
  auto harness = make_harness("192.0.2.1");
  serve_keys(*harness);
  auto filter = make_filter(SettingTable{{"max_signatures", SettingValue{std::int64_t{3}}}});
  stream(*filter, *harness, signed_message, 256);
  std::vector<std::string> asked;
  for (const auto& query : harness->dns.asked)
    asked.push_back(query.name);
  BOOST_TEST((asked == std::vector<std::string>{"sel0._domainkey.football.example.com",
                                                "sel1._domainkey.football.example.com",
                                                "sel2._domainkey.football.example.com"}));
  BOOST_TEST((data_hook(*filter, *harness) == HookStatus::stop_iteration));
  harness->dns.deliver_all();
  BOOST_REQUIRE_EQUAL(harness->results.size(), 1u);
  BOOST_TEST(*harness->results[0].facts.string("dkim") == "permerror");
  BOOST_REQUIRE_EQUAL(harness->results[0].warnings.size(), 1u);
  BOOST_TEST(harness->results[0].warnings[0] ==
             "6 DKIM-Signature fields beyond max_signatures not checked");
  const DkimOutcome& outcome = outcome_of(*filter);
  BOOST_TEST(outcome.signatures_not_checked == 6u);
  BOOST_REQUIRE_EQUAL(outcome.signatures.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i)
    BOOST_TEST(outcome.signatures[i].selector == "sel" + std::to_string(i));
}

BOOST_AUTO_TEST_CASE(a_result_known_at_once_is_recorded_with_its_warning_and_entries) {
  // The keys answered while the body streamed: the data hook answers at once, with the
  // warning about the signature left unchecked and one Authentication-Results entry.
  const std::string& message = rfc8463().message;
  auto harness = make_harness("192.0.2.1");
  serve_keys(*harness);
  auto filter = make_filter(SettingTable{{"max_signatures", SettingValue{std::int64_t{1}}}});
  stream(*filter, *harness, message, 512);
  BOOST_TEST(harness->dns.deliver_all() == 1);
  BOOST_TEST((data_hook(*filter, *harness) == HookStatus::continue_chain));
  BOOST_TEST(harness->parks == 0);
  BOOST_TEST(*harness->recorded.string("dkim") == "pass");
  BOOST_TEST((harness->warned == std::vector<std::string>{
                                     "1 DKIM-Signature fields beyond max_signatures not checked"}));
  BOOST_REQUIRE_EQUAL(harness->authentication.size(), 1u);
  const AuthenticationEntry& entry = harness->authentication[0];
  BOOST_TEST(entry.method == "dkim");
  BOOST_TEST(entry.result == "pass");
  BOOST_TEST(entry.reason.empty());
  BOOST_TEST((entry.properties ==
              std::vector<std::pair<std::string, std::string>>{{"header.d", "football.example.com"},
                                                               {"header.s", "brisbane"},
                                                               {"header.a", "ed25519-sha256"}}));
}

BOOST_AUTO_TEST_CASE(each_signature_is_an_authentication_entry_with_its_reason) {
  // RFC 8463 A.3 with its body changed: both signatures fail, each its own entry.
  std::string message = rfc8463().message;
  const auto body = message.find("\r\n\r\n");
  BOOST_REQUIRE(body != std::string::npos);
  message.insert(body + 4, "tampered ");
  auto harness = make_harness("192.0.2.1");
  serve_keys(*harness);
  auto filter = make_filter();
  stream(*filter, *harness, message, 512);
  harness->dns.deliver_all();
  BOOST_TEST((data_hook(*filter, *harness) == HookStatus::continue_chain));
  BOOST_REQUIRE_EQUAL(harness->authentication.size(), 2u);
  for (const AuthenticationEntry& entry : harness->authentication) {
    BOOST_TEST(entry.method == "dkim");
    BOOST_TEST(entry.result == "fail");
    BOOST_TEST(!entry.reason.empty());
  }
  BOOST_TEST(harness->authentication[0].properties.at(1).second == "brisbane");
  BOOST_TEST(harness->authentication[1].properties.at(1).second == "test");
}

BOOST_AUTO_TEST_CASE(without_a_stream_the_message_is_read_at_the_data_phase) {
  auto harness = make_harness("192.0.2.1");
  serve_keys(*harness);
  StringMessage message(rfc8463().message);
  harness->message_view = &message;
  auto filter = make_filter();
  BOOST_TEST((data_hook(*filter, *harness) == HookStatus::stop_iteration));
  BOOST_TEST(harness->dns.asked.size() == 2u);
  harness->dns.deliver_all();
  BOOST_REQUIRE_EQUAL(harness->results.size(), 1u);
  BOOST_TEST(*harness->results[0].facts.string("dkim") == "pass");
}

BOOST_AUTO_TEST_CASE(an_unsigned_message_is_none_without_dns) {
  auto harness = make_harness("192.0.2.1");
  auto filter = make_filter();
  stream(*filter, *harness, "From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n", 5);
  BOOST_TEST((data_hook(*filter, *harness) == HookStatus::continue_chain));
  BOOST_TEST(harness->dns.asked.empty());
  BOOST_TEST(*harness->recorded.string("dkim") == "none");
  BOOST_TEST(harness->recorded.list("dkim.domains")->empty());
}

BOOST_AUTO_TEST_CASE(a_message_without_an_empty_line_is_all_header) {
  auto harness = make_harness("192.0.2.1");
  auto filter = make_filter();
  stream(*filter, *harness, "From: a@example.com\r\nSubject: hi", 4);
  data_hook(*filter, *harness);
  BOOST_TEST(*harness->recorded.string("dkim") == "none");
}

BOOST_AUTO_TEST_CASE(without_a_resolver_the_filter_fails) {
  auto harness = make_harness("192.0.2.1", false);
  auto filter = make_filter();
  stream(*filter, *harness, rfc8463().message, 100);
  BOOST_TEST((data_hook(*filter, *harness) == HookStatus::continue_chain));
  BOOST_TEST(harness->failure.value_or("") == "no resolver");
}

BOOST_AUTO_TEST_CASE(cancel_drops_the_key_queries) {
  auto harness = make_harness("192.0.2.1");
  serve_keys(*harness);
  auto filter = make_filter();
  stream(*filter, *harness, rfc8463().message, 100);
  data_hook(*filter, *harness);
  BOOST_TEST(harness->dns.in_flight() == 2u);
  filter->cancel();
  BOOST_TEST(harness->dns.in_flight() == 0u);
  BOOST_TEST(harness->dns.deliver_all() == 0);
  BOOST_TEST(harness->results.empty());
}

BOOST_AUTO_TEST_CASE(other_phases_are_ignored) {
  auto harness = make_harness("192.0.2.1");
  auto filter = make_filter();
  harness->hook_phase = Phase::rcpt;
  BOOST_TEST((filter->on_phase(*harness) == HookStatus::continue_chain));
  BOOST_TEST(harness->recorded.empty());
  BOOST_TEST(!harness->failure.has_value());
}

BOOST_AUTO_TEST_CASE(settings_are_validated) {
  std::vector<SettingError> errors;
  BOOST_TEST(build_dkim_filter(SettingTable{{"min_key_bits", SettingValue{std::int64_t{256}}}},
                               errors) == nullptr);
  BOOST_REQUIRE_EQUAL(errors.size(), 1u);
  BOOST_TEST(errors[0].key == "min_key_bits");
  errors.clear();
  BOOST_TEST(build_dkim_filter(SettingTable{{"max_signature", SettingValue{std::int64_t{3}}}},
                               errors) == nullptr);
  BOOST_REQUIRE_EQUAL(errors.size(), 1u);
  BOOST_TEST(errors[0].key == "max_signature");
  errors.clear();
  BOOST_TEST(build_dkim_filter(SettingTable{{"allow_sha1", SettingValue{true}},
                                            {"min_key_bits", SettingValue{std::int64_t{512}}},
                                            {"max_signatures", SettingValue{std::int64_t{1}}}},
                               errors) != nullptr);
  BOOST_TEST(errors.empty());
}

BOOST_AUTO_TEST_CASE(verdict_order_follows_design) {
  using enum DkimVerdict;
  BOOST_TEST((better_dkim_verdict(none, permerror) == permerror));
  BOOST_TEST((better_dkim_verdict(permerror, temperror) == temperror));
  BOOST_TEST((better_dkim_verdict(temperror, policy) == policy));
  BOOST_TEST((better_dkim_verdict(policy, fail) == fail));
  BOOST_TEST((better_dkim_verdict(fail, pass) == pass));
  BOOST_TEST((better_dkim_verdict(pass, fail) == pass));
}
