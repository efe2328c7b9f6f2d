// An asynchronous RFC 7208 check_host() on a DnsResolver.
//
// SECURITY: every record, name and explanation comes from DNS an attacker controls. The work
// per evaluation is bounded whatever they say: DNS-querying terms, void lookups, MX and PTR
// names (RFC 7208 §4.6.4), total queries (SpfLimits::max_queries) and queries in flight (at
// most the MX/PTR name limit plus one); records are bounded by the parser. Explanation text is
// kept only when it is printable ASCII of bounded length.
//
// Lifetime: the evaluator owns its DnsQuery handles; destroying it cancels every query, and its
// callback is then never called. The callback is called at most once, from a resolver
// callback (never from start()), and the evaluator touches nothing after calling it, so the
// callback may destroy the evaluator.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dns_resolver.h"
#include "ip_address.h"
#include "spf_macro.h"
#include "spf_record.h"

namespace portcullis {

enum class SpfVerdict { none, neutral, pass, fail, softfail, temperror, permerror };

// "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror" (the fact values).
std::string_view spf_verdict_name(SpfVerdict verdict);

struct SpfLimits {
  std::size_t dns_terms = 10;    // include, a, mx, ptr, exists, redirect
  std::size_t void_lookups = 2;  // NXDOMAIN or NODATA answers to a term's query
  std::size_t mx_names = 10;
  std::size_t ptr_names = 10;
  std::size_t max_queries = 120;  // every query of the evaluation, explanation included
  std::size_t explanation_octets = 512;
};

struct SpfRequest {
  IpAddress client = IpAddress::v4({0, 0, 0, 0});
  std::string sender;    // MAIL FROM address without brackets; empty for the null sender
  std::string helo;      // HELO/EHLO argument
  std::string receiver;  // our host name (%{r})
};

struct SpfResult {
  SpfVerdict verdict = SpfVerdict::none;
  std::string domain;       // the identity's domain (spf.domain)
  std::string explanation;  // fail only, when the record gave a valid one
  std::string reason;       // why, for temperror/permerror/none: for logs and traces
};

class SpfEvaluator {
 public:
  using Callback = std::function<void(SpfResult)>;

  explicit SpfEvaluator(DnsResolver& resolver, SpfLimits limits = {});
  ~SpfEvaluator();
  SpfEvaluator(const SpfEvaluator&) = delete;
  SpfEvaluator& operator=(const SpfEvaluator&) = delete;

  // The result at once when no DNS is needed (an identity that is not a domain: none); the
  // callback is then never called. Otherwise nullopt, and `callback` is called once later.
  std::optional<SpfResult> start(const SpfRequest& request, Callback callback);

 private:
  enum class FrameKind { top, include, redirect };
  struct Frame {
    FrameKind kind = FrameKind::top;
    std::string domain;
    SpfRecord record;
    std::size_t next = 0;     // the next mechanism to evaluate
    bool in_include = false;  // this frame or an ancestor is an include
  };
  struct Gather;  // the answers of parallel address lookups (mx, ptr)

  void check_domain(std::string domain, FrameKind kind);
  void on_record_answer(const DnsAnswer& answer);
  void run_frame();
  void evaluate_mechanism(const SpfMechanism& mechanism);
  void match_mechanism(const SpfMechanism& mechanism, bool matched);
  void frame_result(SpfVerdict verdict, std::string reason = {});
  void with_explanation(std::function<void()> next);
  void finish(SpfVerdict verdict, std::string reason);

  bool count_dns_term();
  bool count_void(const DnsAnswer& answer);
  // Expands a domain-spec for the current frame (resolving %{p} first when used) and passes
  // the name to query, or nullopt after a permerror was reported.
  void expand_target(const std::string& spec, std::function<void(std::optional<std::string>)> next);
  // The client's validated PTR names (RFC 7208 §5.5), and %{p} chosen from them for `domain`.
  void validated_names(std::function<void(std::vector<std::string>)> next);
  void find_validated_name(const std::string& domain, std::function<void()> next);
  bool query(std::string_view name, DnsType type, std::function<void(DnsAnswer)> next);
  void lookup_addresses(std::vector<std::string> names,
                        std::function<void(std::vector<DnsAnswer>)> next);
  bool address_matches(const DnsAnswer& answer, const SpfMechanism& mechanism) const;
  SpfMacroContext macro_context() const;

  DnsResolver& resolver_;
  SpfLimits limits_;
  SpfRequest request_;
  IpAddress client_ = IpAddress::v4({0, 0, 0, 0});
  std::string sender_local_;
  std::string sender_domain_;
  std::vector<Frame> frames_;
  std::size_t dns_terms_ = 0;
  std::size_t void_lookups_ = 0;
  std::size_t queries_ = 0;
  std::string validated_name_;  // %{p} for the current expansion
  std::string explanation_;
  std::vector<std::unique_ptr<DnsQuery>> queries_held_;
  Callback callback_;
  bool finished_ = false;
};

}  // namespace portcullis
