#include "spf_evaluator.h"

#include <algorithm>
#include <chrono>

namespace portcullis {

namespace {

constexpr std::size_t max_name_octets = 253;
constexpr std::size_t max_label_octets = 63;

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lowered(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), lower);
  return out;
}

std::string_view without_trailing_dot(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return name;
}

// RFC 7208 §4.3: a name we may ask about: labels of 1..63 octets, at least two of them; and
// only printable ASCII (a space is legal in a DNS label, and the suites ask for one), since an
// expanded local part may hold anything the SMTP parser let through (SMTPUTF8 bytes).
bool valid_query_name(std::string_view name) {
  name = without_trailing_dot(name);
  if (name.empty() || name.size() > max_name_octets) return false;
  if (!std::all_of(name.begin(), name.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u >= 0x20 && u < 0x7f;
      }))
    return false;
  std::size_t labels = 0;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = name.find('.', start);
    const std::size_t end = dot == std::string_view::npos ? name.size() : dot;
    if (end == start || end - start > max_label_octets) return false;
    ++labels;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return labels >= 2;
}

// RFC 7208 §7.3: an expanded name longer than 253 octets loses labels on the left.
std::string truncate_name(std::string name) {
  if (!name.empty() && name.back() == '.') name.pop_back();
  while (name.size() > max_name_octets) {
    const std::size_t dot = name.find('.');
    if (dot == std::string::npos) return {};
    name.erase(0, dot + 1);
  }
  return name;
}

// `name` is `domain` or one of its subdomains (case-insensitive).
bool within_domain(std::string_view name, std::string_view domain) {
  const std::string n = lowered(without_trailing_dot(name));
  const std::string d = lowered(without_trailing_dot(domain));
  if (n == d) return true;
  return n.size() > d.size() && n.compare(n.size() - d.size(), d.size(), d) == 0 &&
         n[n.size() - d.size() - 1] == '.';
}

SpfVerdict verdict_of(SpfQualifier qualifier) {
  switch (qualifier) {
    case SpfQualifier::pass:
      return SpfVerdict::pass;
    case SpfQualifier::fail:
      return SpfVerdict::fail;
    case SpfQualifier::softfail:
      return SpfVerdict::softfail;
    case SpfQualifier::neutral:
      return SpfVerdict::neutral;
  }
  return SpfVerdict::neutral;
}

bool is_printable_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u <= 0x7e;
  });
}

// Upper-case nibbles, as pyspf and the RFC 7208 test suite (v-macro-ip6) expect: the case only
// shows in exp= text, DNS compares names without case.
std::string forward_nibbles(const IpAddress& address) {
  static const char* const hex = "0123456789ABCDEF";
  std::string out;
  for (std::size_t i = 0; i < 16; ++i) {
    const auto byte = address.bytes()[i];
    if (!out.empty()) out.push_back('.');
    out.push_back(hex[byte >> 4]);
    out.push_back('.');
    out.push_back(hex[byte & 0xf]);
  }
  return out;
}

}  // namespace

std::string_view spf_verdict_name(SpfVerdict verdict) {
  switch (verdict) {
    case SpfVerdict::none:
      return "none";
    case SpfVerdict::neutral:
      return "neutral";
    case SpfVerdict::pass:
      return "pass";
    case SpfVerdict::fail:
      return "fail";
    case SpfVerdict::softfail:
      return "softfail";
    case SpfVerdict::temperror:
      return "temperror";
    case SpfVerdict::permerror:
      return "permerror";
  }
  return "none";
}

struct SpfEvaluator::Gather {
  std::vector<DnsAnswer> answers;
  std::size_t pending = 0;
};

SpfEvaluator::SpfEvaluator(DnsResolver& resolver, SpfLimits limits)
    : resolver_(resolver), limits_(limits) {}

SpfEvaluator::~SpfEvaluator() = default;

std::optional<SpfResult> SpfEvaluator::start(const SpfRequest& request, Callback callback) {
  request_ = request;
  client_ = request.client.unmapped();
  std::string sender = request.sender;
  if (sender.empty()) sender = "postmaster@" + request.helo;
  const std::size_t at = sender.rfind('@');
  sender_local_ = at == std::string::npos ? std::string() : sender.substr(0, at);
  sender_domain_ = at == std::string::npos ? sender : sender.substr(at + 1);
  if (sender_local_.empty()) sender_local_ = "postmaster";
  request_.sender = sender_local_ + "@" + sender_domain_;
  const std::string domain(without_trailing_dot(sender_domain_));
  if (!valid_query_name(domain))
    return SpfResult{SpfVerdict::none, domain, {}, "the identity is not a valid domain"};
  callback_ = std::move(callback);
  check_domain(domain, FrameKind::top);
  return std::nullopt;
}

void SpfEvaluator::check_domain(std::string domain, FrameKind kind) {
  Frame frame;
  frame.kind = kind;
  frame.domain = std::move(domain);
  frame.in_include = kind == FrameKind::include || (!frames_.empty() && frames_.back().in_include);
  const std::string name = frame.domain;
  frames_.push_back(std::move(frame));
  if (!valid_query_name(name)) {
    frame_result(SpfVerdict::none, "not a valid domain: " + name);
    return;
  }
  query(name, DnsType::txt, [this](DnsAnswer answer) { on_record_answer(answer); });
}

void SpfEvaluator::on_record_answer(const DnsAnswer& answer) {
  Frame& frame = frames_.back();
  if (answer.outcome == DnsOutcome::temporary_failure || answer.outcome == DnsOutcome::failure) {
    frame_result(SpfVerdict::temperror, "TXT lookup for " + frame.domain + ": " + answer.reason);
    return;
  }
  std::vector<std::string> records;
  for (const auto& record : answer.records) {
    std::string text;
    for (const auto& piece : record.strings)
      text += piece;
    if (is_spf1_record(text)) records.push_back(std::move(text));
  }
  if (records.empty()) {
    frame_result(SpfVerdict::none, "no SPF record at " + frame.domain);
    return;
  }
  if (records.size() > 1) {
    frame_result(SpfVerdict::permerror, "more than one SPF record at " + frame.domain);
    return;
  }
  auto parsed = parse_spf_record(records.front());
  if (!parsed.record) {
    frame_result(SpfVerdict::permerror, "SPF record at " + frame.domain + ": " + parsed.error);
    return;
  }
  frame.record = std::move(*parsed.record);
  run_frame();
}

void SpfEvaluator::run_frame() {
  Frame& frame = frames_.back();
  while (frame.next < frame.record.mechanisms.size()) {
    const SpfMechanism& mechanism = frame.record.mechanisms[frame.next];
    switch (mechanism.kind) {
      case SpfMechanismKind::all:
        match_mechanism(mechanism, true);
        return;
      case SpfMechanismKind::ip4:
      case SpfMechanismKind::ip6: {
        const bool v4 = mechanism.kind == SpfMechanismKind::ip4;
        const unsigned length = v4 ? mechanism.cidr4 : mechanism.cidr6;
        if (client_.is_v4() == v4 &&
            client_.masked(length) == mechanism.network->unmapped().masked(length)) {
          match_mechanism(mechanism, true);
          return;
        }
        ++frame.next;
        continue;
      }
      default: {
        const SpfMechanism copy = mechanism;
        evaluate_mechanism(copy);
        return;
      }
    }
  }
  if (frame.record.redirect) {
    if (!count_dns_term()) return;
    expand_target(*frame.record.redirect, [this](std::optional<std::string> target) {
      if (target) check_domain(*target, FrameKind::redirect);
    });
    return;
  }
  frame_result(SpfVerdict::neutral);
}

void SpfEvaluator::evaluate_mechanism(const SpfMechanism& mechanism) {
  if (!count_dns_term()) return;
  const std::string spec =
      mechanism.domain_spec.empty() ? frames_.back().domain : mechanism.domain_spec;
  expand_target(spec, [this, mechanism](std::optional<std::string> target) {
    if (!target) return;
    if (mechanism.kind != SpfMechanismKind::include && !valid_query_name(*target)) {
      // A name that cannot be asked matches nothing (an include's target gives none, and so
      // permerror, in check_domain).
      match_mechanism(mechanism, false);
      return;
    }
    const DnsType address_type = client_.is_v4() ? DnsType::a : DnsType::aaaa;
    switch (mechanism.kind) {
      case SpfMechanismKind::include:
        check_domain(*target, FrameKind::include);
        return;
      case SpfMechanismKind::exists:
        query(*target, DnsType::a, [this, mechanism](DnsAnswer answer) {
          if (answer.outcome == DnsOutcome::temporary_failure) {
            frame_result(SpfVerdict::temperror, "exists lookup: " + answer.reason);
            return;
          }
          if (!count_void(answer)) return;
          match_mechanism(mechanism, answer.outcome == DnsOutcome::answer);
        });
        return;
      case SpfMechanismKind::a:
        query(*target, address_type, [this, mechanism](DnsAnswer answer) {
          if (answer.outcome == DnsOutcome::temporary_failure) {
            frame_result(SpfVerdict::temperror, "a lookup: " + answer.reason);
            return;
          }
          if (!count_void(answer)) return;
          match_mechanism(mechanism, address_matches(answer, mechanism));
        });
        return;
      case SpfMechanismKind::mx:
        query(*target, DnsType::mx, [this, mechanism](DnsAnswer answer) {
          if (answer.outcome == DnsOutcome::temporary_failure) {
            frame_result(SpfVerdict::temperror, "mx lookup: " + answer.reason);
            return;
          }
          if (!count_void(answer)) return;
          std::vector<DnsRecord> exchanges = answer.records;
          if (exchanges.size() > limits_.mx_names) {
            frame_result(SpfVerdict::permerror, "more than 10 MX names");
            return;
          }
          std::stable_sort(
              exchanges.begin(), exchanges.end(),
              [](const DnsRecord& a, const DnsRecord& b) { return a.preference < b.preference; });
          std::vector<std::string> names;
          for (const auto& exchange : exchanges)
            if (!exchange.name.empty()) names.push_back(exchange.name);
          lookup_addresses(std::move(names), [this, mechanism](std::vector<DnsAnswer> answers) {
            for (const auto& address_answer : answers) {
              if (address_answer.outcome == DnsOutcome::temporary_failure) {
                frame_result(SpfVerdict::temperror, "mx address lookup: " + address_answer.reason);
                return;
              }
              if (address_matches(address_answer, mechanism)) {
                match_mechanism(mechanism, true);
                return;
              }
            }
            match_mechanism(mechanism, false);
          });
        });
        return;
      case SpfMechanismKind::ptr: {
        const std::string target_domain = *target;
        validated_names([this, mechanism, target_domain](std::vector<std::string> names) {
          const bool matched = std::any_of(names.begin(), names.end(), [&](const std::string& n) {
            return within_domain(n, target_domain);
          });
          match_mechanism(mechanism, matched);
        });
        return;
      }
      default:
        return;
    }
  });
}

void SpfEvaluator::match_mechanism(const SpfMechanism& mechanism, bool matched) {
  if (!matched) {
    ++frames_.back().next;
    run_frame();
    return;
  }
  const SpfVerdict verdict = verdict_of(mechanism.qualifier);
  const Frame& frame = frames_.back();
  // RFC 7208 §6.2: a fail that can become the result asks for the explanation (a fail inside
  // an include only means "no match" to its parent).
  if (verdict == SpfVerdict::fail && !frame.in_include && frame.record.exp) {
    with_explanation([this] { frame_result(SpfVerdict::fail); });
    return;
  }
  frame_result(verdict);
}

// The current frame ended with `verdict`: pop it and apply the verdict to its parent (RFC 7208
// §5.2 for include, §6.1 for redirect), or finish.
void SpfEvaluator::frame_result(SpfVerdict verdict, std::string reason) {
  if (finished_ || frames_.empty()) return;
  const FrameKind kind = frames_.back().kind;
  frames_.pop_back();
  switch (kind) {
    case FrameKind::top:
      finish(verdict, std::move(reason));
      return;
    case FrameKind::redirect:
      if (verdict == SpfVerdict::none) {
        frame_result(SpfVerdict::permerror, "redirect target has no SPF record: " + reason);
        return;
      }
      frame_result(verdict, std::move(reason));
      return;
    case FrameKind::include: {
      switch (verdict) {
        case SpfVerdict::pass: {
          const Frame& parent = frames_.back();
          const SpfMechanism include = parent.record.mechanisms[parent.next];
          match_mechanism(include, true);
          return;
        }
        case SpfVerdict::fail:
        case SpfVerdict::softfail:
        case SpfVerdict::neutral:
          ++frames_.back().next;
          run_frame();
          return;
        case SpfVerdict::temperror:
          frame_result(SpfVerdict::temperror, "include: " + reason);
          return;
        case SpfVerdict::none:
        case SpfVerdict::permerror:
          frame_result(SpfVerdict::permerror, "include: " + reason);
          return;
      }
    }
  }
}

void SpfEvaluator::with_explanation(std::function<void()> next) {
  const std::string spec = *frames_.back().record.exp;
  std::string domain = frames_.back().domain;
  auto on_text = [this, next, domain](DnsAnswer answer) {
    if (answer.outcome != DnsOutcome::answer || answer.records.size() != 1) {
      explanation_.clear();
      next();
      return;
    }
    std::string text;
    for (const auto& piece : answer.records.front().strings)
      text += piece;
    auto expand = [this, next, text] {
      auto expanded = expand_spf_macro(text, SpfMacroUse::explanation, macro_context());
      if (expanded.text && is_printable_ascii(*expanded.text) && !expanded.text->empty() &&
          expanded.text->size() <= limits_.explanation_octets) {
        explanation_ = *expanded.text;
      } else {
        explanation_.clear();
      }
      next();
    };
    if (spf_macro_syntax_error(text, SpfMacroUse::explanation)) {
      explanation_.clear();
      next();
    } else if (spf_macro_uses_p(text)) {
      find_validated_name(domain, expand);
    } else {
      expand();
    }
  };
  auto expanded = expand_spf_macro(spec, SpfMacroUse::domain_spec, macro_context());
  const std::string name = expanded.text ? truncate_name(*expanded.text) : std::string();
  if (spf_macro_uses_p(spec) || !valid_query_name(name)) {
    // An explanation is optional: a name we cannot form gives none rather than more lookups.
    explanation_.clear();
    next();
    return;
  }
  query(name, DnsType::txt, on_text);
}

void SpfEvaluator::finish(SpfVerdict verdict, std::string reason) {
  if (finished_) return;
  finished_ = true;
  SpfResult result;
  result.verdict = verdict;
  result.domain = std::string(without_trailing_dot(sender_domain_));
  if (verdict == SpfVerdict::fail) result.explanation = explanation_;
  result.reason = std::move(reason);
  Callback callback = std::move(callback_);
  callback_ = nullptr;
  // Last: the callback may destroy this evaluator.
  if (callback) callback(std::move(result));
}

bool SpfEvaluator::count_dns_term() {
  if (++dns_terms_ > limits_.dns_terms) {
    frame_result(SpfVerdict::permerror, "more than 10 DNS-querying terms");
    return false;
  }
  return true;
}

bool SpfEvaluator::count_void(const DnsAnswer& answer) {
  if (answer.outcome != DnsOutcome::nxdomain && answer.outcome != DnsOutcome::no_data &&
      !(answer.outcome == DnsOutcome::answer && answer.records.empty()))
    return true;
  if (++void_lookups_ > limits_.void_lookups) {
    frame_result(SpfVerdict::permerror, "more than 2 void lookups");
    return false;
  }
  return true;
}

void SpfEvaluator::expand_target(const std::string& spec,
                                 std::function<void(std::optional<std::string>)> next) {
  auto expand = [this, spec, next] {
    auto expanded = expand_spf_macro(spec, SpfMacroUse::domain_spec, macro_context());
    if (!expanded.text) {
      frame_result(SpfVerdict::permerror, expanded.error);
      next(std::nullopt);
      return;
    }
    next(truncate_name(*expanded.text));
  };
  if (!spf_macro_uses_p(spec)) {
    expand();
    return;
  }
  find_validated_name(frames_.back().domain, expand);
}

// RFC 7208 §7.3 (p): a validated name equal to `domain`, else one under it, else any; none
// leaves it empty, which expands as "unknown".
void SpfEvaluator::find_validated_name(const std::string& domain, std::function<void()> next) {
  validated_names([this, domain, next](std::vector<std::string> names) {
    validated_name_.clear();
    auto exact = std::find_if(names.begin(), names.end(), [&](const std::string& n) {
      return lowered(without_trailing_dot(n)) == lowered(without_trailing_dot(domain));
    });
    auto under = std::find_if(names.begin(), names.end(),
                              [&](const std::string& n) { return within_domain(n, domain); });
    if (exact != names.end()) {
      validated_name_ = *exact;
    } else if (under != names.end()) {
      validated_name_ = *under;
    } else if (!names.empty()) {
      validated_name_ = names.front();
    }
    next();
  });
}

// RFC 7208 §5.5: the client's PTR names (the first ptr_names of them) whose address records
// include the client address. Lookup errors only drop names.
void SpfEvaluator::validated_names(std::function<void(std::vector<std::string>)> next) {
  query(reverse_name(client_), DnsType::ptr, [this, next](DnsAnswer answer) {
    std::vector<std::string> names;
    if (answer.outcome == DnsOutcome::answer) {
      for (const auto& record : answer.records) {
        if (names.size() >= limits_.ptr_names) break;
        if (valid_query_name(record.name)) names.push_back(record.name);
      }
    }
    if (names.empty()) {
      next({});
      return;
    }
    lookup_addresses(names, [this, names, next](std::vector<DnsAnswer> answers) {
      std::vector<std::string> validated;
      for (std::size_t i = 0; i < answers.size(); ++i) {
        if (answers[i].outcome != DnsOutcome::answer) continue;
        for (const auto& record : answers[i].records)
          if (record.address && record.address->unmapped() == client_) {
            validated.push_back(names[i]);
            break;
          }
      }
      next(std::move(validated));
    });
  });
}

bool SpfEvaluator::query(std::string_view name, DnsType type, std::function<void(DnsAnswer)> next) {
  if (finished_) return false;
  if (++queries_ > limits_.max_queries) {
    finish(SpfVerdict::permerror, "too many DNS queries");
    return false;
  }
  // An answer that arrives after the result (other lookups of a parallel step) is dropped.
  queries_held_.push_back(
      resolver_.resolve(name, type, [this, next = std::move(next)](DnsAnswer answer) {
        if (!finished_) next(std::move(answer));
      }));
  return true;
}

void SpfEvaluator::lookup_addresses(std::vector<std::string> names,
                                    std::function<void(std::vector<DnsAnswer>)> next) {
  if (names.empty()) {
    next({});
    return;
  }
  auto gather = std::make_shared<Gather>();
  gather->answers.resize(names.size());
  gather->pending = names.size();
  const DnsType type = client_.is_v4() ? DnsType::a : DnsType::aaaa;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const bool asked = query(names[i], type, [gather, i, next](DnsAnswer answer) {
      gather->answers[i] = std::move(answer);
      if (--gather->pending == 0) next(std::move(gather->answers));
    });
    if (!asked) return;
  }
}

bool SpfEvaluator::address_matches(const DnsAnswer& answer, const SpfMechanism& mechanism) const {
  if (answer.outcome != DnsOutcome::answer) return false;
  const unsigned length = client_.is_v4() ? mechanism.cidr4 : mechanism.cidr6;
  for (const auto& record : answer.records) {
    if (!record.address) continue;
    const IpAddress address = record.address->unmapped();
    if (address.is_v4() != client_.is_v4()) continue;
    if (address.masked(length) == client_.masked(length)) return true;
  }
  return false;
}

SpfMacroContext SpfEvaluator::macro_context() const {
  SpfMacroContext context;
  context.sender = request_.sender;
  context.sender_local = sender_local_;
  context.sender_domain = sender_domain_;
  context.domain = frames_.empty() ? sender_domain_ : frames_.back().domain;
  context.ip_dotted = client_.is_v4() ? client_.to_string() : forward_nibbles(client_);
  context.ip_readable = client_.to_string();
  context.validated_name = validated_name_;
  context.ipv6 = !client_.is_v4();
  context.helo = request_.helo;
  context.receiver = request_.receiver;
  context.timestamp = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
  return context;
}

}  // namespace portcullis
