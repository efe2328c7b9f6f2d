// One configured libopendkim library handle (DKIM_LIB), shared by every session of a filter
// (libopendkim allows verify handles of one library on several threads). It never does DNS
// itself: keys come from the key-lookup callback, which answers from the records the filter
// fetched through the session's resolver (STACK-NOTES §4c: DKIM_LIBFLAGS_DELAYSIGPROC defers key
// use to dkim_eom, so the queries can run while the body arrives). Its final callback, run in
// dkim_eom once every hash is known and before libopendkim processes any signature, lets the
// filter pass signatures with a cached decoded key (dkim_cached_key_check.h).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "dkim_settings.h"

struct dkim_lib;
struct dkim;
struct dkim_siginfo;

namespace portcullis {

class DkimLibrary {
 public:
  // libopendkim's key-lookup callback: DKIM_CBSTAT (*)(DKIM*, DKIM_SIGINFO*, u_char*, size_t).
  using KeyLookup = int (*)(dkim*, dkim_siginfo*, unsigned char*, std::size_t);
  // libopendkim's final callback: DKIM_CBSTAT (*)(DKIM*, DKIM_SIGINFO**, int).
  using FinalCheck = int (*)(dkim*, dkim_siginfo**, int);
  struct Callbacks {
    KeyLookup lookup;
    FinalCheck final_check;
  };

  // nullptr with `error` set when libopendkim cannot be set up.
  static std::unique_ptr<DkimLibrary> create(const DkimSettings& settings, Callbacks callbacks,
                                             std::string& error);

  dkim_lib* handle() const { return library_.get(); }
  const DkimSettings& settings() const { return settings_; }
  // False when this libopendkim applies rules the cached-key check does not know (conditional
  // signatures), or lacks SHA-256: then every signature is left to libopendkim.
  bool cached_keys_usable() const { return cached_keys_usable_; }

 private:
  struct Closer {
    void operator()(dkim_lib* library) const;
  };
  DkimLibrary(std::unique_ptr<dkim_lib, Closer> library, DkimSettings settings,
              bool cached_keys_usable)
      : library_(std::move(library)),
        settings_(settings),
        cached_keys_usable_(cached_keys_usable) {}

  std::unique_ptr<dkim_lib, Closer> library_;
  DkimSettings settings_;
  bool cached_keys_usable_;
};

}  // namespace portcullis
