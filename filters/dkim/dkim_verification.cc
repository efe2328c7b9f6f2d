#include "dkim_verification.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <optional>

#include "dkim_cached_key_check.h"
#include "dkim_key_cache.h"

// dkim.h uses _Bool and includes <stdbool.h> only under HAVE_STDBOOL_H (STACK-NOTES §2).
#include <stdbool.h>
// clang-format off
#include <dkim.h>
// clang-format on

namespace portcullis {

namespace {

// The proxy refuses a header section over [limits] max_header_size before the data phase; this
// only bounds what a stream could make us hold if that limit were set absurdly high.
constexpr std::size_t kMaxHeaderBytes = 4 * 1024 * 1024;

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string text_of(const unsigned char* text) {
  return text == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(text));
}

std::string key_name(std::string_view selector, std::string_view domain) {
  return lower(std::string(selector) + "._domainkey." + std::string(domain));
}

bool is_signature_field(std::string_view field) {
  const auto colon = field.find(':');
  if (colon == std::string_view::npos) return false;
  std::string_view name = field.substr(0, colon);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
    name.remove_suffix(1);
  return lower(name) == "dkim-signature";
}

unsigned char* tag(const char* name) {
  return reinterpret_cast<unsigned char*>(const_cast<char*>(name));
}

// RFC 6376 §3.5 q=: a colon-separated list, "dns/txt" the only method defined; unknown
// methods are skipped, so a list without dns/txt leaves no way to get the key. Absent: dns/txt.
bool has_dns_txt_query_method(dkim_siginfo* signature) {
  const unsigned char* value = dkim_sig_gettagvalue(signature, false, tag("q"));
  if (value == nullptr) return true;
  std::string_view methods(reinterpret_cast<const char*>(value));
  while (!methods.empty()) {
    const auto colon = methods.find(':');
    std::string_view method = methods.substr(0, colon);
    while (!method.empty() && (method.front() == ' ' || method.front() == '\t'))
      method.remove_prefix(1);
    while (!method.empty() && (method.back() == ' ' || method.back() == '\t'))
      method.remove_suffix(1);
    if (lower(method) == "dns/txt") return true;
    if (colon == std::string_view::npos) break;
    methods.remove_prefix(colon + 1);
  }
  return false;
}

// The bytes dkim_get_key's key-lookup buffer holds (BUFRSZ + 1 in libopendkim 2.11): a record
// that does not fit, with its NUL, is refused (answer_key), so it is never checked from the
// cache either.
constexpr std::size_t kLibraryKeyBuffer = 1024 + 1;

// RFC 6376 §3.6.2.2: the strings of the first TXT record joined without separators; nullopt
// when the answer holds no key record.
std::optional<std::string> key_record_text(const DnsAnswer& answer) {
  if (answer.outcome != DnsOutcome::answer || answer.records.empty()) return std::nullopt;
  std::string record;
  for (const auto& part : answer.records.front().strings)
    record += part;
  return record;
}

}  // namespace

void DkimVerification::HandleFree::operator()(dkim* handle) const {
  if (handle != nullptr) dkim_free(handle);
}

DkimVerification::DkimVerification(std::shared_ptr<const DkimLibrary> library,
                                   DnsResolver* resolver)
    : library_(std::move(library)), resolver_(resolver) {
  DKIM_STAT status = DKIM_STAT_OK;
  handle_.reset(dkim_verify(library_->handle(), reinterpret_cast<const unsigned char*>("msg"),
                            nullptr, &status));
  if (!handle_) {
    message_error_ = std::string("libopendkim: ") + dkim_getresultstr(status);
    return;
  }
  dkim_set_user_context(handle_.get(), this);
}

DkimVerification::~DkimVerification() = default;

void DkimVerification::feed(std::string_view bytes) {
  if (message_done_ || !message_error_.empty()) return;
  if (!header_done_) {
    take_header_bytes(bytes);
  } else if (has_signatures_) {
    hash_body(bytes);
  }
}

void DkimVerification::take_header_bytes(std::string_view bytes) {
  header_.append(bytes);
  // An empty header section: the message starts with its empty line.
  if (header_.size() >= 2 && header_.compare(0, 2, "\r\n") == 0) {
    std::string body = header_.substr(2);
    header_.clear();
    end_of_header(0);
    if (has_signatures_) hash_body(body);
    return;
  }
  const std::size_t from = header_scanned_ >= 3 ? header_scanned_ - 3 : 0;
  const std::size_t end = header_.find("\r\n\r\n", from);
  if (end == std::string::npos) {
    header_scanned_ = header_.size();
    if (header_.size() > kMaxHeaderBytes) message_error_ = "header section too large";
    return;
  }
  std::string body = header_.substr(end + 4);
  end_of_header(end + 2);  // the last field keeps its CRLF, the empty line does not
  if (has_signatures_) hash_body(body);
}

void DkimVerification::end_of_header(std::size_t header_length) {
  header_done_ = true;
  std::string_view header(header_.data(), std::min(header_length, header_.size()));
  // Fields are split at line ends not followed by white space (RFC 5322 folding).
  std::string_view field;
  std::size_t field_start = 0;
  bool in_field = false;
  std::size_t position = 0;
  while (position < header.size()) {
    std::size_t line_end = header.find("\r\n", position);
    if (line_end == std::string_view::npos) line_end = header.size();
    const bool continuation = header[position] == ' ' || header[position] == '\t';
    if (!continuation) {
      if (in_field) add_header_field(header.substr(field_start, position - 2 - field_start));
      field_start = position;
      in_field = true;
    }
    position = line_end + 2;
  }
  if (in_field) {
    std::size_t field_end = header.size();
    if (field_end >= field_start + 2 && header.substr(field_end - 2) == "\r\n") field_end -= 2;
    add_header_field(header.substr(field_start, field_end - field_start));
  }
  header_.clear();
  header_.shrink_to_fit();
  if (!message_error_.empty()) return;

  const DKIM_STAT status = dkim_eoh(handle_.get());
  if (status == DKIM_STAT_NOSIG) return;
  if (status != DKIM_STAT_OK) {
    message_error_ = std::string("libopendkim: ") + dkim_getresultstr(status);
    return;
  }
  has_signatures_ = true;
  start_key_queries();
}

void DkimVerification::add_header_field(std::string_view field) {
  if (!message_error_.empty()) return;
  // A line without a colon is no field: it cannot be named in h=, so it changes no signature.
  if (field.find(':') == std::string_view::npos) return;
  if (is_signature_field(field)) {
    if (signature_fields_ >= static_cast<std::size_t>(library_->settings().max_signatures)) {
      ++signatures_not_checked_;
      return;
    }
    ++signature_fields_;
  }
  std::string copy(field);  // dkim_header takes a non-const buffer
  const DKIM_STAT status =
      dkim_header(handle_.get(), reinterpret_cast<unsigned char*>(copy.data()), copy.size());
  // SYNTAX is a broken DKIM-Signature: with BADSIGHANDLES libopendkim keeps it and reports it
  // as that signature's error at eom, beside the others.
  if (status != DKIM_STAT_OK && status != DKIM_STAT_SYNTAX)
    message_error_ = std::string("libopendkim: header field: ") + dkim_getresultstr(status);
}

void DkimVerification::start_key_queries() {
  DKIM_SIGINFO** signatures = nullptr;
  int count = 0;
  if (dkim_getsiglist(handle_.get(), &signatures, &count) != DKIM_STAT_OK) return;
  for (int i = 0; i < count; ++i) {
    DKIM_SIGINFO* signature = signatures[i];
    // A signature libopendkim already judged (no d=, bad v=, expired, …) needs no key.
    if (dkim_sig_geterror(signature) != DKIM_SIGERROR_UNKNOWN) continue;
    const std::string domain = text_of(dkim_sig_getdomain(signature));
    const std::string selector = text_of(dkim_sig_getselector(signature));
    if (domain.empty() || selector.empty()) continue;
    if (!has_dns_txt_query_method(signature)) {
      // libopendkim checks q= only when it does its own DNS; with our key lookup it is ours.
      dkim_sig_ignore(signature);
      not_checked_.emplace(signature, "no supported query method in q= (RFC 6376 3.5)");
      continue;
    }
    const std::string name = key_name(selector, domain);
    if (keys_.count(name) != 0 || resolver_ == nullptr) continue;
    Key& key = keys_[name];
    ++pending_queries_;
    key.query = resolver_->resolve(name, DnsType::txt, [this, name](DnsAnswer answer) {
      Key& answered = keys_[name];
      answered.answered = true;
      answered.answer = std::move(answer);
      --pending_queries_;
      if (pending_queries_ == 0 && message_done_ && keys_ready_) {
        auto ready = std::move(keys_ready_);
        keys_ready_ = nullptr;
        ready();  // may destroy this object: nothing after it
      }
    });
  }
}

void DkimVerification::hash_body(std::string_view bytes) {
  if (bytes.empty() || !message_error_.empty()) return;
  // dkim_body takes a non-const pointer but does not write through it.
  const DKIM_STAT status =
      dkim_body(handle_.get(), reinterpret_cast<unsigned char*>(const_cast<char*>(bytes.data())),
                bytes.size());
  if (status != DKIM_STAT_OK)
    message_error_ = std::string("libopendkim: body: ") + dkim_getresultstr(status);
}

void DkimVerification::end_of_message() {
  if (message_done_) return;
  if (message_error_.empty() && !header_done_) end_of_header(header_.size());
  message_done_ = true;
}

DkimLibrary::Callbacks DkimVerification::callbacks() {
  return DkimLibrary::Callbacks{&DkimVerification::lookup_key, &DkimVerification::final_check};
}

int DkimVerification::final_check(dkim* handle, dkim_siginfo** signatures, int count) {
  auto* self = static_cast<DkimVerification*>(dkim_get_user_context(handle));
  // No exception may cross into libopendkim: on one, the signatures not yet checked are simply
  // left to it.
  try {
    if (self != nullptr) self->check_with_cached_keys(signatures, count);
  } catch (...) {
  }
  return DKIM_CBSTAT_CONTINUE;
}

void DkimVerification::check_with_cached_keys(dkim_siginfo** signatures, int count) {
  if (!library_->cached_keys_usable()) return;
  DkimKeyCache& cache = DkimKeyCache::for_this_thread();
  const auto now = DkimKeyCache::Clock::now();
  for (int i = 0; i < count; ++i) {
    dkim_siginfo* signature = signatures[i];
    // Only signatures libopendkim would still process: not judged (no l= beyond the body, …),
    // not ignored, not refused by us.
    if (dkim_sig_geterror(signature) != DKIM_SIGERROR_UNKNOWN ||
        (dkim_sig_getflags(signature) & DKIM_SIGFLAG_IGNORE) != 0 ||
        not_checked_.count(signature) != 0)
      continue;
    const auto found = keys_.find(
        key_name(text_of(dkim_sig_getselector(signature)), text_of(dkim_sig_getdomain(signature))));
    if (found == keys_.end() || !found->second.answered) continue;
    const std::optional<std::string> record = key_record_text(found->second.answer);
    if (!record || record->size() + 1 > kLibraryKeyBuffer) continue;
    const auto key = cache.get(*record, found->second.answer.ttl, now);
    const std::optional<unsigned> key_bits =
        check_with_cached_key(signature, *key, library_->settings());
    if (!key_bits) continue;
    dkim_sig_ignore(signature);
    passed_with_cached_key_[signature] = *key_bits;
  }
}

int DkimVerification::lookup_key(dkim* handle, dkim_siginfo* signature, unsigned char* buffer,
                                 std::size_t length) {
  auto* self = static_cast<DkimVerification*>(dkim_get_user_context(handle));
  if (self == nullptr) return DKIM_CBSTAT_ERROR;
  return self->answer_key(signature, buffer, length);
}

int DkimVerification::answer_key(dkim_siginfo* signature, unsigned char* buffer,
                                 std::size_t length) {
  const auto found = keys_.find(
      key_name(text_of(dkim_sig_getselector(signature)), text_of(dkim_sig_getdomain(signature))));
  if (found == keys_.end() || !found->second.answered) return DKIM_CBSTAT_ERROR;
  const DnsAnswer& answer = found->second.answer;
  switch (answer.outcome) {
    case DnsOutcome::answer:
      break;
    case DnsOutcome::no_data:
    case DnsOutcome::nxdomain:
      return DKIM_CBSTAT_NOTFOUND;  // RFC 6376 §6.1.2: no key, a permanent failure
    case DnsOutcome::temporary_failure:
    case DnsOutcome::failure:
      return DKIM_CBSTAT_ERROR;
  }
  const std::optional<std::string> text = key_record_text(answer);
  if (!text) return DKIM_CBSTAT_NOTFOUND;
  const std::string& record = *text;
  if (record.size() + 1 > length) return DKIM_CBSTAT_ERROR;
  std::memcpy(buffer, record.data(), record.size());
  buffer[record.size()] = '\0';
  return DKIM_CBSTAT_CONTINUE;
}

DkimSignatureResult DkimVerification::signature_result(dkim_siginfo* signature) const {
  DkimSignatureResult result;
  result.domain = text_of(dkim_sig_getdomain(signature));
  result.selector = text_of(dkim_sig_getselector(signature));
  result.algorithm = text_of(dkim_sig_gettagvalue(signature, false, tag("a")));
  unsigned int bits = 0;
  if (dkim_sig_getkeysize(signature, &bits) == DKIM_STAT_OK) result.key_bits = bits;
  const int error = dkim_sig_geterror(signature);
  const char* error_text = dkim_sig_geterrorstr(error);
  const std::string reason = error_text != nullptr ? error_text : "unknown error";
  const bool sha1 = lower(result.algorithm) == "rsa-sha1";

  const auto not_checked = not_checked_.find(signature);
  if (not_checked != not_checked_.end()) {
    result.verdict = DkimVerdict::permerror;
    result.reason = not_checked->second;
    return result;
  }
  const auto passed = passed_with_cached_key_.find(signature);
  const bool passed_with_cached_key = passed != passed_with_cached_key_.end();
  if (passed_with_cached_key) result.key_bits = passed->second;
  // The PASSED flag and the body hash are not enough: libopendkim also passes a signature
  // whose key refuses it (t=s with an i= subdomain) and says so only in its error.
  if (passed_with_cached_key || (DKIM_SIG_CHECK(signature) && error == DKIM_SIGERROR_OK)) {
    if (sha1 && !library_->settings().allow_sha1) {
      result.verdict = DkimVerdict::policy;
      result.reason = "rsa-sha1 is not accepted (RFC 8301)";
    } else {
      result.verdict = DkimVerdict::pass;
    }
    return result;
  }
  switch (error) {
    case DKIM_SIGERROR_KEYTOOSMALL:
      result.verdict = DkimVerdict::policy;
      result.reason = "RSA key of " + std::to_string(result.key_bits) + " bits, under " +
                      std::to_string(library_->settings().min_key_bits) + " (RFC 8301)";
      return result;
    case DKIM_SIGERROR_KEYFAIL: {
      result.verdict = DkimVerdict::temperror;
      const auto found = keys_.find(key_name(result.selector, result.domain));
      if (found == keys_.end()) {
        result.reason = "key query failed: no resolver";
      } else {
        const DnsAnswer& answer = found->second.answer;
        result.reason =
            "key query failed: " +
            (answer.reason.empty() ? std::string(dns_outcome_name(answer.outcome)) : answer.reason);
      }
      return result;
    }
    case DKIM_SIGERROR_NOKEY:
      result.verdict = DkimVerdict::permerror;
      result.reason = "no key";
      return result;
    case DKIM_SIGERROR_BADSIG:
      result.verdict = DkimVerdict::fail;
      result.reason = dkim_sig_getbh(signature) == DKIM_SIGBH_MISMATCH ? "body hash mismatch"
                                                                       : "signature mismatch";
      return result;
    case DKIM_SIGERROR_OK:
    case DKIM_SIGERROR_UNKNOWN:
      if (dkim_sig_getbh(signature) == DKIM_SIGBH_MISMATCH) {
        result.verdict = DkimVerdict::fail;
        result.reason = "body hash mismatch";
        return result;
      }
      if ((dkim_sig_getflags(signature) & DKIM_SIGFLAG_PROCESSED) != 0) {
        result.verdict = DkimVerdict::fail;
        result.reason = "signature mismatch";
        return result;
      }
      // A key lookup answered DKIM_CBSTAT_ERROR stops dkim_sig_process before it records an
      // error: the reason is the key query's.
      if (const auto found = keys_.find(key_name(result.selector, result.domain));
          found == keys_.end()) {
        result.verdict = DkimVerdict::temperror;
        result.reason = resolver_ == nullptr ? "no resolver" : "key not fetched";
        return result;
      } else if (found->second.answer.outcome == DnsOutcome::temporary_failure ||
                 found->second.answer.outcome == DnsOutcome::failure) {
        const DnsAnswer& answer = found->second.answer;
        result.verdict = DkimVerdict::temperror;
        result.reason =
            "key query failed: " +
            (answer.reason.empty() ? std::string(dns_outcome_name(answer.outcome)) : answer.reason);
        return result;
      }
      result.verdict = DkimVerdict::permerror;
      result.reason = "key record unusable";
      return result;
    default:
      result.verdict = DkimVerdict::permerror;
      result.reason = reason;
      return result;
  }
}

DkimOutcome DkimVerification::finish() {
  end_of_message();
  DkimOutcome outcome;
  outcome.signatures_not_checked = signatures_not_checked_;
  if (!message_error_.empty()) {
    outcome.verdict = DkimVerdict::permerror;
    outcome.reason = message_error_;
    return outcome;
  }
  if (!has_signatures_) return outcome;
  const DKIM_STAT status = dkim_eom(handle_.get(), nullptr);
  DKIM_SIGINFO** signatures = nullptr;
  int count = 0;
  if (dkim_getsiglist(handle_.get(), &signatures, &count) != DKIM_STAT_OK || count == 0) {
    outcome.verdict = DkimVerdict::permerror;
    outcome.reason = std::string("libopendkim: ") + dkim_getresultstr(status);
    return outcome;
  }
  for (int i = 0; i < count; ++i) {
    DkimSignatureResult result = signature_result(signatures[i]);
    outcome.verdict = better_dkim_verdict(outcome.verdict, result.verdict);
    if (result.verdict == DkimVerdict::pass) {
      const std::string domain = lower(result.domain);
      if (std::find(outcome.passing_domains.begin(), outcome.passing_domains.end(), domain) ==
          outcome.passing_domains.end())
        outcome.passing_domains.push_back(domain);
    }
    outcome.signatures.push_back(std::move(result));
  }
  return outcome;
}

}  // namespace portcullis
