#include "tls_ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstring>

#include "callback_guard.h"

namespace portcullis {

namespace {
int ticket_keys_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}
}  // namespace

TlsTicketKeys::TlsTicketKeys() {
  Key key;
  if (make_key(&key)) keys_.push_back(key);
}

bool TlsTicketKeys::make_key(Key* key) {
  key->created = std::chrono::steady_clock::now();
  return RAND_bytes(key->name.data(), key->name.size()) == 1 &&
         RAND_bytes(key->aes_key.data(), key->aes_key.size()) == 1 &&
         RAND_bytes(key->hmac_key.data(), key->hmac_key.size()) == 1;
}

void TlsTicketKeys::attach(SSL_CTX* ctx) {
  SSL_CTX_set_ex_data(ctx, ticket_keys_index(), this);
  SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &TlsTicketKeys::callback);
}

void TlsTicketKeys::rotate_if_due() {
  const auto now = std::chrono::steady_clock::now();
  if (!keys_.empty() && now - keys_.front().created < rotation) return;
  Key key;
  if (!make_key(&key)) return;  // keep the old key rather than none
  keys_.insert(keys_.begin(), key);
  if (keys_.size() > keep) keys_.resize(keep);
}

int TlsTicketKeys::callback(SSL* ssl, unsigned char key_name[16], unsigned char* iv,
                            EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt) {
  SSL_CTX* ctx = SSL_get_SSL_CTX(ssl);
  auto* keys = static_cast<TlsTicketKeys*>(SSL_CTX_get_ex_data(ctx, ticket_keys_index()));
  if (!keys) return 0;
  int result = encrypt ? -1 : 0;  // on failure: no ticket issued, or a full handshake
  guard_callback("tls_ticket_key",
                 [&] { result = keys->handle(key_name, iv, cipher, mac, encrypt); });
  return result;
}

// OpenSSL's contract: on encrypt fill name and IV and initialise both contexts, return 1; on
// decrypt return 0 for an unknown key (full handshake), 1 to accept, 2 to accept and issue a
// new ticket under the current key.
int TlsTicketKeys::handle(unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
                          EVP_MAC_CTX* mac, int encrypt) {
  std::lock_guard lock(mutex_);
  rotate_if_due();
  if (keys_.empty()) return encrypt ? -1 : 0;
  const Key* key = nullptr;
  bool current = false;
  if (encrypt) {
    key = &keys_.front();
    current = true;
    std::memcpy(key_name, key->name.data(), key->name.size());
    if (RAND_bytes(iv, EVP_CIPHER_iv_length(EVP_aes_256_cbc())) != 1) return -1;
    if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes_key.data(), iv) != 1) {
      return -1;
    }
  } else {
    auto found = std::find_if(keys_.begin(), keys_.end(), [&](const Key& candidate) {
      return std::memcmp(candidate.name.data(), key_name, candidate.name.size()) == 0;
    });
    if (found == keys_.end()) return 0;
    key = &*found;
    current = found == keys_.begin();
    if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key->aes_key.data(), iv) != 1) {
      return -1;
    }
  }
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(
                             OSSL_MAC_PARAM_KEY, const_cast<unsigned char*>(key->hmac_key.data()),
                             key->hmac_key.size()),
                         OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
  return (encrypt || current) ? 1 : 2;
}

}  // namespace portcullis
