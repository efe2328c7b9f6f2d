// The SPF record parser: version selection, every mechanism and modifier with qualifiers and
// CIDR lengths (including /0), and the syntax errors that make a record a permerror.
#define BOOST_TEST_MODULE spf_record
#include <boost/test/unit_test.hpp>

#include <string>

#include "spf_record.h"

using namespace portcullis;

namespace {

SpfRecord parsed(const std::string& text) {
  auto result = parse_spf_record(text);
  BOOST_REQUIRE_MESSAGE(result.record.has_value(), text << ": " << result.error);
  return *result.record;
}

std::string error_of(const std::string& text) {
  auto result = parse_spf_record(text);
  BOOST_TEST(!result.record.has_value(), text << " parsed");
  return result.error;
}

}  // namespace

BOOST_AUTO_TEST_CASE(version_selection_is_v_spf1_then_space_or_end) {
  BOOST_TEST(is_spf1_record("v=spf1"));
  BOOST_TEST(is_spf1_record("v=spf1 -all"));
  BOOST_TEST(is_spf1_record("V=SPF1 -all"));  // ABNF literals ignore case
  BOOST_TEST(!is_spf1_record("v=spf10 -all"));
  BOOST_TEST(!is_spf1_record("v=spf1-all"));
  BOOST_TEST(!is_spf1_record(" v=spf1 -all"));
  BOOST_TEST(!is_spf1_record("spf2.0/pra -all"));
  BOOST_TEST(!is_spf1_record(""));
}

BOOST_AUTO_TEST_CASE(mechanisms_with_qualifiers_and_domains) {
  const SpfRecord record = parsed(
      "v=spf1 +a -mx:mail.example.com ~ptr ?include:_spf.example.net exists:%{i}.x.example "
      "ip4:192.0.2.0/24 ip6:2001:db8::/32 all");
  BOOST_REQUIRE(record.mechanisms.size() == 8u);
  BOOST_TEST((record.mechanisms[0].kind == SpfMechanismKind::a));
  BOOST_TEST((record.mechanisms[0].qualifier == SpfQualifier::pass));
  BOOST_TEST(record.mechanisms[0].domain_spec.empty());
  BOOST_TEST((record.mechanisms[1].kind == SpfMechanismKind::mx));
  BOOST_TEST((record.mechanisms[1].qualifier == SpfQualifier::fail));
  BOOST_TEST(record.mechanisms[1].domain_spec == "mail.example.com");
  BOOST_TEST((record.mechanisms[2].qualifier == SpfQualifier::softfail));
  BOOST_TEST((record.mechanisms[3].kind == SpfMechanismKind::include));
  BOOST_TEST((record.mechanisms[3].qualifier == SpfQualifier::neutral));
  BOOST_TEST(record.mechanisms[4].domain_spec == "%{i}.x.example");
  BOOST_TEST(record.mechanisms[5].network->to_string() == "192.0.2.0");
  BOOST_TEST(record.mechanisms[5].cidr4 == 24u);
  BOOST_TEST(record.mechanisms[6].cidr6 == 32u);
  BOOST_TEST((record.mechanisms[7].kind == SpfMechanismKind::all));
  BOOST_TEST(!record.redirect.has_value());
}

BOOST_AUTO_TEST_CASE(dual_cidr_lengths_including_zero) {
  const SpfRecord record = parsed("v=spf1 a/24 mx//64 a:b.example/0//0 ip4:0.0.0.0/0 ip6:::/0");
  BOOST_TEST(record.mechanisms[0].cidr4 == 24u);
  BOOST_TEST(record.mechanisms[0].cidr6 == 128u);
  BOOST_TEST(record.mechanisms[1].cidr4 == 32u);
  BOOST_TEST(record.mechanisms[1].cidr6 == 64u);
  BOOST_TEST(record.mechanisms[2].domain_spec == "b.example");
  BOOST_TEST(record.mechanisms[2].cidr4 == 0u);
  BOOST_TEST(record.mechanisms[2].cidr6 == 0u);
  BOOST_TEST(record.mechanisms[3].cidr4 == 0u);
  BOOST_TEST(record.mechanisms[4].cidr6 == 0u);
}

BOOST_AUTO_TEST_CASE(modifiers) {
  const SpfRecord record =
      parsed("v=spf1 mx redirect=_spf.example.com exp=explain.%{d} moo.cow-x_y=%{l}");
  BOOST_TEST(record.redirect.value() == "_spf.example.com");
  BOOST_TEST(record.exp.value() == "explain.%{d}");
  BOOST_TEST(record.mechanisms.size() == 1u);
  BOOST_TEST(parsed("v=spf1 REDIRECT=a.example").redirect.value() == "a.example");
}

BOOST_AUTO_TEST_CASE(syntax_errors_are_refused_with_a_reason) {
  BOOST_TEST(error_of("v=spf1 foo:bar.example") == "unknown mechanism");
  BOOST_TEST(error_of("v=spf1 a:") == "empty domain-spec");
  BOOST_TEST(error_of("v=spf1 a:example.123") == "invalid top label in domain-spec");
  BOOST_TEST(error_of("v=spf1 a:localhost") == "domain-spec does not end in a top label");
  BOOST_TEST(error_of("v=spf1 ip4:1.2.3.4/33") == "invalid ip4 CIDR length");
  BOOST_TEST(error_of("v=spf1 ip4:1.2.3.4/032") == "invalid ip4 CIDR length");
  BOOST_TEST(error_of("v=spf1 ip4:1.2.3") == "invalid ip4 address");
  BOOST_TEST(error_of("v=spf1 ip6:1.2.3.4") == "invalid ip6 address");
  BOOST_TEST(error_of("v=spf1 ip6:::/129") == "invalid ip6 CIDR length");
  BOOST_TEST(error_of("v=spf1 a//129") == "invalid ip6 CIDR length");
  BOOST_TEST(error_of("v=spf1 a/") == "empty CIDR length");
  BOOST_TEST(error_of("v=spf1 -all:x") == "invalid all mechanism");
  BOOST_TEST(error_of("v=spf1 redirect=a.example redirect=b.example") ==
             "duplicate redirect modifier");
  BOOST_TEST(error_of("v=spf1 exp=a.example exp=b.example") == "duplicate exp modifier");
  BOOST_TEST(error_of("v=spf1 exp=") == "exp: empty domain-spec");
  BOOST_TEST(error_of("v=spf1 exists:%{r}.example.com") == "macro letter only allowed in exp text");
  BOOST_TEST(error_of("v=spf1 a:%{x}.example.com") == "invalid macro letter");
  BOOST_TEST(error_of("v=spf1 moo=%{") == "unknown modifier: unterminated macro");
  // Whitespace other than SP and bytes outside ASCII are not separators.
  BOOST_TEST(!error_of("v=spf1 ip4:1.2.3.4\n-all").empty());
  BOOST_TEST(!error_of("v=spf1 a:\xc3\xa9.example -all").empty());
  BOOST_TEST(!error_of("v=spf1 a:ex\x01.example").empty());
}

BOOST_AUTO_TEST_CASE(spaces_between_and_after_terms) {
  BOOST_TEST(parsed("v=spf1   a    -all   ").mechanisms.size() == 2u);
  BOOST_TEST(parsed("v=spf1").mechanisms.empty());
}

BOOST_AUTO_TEST_CASE(bounded_length_and_terms) {
  std::string many = "v=spf1";
  for (std::size_t i = 0; i < max_record_terms; ++i)
    many += " a";
  BOOST_TEST(parsed(many).mechanisms.size() == max_record_terms);
  BOOST_TEST(error_of(many + " a") == "too many terms");
  std::string long_record = "v=spf1 exp=" + std::string(max_record_octets, 'a');
  BOOST_TEST(error_of(long_record) == "record too long");
}
