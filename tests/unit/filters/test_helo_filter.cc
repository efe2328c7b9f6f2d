// The helo filter: classify_helo against a hand-written table (names, v4/v6 literals, mapped
// addresses, ours by name and by address, trailing dots, case, label and name lengths), and the
// hook through a fake HookContext.
#define BOOST_TEST_MODULE helo_filter
#include <boost/test/unit_test.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "helo_filter.h"

using namespace portcullis;

namespace {

std::optional<IpAddress> ip(const char* text) {
  if (text == nullptr) return std::nullopt;
  auto address = IpAddress::parse(text);
  BOOST_REQUIRE_MESSAGE(address.has_value(), "test address " << text);
  return address;
}

struct Case {
  std::string helo;
  std::string expected;
  const char* client = "198.51.100.7";
  const char* local = "192.0.2.25";
  std::string hostname = "mx.example.org";
};

std::string repeat(char c, std::size_t n) {
  return std::string(n, c);
}

// 63 + 1 + 63 + 1 + 63 + 1 + 63 = 255 octets: the longest valid name.
const std::string longest_name =
    repeat('a', 63) + "." + repeat('b', 63) + "." + repeat('c', 63) + "." + repeat('d', 63);

// 256 octets in labels of at most 63: one octet too long.
const std::string too_long_name =
    "ab." + repeat('a', 63) + "." + repeat('b', 63) + "." + repeat('c', 63) + "." + repeat('d', 61);

const std::vector<Case> cases = {
    // Plain names.
    {"mail.example.com", "ok"},
    {"MAIL.Example.COM", "ok"},
    {"mail.example.com.", "ok"},
    {"1.example.com", "ok"},
    {"xn--bcher-kva.example", "ok"},
    {"a-b--c.example.net", "ok"},
    {"mx.example.org.evil.example", "ok"},
    {repeat('x', 63) + ".example.com", "ok"},
    {longest_name, "ok"},
    {longest_name + ".", "ok"},
    // Ours by name.
    {"mx.example.org", "ours"},
    {"MX.Example.ORG", "ours"},
    {"mx.example.org.", "ours"},
    {"mx.example.org", "ours", "198.51.100.7", "192.0.2.25", "MX.EXAMPLE.ORG."},
    {"localhost", "ours", "198.51.100.7", "192.0.2.25", "localhost"},
    {"mx.example.org..", "syntax"},
    // Ours by address.
    {"192.0.2.25", "ours"},
    {"[192.0.2.25]", "ours"},
    {"[192.0.2.25]", "ours", "192.0.2.25", "192.0.2.25"},
    {"[IPv6:2001:db8::25]", "ours", "2001:db8:1::7", "2001:db8::25"},
    {"2001:db8::25", "ours", "2001:db8:1::7", "2001:db8::25"},
    {"[IPv6:::ffff:192.0.2.25]", "ours"},
    // Bare addresses.
    {"198.51.100.7", "bare_ip"},
    {"203.0.113.9", "bare_ip"},
    {"2001:db8::1", "bare_ip"},
    {"::1", "bare_ip"},
    // Literals that match the client.
    {"[198.51.100.7]", "ok"},
    {"[IPv6:2001:db8:1::7]", "ok", "2001:db8:1::7"},
    {"[ipv6:2001:DB8:1:0::7]", "ok", "2001:db8:1::7"},
    {"[198.51.100.7]", "ok", "::ffff:198.51.100.7"},
    {"[IPv6:::ffff:198.51.100.7]", "ok"},
    {"[198.51.100.7]", "ok", nullptr},  // no client address known: nothing contradicts it
    // Literals that do not.
    {"[198.51.100.8]", "ip_mismatch"},
    {"[IPv6:2001:db8:1::8]", "ip_mismatch", "2001:db8:1::7"},
    {"[IPv6:2001:db8:1::7]", "ip_mismatch"},  // v6 literal, v4 client
    {"[10.0.0.1]", "ip_mismatch", "::ffff:198.51.100.7"},
    // Malformed literals.
    {"[300.1.1.1]", "syntax"},
    {"[IPv6:zz]", "syntax"},
    {"[foo]", "syntax"},
    {"[2001:db8::1]", "syntax"},  // an IPv6 literal needs its tag
    {"[IPv6:192.0.2.1]", "syntax"},
    {"[192.0.2.1", "syntax"},
    {"[]", "syntax"},
    {"[", "syntax"},
    {"[ 198.51.100.7]", "syntax"},
    {"[198.51.100.07]", "syntax"},
    {"[x-tag:abc]", "syntax"},
    // Not a domain, or not fully qualified.
    {"", "syntax"},
    {".", "syntax"},
    {"localhost", "syntax"},
    {"DESKTOP-1", "syntax"},
    {"localhost.", "syntax"},
    {"-bad.example.com", "syntax"},
    {"bad-.example.com", "syntax"},
    {"a..example.com", "syntax"},
    {".example.com", "syntax"},
    {"under_score.example.com", "syntax"},
    {"mail example.com", "syntax"},
    {"mail.example.com\r", "syntax"},
    {"caf\xc3\xa9.example", "syntax"},
    {repeat('x', 64) + ".example.com", "syntax"},
    {"e" + longest_name, "syntax"},  // a 64-octet first label
    {too_long_name, "syntax"},
    {too_long_name + ".", "syntax"},
    {repeat('a', 600) + ".example", "syntax"},
    {"300.1.1.1", "syntax"},
    {"192.0.2.01", "syntax"},
    {"10.1", "syntax"},
    {"mail.example.123", "syntax"},
};

}  // namespace

BOOST_AUTO_TEST_CASE(classification_table) {
  BOOST_REQUIRE(longest_name.size() == 255u);
  BOOST_REQUIRE(too_long_name.size() == 256u);
  BOOST_TEST(cases.size() >= 30u);
  for (const Case& c : cases) {
    BOOST_TEST_CONTEXT("helo '" << c.helo << "' client " << (c.client ? c.client : "none")
                                << " local " << c.local << " hostname " << c.hostname) {
      BOOST_TEST(std::string(classify_helo(c.helo, ip(c.client), ip(c.local), c.hostname)) ==
                 c.expected);
    }
  }
}

BOOST_AUTO_TEST_CASE(without_a_hostname_or_local_address_nothing_is_ours) {
  BOOST_TEST(std::string(classify_helo("mx.example.org", ip("198.51.100.7"), std::nullopt, "")) ==
             "ok");
  BOOST_TEST(std::string(classify_helo("192.0.2.25", ip("198.51.100.7"), std::nullopt, "")) ==
             "bare_ip");
  BOOST_TEST(std::string(classify_helo("[192.0.2.25]", ip("198.51.100.7"), std::nullopt, "")) ==
             "ip_mismatch");
}

namespace {

class NoServices : public FilterServices {
 public:
  std::unique_ptr<TimerHandle> start_timer(std::chrono::milliseconds,
                                           std::function<void()>) override {
    ++timers;
    return nullptr;
  }
  void send_to_client(std::string_view) override { ++sends; }
  int timers = 0;
  int sends = 0;
};

class FakeContext : public HookContext {
 public:
  FakeContext(const SessionView& view, NoServices& services) : view_(view), services_(services) {}
  Phase phase() const override { return Phase::helo; }
  const SessionView& session() const override { return view_; }
  void record(std::string fact, FactValue value) override {
    recorded.set(std::move(fact), std::move(value));
  }
  void fail(std::string error) override { failure = std::move(error); }
  void warn(std::string warning) override { warned.push_back(std::move(warning)); }
  void add_authentication(AuthenticationEntry entry) override {
    authentication.push_back(std::move(entry));
  }
  Completion park() override {
    ++parks;
    return Completion();
  }
  FilterServices& services() override { return services_; }

  Facts recorded;
  std::optional<std::string> failure;
  std::vector<std::string> warned;
  std::vector<AuthenticationEntry> authentication;
  int parks = 0;

 private:
  const SessionView& view_;
  NoServices& services_;
};

std::unique_ptr<SessionFilter> make_filter() {
  std::vector<SettingError> errors;
  auto factory = build_helo_filter({}, errors);
  BOOST_REQUIRE(factory != nullptr);
  return factory->create();
}

}  // namespace

BOOST_AUTO_TEST_CASE(hook_records_helo_check_from_the_session) {
  Facts facts;
  facts.set("helo", std::string("[198.51.100.8]"));
  SessionView view;
  view.client_ip = IpAddress::parse("198.51.100.7");
  view.local_ip = IpAddress::parse("192.0.2.25");
  view.hostname = "mx.example.org";
  view.facts = &facts;
  NoServices services;
  auto filter = make_filter();

  FakeContext context(view, services);
  BOOST_TEST((filter->on_phase(context) == HookStatus::continue_chain));
  BOOST_TEST(context.recorded.size() == 1u);
  BOOST_REQUIRE(context.recorded.string("helo.check") != nullptr);
  BOOST_TEST(*context.recorded.string("helo.check") == "ip_mismatch");
  BOOST_TEST(!context.failure.has_value());

  facts.set("helo", std::string("MX.example.org"));
  FakeContext ours(view, services);
  filter->on_phase(ours);
  BOOST_TEST(*ours.recorded.string("helo.check") == "ours");

  facts.set("helo", std::string("mail.example.com"));
  FakeContext fine(view, services);
  filter->on_phase(fine);
  BOOST_TEST(*fine.recorded.string("helo.check") == "ok");
  BOOST_TEST(context.parks + ours.parks + fine.parks == 0);
  BOOST_TEST(services.timers + services.sends == 0);
}

BOOST_AUTO_TEST_CASE(hook_fails_without_a_helo_fact) {
  Facts facts;
  SessionView view;
  view.facts = &facts;
  NoServices services;
  auto filter = make_filter();
  FakeContext context(view, services);
  BOOST_TEST((filter->on_phase(context) == HookStatus::continue_chain));
  BOOST_TEST(context.failure.has_value());
  BOOST_TEST(context.recorded.empty());
}

BOOST_AUTO_TEST_CASE(block_with_any_key_is_refused) {
  std::vector<SettingError> errors;
  BOOST_TEST(build_helo_filter({{"wait_ms", SettingValue{std::int64_t{5}}}}, errors) == nullptr);
  BOOST_REQUIRE(errors.size() == 1u);
  BOOST_TEST(errors[0].key == "wait_ms");
}
