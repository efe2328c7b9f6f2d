// The [filter.dkim] keys. The defaults follow RFC 8301; `min_key_bits` below 1024 and
// `allow_sha1` exist for old corpora (the Mail::DKIM test corpus) and are not recommended.
#pragma once

#include <cstdint>
#include <vector>

#include "filter_settings.h"

namespace portcullis {

struct DkimSettings {
  // Only the first (top-most, most recently added) DKIM-Signature fields are checked; the rest
  // are not given to libopendkim, so a message cannot make us hash its body or ask DNS for
  // keys without bound.
  std::int64_t max_signatures = 5;
  // RSA keys with fewer bits give `policy` (RFC 8301 §3.2: under 1024 bits is not valid).
  std::int64_t min_key_bits = 1024;
  // rsa-sha1 signatures give `policy` unless set (RFC 8301 §3.1).
  bool allow_sha1 = false;
};

// The settings of a [filter.dkim] block; errors appended for bad values and unknown keys.
DkimSettings read_dkim_settings(const SettingTable& table, std::vector<SettingError>& errors);

}  // namespace portcullis
