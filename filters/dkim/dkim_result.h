// What the dkim filter finds: one result per checked signature (the evidence the
// Authentication-Results header reports, one dkim entry each) and the message's best result.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis {

// RFC 8601 §2.7.1 results. `policy`: the signature verified but RFC 8301 refuses it (rsa-sha1,
// an RSA key under min_key_bits).
enum class DkimVerdict { none, pass, fail, policy, temperror, permerror };

// "none", "pass", "fail", "policy", "temperror", "permerror".
std::string_view dkim_verdict_name(DkimVerdict verdict);
// The better of two results in DESIGN §5's order: pass > fail > policy > temperror > permerror
// > none.
DkimVerdict better_dkim_verdict(DkimVerdict a, DkimVerdict b);

struct DkimSignatureResult {
  DkimVerdict verdict = DkimVerdict::permerror;
  std::string domain;     // d= ("" when missing)
  std::string selector;   // s=
  std::string algorithm;  // a= as written ("" when missing)
  unsigned key_bits = 0;  // RSA key size once the key was loaded; 0 otherwise (and ed25519)
  std::string reason;     // why, for every result but pass; for logs and traces
};

struct DkimOutcome {
  DkimVerdict verdict = DkimVerdict::none;
  std::vector<std::string> passing_domains;  // lower case, each once, in signature order
  std::vector<DkimSignatureResult> signatures;
  std::size_t signatures_not_checked = 0;  // DKIM-Signature fields beyond max_signatures
  std::string reason;                      // a problem with the message as a whole
};

}  // namespace portcullis
