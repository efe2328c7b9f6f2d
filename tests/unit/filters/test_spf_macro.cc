// The SPF macro expander: RFC 7208 §7.4's examples, escapes, URL-escaping of upper-case
// letters, exp-only letters, invalid strings and the length bound.
#define BOOST_TEST_MODULE spf_macro
#include <boost/test/unit_test.hpp>

#include <string>

#include "spf_macro.h"

using namespace portcullis;

namespace {

// RFC 7208 §7.4: sender strong-bad@email.example.com, client 192.0.2.3.
SpfMacroContext rfc_context() {
  SpfMacroContext context;
  context.sender = "strong-bad@email.example.com";
  context.sender_local = "strong-bad";
  context.sender_domain = "email.example.com";
  context.domain = "email.example.com";
  context.ip_dotted = "192.0.2.3";
  context.ip_readable = "192.0.2.3";
  context.helo = "mx.example.org";
  context.receiver = "receiver.example";
  context.timestamp = "1700000000";
  return context;
}

std::string expand(const std::string& text, const SpfMacroContext& context = rfc_context(),
                   SpfMacroUse use = SpfMacroUse::domain_spec) {
  auto result = expand_spf_macro(text, use, context);
  BOOST_REQUIRE_MESSAGE(result.text.has_value(), text << ": " << result.error);
  return *result.text;
}

}  // namespace

BOOST_AUTO_TEST_CASE(rfc7208_section_7_4_examples) {
  BOOST_TEST(expand("%{s}") == "strong-bad@email.example.com");
  BOOST_TEST(expand("%{o}") == "email.example.com");
  BOOST_TEST(expand("%{d}") == "email.example.com");
  BOOST_TEST(expand("%{d4}") == "email.example.com");
  BOOST_TEST(expand("%{d3}") == "email.example.com");
  BOOST_TEST(expand("%{d2}") == "example.com");
  BOOST_TEST(expand("%{d1}") == "com");
  BOOST_TEST(expand("%{dr}") == "com.example.email");
  BOOST_TEST(expand("%{d2r}") == "example.email");
  BOOST_TEST(expand("%{l}") == "strong-bad");
  BOOST_TEST(expand("%{l-}") == "strong.bad");
  BOOST_TEST(expand("%{lr}") == "strong-bad");
  BOOST_TEST(expand("%{lr-}") == "bad.strong");
  BOOST_TEST(expand("%{l1r-}") == "strong");
  BOOST_TEST(expand("%{ir}.%{v}._spf.%{d2}") == "3.2.0.192.in-addr._spf.example.com");
  BOOST_TEST(expand("%{lr-}.lp._spf.%{d2}") == "bad.strong.lp._spf.example.com");
  BOOST_TEST(expand("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}") ==
             "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
  BOOST_TEST(expand("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}") ==
             "3.2.0.192.in-addr.strong.lp._spf.example.com");
  BOOST_TEST(expand("%{d2}.trusted-domains.example.net") ==
             "example.com.trusted-domains.example.net");
}

BOOST_AUTO_TEST_CASE(rfc7208_section_7_4_ipv6_example) {
  SpfMacroContext context = rfc_context();
  context.ipv6 = true;
  context.ip_readable = "2001:db8::cb01";
  context.ip_dotted = "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1";
  BOOST_TEST(
      expand("%{ir}.%{v}._spf.%{d2}", context) ==
      "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
}

BOOST_AUTO_TEST_CASE(escapes_and_url_escaping) {
  BOOST_TEST(expand("a%%b%_c%-d") == "a%b c%20d");
  BOOST_TEST(expand("%{S}") == "strong-bad%40email.example.com");
  BOOST_TEST(expand("%{L}") == "strong-bad");
  BOOST_TEST(expand("%{d2+}") == "email.example.com");  // no '+' to split on: one part
  BOOST_TEST(expand("%{h}") == "mx.example.org");
  BOOST_TEST(expand("%{p}") == "unknown");  // the caller found no validated name
}

BOOST_AUTO_TEST_CASE(exp_only_letters) {
  BOOST_TEST(expand("%{c} %{r} %{t}", rfc_context(), SpfMacroUse::explanation) ==
             "192.0.2.3 receiver.example 1700000000");
  for (const char* text : {"%{c}", "%{r}", "%{t}"}) {
    BOOST_TEST(spf_macro_syntax_error(text, SpfMacroUse::domain_spec).value() ==
               "macro letter only allowed in exp text");
    BOOST_TEST(!expand_spf_macro(text, SpfMacroUse::domain_spec, rfc_context()).text);
  }
  // SP is a literal in explanation text only.
  BOOST_TEST(!spf_macro_syntax_error("a b", SpfMacroUse::explanation));
  BOOST_TEST(spf_macro_syntax_error("a b", SpfMacroUse::domain_spec).has_value());
}

BOOST_AUTO_TEST_CASE(invalid_macro_strings) {
  for (const char* text : {"%", "%a", "%{", "%{d", "%{x}", "%{d0}", "%{d2x}", "%{d!}", "a\x7f"}) {
    BOOST_TEST(spf_macro_syntax_error(text, SpfMacroUse::domain_spec).has_value(), text);
    BOOST_TEST(!expand_spf_macro(text, SpfMacroUse::domain_spec, rfc_context()).text, text);
  }
}

BOOST_AUTO_TEST_CASE(uses_p_ignores_escaped_percent) {
  BOOST_TEST(spf_macro_uses_p("%{p}.example.com"));
  BOOST_TEST(spf_macro_uses_p("x.%{P2}.example.com"));
  BOOST_TEST(!spf_macro_uses_p("%%{p}.example.com"));
  BOOST_TEST(!spf_macro_uses_p("%{d}.example.com"));
}

BOOST_AUTO_TEST_CASE(expansion_is_bounded) {
  SpfMacroContext context = rfc_context();
  context.sender_local = std::string(300, 'x');
  std::string text;
  for (int i = 0; i < 20; ++i)
    text += "%{l}";
  auto result = expand_spf_macro(text, SpfMacroUse::domain_spec, context);
  BOOST_TEST(!result.text.has_value());
  BOOST_TEST(result.error == "macro expansion too long");
  // A huge digit transformer keeps every part rather than growing anything.
  BOOST_TEST(expand("%{d99999999999999999999}") == "email.example.com");
}
