#include "dkim_cached_key_check.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <strings.h>

#include <memory>
#include <string>
#include <string_view>

// dkim.h uses _Bool and includes <stdbool.h> only under HAVE_STDBOOL_H (STACK-NOTES §2).
#include <stdbool.h>
// clang-format off
#include <dkim.h>
// clang-format on

namespace portcullis {

namespace {

struct PkeyContextFree {
  void operator()(EVP_PKEY_CTX* context) const { EVP_PKEY_CTX_free(context); }
};
struct DigestContextFree {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};

unsigned char* tag(const char* name) {
  return reinterpret_cast<unsigned char*>(const_cast<char*>(name));
}

std::optional<std::string_view> signature_tag(dkim_siginfo* signature, const char* name) {
  const unsigned char* value = dkim_sig_gettagvalue(signature, false, tag(name));
  if (value == nullptr) return std::nullopt;
  return std::string_view(reinterpret_cast<const char*>(value));
}

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// libopendkim splits these lists with strtok on ':' (empty items skipped); whitespace is
// already gone from the value.
template <typename Match>
bool any_item(std::string_view list, Match match) {
  while (!list.empty()) {
    const auto colon = list.find(':');
    const std::string_view item = list.substr(0, colon);
    if (!item.empty() && match(item)) return true;
    if (colon == std::string_view::npos) break;
    list.remove_prefix(colon + 1);
  }
  return false;
}

// dkim_get_key's checks of the record, in its order, each giving an error when it fails.
bool key_record_allows(const DkimKeyRecord& key, std::string_view hash_name) {
  if (const auto version = key.tag("v"); version && *version != "DKIM1") return false;
  // h= (dkim_key_hashesok, dkim_key_hashok): the signature's hash must be listed.
  if (const auto hashes = key.tag("h"); hashes && !any_item(*hashes, [&](std::string_view item) {
                                          return equal_ignoring_case(item, hash_name);
                                        }))
    return false;
  // s= (dkim_key_smtp): "*" or "email".
  if (const auto services = key.tag("s");
      services && !any_item(*services, [](std::string_view item) {
        return item == "*" || equal_ignoring_case(item, "email");
      }))
    return false;
  const auto type = key.tag("k");
  return type && (equal_ignoring_case(*type, "rsa") || equal_ignoring_case(*type, "ed25519"));
}

// dkim_sig_process's t=s rule: with the flag, an i= whose domain is not d= is an error.
bool subdomain_rule_holds(const DkimKeyRecord& key, dkim_siginfo* signature) {
  const auto flags = key.tag("t");
  if (!flags ||
      !any_item(*flags, [](std::string_view item) { return equal_ignoring_case(item, "s"); }))
    return true;
  const auto identity = signature_tag(signature, "i");
  const auto domain = signature_tag(signature, "d");
  if (!identity || !domain) return true;
  std::string_view identity_domain = *identity;
  if (const auto at = identity_domain.find('@'); at != std::string_view::npos)
    identity_domain.remove_prefix(at + 1);
  return equal_ignoring_case(identity_domain, *domain);
}

// RSA_verify(nid, digest, …) as libopendkim calls it: PKCS #1 v1.5 over the header hash.
bool rsa_signature_verifies(EVP_PKEY* key, const EVP_MD* digest, const std::string& signature,
                            const unsigned char* hash, std::size_t hash_length) {
  std::unique_ptr<EVP_PKEY_CTX, PkeyContextFree> context(EVP_PKEY_CTX_new(key, nullptr));
  return context && EVP_PKEY_verify_init(context.get()) == 1 &&
         EVP_PKEY_CTX_set_rsa_padding(context.get(), RSA_PKCS1_PADDING) == 1 &&
         EVP_PKEY_CTX_set_signature_md(context.get(), digest) == 1 &&
         EVP_PKEY_verify(context.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                         signature.size(), hash, hash_length) == 1;
}

// RFC 8463 §3: Ed25519 over the SHA-256 header hash, as libopendkim's EVP_DigestVerify.
bool ed25519_signature_verifies(EVP_PKEY* key, const std::string& signature,
                                const unsigned char* hash, std::size_t hash_length) {
  std::unique_ptr<EVP_MD_CTX, DigestContextFree> context(EVP_MD_CTX_new());
  return context && EVP_DigestVerifyInit(context.get(), nullptr, nullptr, nullptr, key) == 1 &&
         EVP_DigestVerify(context.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), hash, hash_length) == 1;
}

std::string base64(const unsigned char* bytes, std::size_t length) {
  std::string out((length + 2) / 3 * 4 + 1, '\0');
  const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes,
                                      static_cast<int>(length));
  out.resize(written < 0 ? 0 : static_cast<std::size_t>(written));
  return out;
}

std::optional<unsigned> check(dkim_siginfo* signature, const DkimKeyRecord& key,
                              const DkimSettings& settings) {
  if (!key.plain()) return std::nullopt;
  dkim_alg_t algorithm = DKIM_SIGN_UNKNOWN;
  if (dkim_sig_getsignalg(signature, &algorithm) != DKIM_STAT_OK) return std::nullopt;
  const bool ed25519 = algorithm == DKIM_SIGN_ED25519SHA256;
  const EVP_MD* digest = nullptr;
  if (algorithm == DKIM_SIGN_RSASHA1) {
    digest = EVP_sha1();
  } else if (algorithm == DKIM_SIGN_RSASHA256 || ed25519) {
    digest = EVP_sha256();
  } else {
    return std::nullopt;
  }
  if (!key_record_allows(key, algorithm == DKIM_SIGN_RSASHA1 ? "sha1" : "sha256"))
    return std::nullopt;
  EVP_PKEY* public_key = ed25519 ? key.ed25519_key() : key.rsa_key();
  if (public_key == nullptr) return std::nullopt;  // libopendkim: key decode error
  // Checked after its verify by libopendkim, which then refuses the pass; the same here.
  if (!ed25519 && key.rsa_bits() < static_cast<std::uint64_t>(settings.min_key_bits))
    return std::nullopt;

  const auto encoded_signature = signature_tag(signature, "b");
  const auto body_hash_tag = signature_tag(signature, "bh");
  if (!encoded_signature || !body_hash_tag) return std::nullopt;
  const auto signature_bytes = decode_canonical_base64(*encoded_signature);
  if (!signature_bytes || signature_bytes->empty()) return std::nullopt;

  void* header_hash = nullptr;
  void* body_hash = nullptr;
  std::size_t header_hash_length = 0;
  std::size_t body_hash_length = 0;
  if (dkim_sig_gethashes(signature, &header_hash, &header_hash_length, &body_hash,
                         &body_hash_length) != DKIM_STAT_OK ||
      header_hash == nullptr || body_hash == nullptr ||
      header_hash_length != static_cast<std::size_t>(EVP_MD_get_size(digest)))
    return std::nullopt;
  const auto* header_digest = static_cast<const unsigned char*>(header_hash);
  const bool verified = ed25519 ? ed25519_signature_verifies(public_key, *signature_bytes,
                                                             header_digest, header_hash_length)
                                : rsa_signature_verifies(public_key, digest, *signature_bytes,
                                                         header_digest, header_hash_length);
  if (!verified) return std::nullopt;
  // libopendkim compares the base64 of its body hash with the bh= value as a string.
  if (base64(static_cast<const unsigned char*>(body_hash), body_hash_length) != *body_hash_tag)
    return std::nullopt;
  if (!subdomain_rule_holds(key, signature)) return std::nullopt;
  return ed25519 ? 0u : key.rsa_bits();
}

}  // namespace

std::optional<unsigned> check_with_cached_key(dkim_siginfo* signature, const DkimKeyRecord& key,
                                              const DkimSettings& settings) {
  std::optional<unsigned> result = check(signature, key, settings);
  // A failed verify leaves errors on this thread's OpenSSL queue; they are answered here.
  ERR_clear_error();
  return result;
}

}  // namespace portcullis
