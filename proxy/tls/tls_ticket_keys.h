#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <vector>

namespace portcullis {

// Session-ticket keys shared by every TLS context of the process (so resumption works across
// SNI blocks, workers and certificate reloads) and rotated: a new key encrypts new tickets
// every `rotation`; the previous keys still decrypt (and ask for a fresh ticket) until they
// are `keep` rotations old.
class TlsTicketKeys {
 public:
  static constexpr std::chrono::hours rotation{6};
  static constexpr size_t keep = 3;

  TlsTicketKeys();
  // Installs the ticket callback on `ctx`.
  void attach(SSL_CTX* ctx);

 private:
  struct Key {
    std::array<unsigned char, 16> name;
    std::array<unsigned char, 32> aes_key;
    std::array<unsigned char, 32> hmac_key;
    std::chrono::steady_clock::time_point created;
  };

  static int callback(SSL* ssl, unsigned char key_name[16], unsigned char* iv,
                      EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int encrypt);
  int handle(unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher,
             EVP_MAC_CTX* mac, int encrypt);
  void rotate_if_due();
  static bool make_key(Key* key);

  std::mutex mutex_;
  std::vector<Key> keys_;  // newest first
};

}  // namespace portcullis
