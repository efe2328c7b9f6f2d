// The one way an exception is stopped at a C callback (libevent, evhttp, OpenSSL).
//
// An exception that unwinds through C frames is undefined behaviour and in practice ends the
// process (std::terminate), taking every session with it. Each entry point from C runs its
// body through guard_callback: what throws is logged as callback_failed, then `on_failure`
// runs (a per-session callback ends its session there; a process-level one just continues).
#pragma once

#include <exception>
#include <string>
#include <utility>

#include "log_sink.h"

namespace portcullis {

namespace callback_guard_detail {

inline void log_failure(const char* where, const char* what) noexcept {
  try {
    log_error("callback_failed", {{"callback", where}, {"error", what, true}});
  } catch (...) {
    // The log itself failed (out of memory): nothing better is left to do than go on.
  }
}

}  // namespace callback_guard_detail

// Runs `body()`; an exception is logged (naming `where`) and `on_failure()` runs, itself
// guarded. Returns true when body returned normally.
template <typename Body, typename OnFailure>
bool guard_callback(const char* where, Body&& body, OnFailure&& on_failure) noexcept {
  try {
    std::forward<Body>(body)();
    return true;
  } catch (const std::exception& error) {
    callback_guard_detail::log_failure(where, error.what());
  } catch (...) {
    callback_guard_detail::log_failure(where, "unknown exception");
  }
  try {
    std::forward<OnFailure>(on_failure)();
  } catch (...) {
    callback_guard_detail::log_failure(where, "the failure handler threw too");
  }
  return false;
}

// For process-level callbacks: log and carry on.
template <typename Body>
bool guard_callback(const char* where, Body&& body) noexcept {
  return guard_callback(where, std::forward<Body>(body), [] {});
}

}  // namespace portcullis
