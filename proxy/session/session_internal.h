// What the session's files (session.cc, session_verbs.cc, session_relay.cc,
// session_headers.cc, session_log.cc) share: a case-insensitive compare, the message counter and
// the callback guard. Private to those files.
#pragma once

#include <algorithm>
#include <array>
#include <cctype>
#include <exception>
#include <string>
#include <string_view>

#include "log_sink.h"
#include "metrics.h"
#include "session.h"

namespace portcullis {

namespace session_detail {

inline bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

enum class MessageOutcome { delivered, refused, failed };

// portcullis_messages_total, once per message: looked up once per process.
inline Counter& message_counter(MessageOutcome outcome) {
  static const std::array<Counter*, 3> table = {
      &metrics().messages_total.with({"delivered"}),
      &metrics().messages_total.with({"refused"}),
      &metrics().messages_total.with({"failed"}),
  };
  return *table[static_cast<size_t>(outcome)];
}

}  // namespace session_detail

template <typename Body>
void Session::guarded(const char* where, Body&& body) noexcept {
  try {
    body();
    return;
  } catch (const std::exception& error) {
    log_error(
        "session_callback_failed",
        {{"session", std::to_string(id_)}, {"callback", where}, {"error", error.what(), true}});
  } catch (...) {
    log_error("session_callback_failed",
              {{"session", std::to_string(id_)}, {"callback", where}, {"error", "unknown"}});
  }
  try {
    end_reason_ = EndReason::internal_error;
    finish();
  } catch (...) {
    // Nothing more can be done for this session; the worker frees it with the others.
  }
}

}  // namespace portcullis
