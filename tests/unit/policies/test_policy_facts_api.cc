// filters/api: IP values, typed facts, phases and DESIGN §4's fact catalog.
#define BOOST_TEST_MODULE policy_facts_api
#include <boost/test/unit_test.hpp>

#include "fact_catalog.h"
#include "facts.h"
#include "ip_address.h"
#include "session_phase.h"

using namespace portcullis;

BOOST_AUTO_TEST_SUITE(ip_values)

BOOST_AUTO_TEST_CASE(parses_and_formats_canonically) {
  auto v4 = IpAddress::parse("192.0.2.1");
  BOOST_REQUIRE(v4);
  BOOST_TEST(v4->is_v4());
  BOOST_TEST(v4->to_string() == "192.0.2.1");
  auto v6 = IpAddress::parse("2001:DB8:0:0:0:0:0:1");
  BOOST_REQUIRE(v6);
  BOOST_TEST(!v6->is_v4());
  BOOST_TEST(v6->to_string() == "2001:db8::1");
  BOOST_TEST(IpAddress::parse("::")->to_string() == "::");
}

BOOST_AUTO_TEST_CASE(refuses_anything_but_one_plain_address) {
  for (const char* text :
       {"", "01.2.3.4", "1.2.3", "1.2.3.4 ", " 1.2.3.4", "1.2.3.256", "fe80::1%eth0", "[::1]",
        "192.0.2.1:25", "0x1.2.3.4", "example.org", "1.2.3.4/32", "::ffff:1.2.3.4.5"}) {
    BOOST_TEST_CONTEXT(text) {
      BOOST_TEST(!IpAddress::parse(text));
    }
  }
  // Longer than any address: refused before it is copied.
  BOOST_TEST(!IpAddress::parse(std::string(46, '1')));
  BOOST_TEST(!IpAddress::parse(std::string(10000, ':')));
}

BOOST_AUTO_TEST_CASE(unmaps_ipv4_mapped_addresses) {
  auto mapped = IpAddress::parse("::ffff:192.0.2.9");
  BOOST_REQUIRE(mapped);
  BOOST_TEST(!mapped->is_v4());
  BOOST_TEST(mapped->unmapped().is_v4());
  BOOST_TEST(mapped->unmapped().to_string() == "192.0.2.9");
  BOOST_TEST(mapped->same_address(*IpAddress::parse("192.0.2.9")));
  BOOST_TEST(!mapped->same_address(*IpAddress::parse("192.0.2.10")));
  // Only ::ffff:0:0/96 is mapped; ::192.0.2.9 (compatible form) is not.
  BOOST_TEST(!IpAddress::parse("::192.0.2.9")->unmapped().is_v4());
}

BOOST_AUTO_TEST_CASE(masks_host_bits) {
  BOOST_TEST(IpAddress::parse("192.0.2.255")->masked(24).to_string() == "192.0.2.0");
  BOOST_TEST(IpAddress::parse("192.0.2.255")->masked(25).to_string() == "192.0.2.128");
  BOOST_TEST(IpAddress::parse("192.0.2.255")->masked(0).to_string() == "0.0.0.0");
  BOOST_TEST(IpAddress::parse("192.0.2.255")->masked(32).to_string() == "192.0.2.255");
  BOOST_TEST(IpAddress::parse("2001:db8:1:2:3:4:5:6")->masked(48).to_string() == "2001:db8:1::");
  BOOST_TEST(IpAddress::parse("2001:db8::ffff")->masked(127).to_string() == "2001:db8::fffe");
}

BOOST_AUTO_TEST_CASE(networks_parse_strictly) {
  IpNetwork::ParseError why = IpNetwork::ParseError::none;
  auto net = IpNetwork::parse("192.0.2.0/24", &why);
  BOOST_REQUIRE(net);
  BOOST_TEST(net->prefix_length() == 24u);
  BOOST_TEST(net->to_string() == "192.0.2.0/24");
  BOOST_TEST(IpNetwork::parse("192.0.2.7")->to_string() == "192.0.2.7");
  BOOST_TEST(IpNetwork::parse("192.0.2.7")->prefix_length() == 32u);
  BOOST_TEST(IpNetwork::parse("::1")->prefix_length() == 128u);
  BOOST_TEST(IpNetwork::parse("0.0.0.0/0")->contains(*IpAddress::parse("203.0.113.1")));

  BOOST_TEST(!IpNetwork::parse("192.0.2.1/24", &why));
  BOOST_TEST((why == IpNetwork::ParseError::host_bits_set));
  BOOST_TEST(!IpNetwork::parse("192.0.2.0/33", &why));
  BOOST_TEST((why == IpNetwork::ParseError::bad_prefix));
  for (const char* bad : {"192.0.2.0/", "192.0.2.0/-1", "192.0.2.0/+8", "192.0.2.0/ 8",
                          "192.0.2.0/0008", "2001:db8::/129"}) {
    BOOST_TEST_CONTEXT(bad) {
      BOOST_TEST(!IpNetwork::parse(bad, &why));
      BOOST_TEST((why == IpNetwork::ParseError::bad_prefix));
    }
  }
  BOOST_TEST(!IpNetwork::parse("example.org/8", &why));
  BOOST_TEST((why == IpNetwork::ParseError::not_an_address));
}

BOOST_AUTO_TEST_CASE(networks_contain_by_prefix) {
  auto net = *IpNetwork::parse("198.51.100.0/22");
  BOOST_TEST(net.contains(*IpAddress::parse("198.51.100.1")));
  BOOST_TEST(net.contains(*IpAddress::parse("198.51.103.255")));
  BOOST_TEST(!net.contains(*IpAddress::parse("198.51.104.0")));
  BOOST_TEST(net.contains(*IpAddress::parse("::ffff:198.51.101.7")));
  BOOST_TEST(!net.contains(*IpAddress::parse("2001:db8::1")));
  auto v6 = *IpNetwork::parse("2001:db8::/32");
  BOOST_TEST(v6.contains(*IpAddress::parse("2001:db8:ffff::1")));
  BOOST_TEST(!v6.contains(*IpAddress::parse("2001:db9::1")));
  BOOST_TEST(!v6.contains(*IpAddress::parse("192.0.2.1")));
  // A network written in mapped form is an IPv4 network.
  auto mapped = *IpNetwork::parse("::ffff:192.0.2.0/120");
  BOOST_TEST(mapped.contains(*IpAddress::parse("192.0.2.77")));
  BOOST_TEST(!mapped.contains(*IpAddress::parse("192.0.3.77")));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(facts)

BOOST_AUTO_TEST_CASE(typed_getters_see_only_their_type) {
  Facts facts;
  facts.set("tls", true);
  facts.set("size", std::int64_t{1234});
  facts.set("helo", std::string("mx.example.org"));
  facts.set("client.ip", *IpAddress::parse("192.0.2.1"));
  facts.set("dnsbl.lists", FactList{"a", "b"});

  BOOST_TEST(facts.size() == 5u);
  BOOST_TEST(facts.boolean("tls").value() == true);
  BOOST_TEST(facts.integer("size").value() == 1234);
  BOOST_TEST(*facts.string("helo") == "mx.example.org");
  BOOST_TEST(facts.ip("client.ip")->to_string() == "192.0.2.1");
  BOOST_TEST(facts.list("dnsbl.lists")->size() == 2u);

  BOOST_TEST(!facts.integer("tls"));
  BOOST_TEST(!facts.boolean("size"));
  BOOST_TEST(facts.string("size") == nullptr);
  BOOST_TEST(facts.ip("helo") == nullptr);
  BOOST_TEST(facts.list("helo") == nullptr);
  BOOST_TEST(!facts.boolean("absent"));
  BOOST_TEST(!facts.has("absent"));
  BOOST_TEST(facts.get("absent") == nullptr);
}

BOOST_AUTO_TEST_CASE(set_replaces_and_erase_removes) {
  Facts facts;
  facts.set("helo", std::string("a"));
  facts.set("helo", std::string("b"));
  BOOST_TEST(*facts.string("helo") == "b");
  facts.set("helo.check", std::string("ok"));
  facts.set("sender", std::string(""));
  facts.erase("helo");
  BOOST_TEST(!facts.has("helo"));
  facts.erase_if([](std::string_view name) { return name.starts_with("helo"); });
  BOOST_TEST(!facts.has("helo.check"));
  BOOST_TEST(facts.has("sender"));
  facts.erase("never-set");
  BOOST_TEST(facts.size() == 1u);
}

BOOST_AUTO_TEST_CASE(formats_values_in_condition_syntax_on_one_line) {
  BOOST_TEST(format_fact_value(FactValue{true}) == "true");
  BOOST_TEST(format_fact_value(FactValue{std::int64_t{-5}}) == "-5");
  BOOST_TEST(format_fact_value(FactValue{std::string("it's")}) == "'it''s'");
  BOOST_TEST(format_fact_value(FactValue{std::string("a\r\nb\x01\xc3")}) ==
             "'a\\x0d\\x0ab\\x01\\xc3'");
  BOOST_TEST(format_fact_value(FactValue{FactList{"x", "y'z"}}) == "['x', 'y''z']");
  BOOST_TEST(format_fact_value(FactValue{FactList{}}) == "[]");
  BOOST_TEST(format_fact_value(FactValue{*IpAddress::parse("2001:db8::1")}) == "2001:db8::1");
  BOOST_TEST(format_fact_plain(FactValue{FactList{"x", "y"}}) == "x, y");
  BOOST_TEST(format_fact_plain(FactValue{std::string("it's")}) == "it's");
}

BOOST_AUTO_TEST_CASE(types_match_variant_order) {
  BOOST_TEST((fact_type_of(FactValue{true}) == FactType::boolean));
  BOOST_TEST((fact_type_of(FactValue{std::int64_t{1}}) == FactType::integer));
  BOOST_TEST((fact_type_of(FactValue{std::string()}) == FactType::string));
  BOOST_TEST((fact_type_of(FactValue{*IpAddress::parse("::1")}) == FactType::ip));
  BOOST_TEST((fact_type_of(FactValue{FactList{}}) == FactType::list));
  BOOST_TEST(fact_type_name(FactType::integer) == "int");
  BOOST_TEST(fact_type_with_article(FactType::ip) == "an ip");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(catalog)

BOOST_AUTO_TEST_CASE(phase_names_round_trip) {
  for (Phase phase : all_phases)
    BOOST_TEST((parse_phase(phase_name(phase)) == phase));
  BOOST_TEST(!parse_phase("HELO"));
  BOOST_TEST(!parse_phase("end"));
  BOOST_TEST(is_session_phase(Phase::helo));
  BOOST_TEST(!is_session_phase(Phase::mail));
}

// DESIGN §4's table, written out by hand: name, type, known from, until, filter.
struct Expected {
  const char* name;
  FactType type;
  Phase from;
  Phase until;
  const char* filter;
};

BOOST_AUTO_TEST_CASE(builtin_catalog_is_designs_table) {
  using enum FactType;
  const Expected table[] = {
      {"client.ip", ip, Phase::connect, Phase::data, ""},
      {"client.port", integer, Phase::connect, Phase::data, ""},
      {"client.ptr", string, Phase::connect, Phase::data, "fcrdns"},
      {"client.name", string, Phase::connect, Phase::data, "fcrdns"},
      // Not in DESIGN's table: the fcrdns filter's own summary (docs/filters.md).
      {"fcrdns", string, Phase::connect, Phase::data, "fcrdns"},
      {"tls", boolean, Phase::helo, Phase::data, ""},
      {"tls.version", string, Phase::helo, Phase::data, ""},
      {"helo", string, Phase::helo, Phase::data, ""},
      {"helo.check", string, Phase::helo, Phase::data, "helo"},
      {"pregreet", boolean, Phase::helo, Phase::data, "pregreet"},
      {"sender", string, Phase::mail, Phase::data, ""},
      {"sender.domain", string, Phase::mail, Phase::data, ""},
      {"size", integer, Phase::mail, Phase::data, ""},
      {"rcpt", string, Phase::rcpt, Phase::rcpt, ""},
      {"rcpt.domain", string, Phase::rcpt, Phase::rcpt, ""},
      {"rcpt.count", integer, Phase::rcpt, Phase::data, ""},
      {"spf", string, Phase::mail, Phase::data, "spf"},
      {"spf.domain", string, Phase::mail, Phase::data, "spf"},
      {"dnsbl.score", integer, Phase::connect, Phase::data, "dnsbl"},
      {"dnsbl.lists", list, Phase::connect, Phase::data, "dnsbl"},
      {"greylist", string, Phase::rcpt, Phase::data, "greylist"},
      {"greylist.retry_after", integer, Phase::rcpt, Phase::data, "greylist"},
      {"dkim", string, Phase::data, Phase::data, "dkim"},
      {"dkim.domains", list, Phase::data, Phase::data, "dkim"},
      {"dmarc", string, Phase::data, Phase::data, "dmarc"},
      {"dmarc.policy", string, Phase::data, Phase::data, "dmarc"},
      {"dmarc.domain", string, Phase::data, Phase::data, "dmarc"},
  };
  const FactCatalog catalog = builtin_fact_catalog(builtin_filter_names());
  BOOST_TEST(catalog.facts().size() == std::size(table));
  for (const auto& expected : table) {
    BOOST_TEST_CONTEXT(expected.name) {
      const FactSpec* spec = catalog.find(expected.name);
      BOOST_REQUIRE(spec != nullptr);
      BOOST_TEST((spec->type == expected.type));
      BOOST_TEST((spec->known_from == expected.from));
      BOOST_TEST((spec->known_until == expected.until));
      BOOST_TEST(spec->filter == expected.filter);
      BOOST_TEST(catalog.available(*spec));
    }
  }
}

BOOST_AUTO_TEST_CASE(facts_of_filters_outside_the_chain_are_known_but_unavailable) {
  const FactCatalog catalog = builtin_fact_catalog({"pregreet", "helo"});
  const FactSpec* spf = catalog.find("spf");
  BOOST_REQUIRE(spf != nullptr);
  BOOST_TEST(!catalog.available(*spf));
  BOOST_TEST(catalog.available(*catalog.find("pregreet")));
  BOOST_TEST(catalog.available(*catalog.find("client.ip")));
  BOOST_TEST(catalog.filter_enabled(""));
  BOOST_TEST(!catalog.filter_enabled("dkim"));
}

BOOST_AUTO_TEST_CASE(rate_facts_exist_per_configured_limit) {
  const FactCatalog catalog =
      builtin_fact_catalog({"ratelimit"}, {{"conn_per_ip", Phase::connect}, {"msgs", Phase::mail}});
  const FactSpec* count = catalog.find("rate.msgs");
  BOOST_REQUIRE(count != nullptr);
  BOOST_TEST((count->type == FactType::integer));
  BOOST_TEST((count->known_from == Phase::mail));
  BOOST_TEST((catalog.find("rate.conn_per_ip.exceeded")->type == FactType::boolean));
  BOOST_TEST((catalog.find("rate.conn_per_ip.retry_after")->type == FactType::integer));
  BOOST_TEST(catalog.find("rate.other") == nullptr);
  BOOST_TEST(catalog.hint_for_unknown("rate.other") ==
             "rate.NAME facts exist for the limits named in [[filter.ratelimit.limit]]: "
             "conn_per_ip, msgs");
  BOOST_TEST(catalog.hint_for_unknown("spff") == "");
  const FactCatalog none = builtin_fact_catalog({"ratelimit"});
  BOOST_TEST(none.hint_for_unknown("rate.x").find("none is configured") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(suggests_close_names_only) {
  const FactCatalog catalog = builtin_fact_catalog(builtin_filter_names());
  BOOST_TEST(catalog.similar_names("sfp").front() == "spf");
  BOOST_TEST(catalog.similar_names("sender.domian").front() == "sender.domain");
  BOOST_TEST(catalog.similar_names("completely.different").empty());
  BOOST_TEST(catalog.similar_names(std::string(1000, 'x')).empty());
}

BOOST_AUTO_TEST_SUITE_END()
