// The dkim filter's decoded-key cache and the key records it holds: a record in the strict
// subset is parsed as libopendkim parses it (whitespace removed from values, k= defaulting to
// rsa) and its key decoded once, as RSA SubjectPublicKeyInfo and as raw Ed25519; every record
// outside the subset is not plain (left to libopendkim). The cache serves the same decoded
// record for the same bytes (hit), keeps at most its capacity (least recently used dropped),
// drops an entry at its TTL (and keeps none for TTL 0), and never serves a changed record's
// bytes with the old key. Keys are made by the test with OpenSSL.
#define BOOST_TEST_MODULE dkim_key_cache
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "dkim_key_cache.h"
#include "dkim_key_record.h"

using namespace portcullis;
using namespace std::chrono_literals;

namespace {

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

std::string base64(const unsigned char* bytes, std::size_t length) {
  std::string out((length + 2) / 3 * 4 + 1, '\0');
  out.resize(static_cast<std::size_t>(EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                                      bytes, static_cast<int>(length))));
  return out;
}

Key new_rsa_key(unsigned bits) {
  Key key(EVP_RSA_gen(bits));
  BOOST_REQUIRE(key != nullptr);
  return key;
}

// p= of a key record: the SubjectPublicKeyInfo (RSA) in base64.
std::string rsa_public_base64(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(key, &der);
  BOOST_REQUIRE(length > 0);
  std::string text = base64(der, static_cast<std::size_t>(length));
  OPENSSL_free(der);
  return text;
}

// p= of an RFC 8463 key record: the raw 32-byte public key in base64.
std::string ed25519_public_base64(Key& key) {
  key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  BOOST_REQUIRE(key != nullptr);
  unsigned char raw[32];
  std::size_t length = sizeof raw;
  BOOST_REQUIRE(EVP_PKEY_get_raw_public_key(key.get(), raw, &length) == 1);
  return base64(raw, length);
}

const Key& rsa_1024() {
  static const Key key = new_rsa_key(1024);
  return key;
}
const Key& other_rsa_1024() {
  static const Key key = new_rsa_key(1024);
  return key;
}

std::string rsa_record(const Key& key) {
  return "v=DKIM1; k=rsa; p=" + rsa_public_base64(key.get());
}

const auto kStart = DkimKeyCache::Clock::time_point{} + 1000h;

}  // namespace

BOOST_AUTO_TEST_CASE(a_plain_rsa_record_is_parsed_and_its_key_decoded) {
  const auto record = DkimKeyRecord::parse(rsa_record(rsa_1024()) + ";");
  BOOST_REQUIRE(record->plain());
  BOOST_TEST(*record->tag("v") == "DKIM1");
  BOOST_TEST(*record->tag("k") == "rsa");
  BOOST_TEST(!record->tag("h").has_value());
  BOOST_REQUIRE(record->rsa_key() != nullptr);
  BOOST_TEST(EVP_PKEY_eq(record->rsa_key(), rsa_1024().get()) == 1);
  BOOST_TEST(record->rsa_bits() == 1024u);
  BOOST_TEST(record->ed25519_key() == nullptr);  // a SubjectPublicKeyInfo is no raw key
}

BOOST_AUTO_TEST_CASE(an_ed25519_record_is_decoded_as_a_raw_key) {
  Key key;
  const std::string p = ed25519_public_base64(key);
  const auto record = DkimKeyRecord::parse("v=DKIM1; k=ed25519; p=" + p);
  BOOST_REQUIRE(record->plain());
  BOOST_REQUIRE(record->ed25519_key() != nullptr);
  BOOST_TEST(EVP_PKEY_eq(record->ed25519_key(), key.get()) == 1);
  BOOST_TEST(record->rsa_key() == nullptr);
  BOOST_TEST(record->rsa_bits() == 0u);
}

BOOST_AUTO_TEST_CASE(values_lose_their_whitespace_and_k_defaults_to_rsa) {
  std::string p = rsa_public_base64(rsa_1024().get());
  p.insert(40, " \t ");
  p.insert(10, " ");
  const auto record = DkimKeyRecord::parse("  h = sha1 : sha256 ;p=" + p + " ; t=y:s ");
  BOOST_REQUIRE(record->plain());
  BOOST_TEST(*record->tag("h") == "sha1:sha256");
  BOOST_TEST(*record->tag("t") == "y:s");
  BOOST_TEST(*record->tag("k") == "rsa");
  BOOST_REQUIRE(record->rsa_key() != nullptr);
  BOOST_TEST(EVP_PKEY_eq(record->rsa_key(), rsa_1024().get()) == 1);
}

BOOST_AUTO_TEST_CASE(records_outside_the_subset_are_not_plain) {
  const std::string p = rsa_public_base64(rsa_1024().get());
  const std::string cases[] = {
      "",                                          // empty record
      "v=DKIM1; p=",                               // revoked (RFC 6376 3.6.1)
      "v=DKIM1; k=rsa",                            // no key
      "v=DKIM1;; p=" + p,                          // empty tag-spec: libopendkim's syntax error
      "v=DKIM1; p=" + p + "; p=" + p,              // a tag twice
      "v=DKIM1; K=rsa; p=" + p,                    // upper case name
      "v=DKIM1; k rsa; p=" + p,                    // no '='
      "v=DKIM1; p=" + p.substr(1),                 // not canonical base64
      "v=DKIM1; p=" + p + "=",                     // padding beyond the length
      "v=DKIM1; p=" + p.substr(0, 8) + "!" + p,    // outside the alphabet
      "v=DKIM1;\r\n p=" + p,                       // a control character
      "v=DKIM1; p=" + std::string("\xc3\xa9") + p  // not ASCII
  };
  for (const std::string& text : cases) {
    BOOST_TEST_CONTEXT(text) {
      BOOST_TEST(!DkimKeyRecord::parse(text)->plain());
    }
  }
}

BOOST_AUTO_TEST_CASE(canonical_base64_only) {
  BOOST_TEST(*decode_canonical_base64("") == "");
  BOOST_TEST(*decode_canonical_base64("Zm9v") == "foo");
  BOOST_TEST(*decode_canonical_base64("Zm8=") == "fo");
  BOOST_TEST(*decode_canonical_base64("Zg==") == "f");
  BOOST_TEST(!decode_canonical_base64("Zg").has_value());
  BOOST_TEST(!decode_canonical_base64("Zg=a").has_value());
  BOOST_TEST(!decode_canonical_base64("Z===").has_value());
  BOOST_TEST(!decode_canonical_base64("Zm 9v").has_value());
}

BOOST_AUTO_TEST_CASE(the_same_bytes_are_served_from_the_cache) {
  DkimKeyCache cache;
  const std::string record = rsa_record(rsa_1024());
  const auto first = cache.get(record, 300, kStart);
  const auto second = cache.get(record, 300, kStart + 299s);
  BOOST_TEST(first.get() == second.get());  // not parsed, not decoded again
  BOOST_TEST(cache.hits() == 1u);
  BOOST_TEST(cache.misses() == 1u);
  BOOST_TEST(cache.size() == 1u);
}

BOOST_AUTO_TEST_CASE(the_cache_keeps_at_most_its_capacity_dropping_the_least_recently_used) {
  DkimKeyCache cache(2);
  const std::string a = rsa_record(rsa_1024());
  const std::string b = rsa_record(other_rsa_1024());
  const std::string c = "v=DKIM1; k=rsa; t=y; p=" + rsa_public_base64(rsa_1024().get());
  const auto first_a = cache.get(a, 300, kStart);
  const auto first_b = cache.get(b, 300, kStart);
  cache.get(a, 300, kStart + 1s);  // a is now the most recently used
  cache.get(c, 300, kStart + 2s);  // full: b goes
  BOOST_TEST(cache.size() == 2u);
  BOOST_TEST(cache.hits() == 1u);
  BOOST_TEST(cache.get(a, 300, kStart + 3s).get() == first_a.get());
  BOOST_TEST(cache.get(b, 300, kStart + 3s).get() != first_b.get());  // parsed again
  BOOST_TEST(cache.size() == 2u);
  BOOST_TEST(cache.misses() == 4u);
}

BOOST_AUTO_TEST_CASE(an_entry_is_dropped_at_its_ttl) {
  DkimKeyCache cache;
  const std::string record = rsa_record(rsa_1024());
  const auto first = cache.get(record, 10, kStart);
  BOOST_TEST(cache.get(record, 10, kStart + 9s).get() == first.get());
  const auto after = cache.get(record, 10, kStart + 10s);
  BOOST_TEST(after.get() != first.get());
  BOOST_TEST(cache.misses() == 2u);
  BOOST_TEST(cache.size() == 1u);
  BOOST_TEST(EVP_PKEY_eq(after->rsa_key(), rsa_1024().get()) == 1);
}

BOOST_AUTO_TEST_CASE(an_answer_with_ttl_zero_is_not_kept) {
  DkimKeyCache cache;
  const std::string record = rsa_record(rsa_1024());
  const auto first = cache.get(record, 0, kStart);
  BOOST_TEST(first->plain());
  BOOST_TEST(cache.size() == 0u);
  BOOST_TEST(cache.get(record, 0, kStart).get() != first.get());
  BOOST_TEST(cache.hits() == 0u);
}

BOOST_AUTO_TEST_CASE(a_changed_record_is_not_served_with_the_old_key) {
  DkimKeyCache cache;
  const auto old_record = cache.get(rsa_record(rsa_1024()), 300, kStart);
  // The same selector's record after a key rollover: other bytes, so another entry.
  const auto new_record = cache.get(rsa_record(other_rsa_1024()), 300, kStart + 1s);
  BOOST_TEST(cache.hits() == 0u);
  BOOST_REQUIRE(new_record->rsa_key() != nullptr);
  BOOST_TEST(EVP_PKEY_eq(new_record->rsa_key(), other_rsa_1024().get()) == 1);
  BOOST_TEST(EVP_PKEY_eq(new_record->rsa_key(), old_record->rsa_key()) != 1);
  // A record revoked in place (p= emptied) is not plain, whatever was cached before.
  const auto revoked = cache.get("v=DKIM1; k=rsa; p=", 300, kStart + 2s);
  BOOST_TEST(!revoked->plain());
  BOOST_TEST(revoked->rsa_key() == nullptr);
}
