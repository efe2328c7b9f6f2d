// Authentication-Results (RFC 8601): the header Portcullis writes, and finding inbound copies
// that claim its authserv-id. Every expected string and range is written by hand from the RFC.
#define BOOST_TEST_MODULE authentication_results
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "authentication_results.h"

using portcullis::authentication_results_header;
using portcullis::AuthenticationMethodResult;
using portcullis::ByteRange;
using portcullis::find_own_authentication_results;

namespace {

constexpr const char* kOurs = "mx.example.org";

// The fields find_own_authentication_results picked, as text.
std::vector<std::string> found(const std::string& header, const std::string& id = kOurs) {
  std::vector<std::string> fields;
  for (const ByteRange& range : find_own_authentication_results(header, id)) {
    BOOST_REQUIRE(range.offset + range.length <= header.size());
    fields.push_back(header.substr(range.offset, range.length));
  }
  return fields;
}

using Fields = std::vector<std::string>;

}  // namespace

BOOST_AUTO_TEST_SUITE(writing)

BOOST_AUTO_TEST_CASE(no_results_is_none) {
  BOOST_TEST(authentication_results_header("mx.example.org", {}) ==
             "Authentication-Results: mx.example.org; none\r\n");
}

BOOST_AUTO_TEST_CASE(spf_only) {
  const std::vector<AuthenticationMethodResult> results{
      {"spf", "pass", {{"smtp.mailfrom", "example.org"}}, ""}};
  BOOST_TEST(authentication_results_header("mx.example.org", results) ==
             "Authentication-Results: mx.example.org;\r\n"
             "\tspf=pass smtp.mailfrom=example.org\r\n");
}

BOOST_AUTO_TEST_CASE(spf_dkim_dmarc_one_per_line) {
  const std::vector<AuthenticationMethodResult> results{
      {"spf", "pass", {{"smtp.mailfrom", "example.org"}}, ""},
      {"dkim", "pass", {{"header.d", "example.com"}}, ""},
      {"dmarc", "fail", {{"header.from", "example.com"}}, ""}};
  BOOST_TEST(authentication_results_header("mx.example.org", results) ==
             "Authentication-Results: mx.example.org;\r\n"
             "\tspf=pass smtp.mailfrom=example.org;\r\n"
             "\tdkim=pass header.d=example.com;\r\n"
             "\tdmarc=fail header.from=example.com\r\n");
}

BOOST_AUTO_TEST_CASE(result_without_properties) {
  const std::vector<AuthenticationMethodResult> results{{"dkim", "none", {}, ""}};
  BOOST_TEST(authentication_results_header("mx.example.org", results) ==
             "Authentication-Results: mx.example.org;\r\n\tdkim=none\r\n");
}

BOOST_AUTO_TEST_CASE(values_that_are_not_tokens_are_quoted) {
  // '@' is a tspecial (RFC 2045), so a mailbox is quoted; '"' and '\' become quoted-pairs.
  const std::vector<AuthenticationMethodResult> results{
      {"spf", "pass", {{"smtp.mailfrom", "alice@example.org"}}, ""},
      {"x-test", "neutral", {{"x.a", "two words"}, {"x.b", "say \"hi\" \\o/"}, {"x.c", ""}}, ""}};
  BOOST_TEST(authentication_results_header("mx.example.org", results) ==
             "Authentication-Results: mx.example.org;\r\n"
             "\tspf=pass smtp.mailfrom=\"alice@example.org\";\r\n"
             "\tx-test=neutral x.a=\"two words\" x.b=\"say \\\"hi\\\" \\\\o/\" x.c=\"\"\r\n");
}

BOOST_AUTO_TEST_CASE(reason_is_quoted_and_comes_before_properties) {
  // RFC 8601 §2.2: resinfo = ";" methodspec [CFWS reasonspec] [CFWS 1*propspec].
  const std::vector<AuthenticationMethodResult> results{
      {"dkim", "fail", {{"header.d", "example.com"}}, "bad"},
      {"dmarc", "fail", {}, "policy \"reject\""}};
  BOOST_TEST(authentication_results_header("mx.example.org", results) ==
             "Authentication-Results: mx.example.org;\r\n"
             "\tdkim=fail reason=\"bad\" header.d=example.com;\r\n"
             "\tdmarc=fail reason=\"policy \\\"reject\\\"\"\r\n");
}

BOOST_AUTO_TEST_CASE(hostile_value_with_crlf_cannot_add_a_header) {
  const std::vector<AuthenticationMethodResult> results{
      {"spf",
       "fail",
       {{"smtp.mailfrom", "evil.example\r\nX-Injected: yes"},
        {"smtp.helo",
         "a\nb\rc\td\x01"
         "e\x7f"}},
       "line\r\n\r\nbody"}};
  BOOST_TEST(authentication_results_header("mx.example.org", results) ==
             "Authentication-Results: mx.example.org;\r\n"
             "\tspf=fail reason=\"linebody\" smtp.mailfrom=\"evil.exampleX-Injected: yes\"\r\n"
             "\tsmtp.helo=abcde\r\n");
}

BOOST_AUTO_TEST_CASE(hostile_method_result_and_property_names_are_reduced_to_keywords) {
  const std::vector<AuthenticationMethodResult> results{
      {"sp f\r\n", "pa;ss", {{"smtp.mail from=x", "v"}, {"\r\n;", "dropped"}}, ""},
      {";", "pass", {}, ""},  // no method left: the entry is left out
      {"dkim", "\r\n", {}, ""}};
  BOOST_TEST(authentication_results_header("mx.example.org", results) ==
             "Authentication-Results: mx.example.org;\r\n"
             "\tspf=pass smtp.mailfromx=v\r\n");
}

BOOST_AUTO_TEST_CASE(only_unwritable_entries_give_none) {
  const std::vector<AuthenticationMethodResult> results{{"", "pass", {}, ""}};
  BOOST_TEST(authentication_results_header("mx.example.org", results) ==
             "Authentication-Results: mx.example.org; none\r\n");
}

BOOST_AUTO_TEST_CASE(long_lines_fold_before_a_property) {
  // "\tdkim=pass" is 10 columns; " header.d=<61 bytes>" would reach 81 > 78, so it starts a
  // new line (71 columns), and " header.s=sel1" would reach 85, so it folds too.
  const std::string domain = "a-very-long-subdomain-name-for-folding-tests.mail.example.com";
  BOOST_REQUIRE(domain.size() == 61u);
  const std::vector<AuthenticationMethodResult> results{
      {"dkim", "pass", {{"header.d", domain}, {"header.s", "sel1"}}, ""}};
  BOOST_TEST(authentication_results_header("mx.example.org", results) ==
             "Authentication-Results: mx.example.org;\r\n"
             "\tdkim=pass\r\n"
             "\theader.d=a-very-long-subdomain-name-for-folding-tests.mail.example.com\r\n"
             "\theader.s=sel1\r\n");
}

BOOST_AUTO_TEST_CASE(a_line_of_exactly_78_columns_is_not_folded_but_79_is) {
  // "\tspf=pass smtp.mailfrom=" is 24 columns, the domain 54: 78 in all.
  const std::string domain = std::string(50, 'x') + ".org";
  const std::vector<AuthenticationMethodResult> last{
      {"spf", "pass", {{"smtp.mailfrom", domain}}, ""}};
  BOOST_TEST(authentication_results_header("mx.example.org", last) ==
             "Authentication-Results: mx.example.org;\r\n"
             "\tspf=pass smtp.mailfrom=" +
                 domain + "\r\n");
  // Followed by another entry, the ';' makes it 79.
  const std::vector<AuthenticationMethodResult> not_last{
      {"spf", "pass", {{"smtp.mailfrom", domain}}, ""}, {"dkim", "none", {}, ""}};
  BOOST_TEST(authentication_results_header("mx.example.org", not_last) ==
             "Authentication-Results: mx.example.org;\r\n"
             "\tspf=pass\r\n"
             "\tsmtp.mailfrom=" +
                 domain +
                 ";\r\n"
                 "\tdkim=none\r\n");
}

BOOST_AUTO_TEST_CASE(long_values_are_cut_to_400_bytes_at_a_utf8_boundary) {
  const std::vector<AuthenticationMethodResult> ascii{
      {"dkim", "pass", {{"header.d", std::string(500, 'a')}}, ""}};
  BOOST_TEST(authentication_results_header("mx.example.org", ascii) ==
             "Authentication-Results: mx.example.org;\r\n\tdkim=pass\r\n\theader.d=" +
                 std::string(400, 'a') + "\r\n");
  // "é" (C3 A9) at bytes 399-400 would be split by the cut: all of it goes.
  const std::vector<AuthenticationMethodResult> utf8{
      {"dkim", "pass", {{"header.d", std::string(399, 'a') + "\xc3\xa9" + "zzz"}}, ""}};
  BOOST_TEST(authentication_results_header("mx.example.org", utf8) ==
             "Authentication-Results: mx.example.org;\r\n\tdkim=pass\r\n\theader.d=" +
                 std::string(399, 'a') + "\r\n");
  // Fitting exactly, it stays (and a non-ASCII value is quoted).
  const std::vector<AuthenticationMethodResult> fits{
      {"dkim", "pass", {{"header.d", std::string(398, 'a') + "\xc3\xa9" + "zzz"}}, ""}};
  BOOST_TEST(authentication_results_header("mx.example.org", fits) ==
             "Authentication-Results: mx.example.org;\r\n\tdkim=pass\r\n\theader.d=\"" +
                 std::string(398, 'a') + "\xc3\xa9\"\r\n");
}

BOOST_AUTO_TEST_CASE(no_line_passes_998_bytes_even_with_every_byte_escaped) {
  const std::string quotes(2000, '"');
  const std::vector<AuthenticationMethodResult> results{
      {"spf", "fail", {{"smtp.mailfrom", quotes}}, quotes}};
  const std::string header = authentication_results_header("mx.example.org", results);
  size_t start = 0;
  size_t lines = 0;
  while (start < header.size()) {
    const size_t end = header.find("\r\n", start);
    BOOST_REQUIRE(end != std::string::npos);
    BOOST_TEST(end - start <= 998u);
    start = end + 2;
    ++lines;
  }
  BOOST_TEST(lines == 4u);  // name + id; method; reason; property
  // Every CR and LF in the output is part of a CRLF line end.
  BOOST_TEST(std::count(header.begin(), header.end(), '\n') == 4);
  BOOST_TEST(std::count(header.begin(), header.end(), '\r') == 4);
}

BOOST_AUTO_TEST_CASE(authserv_id_control_bytes_are_dropped) {
  BOOST_TEST(authentication_results_header("mx.example.org\r\nX: y", {}) ==
             "Authentication-Results: \"mx.example.orgX: y\"; none\r\n");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(finding)

BOOST_AUTO_TEST_CASE(ours_on_the_first_line) {
  const std::string header =
      "Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=example.org\r\n"
      "Subject: hello\r\n";
  BOOST_TEST(found(header) == Fields{"Authentication-Results: mx.example.org; spf=pass "
                                     "smtp.mailfrom=example.org\r\n"},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(exact_offsets) {
  const std::string header =
      "Subject: x\r\n"                                    // 0-11
      "Authentication-Results: mx.example.org; none\r\n"  // 12-57 (46 bytes)
      "To: b\r\n";                                        // 58-64
  const auto ranges = find_own_authentication_results(header, kOurs);
  BOOST_REQUIRE(ranges.size() == 1u);
  BOOST_TEST(ranges[0].offset == 12u);
  BOOST_TEST(ranges[0].length == 46u);
}

BOOST_AUTO_TEST_CASE(another_authserv_id_is_kept) {
  const std::string header =
      "Authentication-Results: other.example; spf=fail smtp.mailfrom=example.org\r\n";
  BOOST_TEST(found(header).empty());
}

BOOST_AUTO_TEST_CASE(authserv_id_compared_without_case) {
  const std::string header = "Authentication-Results: MX.Example.ORG; spf=pass\r\n";
  BOOST_TEST(found(header) == Fields{header}, boost::test_tools::per_element());
  BOOST_TEST(found(header, "mx.EXAMPLE.org") == Fields{header}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(field_name_compared_without_case) {
  const std::string header = "authentication-RESULTS: mx.example.org; spf=pass\r\n";
  BOOST_TEST(found(header) == Fields{header}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(longer_or_shorter_ids_are_not_ours) {
  BOOST_TEST(found("Authentication-Results: mx.example.org.evil; none\r\n").empty());
  BOOST_TEST(found("Authentication-Results: mx.example.orgx; none\r\n").empty());
  BOOST_TEST(found("Authentication-Results: x.example.org; none\r\n").empty());
  BOOST_TEST(found("Authentication-Results: mx.example.or; none\r\n").empty());
}

BOOST_AUTO_TEST_CASE(comments_before_the_id_are_skipped) {
  const std::string header =
      "Authentication-Results: (forged by a friend) mx.example.org; none\r\n";
  BOOST_TEST(found(header) == Fields{header}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(nested_comments_with_quoted_pairs_are_skipped) {
  // The "\)" is a quoted-pair, so it does not close anything.
  const std::string header = "Authentication-Results:((a (b)) \\) c)(d)mx.example.org;spf=pass\r\n";
  BOOST_TEST(found(header) == Fields{header}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(an_id_inside_a_comment_is_not_the_id) {
  BOOST_TEST(found("Authentication-Results: (mx.example.org) other.example; none\r\n").empty());
}

BOOST_AUTO_TEST_CASE(an_unclosed_comment_has_no_id) {
  BOOST_TEST(found("Authentication-Results: (mx.example.org; none\r\n").empty());
  BOOST_TEST(found("Authentication-Results: ((x) mx.example.org; none\r\n").empty());
}

BOOST_AUTO_TEST_CASE(deep_nesting_is_just_counted) {
  const std::string deep = std::string(50000, '(') + std::string(50000, ')');
  const std::string header = "Authentication-Results: " + deep + " mx.example.org; none\r\n";
  BOOST_TEST(found(header) == Fields{header}, boost::test_tools::per_element());
  BOOST_TEST(found("Authentication-Results: " + std::string(100000, '(') + "\r\n").empty());
}

BOOST_AUTO_TEST_CASE(folded_field_is_removed_whole) {
  const std::string field =
      "Authentication-Results: mx.example.org;\r\n"
      "\tspf=pass smtp.mailfrom=example.org;\r\n"
      " dkim=pass header.d=example.org\r\n";
  const std::string header = "Received: from a\r\n\tby b; date\r\n" + field + "Subject: s\r\n";
  BOOST_TEST(found(header) == Fields{field}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(id_on_a_continuation_line) {
  const std::string field =
      "Authentication-Results:\r\n"
      " (comment\r\n"
      "  folded) mx.example.org\r\n"
      "\t; spf=pass\r\n";
  BOOST_TEST(found(field + "To: b\r\n") == Fields{field}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(white_space_before_the_colon) {
  const std::string spaced = "Authentication-Results : mx.example.org; none\r\n";
  BOOST_TEST(found(spaced) == Fields{spaced}, boost::test_tools::per_element());
  const std::string tabbed = "Authentication-Results\t \t: mx.example.org; none\r\n";
  BOOST_TEST(found(tabbed) == Fields{tabbed}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(other_field_names_are_not_matched) {
  BOOST_TEST(found("ARC-Authentication-Results: i=1; mx.example.org; spf=pass\r\n").empty());
  BOOST_TEST(found("X-Authentication-Results: mx.example.org; spf=pass\r\n").empty());
  BOOST_TEST(found("Authentication-Results-Original: mx.example.org; spf=pass\r\n").empty());
  BOOST_TEST(found("Authentication-Result: mx.example.org; spf=pass\r\n").empty());
  BOOST_TEST(found("Authentication-Results mx.example.org; spf=pass\r\n").empty());
  BOOST_TEST(found(" Authentication-Results: mx.example.org; spf=pass\r\n").empty());
}

BOOST_AUTO_TEST_CASE(a_continuation_line_is_not_a_field) {
  const std::string header =
      "Subject: look\r\n"
      " Authentication-Results: mx.example.org; spf=pass\r\n"
      "To: b\r\n";
  BOOST_TEST(found(header).empty());
}

BOOST_AUTO_TEST_CASE(several_fields_ours_and_others) {
  const std::string first = "Authentication-Results: mx.example.org; spf=pass\r\n";
  const std::string other = "Authentication-Results: other.example; spf=fail\r\n";
  const std::string second = "AUTHENTICATION-RESULTS: mx.example.org 1;\r\n\tdkim=pass\r\n";
  const std::string header = "Received: x\r\n" + first + other + "Subject: s\r\n" + second;
  BOOST_TEST(found(header) == (Fields{first, second}), boost::test_tools::per_element());
  const auto ranges = find_own_authentication_results(header, kOurs);
  BOOST_REQUIRE(ranges.size() == 2u);
  BOOST_TEST(ranges[0].offset == 13u);
  BOOST_TEST(ranges[1].offset == 13u + first.size() + other.size() + 12u);
}

BOOST_AUTO_TEST_CASE(field_at_the_very_end) {
  const std::string field = "Authentication-Results: mx.example.org; dmarc=pass\r\n";
  BOOST_TEST(found("From: a\r\nTo: b\r\n" + field) == Fields{field},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(cut_header_without_a_final_line_end) {
  const std::string field = "Authentication-Results: mx.example.org; spf=pass";
  BOOST_TEST(found("From: a\r\n" + field) == Fields{field}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(stops_at_the_empty_line) {
  const std::string field = "Authentication-Results: mx.example.org; none\r\n";
  const std::string message = field + "\r\n" + field;  // the second is in the body
  BOOST_TEST(found(message) == Fields{field}, boost::test_tools::per_element());
  BOOST_TEST(found("\r\n" + field).empty());
}

BOOST_AUTO_TEST_CASE(version_and_result_forms_do_not_matter) {
  // RFC 8601 §5: the id decides, whatever the version token.
  const std::string versioned = "Authentication-Results: mx.example.org 2; spf=pass\r\n";
  BOOST_TEST(found(versioned) == Fields{versioned}, boost::test_tools::per_element());
  const std::string tight = "Authentication-Results:mx.example.org;spf=pass\r\n";
  BOOST_TEST(found(tight) == Fields{tight}, boost::test_tools::per_element());
  const std::string commented = "Authentication-Results: mx.example.org(c);none\r\n";
  BOOST_TEST(found(commented) == Fields{commented}, boost::test_tools::per_element());
  const std::string bare = "Authentication-Results: mx.example.org\r\n";
  BOOST_TEST(found(bare) == Fields{bare}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(quoted_string_id) {
  const std::string quoted = "Authentication-Results: \"mx.example.org\"; none\r\n";
  BOOST_TEST(found(quoted) == Fields{quoted}, boost::test_tools::per_element());
  const std::string pair = "Authentication-Results: \"mx.exa\\mple.org\"; none\r\n";
  BOOST_TEST(found(pair) == Fields{pair}, boost::test_tools::per_element());
  BOOST_TEST(found("Authentication-Results: \"mx.example.org; none\r\n").empty());
  BOOST_TEST(found("Authentication-Results: \"mx.example.org \"; none\r\n").empty());
}

BOOST_AUTO_TEST_CASE(no_id_at_all) {
  BOOST_TEST(found("Authentication-Results:\r\n").empty());
  BOOST_TEST(found("Authentication-Results: ; spf=pass\r\n").empty());
  BOOST_TEST(found("Authentication-Results:   \r\n\t\r\n").empty());
}

BOOST_AUTO_TEST_CASE(empty_inputs) {
  BOOST_TEST(found("").empty());
  BOOST_TEST(found("Authentication-Results: mx.example.org; none\r\n", "").empty());
  BOOST_TEST(found("Authentication-Results: ; none\r\n", "").empty());
}

BOOST_AUTO_TEST_CASE(orphan_continuation_before_the_first_field) {
  const std::string field = "Authentication-Results: mx.example.org; none\r\n";
  BOOST_TEST(found(" stray\r\n" + field) == Fields{field}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(lf_only_lines_are_lines_too) {
  const std::string field = "Authentication-Results: mx.example.org;\n spf=pass\n";
  BOOST_TEST(found(field + "To: b\n\n" + field) == Fields{field}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()
