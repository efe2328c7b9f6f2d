// SECURITY: the only untrusted input here is whether the client spoke before the banner (a
// bool the core measured). The teaser carries the configured host name, and is not sent when
// that name holds a byte that could end or split the line (CR, LF, any control byte), so the
// teaser can never inject a second reply line.
#include "pregreet/pregreet_filter.h"

#include <algorithm>
#include <string>

namespace portcullis {

namespace {

std::string pregreet_pass_key(const IpAddress& client) {
  return store_key({"pass", "pregreet", client.unmapped().to_string()});
}

// The factory is this filter's settings, shared read-only by every worker.
class PregreetFactory : public FilterFactory {
 public:
  explicit PregreetFactory(PregreetSettings settings) : settings_(settings) {}
  std::unique_ptr<SessionFilter> create() const override {
    return std::make_unique<PregreetFilter>(settings_);
  }

 private:
  PregreetSettings settings_;
};

bool safe_in_reply_line(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte > 0x20 && byte < 0x7f;
  });
}

}  // namespace

PregreetSettings read_pregreet_settings(const SettingTable& table,
                                        std::vector<SettingError>& errors) {
  SettingsReader reader(table, errors);
  PregreetSettings settings;
  settings.wait = std::chrono::milliseconds(reader.integer("wait_ms", 6000, 0, 60000));
  settings.teaser = reader.boolean("teaser", true);
  settings.pass_ttl = std::chrono::seconds(reader.integer("pass_ttl", 0, 0, 2592000));
  reader.reject_unknown({"wait_ms", "teaser", "pass_ttl"});
  return settings;
}

std::shared_ptr<const FilterFactory> build_pregreet_filter(const SettingTable& table,
                                                           std::vector<SettingError>& errors) {
  const std::size_t errors_before = errors.size();
  PregreetSettings settings = read_pregreet_settings(table, errors);
  if (errors.size() != errors_before) return nullptr;
  return std::make_shared<PregreetFactory>(settings);
}

HookStatus PregreetFilter::on_phase(HookContext& context) {
  switch (context.phase()) {
    case Phase::connect:
      return on_connect(context);
    case Phase::helo:
      return on_helo(context);
    default:
      // The registry hooks only connect and helo; any other phase has nothing to do.
      return HookStatus::continue_chain;
  }
}

HookStatus PregreetFilter::on_connect(HookContext& context) {
  tested_ = false;
  if (settings_.wait.count() <= 0) {
    send_teaser(context.services(), context.session());
    return HookStatus::continue_chain;
  }
  StateStore* store = settings_.pass_ttl.count() > 0 ? context.services().store() : nullptr;
  const SessionView& view = context.session();
  Completion completion = context.park();
  if (store == nullptr || !view.client_ip) {
    send_teaser(context.services(), view);
    start_wait(context.services(), completion);
    return HookStatus::stop_iteration;
  }
  // Looked up first: a remembered client gets neither the teaser nor the wait. The services
  // and the view belong to the session, which outlives this filter.
  FilterServices* services = &context.services();
  const SessionView* session = &view;
  cache_call_ = store->get(pregreet_pass_key(*view.client_ip),
                           [this, services, session, completion](StoreReply reply) {
                             if (reply.status == StoreStatus::ok && reply.record) {
                               const Completion resume = completion;
                               resume.finish(FilterResult{});
                               return;
                             }
                             send_teaser(*services, *session);
                             start_wait(*services, completion);
                           });
  return HookStatus::stop_iteration;
}

void PregreetFilter::send_teaser(FilterServices& services, const SessionView& view) {
  const std::string& hostname = view.hostname;
  if (settings_.teaser && !hostname.empty() && safe_in_reply_line(hostname)) {
    services.send_to_client("220-" + hostname + " ESMTP\r\n");
  }
}

void PregreetFilter::start_wait(FilterServices& services, const Completion& completion) {
  tested_ = true;
  // The wait is the test: the banner is held back, and whatever the client sends meanwhile is
  // what the core reports at helo.
  wait_timer_ = services.start_timer(settings_.wait, [completion] {
    // A local copy: finishing may end the phase and, through the session, destroy this filter
    // and the timer that holds this callback (and so the captured completion).
    const Completion resume = completion;
    resume.finish(FilterResult{});
  });
}

HookStatus PregreetFilter::on_helo(HookContext& context) {
  // Recorded at every helo phase, because STARTTLS clears helo-phase facts and the phase runs
  // again after the new EHLO.
  const SessionView& view = context.session();
  context.record("pregreet", view.client_spoke_before_banner);
  StateStore* store = settings_.pass_ttl.count() > 0 ? context.services().store() : nullptr;
  if (tested_ && !view.client_spoke_before_banner && store != nullptr && view.client_ip &&
      settings_.wait.count() > 0) {
    tested_ = false;  // once per session, not again after STARTTLS
    const auto ttl = settings_.pass_ttl;
    // Nothing waits for the answer; a failed write only costs the next session the wait.
    cache_call_ = store->update(
        pregreet_pass_key(*view.client_ip),
        [ttl](const std::optional<StoreRecord>&, StoreClock::time_point now) {
          return StoreChange{StoreRecord{"1", now + ttl}, "remembered"};
        },
        [](StoreReply) {});
  }
  return HookStatus::continue_chain;
}

}  // namespace portcullis
