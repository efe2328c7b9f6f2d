// The [store] LMDB file of a running portcullis: made in state_dir at start-up, private to the
// user the proxy runs as, and opened again by a proxy started after one killed with SIGKILL.
// The ratelimit filter counts in it: a limit reached before a SIGKILL is still reached after
// the restart. A greylist triplet seen before a SIGTERM is still early after the restart and
// passes after the delay. (That a killed writer loses no committed write is tested at unit
// level too, in tests/unit/store/test_lmdb_store.cc.)
#define BOOST_TEST_MODULE integration_store
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

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

// Messages counted per client address, at most 2 per hour; the third MAIL FROM is refused by
// the policy from the filter's fact. The proxy is then killed, and the next one, on the same
// state_dir, still refuses: the count was in the file, not in the process.
BOOST_AUTO_TEST_CASE(a_rate_limit_counted_in_the_store_survives_a_sigkill) {
  RecordingUpstream upstream;
  TempDir shared("portcullis-store-state");
  const fs::path state_dir = shared.make_subdir("state", 0700, running_as_root() ? "nobody" : "");
  const fs::path policy = shared.path() / "rate.toml";
  std::ofstream(policy) << "[[rule]]\nname = \"too many messages\"\n"
                           "when = \"rate.msgs.exceeded\"\n"
                           "then = \"tempfail 451 4.7.1 Too many messages, retry in "
                           "{rate.msgs.retry_after}s\"\n";
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  options.settings["server"]["state_dir"] = "\"" + state_dir.string() + "\"";
  options.settings["filters"] = {{"chain", "[\"ratelimit\"]"}};
  options.settings["filter.ratelimit"] = {
      {"limit",
       "[{ name = \"msgs\", key = \"client.ip\", counter = \"messages\", "
       "limit = 2, per = 3600 }]"}};
  options.settings["policy"] = {{"files", "[\"" + policy.string() + "\"]"}};

  const auto mail_from = [](const PortcullisFixture& proxy) {
    SmtpTestClient client("127.0.0.1", proxy.port(), {.timeout = 10s});
    BOOST_TEST(client.read_reply().code == 220);
    BOOST_TEST(client.command("EHLO client.example.test").code == 250);
    const SmtpReply reply = client.command("MAIL FROM:<a@example.test>");
    client.command("QUIT");
    return reply;
  };
  {
    PortcullisFixture first(options);
    BOOST_TEST(mail_from(first).code == 250);
    BOOST_TEST(mail_from(first).code == 250);
    const SmtpReply third = mail_from(first);
    BOOST_TEST(third.code == 451, third.describe());
    BOOST_TEST(third.describe().find("Too many messages") != std::string::npos, third.describe());
    BOOST_REQUIRE(::kill(first.pid(), SIGKILL) == 0);
    BOOST_TEST(wait_until([&] { return !first.running(); }, 10s));
  }
  PortcullisFixture second(options);
  const SmtpReply after_restart = mail_from(second);
  BOOST_TEST(after_restart.code == 451, after_restart.describe());
  BOOST_TEST(second.stop().success());
}

// `portcullis store` on the file of a running proxy (LMDB lets two processes share it): the
// triplet the greylist filter wrote at RCPT is listed (decoded), deleted, and then gone for
// the proxy too: the next attempt is new again (a retry before the delay would be early);
// `pass` then lets the next attempt through before the delay is over.
BOOST_AUTO_TEST_CASE(the_store_command_lists_and_deletes_a_running_proxys_triplet) {
  RecordingUpstream upstream;
  TempDir shared("portcullis-store-state");
  const fs::path policy = shared.path() / "greylist.toml";
  std::ofstream(policy) << "[[rule]]\nname = \"greylisted\"\n"
                           "when = \"greylist == 'new' or greylist == 'early'\"\n"
                           "then = \"tempfail 451 4.7.1 Greylisted: {greylist}\"\n";
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  options.settings["filters"] = {{"chain", "[\"greylist\"]"}};
  options.settings["filter.greylist"] = {{"delay", "3600"}};
  options.settings["policy"] = {{"files", "[\"" + policy.string() + "\"]"}};
  PortcullisFixture proxy(options);

  const auto rcpt = [&] {
    SmtpTestClient client("127.0.0.1", proxy.port(), {.timeout = 10s});
    BOOST_TEST(client.read_reply().code == 220);
    BOOST_TEST(client.command("EHLO client.example.test").code == 250);
    BOOST_TEST(client.command("MAIL FROM:<Alice@Example.test>").code == 250);
    const SmtpReply reply = client.command("RCPT TO:<bob@example.net>");
    client.command("QUIT");
    return reply;
  };
  const auto store = [&](std::vector<std::string> arguments) {
    std::vector<std::string> argv{portcullis_binary(), "store", "--config",
                                  proxy.config_path().string()};
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    return run_command(argv, 30s);
  };
  const std::string key = "gl:127.0.0.0/24:alice@example.test:bob@example.net";

  const SmtpReply first = rcpt();
  BOOST_TEST(first.describe().find("Greylisted: new") != std::string::npos, first.describe());
  const CommandResult listed = store({"list", "--prefix", "gl:"});
  BOOST_TEST(listed.status.success(), listed.err);
  BOOST_TEST(listed.out.find(key + " greylist first_seen=") == 0u, listed.out);
  BOOST_TEST(listed.out.find("passed=no") != std::string::npos, listed.out);
  const SmtpReply early = rcpt();
  BOOST_TEST(early.describe().find("Greylisted: early") != std::string::npos, early.describe());

  const CommandResult deleted = store({"delete", key});
  BOOST_TEST(deleted.status.success(), deleted.err);
  BOOST_TEST(deleted.out == "deleted " + key + "\n");
  const CommandResult shown = store({"show", key, "--json"});
  BOOST_TEST(shown.status.exited);
  BOOST_TEST(shown.status.code == 1);
  BOOST_TEST(shown.err.find("no such key") != std::string::npos, shown.err);
  const SmtpReply again = rcpt();
  BOOST_TEST(again.describe().find("Greylisted: new") != std::string::npos, again.describe());

  // `pass` lets the sender through at once, an hour before the delay is over.
  const CommandResult passed = store({"pass", key});
  BOOST_TEST(passed.status.success(), passed.err);
  const SmtpReply through = rcpt();
  BOOST_TEST(through.code == 250, through.describe());
  BOOST_TEST(proxy.stop().success());
}

// Greylisting across a restart: the triplet a proxy wrote at its first RCPT is in the file, so
// a proxy started again on the same state_dir (after a SIGTERM) answers the retry before the
// delay with `early` (not `new`: the delay was not started again) and lets the retry after it
// through.
BOOST_AUTO_TEST_CASE(a_greylist_triplet_survives_a_restart) {
  RecordingUpstream upstream;
  TempDir shared("portcullis-store-state");
  const fs::path state_dir = shared.make_subdir("state", 0700, running_as_root() ? "nobody" : "");
  const fs::path policy = shared.path() / "greylist.toml";
  std::ofstream(policy) << "[[rule]]\nname = \"greylist unknown triplets\"\n"
                           "when = \"greylist == 'new' or greylist == 'early'\"\n"
                           "then = \"tempfail 451 4.7.1 Greylisted: {greylist}, retry in "
                           "{greylist.retry_after}s\"\n";
  // Long enough that the restart and a retry fit in it on a loaded machine; checked below.
  constexpr auto delay = 8s;
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  options.settings["server"]["state_dir"] = "\"" + state_dir.string() + "\"";
  options.settings["filters"] = {{"chain", "[\"greylist\"]"}};
  options.settings["filter.greylist"] = {{"delay", std::to_string(delay.count())}};
  options.settings["policy"] = {{"files", "[\"" + policy.string() + "\"]"}};

  const auto rcpt = [](const PortcullisFixture& proxy) {
    SmtpTestClient client("127.0.0.1", proxy.port(), {.timeout = 10s});
    BOOST_TEST(client.read_reply().code == 220);
    BOOST_TEST(client.command("EHLO client.example.test").code == 250);
    BOOST_TEST(client.command("MAIL FROM:<alice@example.test>").code == 250);
    const SmtpReply reply = client.command("RCPT TO:<bob@example.net>");
    client.command("QUIT");
    return reply;
  };
  using Clock = std::chrono::steady_clock;
  Clock::time_point first_answered;
  {
    PortcullisFixture first(options);
    const SmtpReply reply = rcpt(first);
    first_answered = Clock::now();
    BOOST_TEST(reply.code == 451, reply.describe());
    BOOST_TEST(contains(reply.describe(), "4.7.1 Greylisted: new, retry in 8s"), reply.describe());
    const ExitStatus stopped = first.stop();  // SIGTERM
    BOOST_TEST(stopped.success(), stopped.describe());
  }
  PortcullisFixture second(options);
  const SmtpReply early = rcpt(second);
  // The retry must have been made before the delay was over, or it proves nothing.
  BOOST_TEST_REQUIRE((Clock::now() < first_answered + delay - 1s),
                     "the restart took longer than the greylist delay");
  BOOST_TEST(early.code == 451, early.describe());
  BOOST_TEST(contains(early.describe(), "Greylisted: early"), early.describe());

  std::this_thread::sleep_until(first_answered + delay + 500ms);
  const SmtpReply passed = rcpt(second);
  BOOST_TEST(passed.code == 250, passed.describe() << second.diagnostics());
  BOOST_TEST(second.stop().success());
}
