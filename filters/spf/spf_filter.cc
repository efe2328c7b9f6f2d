#include "spf_filter.h"

#include <string>

#include "dns_hook.h"

namespace portcullis {

namespace {

class SpfFactory : public FilterFactory {
 public:
  std::unique_ptr<SessionFilter> create() const override { return std::make_unique<SpfFilter>(); }
};

FilterResult result_facts(const SpfResult& result) {
  FilterResult out;
  out.facts.set("spf", std::string(spf_verdict_name(result.verdict)));
  out.facts.set("spf.domain", result.domain);
  return out;
}

}  // namespace

std::shared_ptr<const FilterFactory> build_spf_filter(const SettingTable& table,
                                                      std::vector<SettingError>& errors) {
  const std::size_t errors_before = errors.size();
  SettingsReader reader(table, errors);
  reader.reject_unknown({});
  if (errors.size() != errors_before) return nullptr;
  return std::make_shared<SpfFactory>();
}

HookStatus SpfFilter::on_phase(HookContext& context) {
  if (context.phase() != Phase::mail) return HookStatus::continue_chain;
  const auto start = start_dns_hook(context);
  if (!start) return HookStatus::continue_chain;
  const SessionView& view = context.session();
  SpfRequest request;
  request.client = start->client;
  if (view.facts != nullptr) {
    if (const std::string* sender = view.facts->string("sender")) request.sender = *sender;
    if (const std::string* helo = view.facts->string("helo")) request.helo = *helo;
  }
  request.receiver = view.hostname;
  evaluator_ = std::make_unique<SpfEvaluator>(start->resolver);
  // The evaluator never calls back from start(), so the completion is in place before any
  // answer arrives; a result known without DNS is recorded synchronously instead of parking.
  auto completion = std::make_shared<Completion>();
  auto immediate = evaluator_->start(
      request, [completion](SpfResult result) { completion->finish(result_facts(result)); });
  if (immediate) {
    evaluator_.reset();
    context.record("spf", std::string(spf_verdict_name(immediate->verdict)));
    context.record("spf.domain", immediate->domain);
    return HookStatus::continue_chain;
  }
  *completion = context.park();
  return HookStatus::stop_iteration;
}

void SpfFilter::cancel() {
  evaluator_.reset();
}

void SpfFilter::on_session_end(const SessionView&) {
  evaluator_.reset();
}

}  // namespace portcullis
