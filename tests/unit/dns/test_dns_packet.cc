// parse_dns_answer on packets built here: what a hostile or broken answer becomes (the
// resolver test covers the packets a real server sends).
#define BOOST_TEST_MODULE dns_packet
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "dns_packet.h"

using namespace portcullis;

namespace {

std::string wire(const std::string& name) {
  std::string out;
  std::size_t start = 0;
  while (start < name.size()) {
    auto dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    out.push_back(static_cast<char>(dot - start));
    out.append(name, start, dot - start);
    start = dot + 1;
  }
  out.push_back('\0');
  return out;
}

void put16(std::string& out, unsigned value) {
  out.push_back(static_cast<char>(value >> 8));
  out.push_back(static_cast<char>(value & 0xff));
}

struct Packet {
  explicit Packet(const std::string& question, unsigned qtype, unsigned flags = 0x8180)
      : flags(flags) {
    body = wire(question);
    put16(body, qtype);
    put16(body, 1);
  }
  Packet& record(const std::string& owner, unsigned type, std::uint32_t ttl,
                 const std::string& rdata) {
    body += wire(owner);
    put16(body, type);
    put16(body, 1);
    put16(body, ttl >> 16);
    put16(body, ttl & 0xffff);
    put16(body, static_cast<unsigned>(rdata.size()));
    body += rdata;
    ++answers;
    return *this;
  }
  std::string bytes() const {
    std::string out;
    put16(out, 0x1234);
    put16(out, flags);
    put16(out, 1);
    put16(out, answers);
    put16(out, 0);
    put16(out, 0);
    return out + body;
  }
  DnsAnswer parse(const std::string& name, DnsType type) const {
    const std::string packet = bytes();
    return parse_dns_answer(reinterpret_cast<const unsigned char*>(packet.data()), packet.size(),
                            name, type);
  }
  unsigned flags;
  unsigned answers = 0;
  std::string body;
};

}  // namespace

BOOST_AUTO_TEST_CASE(rcode_and_tc_come_from_the_header) {
  BOOST_TEST(dns_outcome_name(Packet("a.test", 1, 0x8183).parse("a.test", DnsType::a).outcome) ==
             "nxdomain");
  auto servfail = Packet("a.test", 1, 0x8182).parse("a.test", DnsType::a);
  BOOST_TEST(dns_outcome_name(servfail.outcome) == "temporary_failure");
  BOOST_TEST(servfail.reason == "SERVFAIL");
  auto refused = Packet("a.test", 1, 0x8185).parse("a.test", DnsType::a);
  BOOST_TEST(dns_outcome_name(refused.outcome) == "failure");
  BOOST_TEST(refused.reason == "REFUSED");
  auto truncated = Packet("a.test", 1, 0x8380).parse("a.test", DnsType::a);
  BOOST_TEST(dns_outcome_name(truncated.outcome) == "temporary_failure");
  BOOST_TEST(truncated.reason == "truncated");
}

BOOST_AUTO_TEST_CASE(only_the_asked_name_and_type_count) {
  Packet packet("a.test", 1);
  packet.record("other.test", 1, 60, std::string("\xc0\x00\x02\x01", 4))
      .record("a.test", 16, 60, std::string("\x02hi", 3))
      .record("A.TEST", 1, 30, std::string("\xc0\x00\x02\x02", 4));
  auto answer = packet.parse("a.test.", DnsType::a);
  BOOST_TEST_REQUIRE(answer.records.size() == 1u);
  BOOST_TEST(answer.records[0].address->to_string() == "192.0.2.2");
  BOOST_TEST(answer.ttl == 30u);
  auto none = Packet("a.test", 1).parse("a.test", DnsType::a);
  BOOST_TEST(dns_outcome_name(none.outcome) == "no_data");
}

BOOST_AUTO_TEST_CASE(malformed_packets_and_records_are_failures) {
  const std::string header_only = Packet("a.test", 1).bytes().substr(0, 7);
  BOOST_TEST(
      dns_outcome_name(parse_dns_answer(reinterpret_cast<const unsigned char*>(header_only.data()),
                                        header_only.size(), "a.test", DnsType::a)
                           .outcome) == "failure");
  // A TXT character-string longer than its rdata.
  Packet txt("a.test", 16);
  txt.record("a.test", 16, 60, std::string("\x09short", 6));
  BOOST_TEST(txt.parse("a.test", DnsType::txt).reason == "malformed record");
  // An A record of 3 bytes.
  Packet a("a.test", 1);
  a.record("a.test", 1, 60, std::string("\x01\x02\x03", 3));
  BOOST_TEST(dns_outcome_name(a.parse("a.test", DnsType::a).outcome) == "failure");
  // An rdlength past the end of the packet.
  Packet cut("a.test", 1);
  cut.record("a.test", 1, 60, std::string("\xc0\x00\x02\x01", 4));
  std::string bytes = cut.bytes();
  bytes.resize(bytes.size() - 2);
  BOOST_TEST(dns_outcome_name(parse_dns_answer(reinterpret_cast<const unsigned char*>(bytes.data()),
                                               bytes.size(), "a.test", DnsType::a)
                                  .outcome) == "failure");
  BOOST_TEST(dns_outcome_name(parse_dns_answer(nullptr, 0, "a.test", DnsType::a).outcome) ==
             "failure");
}

BOOST_AUTO_TEST_CASE(cname_chain_is_bounded) {
  Packet within("c0.test", 1);
  for (int hop = 0; hop < max_cname_hops; ++hop) {
    within.record("c" + std::to_string(hop) + ".test", 5, 60,
                  wire("c" + std::to_string(hop + 1) + ".test"));
  }
  within.record("c" + std::to_string(max_cname_hops) + ".test", 1, 60,
                std::string("\xc0\x00\x02\x09", 4));
  auto answer = within.parse("c0.test", DnsType::a);
  BOOST_TEST(dns_outcome_name(answer.outcome) == "answer");

  Packet beyond("c0.test", 1);
  for (int hop = 0; hop <= max_cname_hops; ++hop) {
    beyond.record("c" + std::to_string(hop) + ".test", 5, 60,
                  wire("c" + std::to_string(hop + 1) + ".test"));
  }
  beyond.record("c" + std::to_string(max_cname_hops + 1) + ".test", 1, 60,
                std::string("\xc0\x00\x02\x09", 4));
  BOOST_TEST(beyond.parse("c0.test", DnsType::a).reason == "CNAME chain too long");

  Packet loop("x.test", 1);
  loop.record("x.test", 5, 60, wire("y.test")).record("y.test", 5, 60, wire("x.test"));
  BOOST_TEST(loop.parse("x.test", DnsType::a).reason == "CNAME chain too long");
}

BOOST_AUTO_TEST_CASE(names_are_lower_case_without_the_trailing_dot) {
  BOOST_TEST(normalized_dns_name("Mail.Example.TEST.") == "mail.example.test");
  BOOST_TEST(normalized_dns_name(".") == "");
}
