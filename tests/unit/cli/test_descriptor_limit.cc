// RLIMIT_NOFILE at start-up (issue 16 point 3): the soft limit raised to the hard one, and the
// warning text that names what is needed and what is available.
#define BOOST_TEST_MODULE descriptor_limit
#include <boost/test/unit_test.hpp>

#include <sys/resource.h>

#include <string>

#include "config.h"
#include "descriptor_budget.h"
#include "descriptor_limit.h"

using portcullis::DescriptorLimit;

namespace {

portcullis::Config loads(unsigned max_sessions) {
  const std::string text =
      "[server]\nworkers = 2\n[limits]\nmax_sessions = " + std::to_string(max_sessions) +
      "\n[[listen]]\naddress = \"127.0.0.1:2525\"\n"
      "[upstream]\naddress = \"127.0.0.1:10025\"\n";
  portcullis::ConfigResult result = portcullis::load_config_text(text, "t.toml");
  BOOST_REQUIRE(result.config.has_value());
  return *result.config;
}

// Puts this process's limit back as it was when the case ends.
class RestoredLimit {
 public:
  RestoredLimit() { BOOST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved_) == 0); }
  ~RestoredLimit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
  RestoredLimit(const RestoredLimit&) = delete;
  RestoredLimit& operator=(const RestoredLimit&) = delete;
  const rlimit& saved() const { return saved_; }

 private:
  rlimit saved_{};
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_shortfall_names_both_numbers_and_the_parts) {
  const portcullis::Config config = loads(10000);
  const std::uint64_t needed = portcullis::descriptor_budget(config).total();
  const auto text = DescriptorLimit::shortfall(config, 256, "the hard limit");
  BOOST_REQUIRE(text.has_value());
  BOOST_TEST(text->find("10000 sessions need about " + std::to_string(needed) +
                        " file descriptors") != std::string::npos,
             *text);
  BOOST_TEST(
      text->find("but only 256 are available (RLIMIT_NOFILE: the hard limit)") != std::string::npos,
      *text);
  BOOST_TEST(text->find("client sockets 10000") != std::string::npos, *text);
  BOOST_TEST(text->find("LimitNOFILE=") != std::string::npos, *text);
}

BOOST_AUTO_TEST_CASE(enough_descriptors_is_no_warning_one_fewer_is) {
  const portcullis::Config config = loads(100);
  const std::uint64_t needed = portcullis::descriptor_budget(config).total();
  BOOST_TEST(!DescriptorLimit::shortfall(config, needed, "x").has_value());
  BOOST_TEST(DescriptorLimit::shortfall(config, needed - 1, "x").has_value());
}

BOOST_AUTO_TEST_CASE(the_soft_limit_is_raised_to_the_hard_one) {
  RestoredLimit restored;
  const rlim_t hard = restored.saved().rlim_max;
  BOOST_REQUIRE_MESSAGE(hard > 64, "the hard limit of the test process is " << hard);
  rlimit lowered = restored.saved();
  lowered.rlim_cur = 64;
  BOOST_REQUIRE(::setrlimit(RLIMIT_NOFILE, &lowered) == 0);

  const DescriptorLimit::Raised raised = DescriptorLimit::raise_soft_to_hard();
  BOOST_TEST(raised.known);
  BOOST_TEST(raised.error == "");
  BOOST_TEST(raised.before.soft == 64u);
  rlimit now{};
  BOOST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &now) == 0);
  BOOST_TEST(now.rlim_max == hard);  // untouched
  if (hard != RLIM_INFINITY) {
    BOOST_TEST(now.rlim_cur == hard);
    BOOST_TEST(raised.after.soft == static_cast<std::uint64_t>(hard));
  } else {
    BOOST_TEST(now.rlim_cur > 64u);
  }
  const auto again = DescriptorLimit::raise_soft_to_hard();
  BOOST_TEST(again.before.soft == again.after.soft);  // nothing left to raise
}
