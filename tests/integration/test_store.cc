// The [store] LMDB file of a running portcullis: made in state_dir at start-up, private to the
// user the proxy runs as, and opened again by a proxy started after one killed with SIGKILL.
// (That a killed writer loses no committed write is tested at unit level, in
// tests/unit/store/test_lmdb_store.cc: no filter writes to the store yet.)
#define BOOST_TEST_MODULE integration_store
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <memory>
#include <string>

#include "fixtures.h"
#include "recording_upstream.h"
#include "test_support.h"

using namespace portcullis::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

int greeting_code(const PortcullisFixture& proxy) {
  SmtpTestClient client("127.0.0.1", proxy.port(), {.timeout = 10s});
  const int code = client.read_reply().code;
  client.command("QUIT");
  return code;
}

}  // namespace

BOOST_AUTO_TEST_CASE(the_store_file_is_made_in_state_dir_and_private) {
  RecordingUpstream upstream;
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  PortcullisFixture proxy(options);
  for (const char* name : {"store.mdb", "store.mdb-lock"}) {
    BOOST_TEST_CONTEXT(name) {
      struct stat info {};
      BOOST_REQUIRE(::stat((proxy.state_dir() / name).c_str(), &info) == 0);
      BOOST_TEST((info.st_mode & 0777) == 0600u);
      if (running_as_root()) BOOST_TEST(info.st_uid == lookup_user("nobody").uid);
    }
  }
  BOOST_TEST(greeting_code(proxy) == 220);
  BOOST_TEST(proxy.stop().success());
}

BOOST_AUTO_TEST_CASE(a_proxy_killed_with_sigkill_leaves_a_store_the_next_one_opens) {
  RecordingUpstream upstream;
  TempDir shared("portcullis-store-state");
  const fs::path state_dir = shared.make_subdir("state", 0700, running_as_root() ? "nobody" : "");
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  options.settings["server"]["state_dir"] = "\"" + state_dir.string() + "\"";
  options.settings["store"]["lmdb_map_size"] = "4194304";
  {
    PortcullisFixture first(options);
    BOOST_TEST(greeting_code(first) == 220);
    BOOST_REQUIRE(::kill(first.pid(), SIGKILL) == 0);
    BOOST_TEST(wait_until([&] { return !first.running(); }, 10s));
  }
  BOOST_TEST(fs::exists(state_dir / "store.mdb"));
  PortcullisFixture second(options);
  BOOST_TEST(greeting_code(second) == 220);
  BOOST_TEST(second.events_named("store_open_failed").empty());
  BOOST_TEST(second.running(), second.diagnostics());
  BOOST_TEST(second.stop().success());
}
