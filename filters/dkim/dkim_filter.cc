#include "dkim_filter.h"

#include <chrono>
#include <string>

namespace portcullis {

namespace {

class DkimFactory : public FilterFactory {
 public:
  explicit DkimFactory(std::shared_ptr<const DkimLibrary> library) : library_(std::move(library)) {}
  std::unique_ptr<SessionFilter> create() const override {
    return std::make_unique<DkimFilter>(library_);
  }

 private:
  std::shared_ptr<const DkimLibrary> library_;
};

// Reading a stored message at the data phase: large enough to keep the syscalls few.
constexpr std::size_t kReadChunk = 64 * 1024;

}  // namespace

std::shared_ptr<const FilterFactory> build_dkim_filter(const SettingTable& table,
                                                       std::vector<SettingError>& errors) {
  const std::size_t errors_before = errors.size();
  const DkimSettings settings = read_dkim_settings(table, errors);
  if (errors.size() != errors_before) return nullptr;
  std::string error;
  std::shared_ptr<const DkimLibrary> library =
      DkimLibrary::create(settings, DkimVerification::callbacks(), error);
  if (!library) {
    errors.push_back(SettingError{"", error, 0, 0});
    return nullptr;
  }
  return std::make_shared<DkimFactory>(std::move(library));
}

DkimFilter::DkimFilter(std::shared_ptr<const DkimLibrary> library) : library_(std::move(library)) {}

FilterResult DkimFilter::result_facts(const DkimOutcome& outcome) {
  FilterResult out;
  out.facts.set("dkim", std::string(dkim_verdict_name(outcome.verdict)));
  out.facts.set("dkim.domains", FactList(outcome.passing_domains));
  if (outcome.signatures_not_checked > 0)
    out.warnings.push_back(std::to_string(outcome.signatures_not_checked) +
                           " DKIM-Signature fields beyond max_signatures not checked");
  // One Authentication-Results entry per signature checked (RFC 8601 2.7.1: header.d, header.s
  // and header.a name the signature, and reason says why it did not pass).
  for (const DkimSignatureResult& signature : outcome.signatures) {
    AuthenticationEntry entry;
    entry.method = "dkim";
    entry.result = std::string(dkim_verdict_name(signature.verdict));
    if (!signature.domain.empty()) entry.properties.push_back({"header.d", signature.domain});
    if (!signature.selector.empty()) entry.properties.push_back({"header.s", signature.selector});
    if (!signature.algorithm.empty()) entry.properties.push_back({"header.a", signature.algorithm});
    if (signature.verdict != DkimVerdict::pass) entry.reason = signature.reason;
    out.authentication.push_back(std::move(entry));
  }
  return out;
}

void DkimFilter::on_message_begin(StreamContext& context) {
  verification_ = std::make_unique<DkimVerification>(library_, context.services().resolver());
  streamed_ = true;
}

void DkimFilter::on_message_data(StreamContext&, std::string_view bytes) {
  if (verification_) verification_->feed(bytes);
}

HookStatus DkimFilter::on_phase(HookContext& context) {
  if (context.phase() != Phase::data) return HookStatus::continue_chain;
  DnsResolver* resolver = context.services().resolver();
  if (resolver == nullptr) {
    verification_.reset();
    streamed_ = false;
    context.fail("no resolver");
    return HookStatus::continue_chain;
  }
  if (!streamed_) {
    // The session did not stream this message: everything is read now, at end of data.
    const MessageView* message = context.message();
    if (message == nullptr) {
      context.fail("no message at the data phase");
      return HookStatus::continue_chain;
    }
    verification_ = std::make_unique<DkimVerification>(library_, resolver);
    auto reader = message->read_from_start();
    std::string chunk;
    while (reader->read(&chunk, kReadChunk))
      verification_->feed(chunk);
    if (!reader->error().empty()) {
      verification_.reset();
      context.fail("reading the message: " + reader->error());
      return HookStatus::continue_chain;
    }
  }
  streamed_ = false;
  if (!verification_) {
    context.fail("no message at the data phase");
    return HookStatus::continue_chain;
  }
  verification_->end_of_message();
  if (verification_->keys_ready()) {
    last_outcome_ = verification_->finish();
    verification_.reset();
    FilterResult result = result_facts(last_outcome_);
    for (auto& [name, value] : result.facts)
      context.record(name, value);
    for (auto& warning : result.warnings)
      context.warn(std::move(warning));
    for (auto& entry : result.authentication)
      context.add_authentication(std::move(entry));
    return HookStatus::continue_chain;
  }
  Completion completion = context.park();
  verification_->on_keys_ready([this, completion] {
    last_outcome_ = verification_->finish();
    verification_.reset();
    completion.finish(result_facts(last_outcome_));
  });
  return HookStatus::stop_iteration;
}

void DkimFilter::cancel() {
  verification_.reset();
  streamed_ = false;
}

void DkimFilter::on_session_end(const SessionView&) {
  verification_.reset();
  streamed_ = false;
}

}  // namespace portcullis
