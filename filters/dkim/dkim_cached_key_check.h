// The check of one signature with a cached, already decoded key (DkimKeyRecord), run from
// libopendkim's final callback, after it has canonicalised and hashed the header fields and the
// body: the signature over libopendkim's header hash is verified with OpenSSL's EVP verify and
// the body hash compared with bh=, so the key is not decoded again for this message.
//
// It only answers "this signature passes": every rule libopendkim 2.11 applies on the way to a
// pass is checked here the same way (dkim_get_key's v=, h=, s=, k=, p= checks; the t=s rule of
// dkim_sig_process; min_key_bits). Any other outcome (a failed verify, a body hash mismatch, a
// revoked or unusable key, a record outside DkimKeyRecord's subset) gives nullopt, and the
// signature is left to libopendkim, which then finds the filter's result as it always did.
#pragma once

#include <optional>

#include "dkim_key_record.h"
#include "dkim_settings.h"

struct dkim_siginfo;

namespace portcullis {

// The key size to report (RSA: 8 × modulus bytes; Ed25519: 0) when the signature passes.
std::optional<unsigned> check_with_cached_key(dkim_siginfo* signature, const DkimKeyRecord& key,
                                              const DkimSettings& settings);

}  // namespace portcullis
