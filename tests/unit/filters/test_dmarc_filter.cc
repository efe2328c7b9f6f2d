// The dmarc filter's hook through a fake HookContext (data phase, a message, the facts of the
// spf and dkim filters) on a ZoneResolver with _dmarc records: relaxed and strict alignment of
// SPF and DKIM, the subdomain policy, pct with an injected roll, the organisational-domain
// fallback, a missing record, several records, temperror, several From, and the hook's
// errors and cancellation.
#define BOOST_TEST_MODULE dmarc_filter
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dmarc_filter.h"
#include "fake_message_view.h"
#include "filter_harness.h"
#include "zone_resolver.h"

using namespace portcullis;

namespace {

std::shared_ptr<const PublicSuffixList> small_list() {
  return std::make_shared<const PublicSuffixList>(
      PublicSuffixList::parse("org\nexample\nuk\nco.uk\n"));
}

// One data-phase call: the message's From, the earlier filters' facts, the zone, the roll.
struct Run {
  ZoneResolver dns;
  std::shared_ptr<test::FilterHarness> harness = test::make_harness("192.0.2.1");
  test::FilterHarness* const target = harness.get();  // where parked results arrive
  test::FilterHarness* context = nullptr;             // set once the hook was called
  Facts& facts = harness->facts;
  int rolls = 0;
  int roll_value = 0;
  std::unique_ptr<DmarcFilter> filter;
  std::optional<test::StringMessageView> message;
  HookStatus status = HookStatus::continue_chain;

  Run() {
    harness->use_resolver(&dns);
    harness->hook_phase = Phase::data;
    filter = std::make_unique<DmarcFilter>(small_list(), [this] {
      ++rolls;
      return roll_value;
    });
  }

  void spf(const std::string& result, const std::string& domain) {
    facts.set("spf", result);
    facts.set("spf.domain", domain);
  }
  void dkim(FactList domains) { facts.set("dkim.domains", std::move(domains)); }

  // Calls the hook with a message from `from` and runs the resolver to the end.
  void call(const std::string& from_header) {
    message.emplace(from_header + "Subject: test\r\n\r\nbody\r\n");
    harness->message_view = &*message;
    context = harness.get();
    status = filter->on_phase(*context);
    dns.run();
  }

  // The facts delivered (one result expected) or recorded synchronously.
  const Facts& facts_out() const {
    if (!target->results.empty()) return target->results.front().facts;
    return context->recorded;
  }
  std::string fact(const std::string& name) const {
    const std::string* value = facts_out().string(name);
    return value != nullptr ? *value : "(absent)";
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(relaxed_spf_alignment_passes_for_a_sibling_domain) {
  Run run;
  run.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=reject"});
  run.spf("pass", "bounce.example.org");
  run.call("From: Jane <jane@example.org>\r\n");
  BOOST_TEST((run.status == HookStatus::stop_iteration));
  BOOST_TEST(run.context->parks == 1);
  BOOST_REQUIRE(run.target->results.size() == 1u);
  BOOST_TEST(run.fact("dmarc") == "pass");
  BOOST_TEST(run.fact("dmarc.domain") == "example.org");
  BOOST_TEST(run.fact("dmarc.policy") == "reject");
  BOOST_TEST(run.rolls == 0);
}

BOOST_AUTO_TEST_CASE(strict_spf_alignment_needs_the_same_name) {
  Run strict;
  strict.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=reject; aspf=s"});
  strict.spf("pass", "bounce.example.org");
  strict.call("From: jane@example.org\r\n");
  BOOST_TEST(strict.fact("dmarc") == "fail");
  BOOST_TEST(strict.fact("dmarc.policy") == "reject");

  Run exact;
  exact.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=reject; aspf=s"});
  exact.spf("pass", "Example.ORG");
  exact.call("From: jane@example.org\r\n");
  BOOST_TEST(exact.fact("dmarc") == "pass");
}

BOOST_AUTO_TEST_CASE(spf_must_pass_and_be_aligned) {
  Run failed;
  failed.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=quarantine"});
  failed.spf("softfail", "example.org");
  failed.call("From: jane@example.org\r\n");
  BOOST_TEST(failed.fact("dmarc") == "fail");
  BOOST_TEST(failed.fact("dmarc.policy") == "quarantine");

  Run other_domain;
  other_domain.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=quarantine"});
  other_domain.spf("pass", "mailer.example");
  other_domain.call("From: jane@example.org\r\n");
  BOOST_TEST(other_domain.fact("dmarc") == "fail");

  Run nothing_recorded;  // neither spf nor dkim ran
  nothing_recorded.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=none"});
  nothing_recorded.call("From: jane@example.org\r\n");
  BOOST_TEST(nothing_recorded.fact("dmarc") == "fail");
  BOOST_TEST(nothing_recorded.fact("dmarc.policy") == "none");
}

BOOST_AUTO_TEST_CASE(dkim_alignment_relaxed_and_strict) {
  Run relaxed;
  relaxed.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=reject"});
  relaxed.spf("fail", "mailer.example");
  relaxed.dkim({"mailer.example", "mail.example.org"});
  relaxed.call("From: jane@example.org\r\n");
  BOOST_TEST(relaxed.fact("dmarc") == "pass");

  Run strict;
  strict.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=reject; adkim=s"});
  strict.dkim({"mail.example.org"});
  strict.call("From: jane@example.org\r\n");
  BOOST_TEST(strict.fact("dmarc") == "fail");

  Run strict_exact;
  strict_exact.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=reject; adkim=s"});
  strict_exact.dkim({"mailer.example", "example.org"});
  strict_exact.call("From: jane@example.org\r\n");
  BOOST_TEST(strict_exact.fact("dmarc") == "pass");

  // Relaxed alignment compares organisational domains from the list, not name suffixes.
  Run public_suffix;
  public_suffix.dns.add_txt("_dmarc.example.co.uk", {"v=DMARC1; p=reject"});
  public_suffix.dkim({"other.co.uk", "co.uk"});
  public_suffix.call("From: jane@example.co.uk\r\n");
  BOOST_TEST(public_suffix.fact("dmarc") == "fail");
}

BOOST_AUTO_TEST_CASE(a_subdomain_falls_back_to_the_organisational_record_and_its_sp) {
  Run run;
  run.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=reject; sp=quarantine"});
  run.call("From: news@news.example.org\r\n");
  BOOST_TEST(run.fact("dmarc") == "fail");
  BOOST_TEST(run.fact("dmarc.domain") == "news.example.org");
  BOOST_TEST(run.fact("dmarc.policy") == "quarantine");
  BOOST_TEST((run.dns.asked() ==
              std::vector<std::string>{"_dmarc.news.example.org TXT", "_dmarc.example.org TXT"}));
}

BOOST_AUTO_TEST_CASE(without_sp_the_organisational_p_applies_to_a_subdomain) {
  Run run;
  run.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=reject"});
  run.spf("pass", "example.org");
  run.call("From: news@news.example.org\r\n");
  BOOST_TEST(run.fact("dmarc") == "pass");  // relaxed: same organisational domain
  BOOST_TEST(run.fact("dmarc.policy") == "reject");
}

BOOST_AUTO_TEST_CASE(a_record_at_the_from_domain_itself_uses_p_not_sp) {
  Run run;
  run.dns.add_txt("_dmarc.news.example.org", {"v=DMARC1; p=reject; sp=none"});
  run.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=none"});
  run.call("From: news@news.example.org\r\n");
  BOOST_TEST(run.fact("dmarc") == "fail");
  BOOST_TEST(run.fact("dmarc.policy") == "reject");
  BOOST_TEST(run.dns.queries() == 1u);
}

BOOST_AUTO_TEST_CASE(pct_samples_failing_messages_with_the_injected_roll) {
  struct Case {
    std::string record;
    int roll;
    std::string policy;
  };
  const std::vector<Case> cases = {
      {"v=DMARC1; p=reject; pct=0", 0, "quarantine"},    // never selected
      {"v=DMARC1; p=reject; pct=30", 29, "reject"},      // selected: roll < pct
      {"v=DMARC1; p=reject; pct=30", 30, "quarantine"},  // left out: one step down
      {"v=DMARC1; p=quarantine; pct=50", 70, "none"},
      {"v=DMARC1; p=quarantine; pct=50", 10, "quarantine"},
  };
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT(c.record << " roll " << c.roll) {
      Run run;
      run.roll_value = c.roll;
      run.dns.add_txt("_dmarc.example.org", {c.record});
      run.call("From: jane@example.org\r\n");
      BOOST_TEST(run.fact("dmarc") == "fail");
      BOOST_TEST(run.fact("dmarc.policy") == c.policy);
      BOOST_TEST(run.rolls == 1);
    }
  }
}

BOOST_AUTO_TEST_CASE(pct_100_and_passing_messages_need_no_roll) {
  Run full;
  full.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=reject; pct=100"});
  full.call("From: jane@example.org\r\n");
  BOOST_TEST(full.fact("dmarc.policy") == "reject");
  BOOST_TEST(full.rolls == 0);

  Run passing;
  passing.roll_value = 99;
  passing.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=reject; pct=10"});
  passing.spf("pass", "example.org");
  passing.call("From: jane@example.org\r\n");
  BOOST_TEST(passing.fact("dmarc") == "pass");
  BOOST_TEST(passing.fact("dmarc.policy") == "reject");
  BOOST_TEST(passing.rolls == 0);
}

BOOST_AUTO_TEST_CASE(no_record_anywhere_is_none) {
  Run run;
  run.dns.add_txt("news.example.org", {"unrelated"});
  run.dns.add_txt("_dmarc.news.example.org", {"v=spf1 -all"});  // not a DMARC record
  run.call("From: news@news.example.org\r\n");
  BOOST_TEST(run.fact("dmarc") == "none");
  BOOST_TEST(run.fact("dmarc.domain") == "news.example.org");
  BOOST_TEST(run.fact("dmarc.policy") == "(absent)");
  BOOST_TEST((run.dns.asked() ==
              std::vector<std::string>{"_dmarc.news.example.org TXT", "_dmarc.example.org TXT"}));

  Run organisational;  // the From domain is its own organisational domain: one query
  organisational.call("From: jane@example.org\r\n");
  BOOST_TEST(organisational.fact("dmarc") == "none");
  BOOST_TEST(organisational.dns.queries() == 1u);
}

BOOST_AUTO_TEST_CASE(several_dmarc_records_are_none_and_other_txt_records_do_not_count) {
  Run several;
  several.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=reject"});
  several.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=none"});
  several.spf("pass", "example.org");
  several.call("From: jane@example.org\r\n");
  BOOST_TEST(several.fact("dmarc") == "none");
  BOOST_TEST(several.fact("dmarc.policy") == "(absent)");

  Run one;
  one.dns.add_txt("_dmarc.example.org", {"v=spf1 -all"});
  one.dns.add_txt("_dmarc.example.org", {"v=DMARC1; ", "p=reject"});  // strings joined
  one.call("From: jane@example.org\r\n");
  BOOST_TEST(one.fact("dmarc") == "fail");
  BOOST_TEST(one.fact("dmarc.policy") == "reject");
}

BOOST_AUTO_TEST_CASE(an_unusable_record_is_none) {
  Run run;
  run.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=block"});
  run.call("From: jane@example.org\r\n");
  BOOST_TEST(run.fact("dmarc") == "none");

  Run with_rua;  // §6.6.3: a valid rua makes it p=none
  with_rua.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=block; rua=mailto:r@example.org"});
  with_rua.call("From: jane@example.org\r\n");
  BOOST_TEST(with_rua.fact("dmarc") == "fail");
  BOOST_TEST(with_rua.fact("dmarc.policy") == "none");
}

BOOST_AUTO_TEST_CASE(a_dns_failure_is_temperror_with_a_warning) {
  Run timeout;
  timeout.dns.time_out("_dmarc.example.org", DnsType::txt);
  timeout.call("From: jane@example.org\r\n");
  BOOST_REQUIRE(timeout.target->results.size() == 1u);
  BOOST_TEST(timeout.fact("dmarc") == "temperror");
  BOOST_TEST(timeout.fact("dmarc.domain") == "example.org");
  BOOST_TEST(timeout.fact("dmarc.policy") == "(absent)");
  BOOST_REQUIRE(timeout.target->results[0].warnings.size() == 1u);
  BOOST_TEST(timeout.target->results[0].warnings[0] ==
             "_dmarc.example.org TXT: temporary_failure (timeout)");

  Run organisational;  // no record at the From domain, SERVFAIL at the organisational one
  organisational.dns.serve_failure("_dmarc.example.org");
  organisational.call("From: news@news.example.org\r\n");
  BOOST_TEST(organisational.fact("dmarc") == "temperror");
  BOOST_TEST(organisational.dns.queries() == 2u);
}

BOOST_AUTO_TEST_CASE(several_from_or_none_is_permerror_without_dns) {
  for (const std::string& header :
       {std::string("From: a@example.org\r\nFrom: b@evil.example\r\n"),
        std::string("From: a@example.org, b@evil.example\r\n"),
        std::string("To: x@example.org\r\n"), std::string("From: group: a@example.org;\r\n")}) {
    BOOST_TEST_CONTEXT(header) {
      Run run;
      run.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=none"});
      run.call(header);
      BOOST_TEST((run.status == HookStatus::continue_chain));
      BOOST_TEST(run.context->parks == 0);
      BOOST_TEST(run.dns.queries() == 0u);
      BOOST_TEST(run.fact("dmarc") == "permerror");
      BOOST_TEST(run.fact("dmarc.domain") == "(absent)");
      BOOST_TEST(run.context->authentication.empty());
      BOOST_TEST(run.context->warned.empty());
    }
  }
}

BOOST_AUTO_TEST_CASE(an_internationalised_from_domain_is_queried_as_a_labels) {
  Run run;
  run.dns.add_txt("_dmarc.xn--fsqu00a.org", {"v=DMARC1; p=quarantine"});
  run.spf("pass", "xn--fsqu00a.org");
  run.call("From: jane@\xe4\xbe\x8b\xe5\xad\x90.org\r\n");  // 例子.org
  BOOST_TEST(run.fact("dmarc") == "pass");
  BOOST_TEST(run.fact("dmarc.domain") == "xn--fsqu00a.org");
  BOOST_TEST((run.dns.asked() == std::vector<std::string>{"_dmarc.xn--fsqu00a.org TXT"}));

  Run invalid;  // bytes that are not UTF-8 name no domain
  invalid.call("From: jane@\xff\xfe.org\r\n");
  BOOST_TEST(invalid.fact("dmarc") == "permerror");
  BOOST_TEST(invalid.dns.queries() == 0u);
}

BOOST_AUTO_TEST_CASE(hook_errors_other_phases_and_cancellation) {
  Run no_resolver;
  no_resolver.harness->resolver_available = false;
  no_resolver.call("From: jane@example.org\r\n");
  BOOST_TEST(no_resolver.context->failure.value_or("") == "no resolver");

  Run no_message;
  no_message.context = no_message.harness.get();
  BOOST_TEST((no_message.filter->on_phase(*no_message.context) == HookStatus::continue_chain));
  BOOST_TEST(no_message.context->failure.value_or("") == "no message at the data phase");

  Run rcpt;
  test::StringMessageView message("From: jane@example.org\r\n\r\n");
  rcpt.harness->hook_phase = Phase::rcpt;
  rcpt.harness->message_view = &message;
  rcpt.context = rcpt.harness.get();
  BOOST_TEST((rcpt.filter->on_phase(*rcpt.context) == HookStatus::continue_chain));
  BOOST_TEST(rcpt.context->recorded.empty());
  BOOST_TEST(rcpt.dns.queries() == 0u);

  Run cancelled;
  cancelled.dns.add_txt("_dmarc.example.org", {"v=DMARC1; p=reject"});
  cancelled.message.emplace("From: jane@example.org\r\n\r\n");
  cancelled.harness->message_view = &*cancelled.message;
  cancelled.context = cancelled.harness.get();
  BOOST_TEST((cancelled.filter->on_phase(*cancelled.context) == HookStatus::stop_iteration));
  BOOST_TEST(cancelled.dns.pending() == 1u);
  cancelled.filter->cancel();
  BOOST_TEST(cancelled.dns.run() == 0u);
  BOOST_TEST(cancelled.target->results.empty());
}

BOOST_AUTO_TEST_CASE(the_factory_reads_the_list_at_build_and_reports_a_missing_file) {
  std::vector<SettingError> errors;
  BOOST_TEST(build_dmarc_filter({}, errors) != nullptr);
  BOOST_TEST(errors.empty());
  SettingTable missing = {
      {"public_suffix_list", SettingValue{std::string("/nonexistent/psl.dat"), 4, 1}}};
  BOOST_TEST(build_dmarc_filter(missing, errors) == nullptr);
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].key == "public_suffix_list");
  BOOST_TEST(errors[0].message.find("/nonexistent/psl.dat") != std::string::npos);
  BOOST_TEST(errors[0].line == 4u);
  errors.clear();
  SettingTable unknown = {{"strict", SettingValue{true, 2, 1}}};
  BOOST_TEST(build_dmarc_filter(unknown, errors) == nullptr);
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].key == "strict");
}
