// What the session's files (session.cc, session_verbs.cc, session_relay.cc,
// session_headers.cc, session_log.cc) share: the session's memory bounds, reply parsing and
// counters, and the callback guard. Private to those files.
#pragma once

#include <event2/event.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <string>
#include <string_view>

#include "log_sink.h"
#include "metrics.h"
#include "session.h"

namespace portcullis {

namespace session_detail {

inline constexpr size_t kInputHighWater = 256 * 1024;
// SECURITY: a client that pipelines commands and reads nothing must not make its replies pile
// up in memory: past this many unwritten bytes its input is neither read nor processed until
// it has read them (docs/configuration.md, "Memory per session").
inline constexpr size_t kClientOutputHighWater = 64 * 1024;
// Over TLS, at most this much ciphertext waits in the socket's bufferevent in each direction:
// the TLS layer stops encrypting replies, or decrypting input, until it has moved on.
inline constexpr size_t kTlsRecordHighWater = 64 * 1024;
// Once [timeouts] data_block has passed, DATA must have brought at least this many bytes a
// second on average (Postfix's smtpd_min_data_rate), so that a message trickled in a byte at a
// time cannot hold a session for long: at most data_block + max_message_size / kMinDataRate
// seconds in all.
inline constexpr uint64_t kMinDataRate = 500;

inline timeval to_timeval(std::chrono::milliseconds duration) {
  const auto ms = std::max<std::chrono::milliseconds::rep>(duration.count(), 0);
  return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
}

inline bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// Postfix: "250 2.0.0 Ok: queued as 3F2A41C0B1"; other MTAs: "… queued as <id>" / "id=<id>".
// Case-insensitive position of `needle` in `text`, or npos.
inline size_t ifind(std::string_view text, std::string_view needle) {
  for (size_t at = 0; at + needle.size() <= text.size(); ++at) {
    if (iequals(text.substr(at, needle.size()), needle)) return at;
  }
  return std::string_view::npos;
}

// The id after "queued as" or "id=" (up to 64 of [A-Za-z0-9._-]); a plain scan, since it runs
// for every delivered message.
inline std::string queue_id_from(const SmtpReply& reply) {
  auto id_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  };
  for (const std::string& line : reply.lines) {
    for (std::string_view marker : {std::string_view("queued as"), std::string_view("id=")}) {
      size_t at = ifind(line, marker);
      if (at == std::string_view::npos) continue;
      at += marker.size();
      while (at < line.size() && std::isspace(static_cast<unsigned char>(line[at])))
        ++at;
      size_t end = at;
      while (end < line.size() && end - at < 64 && id_char(line[end]))
        ++end;
      if (end > at) return line.substr(at, end - at);
    }
  }
  return {};
}

// The counters a session bumps for every command, looked up once per process.
inline Counter& command_counter(Verb verb, bool ok) {
  static const auto table = [] {
    std::array<std::array<Counter*, 2>, static_cast<size_t>(Verb::unknown) + 1> counters{};
    for (size_t i = 0; i < counters.size(); ++i) {
      const std::string verb_name(to_string(static_cast<Verb>(i)));
      counters[i][0] = &metrics().commands_total.with({verb_name, "refused"});
      counters[i][1] = &metrics().commands_total.with({verb_name, "accepted"});
    }
    return counters;
  }();
  return *table[static_cast<size_t>(verb)][ok ? 1 : 0];
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

inline Counter& upstream_reply_counter(int code) {
  static const auto table = [] {
    std::array<Counter*, 6> counters{};
    for (int i = 0; i < 6; ++i) {
      counters[i] = &metrics().upstream_replies_total.with({fmt::format("{}xx", i)});
    }
    return counters;
  }();
  return *table[std::clamp(code / 100, 0, 5)];
}

inline Phase phase_of(Verb verb) {
  switch (verb) {
    case Verb::helo:
    case Verb::ehlo:
      return Phase::helo;
    case Verb::mail:
      return Phase::mail;
    case Verb::rcpt:
      return Phase::rcpt;
    default:
      return Phase::data;
  }
}

// Header values come from policy placeholders, i.e. maybe from the client: a CR or LF would
// start a header of the client's choosing.
inline std::string header_safe(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 && c != '\t') c = ' ';
    if (byte == 0x7f) c = ' ';
  }
  return out;
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
