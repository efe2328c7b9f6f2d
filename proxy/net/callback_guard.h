// The one way an exception is stopped at a C callback (libevent, evhttp, OpenSSL).
//
// An exception that unwinds through C frames is undefined behaviour and in practice ends the
// process (std::terminate), taking every session with it. Each entry point from C runs its
// body through guard_callback: what throws is logged as callback_failed, then `on_failure`
// runs (a per-session callback ends its session there; a process-level one just continues).
//
// The guard lives here, below every library that owns a C callback (tls, upstream, session, the
// metrics server), and so cannot call the main log directly: the log (observe/log_sink) installs
// itself as the reporter when it becomes the main log; until then a failure goes to stderr.
#pragma once

#include <exception>
#include <string>
#include <utility>

namespace portcullis {

// Writes one callback_failed event; must not throw.
using CallbackFailureReporter = void (*)(const char* where, const char* what) noexcept;

// Where guard_callback reports; nullptr restores the stderr default. Thread-safe.
void set_callback_failure_reporter(CallbackFailureReporter reporter) noexcept;

namespace callback_guard_detail {

void log_failure(const char* where, const char* what) noexcept;

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
