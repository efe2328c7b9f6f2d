// Owning handles for OpenSSL objects: each lives in a unique_ptr whose deleter is OpenSSL's own
// free function.
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>

namespace portcullis {

struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};

using SslPtr = std::unique_ptr<SSL, SslFree>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

}  // namespace portcullis
