// SECURITY: the only untrusted input here is whether the client spoke before the banner (a
// bool the core measured). The teaser carries the configured host name, and is not sent when
// that name holds a byte that could end or split the line (CR, LF, any control byte), so the
// teaser can never inject a second reply line.
#include "pregreet/pregreet_filter.h"

#include <algorithm>
#include <string>

namespace portcullis {

namespace {

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
  reader.reject_unknown({"wait_ms", "teaser"});
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
  const std::string& hostname = context.session().hostname;
  if (settings_.teaser && !hostname.empty() && safe_in_reply_line(hostname)) {
    context.services().send_to_client("220-" + hostname + " ESMTP\r\n");
  }
  if (settings_.wait.count() <= 0) return HookStatus::continue_chain;
  // The wait is the test: the banner is held back, and whatever the client sends meanwhile is
  // what the core reports at helo.
  Completion completion = context.park();
  wait_timer_ = context.services().start_timer(settings_.wait, [completion] {
    // A local copy: finishing may end the phase and, through the session, destroy this filter
    // and the timer that holds this callback (and so the captured completion).
    const Completion resume = completion;
    resume.finish(FilterResult{});
  });
  return HookStatus::stop_iteration;
}

HookStatus PregreetFilter::on_helo(HookContext& context) {
  // Recorded at every helo phase, because STARTTLS clears helo-phase facts and the phase runs
  // again after the new EHLO.
  context.record("pregreet", context.session().client_spoke_before_banner);
  return HookStatus::continue_chain;
}

}  // namespace portcullis
