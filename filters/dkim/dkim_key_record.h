// One DKIM key record (RFC 6376 §3.6.1) parsed once and its public key decoded once, so that
// the messages signed with it need no second d2i_PUBKEY (OpenSSL 3.0 spends ~160 µs on an
// RSA-2048 decode, far more than the verify). Immutable once built: DkimKeyCache hands the
// same record to every message whose key query returned the same bytes.
//
// It only understands a strict subset of what libopendkim 2.11 accepts — tag names in lower
// case, each once, printable ASCII, no empty tag-spec, p= in canonical base64 — where both
// parsers give the same tags (libopendkim removes all whitespace from a value, defaults k= to
// "rsa"). Anything outside it is not `plain()`, and the signature is left to libopendkim,
// whose result is the filter's as before.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct evp_pkey_st;

namespace portcullis {

class DkimKeyRecord {
 public:
  // Never null; a record outside the subset is returned with plain() false.
  static std::shared_ptr<const DkimKeyRecord> parse(std::string_view text);

  // Parsed within the subset, with a non-empty p= in canonical base64.
  bool plain() const { return plain_; }
  // A tag's value, whitespace removed (k= is "rsa" when absent); nullopt when absent.
  std::optional<std::string_view> tag(std::string_view name) const;
  // p= decoded as a SubjectPublicKeyInfo holding an RSA key (rsa-sha1, rsa-sha256), and as a
  // raw 32-byte Ed25519 key (ed25519-sha256), as libopendkim decodes it for each algorithm;
  // null when p= is not that.
  evp_pkey_st* rsa_key() const { return rsa_key_.get(); }
  evp_pkey_st* ed25519_key() const { return ed25519_key_.get(); }
  // What libopendkim reports as the RSA key size: 8 × the modulus bytes. 0 without rsa_key().
  unsigned rsa_bits() const { return rsa_bits_; }

 private:
  struct KeyFree {
    void operator()(evp_pkey_st* key) const;
  };

  bool plain_ = false;
  std::map<std::string, std::string, std::less<>> tags_;
  std::unique_ptr<evp_pkey_st, KeyFree> rsa_key_;
  std::unique_ptr<evp_pkey_st, KeyFree> ed25519_key_;
  unsigned rsa_bits_ = 0;
};

// Canonical base64 (RFC 4648 §4: the alphabet, length a multiple of 4, "=" only as the final
// padding) decoded; nullopt for anything else.
std::optional<std::string> decode_canonical_base64(std::string_view text);

}  // namespace portcullis
