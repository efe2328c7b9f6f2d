#include "dmarc_filter.h"

#include <random>
#include <utility>

#include "from_domain.h"
#include "idna_label.h"

namespace portcullis {

namespace {

int random_percent_roll() {
  thread_local std::mt19937 generator{std::random_device{}()};
  return std::uniform_int_distribution<int>(0, 99)(generator);
}

class DmarcFactory : public FilterFactory {
 public:
  explicit DmarcFactory(std::shared_ptr<const PublicSuffixList> list) : list_(std::move(list)) {}
  std::unique_ptr<SessionFilter> create() const override {
    return std::make_unique<DmarcFilter>(list_, random_percent_roll);
  }

 private:
  std::shared_ptr<const PublicSuffixList> list_;
};

// Each TXT record's strings joined without a space (RFC 7489 §6.6.3 via RFC 7208 §3.3).
std::vector<std::string> dmarc_records_in(const DnsAnswer& answer) {
  std::vector<std::string> records;
  for (const DnsRecord& record : answer.records) {
    std::string text;
    for (const std::string& part : record.strings)
      text += part;
    if (is_dmarc_record(text)) records.push_back(std::move(text));
  }
  return records;
}

}  // namespace

std::shared_ptr<const FilterFactory> build_dmarc_filter(const SettingTable& table,
                                                        std::vector<SettingError>& errors) {
  const std::size_t errors_before = errors.size();
  SettingsReader reader(table, errors);
  const std::string path = reader.string("public_suffix_list", kDefaultPublicSuffixList);
  reader.reject_unknown({"public_suffix_list"});
  if (errors.size() != errors_before) return nullptr;
  std::string error;
  auto list = PublicSuffixList::load(path, error);
  if (!list) {
    reader.error("public_suffix_list", error, reader.find("public_suffix_list"));
    return nullptr;
  }
  return std::make_shared<DmarcFactory>(std::make_shared<const PublicSuffixList>(std::move(*list)));
}

DmarcFilter::DmarcFilter(std::shared_ptr<const PublicSuffixList> list,
                         std::function<int()> percent_roll)
    : list_(std::move(list)), percent_roll_(std::move(percent_roll)) {}

HookStatus DmarcFilter::on_phase(HookContext& context) {
  if (context.phase() != Phase::data) return HookStatus::continue_chain;
  const MessageView* message = context.message();
  if (message == nullptr) {
    context.fail("no message at the data phase");
    return HookStatus::continue_chain;
  }
  FromDomain from = extract_from_domain(message->header_section());
  // An internationalised From domain (RFC 6532) is queried and compared as its A-labels.
  std::optional<std::string> ascii_domain;
  if (from.ok()) ascii_domain = idna_ascii_domain(from.domain);
  if (ascii_domain && ascii_domain->size() > 253) ascii_domain.reset();  // no DNS name
  if (!ascii_domain) {
    context.record("dmarc", std::string("permerror"));
    return HookStatus::continue_chain;
  }
  resolver_ = context.services().resolver();
  if (resolver_ == nullptr) {
    context.fail("no resolver");
    return HookStatus::continue_chain;
  }
  from_domain_ = std::move(*ascii_domain);
  organizational_domain_ = organizational_domain_or_self(*list_, from_domain_);
  evidence_ = DmarcEvidence{};
  if (const Facts* facts = context.session().facts) {
    if (const std::string* spf = facts->string("spf")) evidence_.spf = *spf;
    if (const std::string* domain = facts->string("spf.domain")) evidence_.spf_domain = *domain;
    if (const FactList* domains = facts->list("dkim.domains")) evidence_.dkim_domains = *domains;
  }
  organizational_query_.reset();
  // The resolver never calls back before resolve() returns, so the completion is set first.
  from_query_ =
      resolver_->resolve("_dmarc." + from_domain_, DnsType::txt,
                         [this](DnsAnswer answer) { on_answer(from_domain_, std::move(answer)); });
  completion_ = context.park();
  return HookStatus::stop_iteration;
}

void DmarcFilter::on_answer(const std::string& record_domain, DnsAnswer answer) {
  if (answer.outcome == DnsOutcome::temporary_failure || answer.outcome == DnsOutcome::failure) {
    finish("temperror", nullptr,
           "_dmarc." + record_domain + " TXT: " + std::string(dns_outcome_name(answer.outcome)) +
               (answer.reason.empty() ? "" : " (" + answer.reason + ")"));
    return;
  }
  const std::vector<std::string> records = dmarc_records_in(answer);
  if (records.size() > 1) {  // §6.6.3 step 5: several records, no DMARC processing
    finish("none", nullptr);
    return;
  }
  if (records.size() == 1) {
    auto record = parse_dmarc_record(records.front());
    if (!record) {
      finish("none", nullptr);
      return;
    }
    const DmarcOutcome outcome =
        evaluate_dmarc(*list_, *record, from_domain_, record_domain, evidence_, percent_roll_);
    finish(outcome.pass ? "pass" : "fail", &outcome);
    return;
  }
  if (record_domain == organizational_domain_) {
    finish("none", nullptr);
    return;
  }
  // §6.6.3 step 3: no record at the From domain, so the organisational domain's.
  organizational_query_ = resolver_->resolve(
      "_dmarc." + organizational_domain_, DnsType::txt,
      [this](DnsAnswer next) { on_answer(organizational_domain_, std::move(next)); });
}

void DmarcFilter::finish(std::string result, const DmarcOutcome* outcome, std::string warning) {
  FilterResult out;
  if (!warning.empty()) out.warnings.push_back(std::move(warning));
  out.facts.set("dmarc", std::move(result));
  out.facts.set("dmarc.domain", from_domain_);
  if (outcome != nullptr)
    out.facts.set("dmarc.policy", std::string(dmarc_policy_name(outcome->policy)));
  completion_.finish(std::move(out));
}

void DmarcFilter::cancel() {
  from_query_.reset();
  organizational_query_.reset();
}

void DmarcFilter::on_session_end(const SessionView&) {
  cancel();
}

}  // namespace portcullis
