// `portcullis store` on an LMDB file written beforehand in a temporary state_dir: list (text
// and JSON, the filters' records decoded — greylist, rate counters, pass cache — expiry in
// RFC 3339 UTC), --prefix and --limit, show (exit 1 for a missing key), delete of one key and
// of a prefix (with its count), pass of a triplet, and the errors: a missing config, a missing
// store file, bad arguments, an unreachable Redis. Also explain's read-only lookups in the same
// file, and on a Redis store (a redis-server of the test's own).
#define BOOST_TEST_MODULE store_command
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "blocking_store.h"
#include "config.h"
#include "explain_command.h"
#include "json_value.h"
#include "lmdb_database.h"
#include "store_command.h"
#include "test_redis_server.h"
#include "test_support.h"

using namespace portcullis;
using namespace std::chrono_literals;

namespace {

// 2026-12-07T12:00:00Z
const StoreClock::time_point kFirstSeen{std::chrono::seconds(1796644800)};
const StoreClock::time_point kFarFuture{std::chrono::seconds(4102444800)};  // 2100-01-01

struct Run {
  int status;
  std::string out;
  std::string err;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

struct StoreFile {
  test::TempDir dir{"portcullis-store-command"};

  StoreFile() {
    test::write_file(dir / "portcullis.toml",
                     "[[listen]]\naddress = \"127.0.0.1:2525\"\n\n"
                     "[server]\nstate_dir = \"" +
                         dir.path().string() +
                         "\"\n\n[upstream]\naddress = "
                         "\"127.0.0.1:10025\"\n");
  }

  std::string config_path() const { return (dir / "portcullis.toml").string(); }

  // Writes the records and closes the file again (one environment per file and process).
  void put(const std::vector<StoreEntry>& entries) {
    ConfigResult result = load_config(config_path());
    BOOST_REQUIRE(result.config);
    LmdbDatabaseOptions options;
    options.path = lmdb_store_path(result.config->server);
    std::string error;
    auto database = LmdbDatabase::open(std::move(options), &error);
    BOOST_REQUIRE_MESSAGE(database, error);
    std::mutex mutex;
    std::condition_variable done;
    std::size_t replies = 0;
    for (const auto& entry : entries) {
      database->submit(
          {entry.key,
           [record = entry.record](const std::optional<StoreRecord>&, StoreClock::time_point) {
             return StoreChange{record, ""};
           },
           [&](StoreReply reply) {
             BOOST_CHECK(reply.status == StoreStatus::ok);
             std::lock_guard lock(mutex);
             ++replies;
             done.notify_all();
           }});
    }
    std::unique_lock lock(mutex);
    done.wait(lock, [&] { return replies == entries.size(); });
  }

  void put_usual() {
    put({{"gl:192.0.2.0/24:a@example.test:b@example.net",
          {"v1 " +
               std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                  kFirstSeen.time_since_epoch())
                                  .count()) +
               " 0",
           kFarFuture}},
         {"gl:198.51.100.0/24:c@example.test:d@example.net", {"v1 1796644800000 1", kFarFuture}},
         {"gla:198.51.100.0/24", {"3", kFarFuture}},
         {"rl:msgs:192.0.2.7", {"gcra1 1796644800000000000", kFarFuture}},
         {"rl:open:192.0.2.7", {"conc1 2", kFarFuture}},
         {"pass:pregreet:192.0.2.7", {"1", kFarFuture}},
         {"zz:other", {std::string("raw\x01value"), kFarFuture}},
         {"gl:203.0.113.0/24:old@example.test:e@example.net",
          {"v1 1000 0", StoreClock::now() - 1h}}});
  }

  Run store(const std::string& action, const std::string& key = "",
            std::optional<std::string> prefix = std::nullopt, bool json = false,
            std::size_t limit = 1000) const {
    StoreCommandOptions options;
    options.config_path = config_path();
    options.action = action;
    options.key = key;
    options.prefix = prefix.value_or("");
    options.prefix_given = prefix.has_value();
    options.json = json;
    options.limit = limit;
    std::ostringstream out;
    std::ostringstream err;
    const int status = run_store(options, out, err);
    return {status, out.str(), err.str()};
  }
};

std::size_t line_count(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

// explain of one transaction from 192.0.2.10 (mail.example.test), a@example.test to `rcpts`,
// with the file's config.
ExplainOptions explain_transaction(const StoreFile& file, std::vector<std::string> rcpts) {
  ExplainOptions options;
  options.config_path = file.config_path();
  options.client = "192.0.2.10";
  options.helo = "mail.example.test";
  options.from = "a@example.test";
  options.from_given = true;
  options.rcpts = std::move(rcpts);
  return options;
}

}  // namespace

BOOST_AUTO_TEST_CASE(list_shows_each_live_entry_decoded_in_key_order) {
  StoreFile file;
  file.put_usual();
  const Run run = file.store("list");
  BOOST_TEST(run.status == 0, run.err);
  BOOST_TEST(line_count(run.out) == 7u, run.out);  // the expired triplet is not listed
  BOOST_TEST(!contains(run.out, "203.0.113.0"), run.out);
  BOOST_TEST(contains(run.out,
                      "gl:192.0.2.0/24:a@example.test:b@example.net greylist "
                      "first_seen=2026-12-07T12:00:00Z passed=no expires=2100-01-01T00:00:00Z"),
             run.out);
  BOOST_TEST(contains(run.out,
                      "gl:198.51.100.0/24:c@example.test:d@example.net greylist "
                      "first_seen=2026-12-07T12:00:00Z passed=yes"),
             run.out);
  BOOST_TEST(contains(run.out, "gla:198.51.100.0/24 greylist-auto-allow passed_triplets=3"),
             run.out);
  BOOST_TEST(contains(run.out, "rl:msgs:192.0.2.7 rate empty_at=2026-12-07T12:00:00Z"), run.out);
  BOOST_TEST(contains(run.out, "rl:open:192.0.2.7 concurrent open_sessions=2"), run.out);
  BOOST_TEST(contains(run.out, "pass:pregreet:192.0.2.7 pass-cache expires=2100-01-01T00:00:00Z"),
             run.out);
  // A record that is not ours: its raw value, escaped.
  BOOST_TEST(
      contains(run.out, "zz:other unknown expires=2100-01-01T00:00:00Z value=\"raw\\u0001value\""),
      run.out);
  BOOST_TEST(run.out.find("gl:192") < run.out.find("gla:"), run.out);
  BOOST_TEST(run.out.find("gla:") < run.out.find("rl:msgs"), run.out);
}

BOOST_AUTO_TEST_CASE(list_json_is_one_array_of_decoded_entries) {
  StoreFile file;
  file.put_usual();
  const Run run = file.store("list", "", std::nullopt, true);
  BOOST_TEST(run.status == 0, run.err);
  std::string error;
  const auto json = test::parse_json(run.out, &error);
  BOOST_REQUIRE_MESSAGE(json, error + ": " + run.out);
  BOOST_REQUIRE(json->is_array());
  BOOST_REQUIRE(json->as_array().size() == 7u);
  const test::JsonValue& triplet = json->as_array()[0];
  BOOST_TEST(triplet.find("key")->as_string() == "gl:192.0.2.0/24:a@example.test:b@example.net");
  BOOST_TEST(triplet.find("kind")->as_string() == "greylist");
  BOOST_TEST(triplet.find("first_seen")->as_string() == "2026-12-07T12:00:00Z");
  BOOST_TEST(triplet.find("passed")->is_bool());
  BOOST_TEST(!triplet.find("passed")->as_bool());
  BOOST_TEST(triplet.find("expires")->as_string() == "2100-01-01T00:00:00Z");
  BOOST_TEST(triplet.find("value")->as_string() == "v1 1796644800000 0");
  const test::JsonValue& count = json->as_array()[2];
  BOOST_TEST(count.find("kind")->as_string() == "greylist-auto-allow");
  BOOST_TEST(count.find("passed_triplets")->as_number() == 3);
  BOOST_TEST(json->as_array()[3].find("kind")->as_string() == "pass-cache");
  const test::JsonValue& unknown = json->as_array()[6];
  BOOST_TEST(unknown.find("kind")->as_string() == "unknown");
  BOOST_TEST(unknown.find("value")->as_string() == std::string("raw\x01value"));
}

BOOST_AUTO_TEST_CASE(list_keeps_to_the_prefix_and_the_limit) {
  StoreFile file;
  file.put_usual();
  const Run greylist = file.store("list", "", "gl:");
  BOOST_TEST(greylist.status == 0, greylist.err);
  BOOST_TEST(line_count(greylist.out) == 2u, greylist.out);
  BOOST_TEST(!contains(greylist.out, "gla:"), greylist.out);
  const Run rates = file.store("list", "", "rl:", true);
  const auto json = test::parse_json(rates.out);
  BOOST_REQUIRE(json);
  BOOST_TEST(json->as_array().size() == 2u);
  const Run none = file.store("list", "", "nothing:", true);
  BOOST_TEST(none.status == 0);
  BOOST_TEST(none.out == "[]\n");
  const Run limited = file.store("list", "", std::nullopt, false, 2);
  BOOST_TEST(limited.status == 0);
  BOOST_TEST(line_count(limited.out) == 2u, limited.out);
  BOOST_TEST(contains(limited.err, "--limit 2"), limited.err);
}

BOOST_AUTO_TEST_CASE(show_gives_one_entry_or_exit_1_for_a_missing_key) {
  StoreFile file;
  file.put_usual();
  const Run shown = file.store("show", "rl:open:192.0.2.7");
  BOOST_TEST(shown.status == 0, shown.err);
  BOOST_TEST(line_count(shown.out) == 1u);
  BOOST_TEST(contains(shown.out, "concurrent open_sessions=2"), shown.out);
  const Run json = file.store("show", "gla:198.51.100.0/24", std::nullopt, true);
  BOOST_TEST(json.status == 0, json.err);
  const auto parsed = test::parse_json(json.out);
  BOOST_REQUIRE(parsed);
  BOOST_TEST(parsed->find("passed_triplets")->as_number() == 3);
  const Run missing = file.store("show", "gl:nothing");
  BOOST_TEST(missing.status == 1);
  BOOST_TEST(missing.out.empty());
  BOOST_TEST(contains(missing.err, "no such key: gl:nothing"), missing.err);
  const Run expired = file.store("show", "gl:203.0.113.0/24:old@example.test:e@example.net");
  BOOST_TEST(expired.status == 1);
  BOOST_TEST(contains(expired.err, "no such key"), expired.err);
}

BOOST_AUTO_TEST_CASE(delete_removes_one_key_and_a_missing_one_is_said) {
  StoreFile file;
  file.put_usual();
  const std::string key = "gl:192.0.2.0/24:a@example.test:b@example.net";
  const Run deleted = file.store("delete", key);
  BOOST_TEST(deleted.status == 0, deleted.err);
  BOOST_TEST(deleted.out == "deleted " + key + "\n");
  BOOST_TEST(file.store("show", key).status == 1);
  BOOST_TEST(file.store("show", "gl:198.51.100.0/24:c@example.test:d@example.net").status == 0);
  const Run again = file.store("delete", key);
  BOOST_TEST(again.status == 1);
  BOOST_TEST(contains(again.err, "no such key"), again.err);
}

BOOST_AUTO_TEST_CASE(delete_prefix_removes_the_matching_keys_and_says_how_many) {
  StoreFile file;
  file.put_usual();
  const Run deleted = file.store("delete", "", "rl:");
  BOOST_TEST(deleted.status == 0, deleted.err);
  BOOST_TEST(deleted.out == "deleted 2 entries with prefix rl:\n");
  const Run left = file.store("list");
  BOOST_TEST(line_count(left.out) == 5u, left.out);
  BOOST_TEST(!contains(left.out, "rl:"), left.out);
  // Bounded by --limit: one at a time, and it says so.
  const Run bounded = file.store("delete", "", "gl:", false, 1);
  BOOST_TEST(bounded.status == 0, bounded.err);
  BOOST_TEST(contains(bounded.out, "deleted 1 entry with prefix gl:"), bounded.out);
  BOOST_TEST(contains(bounded.out, "--limit 1"), bounded.out);
  BOOST_TEST(line_count(file.store("list", "", "gl:").out) == 1u);
}

BOOST_AUTO_TEST_CASE(errors_are_clear) {
  StoreFile file;
  // No store file yet: said, and not created.
  const Run no_file = file.store("list");
  BOOST_TEST(no_file.status == 1);
  BOOST_TEST(contains(no_file.err, "no store at"), no_file.err);
  BOOST_TEST(!std::filesystem::exists(file.dir / "store.mdb"));

  StoreCommandOptions options;
  options.config_path = (file.dir / "missing.toml").string();
  options.action = "list";
  std::ostringstream out;
  std::ostringstream err;
  BOOST_TEST(run_store(options, out, err) == 1);
  BOOST_TEST(contains(err.str(), "missing.toml"), err.str());

  BOOST_TEST(file.store("show").status == 2);
  BOOST_TEST(file.store("delete").status == 2);
  const Run empty_prefix = file.store("delete", "", "");
  BOOST_TEST(empty_prefix.status == 2);
  BOOST_TEST(contains(empty_prefix.err, "non-empty prefix"), empty_prefix.err);
  BOOST_TEST(file.store("delete", "k", "p").status == 2);
  BOOST_TEST(file.store("list", "", std::nullopt, false, 0).status == 2);
}

// [store] backend = "redis" with nothing listening at [store.redis] address: exit 1 at once
// (a refused connect), with the reason. (The command on a real Redis is tested with running
// nodes in tests/integration/test_redis_store.cc.)
BOOST_AUTO_TEST_CASE(a_redis_that_cannot_be_reached_fails_with_the_reason) {
  StoreFile file;
  const std::string address = "127.0.0.1:" + std::to_string(test::free_loopback_port());
  test::write_file(file.dir / "portcullis.toml",
                   "[[listen]]\naddress = \"127.0.0.1:2525\"\n\n[upstream]\naddress = "
                   "\"127.0.0.1:10025\"\n\n[store]\nbackend = \"redis\"\n\n[store.redis]\n"
                   "address = \"" +
                       address + "\"\n");
  const auto start = std::chrono::steady_clock::now();
  const Run run = file.store("list");
  BOOST_TEST(run.status == 1);
  BOOST_TEST(contains(run.err, "cannot list the store: connect to " + address + " failed"),
             run.err);
  BOOST_TEST(run.out.empty(), run.out);
  BOOST_TEST((std::chrono::steady_clock::now() - start < 5s));
  const Run shown = file.store("show", "gl:x");
  BOOST_TEST(shown.status == 1);
  BOOST_TEST(contains(shown.err, "cannot read gl:x: connect to"), shown.err);
}

BOOST_AUTO_TEST_CASE(pass_marks_a_triplet_as_passed_and_keeps_its_expiry) {
  StoreFile file;
  file.put_usual();
  const std::string key = "gl:192.0.2.0/24:a@example.test:b@example.net";
  const Run passed = file.store("pass", key);
  BOOST_TEST(passed.status == 0, passed.err);
  BOOST_TEST(passed.out == "passed " + key + "\n");
  const Run shown = file.store("show", key, std::nullopt, true);
  const auto json = test::parse_json(shown.out);
  BOOST_REQUIRE(json);
  BOOST_TEST(json->find("passed")->as_bool());
  BOOST_TEST(json->find("first_seen")->as_string() == "2026-12-07T12:00:00Z");
  BOOST_TEST(json->find("expires")->as_string() == "2100-01-01T00:00:00Z");

  const Run missing = file.store("pass", "gl:nothing");
  BOOST_TEST(missing.status == 1);
  BOOST_TEST(contains(missing.err, "no such key"), missing.err);
  const Run counter = file.store("pass", "rl:open:192.0.2.7");
  BOOST_TEST(counter.status == 1);
  BOOST_TEST(contains(counter.err, "greylist triplet"), counter.err);
  BOOST_TEST(contains(file.store("show", "rl:open:192.0.2.7").out, "open_sessions=2"));
}

// explain reads [store] read-only (issue 15): it says which keys it looked up and what the
// live update would have decided, and writes nothing: a triplet it finds is left as it was,
// and one it does not find is not created.
BOOST_AUTO_TEST_CASE(explain_looks_triplets_up_without_writing) {
  StoreFile file;
  test::write_file(file.dir / "policy.toml",
                   "[[rule]]\nname = \"greylisted\"\n"
                   "when = \"greylist == 'new' or greylist == 'early'\"\n"
                   "then = \"tempfail 451 4.7.1 Greylisted\"\n");
  test::write_file(file.dir / "portcullis.toml",
                   "[[listen]]\naddress = \"127.0.0.1:2525\"\n\n[server]\nstate_dir = \"" +
                       file.dir.path().string() +
                       "\"\n\n[upstream]\naddress = \"127.0.0.1:10025\"\n\n[filters]\nchain = "
                       "[\"greylist\"]\n\n[policy]\nfiles = [\"policy.toml\"]\n");
  const auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(StoreClock::now().time_since_epoch())
          .count();
  // Seen 1000 s ago: the delay (300 s) is over, so a retry now passes.
  const std::string seen = "v1 " + std::to_string(now_ms - 1'000'000) + " 0";
  const std::string key = "gl:192.0.2.0/24:a@example.test:b@example.net";
  file.put({{key, {seen, StoreClock::now() + 24h}}});

  const ExplainOptions options = explain_transaction(file, {"b@example.net", "c@example.net"});
  std::ostringstream out;
  std::ostringstream err;
  BOOST_TEST(run_explain(options, out, err) == 0, err.str());
  const std::string trace = out.str();
  BOOST_TEST(contains(trace, "store: " + key + ": \"" + seen + "\""), trace);
  BOOST_TEST(contains(trace, "an update now: \"passed 0 first\", not written"), trace);
  BOOST_TEST(contains(trace,
                      "store: gl:192.0.2.0/24:a@example.test:c@example.net: absent; an "
                      "update now: \"new 300\", not written"),
             trace);
  BOOST_TEST(contains(trace, "451 4.7.1 Greylisted"), trace);

  const Run kept = file.store("show", key, std::nullopt, true);
  BOOST_TEST(kept.status == 0, kept.err);
  const auto json = test::parse_json(kept.out);
  BOOST_REQUIRE(json);
  BOOST_TEST(json->find("value")->as_string() == seen);
  BOOST_TEST(file.store("show", "gl:192.0.2.0/24:a@example.test:c@example.net").status == 1);
  BOOST_TEST(line_count(file.store("list").out) == 1u);
}

BOOST_AUTO_TEST_CASE(explain_without_a_store_file_finds_every_key_absent_and_makes_no_file) {
  StoreFile file;
  test::write_file(file.dir / "portcullis.toml",
                   "[[listen]]\naddress = \"127.0.0.1:2525\"\n\n[server]\nstate_dir = \"" +
                       file.dir.path().string() +
                       "\"\n\n[upstream]\naddress = \"127.0.0.1:10025\"\n\n[filters]\nchain = "
                       "[\"greylist\"]\n");
  const ExplainOptions options = explain_transaction(file, {"b@example.net"});
  std::ostringstream out;
  std::ostringstream err;
  BOOST_TEST(run_explain(options, out, err) == 0, err.str());
  BOOST_TEST(contains(out.str(), "store: gl:192.0.2.0/24:a@example.test:b@example.net: absent"),
             out.str());
  BOOST_TEST(!std::filesystem::exists(file.dir / "store.mdb"));
}

// [store] backend = "redis": explain asks Redis (never the LMDB file) and writes nothing there
// either: the triplet it finds keeps its value, the one it does not find is not created. With
// Redis unreachable, each lookup's note says so and the filter's failure mode applies.
BOOST_AUTO_TEST_CASE(explain_reads_a_redis_store_without_writing) {
  test::TestRedisServer redis;
  StoreFile file;
  test::write_file(file.dir / "policy.toml",
                   "[[rule]]\nname = \"greylisted\"\n"
                   "when = \"greylist == 'new' or greylist == 'early'\"\n"
                   "then = \"tempfail 451 4.7.1 Greylisted\"\n");
  const auto write_config = [&](const std::string& address) {
    test::write_file(file.dir / "portcullis.toml",
                     "[[listen]]\naddress = \"127.0.0.1:2525\"\n\n[server]\nstate_dir = \"" +
                         file.dir.path().string() +
                         "\"\n\n[upstream]\naddress = \"127.0.0.1:10025\"\n\n[store]\nbackend "
                         "= \"redis\"\n\n[store.redis]\naddress = \"" +
                         address +
                         "\"\nprefix = \"ex:\"\n\n[filters]\nchain = [\"greylist\"]\n\n"
                         "[policy]\nfiles = [\"policy.toml\"]\n");
  };
  write_config(redis.address());
  ConfigResult loaded = load_config(file.config_path());
  BOOST_REQUIRE(loaded.config);
  std::string error;
  auto store = BlockingStore::open(*loaded.config, &error);
  BOOST_REQUIRE_MESSAGE(store, error);
  const auto now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(StoreClock::now().time_since_epoch())
          .count();
  const std::string seen = "v1 " + std::to_string(now_ms - 1'000'000) + " 0";
  const std::string key = "gl:192.0.2.0/24:a@example.test:b@example.net";
  const std::string other = "gl:192.0.2.0/24:a@example.test:c@example.net";
  const StoreReply put =
      store->update(key, [&](const std::optional<StoreRecord>&, StoreClock::time_point) {
        return StoreChange{StoreRecord{seen, StoreClock::now() + 24h}, ""};
      });
  BOOST_REQUIRE(put.status == StoreStatus::ok);

  const ExplainOptions options = explain_transaction(file, {"b@example.net", "c@example.net"});
  std::ostringstream out;
  std::ostringstream err;
  BOOST_TEST(run_explain(options, out, err) == 0, err.str());
  const std::string trace = out.str();
  BOOST_TEST(contains(trace, "store: " + key + ": \"" + seen + "\""), trace);
  BOOST_TEST(contains(trace, "an update now: \"passed 0 first\", not written"), trace);
  BOOST_TEST(
      contains(trace, "store: " + other + ": absent; an update now: \"new 300\", not written"),
      trace);
  BOOST_TEST(err.str().empty(), err.str());  // the Redis connection's log lines stay quiet
  BOOST_TEST(!std::filesystem::exists(file.dir / "store.mdb"));

  const StoreReply kept = store->get(key);
  BOOST_REQUIRE(kept.status == StoreStatus::ok);
  BOOST_REQUIRE(kept.record.has_value());
  BOOST_TEST(kept.record->value == seen);
  const StoreReply absent = store->get(other);
  BOOST_TEST((absent.status == StoreStatus::ok && !absent.record.has_value()));

  // Nothing listens there: the lookups fail, the greylist filter's failure mode (tempfail)
  // decides, and explain still finishes.
  write_config("127.0.0.1:" + std::to_string(test::free_loopback_port()));
  std::ostringstream down_out;
  std::ostringstream down_err;
  BOOST_TEST(run_explain(options, down_out, down_err) == 0, down_err.str());
  // (The filter's first lookup, the client's auto-allow entry, is the one that fails.)
  BOOST_TEST(contains(down_out.str(), "store: gla:192.0.2.0/24: connect to"), down_out.str());
  BOOST_TEST(contains(down_out.str(), "tempfail 451 4.3.0"), down_out.str());
}
