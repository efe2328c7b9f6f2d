// One configured libopendkim library handle (DKIM_LIB), shared by every session of a filter
// (libopendkim allows verify handles of one library on several threads). It never does DNS
// itself: keys come from the key-lookup callback, which answers from the records the filter
// fetched through the session's resolver (STACK-NOTES §4c: DKIM_LIBFLAGS_DELAYSIGPROC defers key
// use to dkim_eom, so the queries can run while the body arrives).
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

  // nullptr with `error` set when libopendkim cannot be set up.
  static std::unique_ptr<DkimLibrary> create(const DkimSettings& settings, KeyLookup lookup,
                                             std::string& error);

  dkim_lib* handle() const { return library_.get(); }
  const DkimSettings& settings() const { return settings_; }

 private:
  struct Closer {
    void operator()(dkim_lib* library) const;
  };
  DkimLibrary(std::unique_ptr<dkim_lib, Closer> library, DkimSettings settings)
      : library_(std::move(library)), settings_(settings) {}

  std::unique_ptr<dkim_lib, Closer> library_;
  DkimSettings settings_;
};

}  // namespace portcullis
