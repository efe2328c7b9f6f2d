// `portcullis run` and RLIMIT_NOFILE (issue 16 point 3): at start the soft limit is raised to
// the hard one, as read back from /proc/PID/limits of the running proxy, and a hard limit below
// what limits.max_sessions needs is logged (descriptor_limit_low) with both numbers. The proxy
// is started under `prlimit --nofile=SOFT:HARD` (util-linux), which execs it. `check`'s
// warning: integration/check.
#define BOOST_TEST_MODULE integration_descriptors
#include <sys/resource.h>

#include <fmt/core.h>
#include <boost/test/unit_test.hpp>
#include <sstream>
#include <string>

#include "fixtures.h"
#include "recording_upstream.h"
#include "test_support.h"

using namespace portcullis::test;

namespace {

struct ProcessNofile {
  std::string soft;
  std::string hard;
};

// "Max open files  SOFT  HARD  files" of /proc/PID/limits.
ProcessNofile nofile_of(pid_t pid) {
  const std::string limits = read_file(fmt::format("/proc/{}/limits", pid));
  for (const std::string& line : split_lines(limits)) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream words(line.substr(std::string("Max open files").size()));
    ProcessNofile nofile;
    words >> nofile.soft >> nofile.hard;
    return nofile;
  }
  BOOST_FAIL("no \"Max open files\" line in /proc/" << pid << "/limits:\n" << limits);
  return {};
}

PortcullisOptions options_with(uint16_t upstream_port, unsigned max_sessions, rlim_t soft,
                               rlim_t hard) {
  PortcullisOptions options;
  options.upstream_port = upstream_port;
  options.settings["limits"]["max_sessions"] = std::to_string(max_sessions);
  options.command_prefix = {"prlimit", fmt::format("--nofile={}:{}", soft, hard), "--"};
  return options;
}

}  // namespace

BOOST_AUTO_TEST_CASE(run_raises_the_soft_limit_to_the_hard_one) {
  RecordingUpstream upstream;
  rlimit current{};
  BOOST_TEST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &current) == 0);
  const rlim_t hard = current.rlim_max;
  BOOST_TEST_REQUIRE(hard != RLIM_INFINITY);
  BOOST_TEST_REQUIRE(hard > 1024u, "the test needs a hard limit above 1024, it is " << hard);
  // 50 sessions need a few hundred descriptors: more than 128, well below the hard limit.
  PortcullisFixture proxy(options_with(upstream.port(), 50, 128, hard));

  const ProcessNofile nofile = nofile_of(proxy.pid());
  BOOST_TEST(nofile.soft == std::to_string(hard), proxy.diagnostics());
  BOOST_TEST(nofile.hard == std::to_string(hard), proxy.diagnostics());
  const auto raised = proxy.events_named("descriptor_limit_raised");
  BOOST_TEST_REQUIRE(raised.size() == 1u, proxy.log_text());
  BOOST_TEST(raised[0].field("from") == "128");
  BOOST_TEST(raised[0].field("to") == std::to_string(hard));
  BOOST_TEST(proxy.events_named("descriptor_limit_low").empty(), proxy.log_text());
}

BOOST_AUTO_TEST_CASE(run_logs_a_hard_limit_below_what_max_sessions_needs) {
  RecordingUpstream upstream;
  PortcullisFixture proxy(options_with(upstream.port(), 10000, 256, 256));

  const ProcessNofile nofile = nofile_of(proxy.pid());
  BOOST_TEST(nofile.soft == "256");
  BOOST_TEST(nofile.hard == "256");
  BOOST_TEST(proxy.events_named("descriptor_limit_raised").empty(), proxy.log_text());
  const auto low = proxy.events_named("descriptor_limit_low");
  BOOST_TEST_REQUIRE(low.size() == 1u, proxy.log_text());
  BOOST_TEST(low[0].field("available") == "256");
  BOOST_TEST(low[0].field("max_sessions") == "10000");
  const std::string needed = low[0].field("needed");
  BOOST_TEST(std::stoull(needed) >= 20000u, low[0].raw);  // a socket and a spill file each
  BOOST_TEST(
      low[0].field("detail").find("10000 sessions need about " + needed) != std::string::npos,
      low[0].raw);
  // It still serves: the warning is about 10000 sessions, not one.
  SmtpTestClient client("127.0.0.1", proxy.port());
  BOOST_TEST(client.read_reply().code == 220);
}
