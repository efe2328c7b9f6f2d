// The policy language's pure parts: the condition parser, the action parser and reply
// templates, list entries and matching, and TOML string position mapping.
#define BOOST_TEST_MODULE policy_language
#include <boost/test/unit_test.hpp>

#include "policy_action.h"
#include "policy_expression.h"
#include "policy_list.h"
#include "policy_toml_text.h"

using namespace portcullis;
using namespace portcullis::policy;

namespace {

SyntaxNode parse_ok(std::string_view text) {
  auto result = parse_condition(text);
  if (const auto* error = std::get_if<SyntaxError>(&result)) {
    BOOST_FAIL("unexpected error at " << error->offset << ": " << error->message);
  }
  return std::get<SyntaxNode>(result);
}

SyntaxError parse_error(std::string_view text) {
  auto result = parse_condition(text);
  BOOST_REQUIRE(std::holds_alternative<SyntaxError>(result));
  return std::get<SyntaxError>(result);
}

// A compact rendering of the tree's shape, for asserting precedence.
std::string shape(const SyntaxNode& node) {
  using K = SyntaxNode::Kind;
  auto children = [&](std::string_view name) {
    std::string out = std::string(name) + "(";
    for (std::size_t i = 0; i < node.children.size(); ++i) {
      if (i > 0) out += ",";
      out += shape(node.children[i]);
    }
    return out + ")";
  };
  switch (node.kind) {
    case K::any_of:
      return children("or");
    case K::all_of:
      return children("and");
    case K::negate:
      return children("not");
    case K::compare:
      return node.lhs.text + std::string(compare_op_text(node.op)) + node.rhs.text;
    case K::member:
      if (node.set_is_inline)
        return node.lhs.text + " in [" + std::to_string(node.set_items.size()) + "]";
      return node.lhs.text + " in " + node.set_name.text;
    case K::present:
      return "present " + node.lhs.text;
    case K::operand:
      return node.lhs.text;
  }
  return "?";
}

ActionSpec action_ok(std::string_view text) {
  auto result = parse_action(text);
  if (const auto* error = std::get_if<ActionError>(&result)) {
    BOOST_FAIL("unexpected error at " << error->offset << ": " << error->message);
  }
  return std::get<ActionSpec>(result);
}

ActionError action_error(std::string_view text) {
  auto result = parse_action(text);
  BOOST_REQUIRE(std::holds_alternative<ActionError>(result));
  return std::get<ActionError>(result);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(conditions)

BOOST_AUTO_TEST_CASE(precedence_is_or_then_and_then_not_then_tests) {
  BOOST_TEST(shape(parse_ok("a or b and c")) == "or(a,and(b,c))");
  BOOST_TEST(shape(parse_ok("a and b or c")) == "or(and(a,b),c)");
  BOOST_TEST(shape(parse_ok("not a and b")) == "and(not(a),b)");
  BOOST_TEST(shape(parse_ok("not spf == 'fail'")) == "not(spf==fail)");
  BOOST_TEST(shape(parse_ok("not sender.domain in allow")) == "not(sender.domain in allow)");
  BOOST_TEST(shape(parse_ok("(a or b) and c")) == "and(or(a,b),c)");
  BOOST_TEST(shape(parse_ok("a or b or c")) == "or(a,b,c)");
  BOOST_TEST(shape(parse_ok("not not a")) == "not(not(a))");
}

BOOST_AUTO_TEST_CASE(reads_every_operand_and_operator) {
  BOOST_TEST(shape(parse_ok("size >= 10")) == "size>=10");
  BOOST_TEST(shape(parse_ok("size<=-3")) == "size<=-3");
  BOOST_TEST(shape(parse_ok("x != y")) == "x!=y");
  BOOST_TEST(shape(parse_ok("x < 1 or x > 2")) == "or(x<1,x>2)");
  BOOST_TEST(shape(parse_ok("tls == true")) == "tls==true");
  BOOST_TEST(shape(parse_ok("rate.conn-per-ip.exceeded")) == "rate.conn-per-ip.exceeded");
  BOOST_TEST(shape(parse_ok("rate.10min")) == "rate.10min");
  BOOST_TEST(shape(parse_ok("present(client.name)")) == "present client.name");
  BOOST_TEST(shape(parse_ok("'x' not in dnsbl.lists")) == "not(x in dnsbl.lists)");
  BOOST_TEST(shape(parse_ok("client.ip in ['192.0.2.0/24', '::1',]")) == "client.ip in [2]");
  BOOST_TEST(shape(parse_ok(" \t\r\n true \n")) == "true");
}

BOOST_AUTO_TEST_CASE(strings_double_their_quotes_and_keep_backslashes) {
  const SyntaxNode node = parse_ok("helo == 'it''s a \\ test'");
  BOOST_TEST(node.rhs.text == "it's a \\ test");
  BOOST_TEST(node.rhs.span.offset == 8u);
  BOOST_TEST(node.rhs.span.length == 16u);
  BOOST_TEST(parse_ok("helo == ''").rhs.text == "");
  BOOST_TEST(quote_string("it's") == "'it''s'");
}

BOOST_AUTO_TEST_CASE(integers_are_int64) {
  BOOST_TEST(parse_ok("size > 9223372036854775807").rhs.integer == INT64_MAX);
  BOOST_TEST(parse_ok("size > -9223372036854775808").rhs.integer == INT64_MIN);
  const SyntaxError error = parse_error("size > 9223372036854775808");
  BOOST_TEST(error.offset == 7u);
  BOOST_TEST(error.message == "the number 9223372036854775808 is out of range");
}

BOOST_AUTO_TEST_CASE(errors_say_where_and_what_was_expected) {
  struct Case {
    const char* text;
    std::size_t offset;
    const char* message;
  };
  const Case cases[] = {
      {"spf ==", 6,
       "expected a fact name, a string, an integer or '(' at the end of the condition"},
      {"and", 0, "expected a fact name, a string, an integer or '(' at 'and'"},
      {"(a", 2, "expected 'and', 'or' or ')' to close '(' at the end of the condition"},
      {"a)", 1, "expected 'and', 'or' or the end of the condition at ')'"},
      {"a == b == c", 7, "expected 'and', 'or' or the end of the condition at '=='"},
      {"helo == \"x\"", 8, "strings are single-quoted: 'text'"},
      {"a ! b", 2, "'!' is not an operator; use 'not' or '!='"},
      {"a & b", 2, "unexpected character '&'"},
      {"spf.", 4, "expected a name part after '.'"},
      {"x in", 4,
       "expected a list name, a list fact or '[' after 'in' at the end of the condition"},
      {"x in ['a' 'b']", 10, "expected ',' or ']' at ''b''"},
      {"x in [1]", 6, "expected a string in the list at '1'"},
      {"present x", 8, "expected '(' after 'present' at 'x'"},
      {"present('x')", 8, "expected a fact name at ''x''"},
      {"x not 1", 6, "expected 'in' after 'not' at '1'"},
      {"helo == 'a\nb'", 10, "control character in a string"},
      {"", 0, "empty condition: expected a fact name, a string, an integer or '('"},
      {"   ", 0, "empty condition: expected a fact name, a string, an integer or '('"},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.text) {
      const SyntaxError error = parse_error(c.text);
      BOOST_TEST(error.offset == c.offset);
      BOOST_TEST(error.message == c.message);
    }
  }
}

BOOST_AUTO_TEST_CASE(nesting_and_length_are_bounded) {
  std::string deep(10000, '(');
  deep += "a";
  const SyntaxError parens = parse_error(deep);
  BOOST_TEST(parens.message.find("nest deeper than 64") != std::string::npos);
  std::string nots;
  for (int i = 0; i < 3000; ++i)
    nots += "not ";
  BOOST_TEST(parse_error(nots + "a").message.find("nest deeper than 64") != std::string::npos);
  // 63 levels are fine.
  BOOST_TEST(shape(parse_ok(std::string(63, '(') + "a" + std::string(63, ')'))) == "a");
  BOOST_TEST(parse_error(std::string(max_condition_length + 1, ' ')).message ==
             "condition longer than 16384 bytes");
  // A long flat condition is not nesting.
  std::string flat = "a";
  for (int i = 0; i < 2000; ++i)
    flat += " or a";
  BOOST_TEST(parse_ok(flat).children.size() == 2001u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(actions)

BOOST_AUTO_TEST_CASE(reads_each_action) {
  BOOST_TEST((action_ok("accept").action == Action::accept));
  BOOST_TEST((action_ok("  continue  ").action == Action::continue_search));
  BOOST_TEST((action_ok("reject").action == Action::reject));
  BOOST_TEST(!action_ok("reject").reply);
  BOOST_TEST((action_ok("tempfail").action == Action::tempfail));
  BOOST_TEST((action_ok("disconnect").action == Action::disconnect));

  const ActionSpec reject = action_ok("reject 550 5.7.23 SPF failed for {sender.domain}");
  BOOST_REQUIRE(reject.reply);
  BOOST_TEST(reject.reply->code == 550);
  BOOST_TEST(reject.reply->enhanced == "5.7.23");
  BOOST_TEST(reject.reply->text.source() == "SPF failed for {sender.domain}");
  BOOST_REQUIRE(reject.reply->text.parts.size() == 2u);
  BOOST_TEST(reject.reply->text.parts[1].is_placeholder);
  BOOST_TEST(reject.reply->text.parts[1].text == "sender.domain");
  BOOST_TEST(reject.reply->text.parts[1].offset == 34u);

  const ActionSpec bare = action_ok("tempfail 451 4.7.1");
  BOOST_REQUIRE(bare.reply);
  BOOST_TEST(bare.reply->text.empty());
  BOOST_TEST(action_ok("disconnect 421 4.7.0 bye").reply->code == 421);
  BOOST_TEST(action_ok("reject 554 5.123.999 x").reply->enhanced == "5.123.999");
}

BOOST_AUTO_TEST_CASE(tag_headers_and_values) {
  const ActionSpec tag = action_ok("tag X-Spam-Flag: {spf} {{literal}}");
  BOOST_TEST((tag.action == Action::tag));
  BOOST_TEST(tag.header == "X-Spam-Flag");
  BOOST_TEST(tag.header_value.source() == "{spf} {{literal}}");
  BOOST_TEST(action_ok("tag X-A:b").header_value.source() == "b");
  BOOST_TEST(action_error("tag X-A b").message == "expected ':' after the header name X-A");
  BOOST_TEST(action_error("tag").message ==
             "expected a header name after 'tag' (tag X-Name: value)");
  BOOST_TEST(action_error("tag Received: x").message.starts_with("tag cannot add Received"));
  BOOST_TEST(action_error("tag received: x").message.starts_with("tag cannot add received"));
  BOOST_TEST(action_error("tag X-A: caf\xc3\xa9").message.starts_with("non-ASCII character"));
  BOOST_TEST(action_error("tag " + std::string(77, 'X') + ": v").offset == 4u);
}

BOOST_AUTO_TEST_CASE(reply_errors) {
  BOOST_TEST(action_error("reject 550").message ==
             "expected an enhanced status code (e.g. 5.7.1) after 550 at the end");
  BOOST_TEST(action_error("reject 550 5.7").message ==
             "expected an enhanced status code (e.g. 5.7.1) after 550 at '5.7'");
  BOOST_TEST(action_error("reject 550 5.7.1234 x").offset == 11u);
  BOOST_TEST(action_error("reject 550 3.7.1 x").offset == 11u);
  BOOST_TEST(action_error("reject 5500 5.7.1").offset == 7u);
  BOOST_TEST(action_error("reject 560 5.7.1").offset == 7u);
  BOOST_TEST(action_error("tempfail 421 5.7.0").message ==
             "the enhanced status code 5.7.0 must have the class of the reply code 421 (4.x.x)");
  BOOST_TEST(action_error("continue now").message == "continue takes no reply or argument");
  BOOST_TEST(action_error("").message ==
             "expected an action: reject, tempfail, disconnect, accept, continue or tag");
  BOOST_TEST(action_error("reject 550 5.7.1 {").message ==
             "unclosed '{' (write '{{' for a literal brace)");
  BOOST_TEST(action_error("reject 550 5.7.1 {}").message ==
             "expected a fact name in '{...}' (write '{{' for a literal brace)");
  BOOST_TEST(action_error("reject 550 5.7.1 a\r\nb").message ==
             "control character (a line break?) in the text");
  BOOST_TEST(action_error(std::string(max_action_length + 1, 'x')).offset == 0u);
}

BOOST_AUTO_TEST_CASE(templates_render_facts_safely) {
  const ActionSpec spec = action_ok("reject 550 5.7.1 hello {helo}, from {sender} {{ok}}");
  Facts facts;
  facts.set("helo", std::string("evil\r\n250 OK\x00\xff", 14));
  BOOST_TEST(spec.reply->text.render(facts, max_reply_text) == "hello evil??250 OK??, from  {ok}");
  facts.set("helo", std::string(5000, 'a'));
  const std::string long_text = spec.reply->text.render(facts, max_reply_text);
  BOOST_TEST(long_text.size() == max_reply_text);
  facts.set("sender", FactList{"a", "b"});
  facts.set("helo", std::int64_t{7});
  BOOST_TEST(spec.reply->text.render(facts, 100) == "hello 7, from a, b {ok}");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(lists)

ListEntry entry_ok(std::string_view text) {
  std::string error;
  auto entry = parse_list_entry(text, &error);
  if (!entry) BOOST_FAIL("unexpected error: " << error);
  return *entry;
}

std::string entry_error(std::string_view text) {
  std::string error;
  BOOST_TEST(!parse_list_entry(text, &error));
  return error;
}

BOOST_AUTO_TEST_CASE(infers_entry_kinds) {
  BOOST_TEST((entry_ok("192.0.2.0/24").kind == ListEntry::Kind::network));
  BOOST_TEST((entry_ok("2001:db8::/32").kind == ListEntry::Kind::network));
  BOOST_TEST((entry_ok("::1").kind == ListEntry::Kind::network));
  BOOST_TEST((entry_ok("User@Example.ORG").kind == ListEntry::Kind::address));
  BOOST_TEST(entry_ok("User@Example.ORG").value == "user@example.org");
  BOOST_TEST(entry_ok("User@Example.ORG").text == "User@Example.ORG");
  BOOST_TEST((entry_ok("Example.ORG.").kind == ListEntry::Kind::domain));
  BOOST_TEST(entry_ok("Example.ORG.").value == "example.org");
  BOOST_TEST((entry_ok("=example.org").kind == ListEntry::Kind::exact_domain));
  BOOST_TEST(entry_ok("=example.org").value == "example.org");
  BOOST_TEST((entry_ok("_dmarc.example.org").kind == ListEntry::Kind::domain));
  BOOST_TEST((entry_ok("xn--bcher-kva.example").kind == ListEntry::Kind::domain));
}

BOOST_AUTO_TEST_CASE(refuses_bad_entries) {
  BOOST_TEST(entry_error("") == "empty entry");
  BOOST_TEST(entry_error("=") == "'=' needs a domain after it: =example.org");
  BOOST_TEST(entry_error("b\xc3\xbc"
                         "cher.example")
                 .find("A-label") != std::string::npos);
  BOOST_TEST(entry_error("a\tb") ==
             "'a\\x09b' contains a space; write one entry per string or line");
  BOOST_TEST(entry_error("a\x01") == "entry contains a control character");
  BOOST_TEST(entry_error("=192.0.2.1") == "'=192.0.2.1': '=' applies to domains only");
  BOOST_TEST(entry_error("1.2.3") == "'1.2.3' is not an IP address or CIDR network");
  BOOST_TEST(entry_error("a..b") == "'a..b' has an empty label");
  BOOST_TEST(entry_error("-a.example") == "'-a.example' has a label that starts or ends with '-'");
  BOOST_TEST(entry_error(std::string(64, 'a') + ".example").find("longer than 63") !=
             std::string::npos);
  BOOST_TEST(entry_error(std::string(400, 'a')) == "entry longer than 320 bytes");
  BOOST_TEST(entry_error("a\"b\"@example.org") ==
             "'a\"b\"@example.org' is not a plain address (local@domain)");
  BOOST_TEST(entry_error("user@") == "'user@' is not a domain");
  BOOST_TEST(entry_error("a/b.example") == "'a/b.example' is not an IP address or CIDR network");
}

BOOST_AUTO_TEST_CASE(matches_networks_most_specific_first) {
  std::vector<ListEntry> entries;
  for (const char* text : {"10.0.0.0/8", "10.1.0.0/16", "10.1.2.3", "2001:db8::/32", "::/0"}) {
    entries.push_back(entry_ok(text));
  }
  const NamedList list("nets", "p.toml:1", std::move(entries));
  BOOST_TEST(list.has_networks());
  BOOST_TEST(!list.has_names());
  BOOST_TEST(list.match_ip(*IpAddress::parse("10.1.2.3"))->text == "10.1.2.3");
  BOOST_TEST(list.match_ip(*IpAddress::parse("10.1.2.4"))->text == "10.1.0.0/16");
  BOOST_TEST(list.match_ip(*IpAddress::parse("10.9.9.9"))->text == "10.0.0.0/8");
  BOOST_TEST(list.match_ip(*IpAddress::parse("::ffff:10.1.2.3"))->text == "10.1.2.3");
  BOOST_TEST(list.match_ip(*IpAddress::parse("11.0.0.1")) == nullptr);
  BOOST_TEST(list.match_ip(*IpAddress::parse("2001:db8:5::1"))->text == "2001:db8::/32");
  BOOST_TEST(list.match_ip(*IpAddress::parse("fe80::1"))->text == "::/0");
  // Strings never match network entries.
  BOOST_TEST(list.match_string("10.1.2.3") == nullptr);
}

BOOST_AUTO_TEST_CASE(matches_names_by_domain_rules) {
  std::vector<ListEntry> entries;
  for (const char* text : {"example.org", "=exact.example", "Boss@Corp.Example", "ORG.EXAMPLE"}) {
    entries.push_back(entry_ok(text));
  }
  const NamedList list("names", "p.toml:1", std::move(entries));
  BOOST_TEST(list.has_names());
  BOOST_TEST(!list.has_networks());
  BOOST_TEST(list.match_string("example.org")->text == "example.org");
  BOOST_TEST(list.match_string("A.B.EXAMPLE.ORG")->text == "example.org");
  BOOST_TEST(list.match_string("example.org.")->text == "example.org");
  BOOST_TEST(list.match_string("notexample.org") == nullptr);
  BOOST_TEST(list.match_string("example.org.evil") == nullptr);
  BOOST_TEST(list.match_string("exact.example")->text == "=exact.example");
  BOOST_TEST(list.match_string("sub.exact.example") == nullptr);
  BOOST_TEST(list.match_string("boss@corp.example")->text == "Boss@Corp.Example");
  BOOST_TEST(list.match_string("other@corp.example") == nullptr);
  BOOST_TEST(list.match_string("anyone@mail.example.org")->text == "example.org");
  BOOST_TEST(list.match_string("x@org.example")->text == "ORG.EXAMPLE");
  BOOST_TEST(list.match_string("\"a@b\"@exact.example")->text == "=exact.example");
  BOOST_TEST(list.match_string("") == nullptr);
  BOOST_TEST(list.match_string("@") == nullptr);
  BOOST_TEST(list.match_string(".") == nullptr);
  BOOST_TEST(list.match_ip(*IpAddress::parse("192.0.2.1")) == nullptr);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(toml_positions)

BOOST_AUTO_TEST_CASE(maps_basic_strings_with_escapes) {
  const std::string source = "x = 1\nwhen = \"a\\tb\\u00e9c\"\n";
  const auto positions = map_string_token(source, 2, 8);
  // Decoded: a, TAB, b, two bytes of e-acute, c, then the closing quote.
  BOOST_REQUIRE(positions.size() == 7u);
  BOOST_TEST(positions[0].line == 2u);
  BOOST_TEST(positions[0].column == 9u);
  BOOST_TEST(positions[1].column == 10u);
  BOOST_TEST(positions[2].column == 12u);
  BOOST_TEST(positions[3].column == 13u);
  BOOST_TEST(positions[4].column == 13u);
  BOOST_TEST(positions[5].column == 19u);
  BOOST_TEST(positions[6].column == 20u);
}

BOOST_AUTO_TEST_CASE(maps_literal_and_multi_line_strings) {
  const auto literal = map_string_token("w = 'a\\b'", 1, 5);
  BOOST_REQUIRE(literal.size() == 4u);
  BOOST_TEST(literal[1].column == 7u);
  const std::string multi = "w = \"\"\"\n  ab \\\n   cd\"\"\"\n";
  // Decoded: "  ab " then (line-ending backslash eats the break and indent) "cd".
  const auto positions = map_string_token(multi, 1, 5);
  BOOST_REQUIRE(positions.size() == 8u);
  BOOST_TEST(positions[0].line == 2u);
  BOOST_TEST(positions[0].column == 1u);
  BOOST_TEST(positions[5].line == 3u);
  BOOST_TEST(positions[5].column == 4u);
  BOOST_TEST(positions[7].column == 6u);
  const auto quotes = map_string_token("w = '''a'''''", 1, 5);
  BOOST_REQUIRE(quotes.size() == 4u);  // a, ', ', close
  BOOST_TEST(quotes[3].column == 11u);
  BOOST_TEST(map_string_token("w = 5", 1, 5).empty());
  BOOST_TEST(map_string_token("w = \"open", 1, 5).empty());
  BOOST_TEST(map_string_token("w", 7, 1).empty());
}

BOOST_AUTO_TEST_CASE(finds_malformed_utf8) {
  BOOST_TEST(!find_invalid_utf8("plain ASCII\n"));
  BOOST_TEST(!find_invalid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"));
  BOOST_TEST(find_invalid_utf8("ab\xb3").value() == 2u);            // lone continuation byte
  BOOST_TEST(find_invalid_utf8("\xc0\xaf").value() == 0u);          // overlong '/'
  BOOST_TEST(find_invalid_utf8("\xe0\x80\xaf").value() == 0u);      // overlong
  BOOST_TEST(find_invalid_utf8("\xed\xa0\x80").value() == 0u);      // surrogate
  BOOST_TEST(find_invalid_utf8("\xf4\x90\x80\x80").value() == 0u);  // above U+10FFFF
  BOOST_TEST(find_invalid_utf8("x\xe2\x82").value() == 1u);         // truncated
  BOOST_TEST(find_invalid_utf8("\xff").value() == 0u);
  const TextPosition where = position_of("a\nbc\nd", 4);
  BOOST_TEST(where.line == 2u);
  BOOST_TEST(where.column == 3u);
}

BOOST_AUTO_TEST_SUITE_END()
