#include "dkim_library.h"

// dkim.h uses _Bool and includes <stdbool.h> only under HAVE_STDBOOL_H (STACK-NOTES §2).
#include <stdbool.h>
// clang-format off
#include <dkim.h>
// clang-format on

namespace portcullis {

void DkimLibrary::Closer::operator()(dkim_lib* library) const {
  if (library != nullptr) dkim_close(library);
}

std::unique_ptr<DkimLibrary> DkimLibrary::create(const DkimSettings& settings, Callbacks callbacks,
                                                 std::string& error) {
  std::unique_ptr<dkim_lib, Closer> library(dkim_init(nullptr, nullptr));
  if (!library) {
    error = "libopendkim: dkim_init failed";
    return nullptr;
  }
  // BADSIGHANDLES: a broken DKIM-Signature is reported on its own instead of failing the whole
  // message, so the valid signatures beside it are still checked (corpora NOTES §2.3).
  unsigned int flags = DKIM_LIBFLAGS_BADSIGHANDLES | DKIM_LIBFLAGS_DELAYSIGPROC;
  unsigned int min_key_bits = static_cast<unsigned int>(settings.min_key_bits);
  if (dkim_options(library.get(), DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags) !=
          DKIM_STAT_OK ||
      dkim_options(library.get(), DKIM_OP_SETOPT, DKIM_OPTS_MINKEYBITS, &min_key_bits,
                   sizeof min_key_bits) != DKIM_STAT_OK ||
      dkim_set_key_lookup(library.get(), callbacks.lookup) != DKIM_STAT_OK ||
      dkim_set_final(library.get(), callbacks.final_check) != DKIM_STAT_OK) {
    error = "libopendkim: cannot set the verifier options";
    return nullptr;
  }
  // Conditional signatures (an _FFR build) add a rule to a pass that the cached-key check does
  // not apply; without SHA-256 libopendkim refuses h=sha256 keys. Neither is Debian's build.
  const bool cached_keys_usable = dkim_libfeature(library.get(), DKIM_FEATURE_SHA256) &&
                                  !dkim_libfeature(library.get(), DKIM_FEATURE_CONDITIONAL);
  return std::unique_ptr<DkimLibrary>(
      new DkimLibrary(std::move(library), settings, cached_keys_usable));
}

}  // namespace portcullis
