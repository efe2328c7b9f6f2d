// The session's log lines and per-command counts, and the scene a decision is logged with.
#include "session.h"

#include <fmt/format.h>

#include "log_sink.h"
#include "metrics.h"

#include "session_internal.h"

namespace portcullis {

using namespace session_detail;

namespace {

// The counters a session bumps for every command, looked up once per process.
Counter& command_counter(Verb verb, bool ok) {
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

}  // namespace

const char* Session::end_reason_name(EndReason reason) {
  switch (reason) {
    case EndReason::quit:
      return "quit";
    case EndReason::proxy_header_refused:
      return "proxy_header_refused";
    case EndReason::session_limit:
      return "session_limit";
    case EndReason::tls_failed:
      return "tls_failed";
    case EndReason::client_closed:
      return "client_closed";
    case EndReason::timeout:
      return "timeout";
    case EndReason::too_many_errors:
      return "too_many_errors";
    case EndReason::forbidden_command:
      return "forbidden_command";
    case EndReason::upstream_unavailable:
      return "upstream_unavailable";
    case EndReason::upstream_closed_session:
      return "upstream_421";
    case EndReason::xclient_refused:
      return "xclient_refused";
    case EndReason::write_failed:
      return "write_failed";
    case EndReason::shutdown:
      return "shutdown";
    case EndReason::policy:
      return "policy";
    case EndReason::internal_error:
      return "internal_error";
  }
  return "unknown";
}

void Session::count(Verb verb, bool ok) {
  command_counter(verb, ok).increment();
  auto& slot = counts_[static_cast<size_t>(verb)];
  ++slot[1];
  if (ok) ++slot[0];
}

void Session::log_end() {
  std::vector<LogField> fields{{"session", std::to_string(id_)},
                               {"client", client_text_},
                               {"helo", helo_, true},
                               {"reason", end_reason_name(end_reason_)}};
  unsigned accepted = 0;
  unsigned total = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    const auto& slot = counts_[i];
    if (slot[1] == 0) continue;
    accepted += slot[0];
    total += slot[1];
    std::string value =
        slot[0] == slot[1] ? std::to_string(slot[1]) : fmt::format("{}/{}", slot[0], slot[1]);
    fields.push_back({to_string(static_cast<Verb>(i)), std::move(value)});
  }
  fields.push_back({"commands", accepted == total ? std::to_string(total)
                                                  : fmt::format("{}/{}", accepted, total)});
  fields.push_back({"delivered", std::to_string(messages_delivered_)});
  log_info("disconnect", fields);
  metrics().session_ends_total.with({end_reason_name(end_reason_)}).increment();
}

DecisionScene Session::scene() const {
  DecisionScene scene;
  scene.session = id_;
  scene.client_ip = peer_.ip();
  scene.client_port = peer_.port();
  if (const std::string* name = facts_.string("client.name")) scene.client_name = *name;
  const std::string* helo = facts_.string("helo");
  scene.helo = helo ? *helo : helo_;
  scene.tls = tls_active_;
  const std::string* sender = facts_.string("sender");
  if (in_transaction_) {
    scene.sender = sender_;
  } else if (sender) {
    scene.sender = *sender;
  }
  scene.rcpts = recipients_;
  if (const std::string* rcpt = facts_.string("rcpt")) scene.rcpts.push_back(*rcpt);
  return scene;
}

}  // namespace portcullis
