// The descriptor arithmetic of `run` and `check` (issue 16 point 3): what a configuration
// needs, by what holds the descriptors, and the libunbound defaults it counts on.
#define BOOST_TEST_MODULE descriptor_budget
#include <boost/test/unit_test.hpp>

#include <unbound.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "config.h"
#include "descriptor_budget.h"

using portcullis::Config;
using portcullis::descriptor_budget;
using portcullis::DescriptorBudget;

namespace {

// [server] with `server`, then `rest` (other tables), then what every config needs: a
// listener and [upstream] (with `upstream` added to it).
Config loads(const std::string& server, const std::string& rest = "",
             const std::string& upstream = "") {
  const std::string text = "[server]\n" + server + "\n" + rest +
                           "\n[[listen]]\naddress = \"127.0.0.1:2525\"\n"
                           "[upstream]\naddress = \"127.0.0.1:10025\"\n" +
                           upstream + "\n";
  portcullis::ConfigResult result = portcullis::load_config_text(text, "t.toml");
  BOOST_REQUIRE_MESSAGE(
      result.config.has_value(),
      "unexpected errors, first: " << (result.errors.empty() ? "" : result.errors[0].to_string()));
  return *result.config;
}

std::uint64_t sum_of_parts(const DescriptorBudget& budget) {
  return budget.client_sockets + budget.spill_files + budget.upstream_connections +
         budget.dns_sockets + budget.listeners + budget.files + budget.process;
}

std::string unbound_option(ub_ctx* context, const char* name) {
  char* value = nullptr;
  BOOST_REQUIRE_EQUAL(ub_ctx_get_option(context, name, &value), 0);
  const std::string text = value ? value : "";
  std::free(value);
  return text;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_documented_example_needs_20184) {
  // docs/configuration.md, [limits] "File descriptors": the defaults with two workers.
  const DescriptorBudget budget = descriptor_budget(loads("workers = 2"));
  BOOST_TEST(budget.client_sockets == 10000u);
  BOOST_TEST(budget.spill_files == 10000u);
  BOOST_TEST(budget.upstream_connections == 101u);
  BOOST_TEST(budget.dns_sockets == 36u);
  BOOST_TEST(budget.listeners == 1u);
  BOOST_TEST(budget.files == 3u);
  BOOST_TEST(budget.process == 43u);
  BOOST_TEST(budget.total() == 20184u);
  BOOST_TEST(budget.total() == sum_of_parts(budget));
}

BOOST_AUTO_TEST_CASE(each_session_counts_a_socket_and_a_spill_file) {
  const auto small = descriptor_budget(loads("workers = 1", "[limits]\nmax_sessions = 10"));
  const auto large = descriptor_budget(loads("workers = 1", "[limits]\nmax_sessions = 1010"));
  BOOST_TEST(large.total() - small.total() == 2000u);
  BOOST_TEST(large.client_sockets == 1010u);
  BOOST_TEST(large.spill_files == 1010u);
}

BOOST_AUTO_TEST_CASE(upstream_connections_count_once_each_not_per_session) {
  const auto base = descriptor_budget(loads("workers = 1"));
  const auto more = descriptor_budget(loads("workers = 1", "", "max_connections = 150"));
  BOOST_TEST(base.upstream_connections == 101u);  // max_connections 100 and the probe
  BOOST_TEST(more.upstream_connections == 151u);
  BOOST_TEST(more.total() - base.total() == 50u);
}

BOOST_AUTO_TEST_CASE(every_worker_adds_its_dns_sockets_and_event_loop) {
  const auto one = descriptor_budget(loads("workers = 1"));
  const auto four = descriptor_budget(loads("workers = 4"));
  BOOST_TEST(four.dns_sockets - one.dns_sockets ==
             3 * (portcullis::unbound_outgoing_range + portcullis::unbound_outgoing_num_tcp));
  BOOST_TEST(four.process - one.process == 3u * 2u);  // epoll and eventfd per loop
  BOOST_TEST(four.total() - one.total() == 3u * (18u + 2u));
}

BOOST_AUTO_TEST_CASE(listeners_metrics_logs_and_the_store_count) {
  const auto base = descriptor_budget(loads("workers = 1"));
  const auto busy =
      descriptor_budget(loads("workers = 1",
                              "[log]\nmain = \"/var/log/portcullis/main.log\"\n"
                              "rejections = \"/var/log/portcullis/rejections.jsonl\"\n"
                              "[metrics]\naddress = \"127.0.0.1:9187\"\n"
                              "[[listen]]\naddress = \"127.0.0.1:2526\"\n"));
  BOOST_TEST(busy.listeners - base.listeners == 1u + 5u);  // a listener, metrics and scrapes
  BOOST_TEST(busy.files - base.files == 2u);               // the two log files
  const auto redis = descriptor_budget(loads("workers = 3", "[store]\nbackend = \"redis\"\n"));
  const auto lmdb = descriptor_budget(loads("workers = 3"));
  BOOST_TEST(redis.files == 3u);  // a connection per worker
  BOOST_TEST(lmdb.files == 3u);   // data, lock, meta writes
  const auto syslog = descriptor_budget(loads("workers = 1", "[log]\nmain = \"syslog\"\n"));
  BOOST_TEST(syslog.files - base.files == 1u);
}

BOOST_AUTO_TEST_CASE(the_breakdown_names_every_part) {
  const auto budget = descriptor_budget(loads("workers = 2"));
  BOOST_TEST(budget.breakdown() ==
             "client sockets 10000, spill files 10000, upstream 101, DNS 36, listeners 1, "
             "logs and store 3, process 43");
}

BOOST_AUTO_TEST_CASE(the_unbound_constants_are_the_library_defaults) {
  // A library context gets these from config_create_forlib; should a libunbound release
  // change them, the estimate must follow.
  std::unique_ptr<ub_ctx, decltype(&ub_ctx_delete)> context(ub_ctx_create(), &ub_ctx_delete);
  BOOST_REQUIRE(context);
  BOOST_TEST(unbound_option(context.get(), "outgoing-range") ==
             std::to_string(portcullis::unbound_outgoing_range));
  BOOST_TEST(unbound_option(context.get(), "outgoing-num-tcp") ==
             std::to_string(portcullis::unbound_outgoing_num_tcp));
}
