// DMARC record syntax (RFC 7489 §6.3, §6.4, §6.6.3): v=DMARC1 first, the tags the evaluation
// uses, defaults for values that do not parse, and the p= fallback rules.
#define BOOST_TEST_MODULE dmarc_record
#include <boost/test/unit_test.hpp>

#include <string>

#include "dmarc_record.h"

using namespace portcullis;

BOOST_AUTO_TEST_CASE(a_full_record) {
  auto record = parse_dmarc_record(
      "v=DMARC1; p=reject; sp=quarantine; pct=25; adkim=s; aspf=s; rua=mailto:d@example.org");
  BOOST_REQUIRE(record);
  BOOST_TEST(dmarc_policy_name(record->policy) == "reject");
  BOOST_REQUIRE(record->subdomain_policy);
  BOOST_TEST(dmarc_policy_name(*record->subdomain_policy) == "quarantine");
  BOOST_TEST(record->percent == 25);
  BOOST_TEST((record->dkim_alignment == DmarcAlignment::strict));
  BOOST_TEST((record->spf_alignment == DmarcAlignment::strict));
}

BOOST_AUTO_TEST_CASE(defaults_and_whitespace) {
  auto record = parse_dmarc_record("v = DMARC1 ;p = Quarantine ;");
  BOOST_REQUIRE(record);
  BOOST_TEST(dmarc_policy_name(record->policy) == "quarantine");
  BOOST_TEST(!record->subdomain_policy);
  BOOST_TEST(record->percent == 100);
  BOOST_TEST((record->dkim_alignment == DmarcAlignment::relaxed));
  BOOST_TEST((record->spf_alignment == DmarcAlignment::relaxed));
}

BOOST_AUTO_TEST_CASE(the_version_tag_must_come_first_and_exactly) {
  BOOST_TEST(is_dmarc_record("v=DMARC1; p=none"));
  BOOST_TEST(is_dmarc_record("v=DMARC1"));
  BOOST_TEST(!is_dmarc_record("p=none; v=DMARC1"));
  BOOST_TEST(!is_dmarc_record("v=dmarc1; p=none"));  // the version is case-sensitive
  BOOST_TEST(!is_dmarc_record("v=DMARC10; p=none"));
  BOOST_TEST(!is_dmarc_record("v=spf1 -all"));
  BOOST_TEST(!is_dmarc_record(""));
  BOOST_TEST(!parse_dmarc_record("p=reject; v=DMARC1").has_value());
}

BOOST_AUTO_TEST_CASE(unknown_tags_are_ignored_and_bad_values_take_defaults) {
  auto record =
      parse_dmarc_record("v=DMARC1; p=reject; fo=1; ri=86400; x_new=1; pct=250; adkim=x; aspf=");
  BOOST_REQUIRE(record);
  BOOST_TEST(dmarc_policy_name(record->policy) == "reject");
  BOOST_TEST(record->percent == 100);
  BOOST_TEST((record->dkim_alignment == DmarcAlignment::relaxed));
  BOOST_TEST((record->spf_alignment == DmarcAlignment::relaxed));
  BOOST_TEST(parse_dmarc_record("v=DMARC1; p=none; pct=0")->percent == 0);
  BOOST_TEST(parse_dmarc_record("v=DMARC1; p=none; pct=-5")->percent == 100);
  BOOST_TEST(parse_dmarc_record("v=DMARC1; p=none; pct=0050")->percent == 100);  // 1*3DIGIT
}

BOOST_AUTO_TEST_CASE(a_missing_or_invalid_p_needs_a_valid_rua_to_act_as_none) {
  BOOST_TEST(!parse_dmarc_record("v=DMARC1").has_value());
  BOOST_TEST(!parse_dmarc_record("v=DMARC1; p=block").has_value());
  BOOST_TEST(!parse_dmarc_record("v=DMARC1; p=block; rua=not a uri").has_value());
  BOOST_TEST(!parse_dmarc_record("v=DMARC1; p=reject; sp=drop").has_value());
  auto fallback = parse_dmarc_record("v=DMARC1; p=block; pct=10; rua=mailto:r@example.org");
  BOOST_REQUIRE(fallback);
  BOOST_TEST(dmarc_policy_name(fallback->policy) == "none");
  BOOST_TEST(fallback->percent == 100);  // as if the record were "v=DMARC1; p=none"
  auto bad_sp = parse_dmarc_record("v=DMARC1; p=reject; sp=drop; rua=x:1,mailto:r@example.org");
  BOOST_REQUIRE(bad_sp);
  BOOST_TEST(dmarc_policy_name(bad_sp->policy) == "none");
  BOOST_TEST(!bad_sp->subdomain_policy);
  // The first p= counts.
  BOOST_TEST(dmarc_policy_name(parse_dmarc_record("v=DMARC1; p=reject; p=none")->policy) ==
             "reject");
}

BOOST_AUTO_TEST_CASE(a_malformed_tag_list_is_no_record) {
  BOOST_TEST(!parse_dmarc_record("v=DMARC1; p=reject; garbage").has_value());
  BOOST_TEST(!parse_dmarc_record("v=DMARC1; =reject").has_value());
  BOOST_TEST(!parse_dmarc_record("v=DMARC1; p-x=reject").has_value());
  BOOST_TEST(parse_dmarc_record("v=DMARC1;; p=reject").has_value());  // an empty element is allowed
}
