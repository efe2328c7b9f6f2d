// `portcullis check` on the real binary: besides the file, it checks what `run` needs of the
// machine (issue 12 point 4) — the [server] user, state_dir, the log directories, the files a
// reload re-reads after the privilege drop, and listener addresses that can be bound — each
// miss an error (exit 1) at the key, `FILE:LINE:COLUMN: KEY: TEXT`; what `run` creates itself
// a warning (exit 0). As root (as the suite runs), the user's access is asked of the kernel by
// a child that switched to the user; one case runs the check as nobody, where it is judged
// from permission bits.
#define BOOST_TEST_MODULE integration_check
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/core.h>
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "fixtures.h"
#include "test_support.h"
#include "tls_support.h"

using namespace portcullis::test;
namespace fs = std::filesystem;

namespace {

constexpr const char* kProxyUser = "nobody";

void require_root() {
  // The cases make files only root may read and check as the unprivileged user.
  BOOST_TEST_REQUIRE(running_as_root(),
                     "this case needs root (the integration suite runs as root)");
}

// "LINE:COLUMN" where `needle` starts in `text` (1-based), as the check reports positions.
std::string position_of(const std::string& text, const std::string& needle) {
  const size_t offset = text.find(needle);
  BOOST_TEST_REQUIRE(offset != std::string::npos, needle);
  const size_t line_start = text.rfind('\n', offset);
  const size_t line =
      1 + static_cast<size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
  const size_t column = offset - (line_start == std::string::npos ? 0 : line_start + 1) + 1;
  return fmt::format("{}:{}", line, column);
}

// A listening TCP socket on 127.0.0.1 held by this test process, closed when it dies.
class HeldPort {
 public:
  HeldPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BOOST_TEST_REQUIRE(fd_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_TEST_REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    BOOST_TEST_REQUIRE(::listen(fd_, 1) == 0);
    socklen_t length = sizeof address;
    BOOST_TEST_REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port_ = ntohs(address.sin_port);
  }
  ~HeldPort() { ::close(fd_); }
  HeldPort(const HeldPort&) = delete;
  HeldPort& operator=(const HeldPort&) = delete;
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// A deployment as the README sets one up, in a temporary directory: the state and log
// directories the user's, a certificate and key it can read, a policy file, a free port.
// Each case breaks one thing by changing a value (raw TOML) before writing the file.
class Deployment {
 public:
  Deployment() {
    dir_.chmod(0755);
    state_dir_ = dir_.make_subdir("state", 0700, user());
    log_dir_ = dir_.make_subdir("log", 0750, user());
    etc_dir_ = dir_.make_subdir("etc", 0755);
    certificate_ = make_self_signed_certificate(etc_dir_, "mx", "mx.test");
    policy_path_ = etc_dir_ / "policy.toml";
    write_file(policy_path_,
               "[lists]\nlocal = [\"127.0.0.0/8\"]\n[[rule]]\nname = \"local\"\n"
               "when = \"client.ip in local\"\nthen = \"accept\"\n",
               0644);
    values_ = {
        {"user", toml_quoted(user())},
        {"state_dir", toml_quoted(state_dir_.string())},
        {"listen", toml_quoted(fmt::format("127.0.0.1:{}", free_loopback_port()))},
        {"listen6", toml_quoted(fmt::format("[::1]:{}", free_loopback_port()))},
        {"main", toml_quoted((log_dir_ / "portcullis.log").string())},
        {"rejections", toml_quoted((log_dir_ / "rejections.jsonl").string())},
        {"certificate", toml_quoted(certificate_.certificate.string())},
        {"key", toml_quoted(certificate_.key.string())},
        {"policy", "[" + toml_quoted(policy_path_.string()) + "]"},
        {"metrics", toml_quoted(fmt::format("127.0.0.1:{}", free_loopback_port()))},
        // Fewer than the default 10000: the descriptors 10000 sessions need (about 20200)
        // exceed some machines' hard RLIMIT_NOFILE, a warning these cases do not look for.
        {"max_sessions", "1000"},
    };
  }

  static std::string user() { return running_as_root() ? kProxyUser : current_user(); }
  static std::string current_user() {
    const CommandResult id = run_command({"id", "-un"}, 10s);
    return split_lines(id.out).at(0);
  }

  void set(const std::string& name, const std::string& raw_toml) { values_[name] = raw_toml; }
  void remove(const std::string& name) { values_.erase(name); }

  std::string text() const {
    const auto line = [this](const char* key, const std::string& name) {
      const auto found = values_.find(name);
      return found == values_.end() ? std::string() : fmt::format("{} = {}\n", key, found->second);
    };
    return "[server]\nhostname = \"mx.test\"\n" + line("user", "user") +
           line("state_dir", "state_dir") + "[[listen]]\n" + line("address", "listen") +
           "tls = \"mx\"\n[[listen]]\n" + line("address", "listen6") +
           "[upstream]\naddress = \"127.0.0.1:10025\"\n[limits]\n" +
           line("max_sessions", "max_sessions") + "[log]\n" + line("main", "main") +
           line("rejections", "rejections") + "[tls.mx]\n" + line("certificate", "certificate") +
           line("key", "key") + "[policy]\n" + line("files", "policy") + "[metrics]\n" +
           line("address", "metrics");
  }

  fs::path write() {
    write_file(config_path(), text(), 0644);
    return config_path();
  }

  CommandResult check(const std::vector<std::string>& prefix = {}) {
    const fs::path path = write();
    std::vector<std::string> argv = prefix;
    for (const std::string& part :
         std::vector<std::string>{portcullis_binary(), "check", "--config", path.string()}) {
      argv.push_back(part);
    }
    return run_command(argv, 60s);
  }

  fs::path config_path() const { return etc_dir_ / "portcullis.toml"; }
  const TempDir& dir() const { return dir_; }
  const fs::path& state_dir() const { return state_dir_; }
  const fs::path& log_dir() const { return log_dir_; }
  const fs::path& etc_dir() const { return etc_dir_; }
  const CertificatePair& certificate() const { return certificate_; }
  const fs::path& policy_path() const { return policy_path_; }

 private:
  TempDir dir_{"portcullis-check"};
  fs::path state_dir_;
  fs::path log_dir_;
  fs::path etc_dir_;
  CertificatePair certificate_;
  fs::path policy_path_;
  std::map<std::string, std::string> values_;
};

bool exited_with(const CommandResult& result, int code) {
  return result.status.exited && result.status.code == code;
}

std::string output_of(const CommandResult& result) {
  return "stdout:\n" + result.out + "stderr:\n" + result.err;
}

// The check's message about `key`, with the position of `value` in the file.
std::string message_at(const Deployment& deployment, const std::string& level,
                       const std::string& key, const std::string& value) {
  const std::string text = read_file(deployment.config_path());
  return fmt::format("{}: {}:{}: {}: ", level, deployment.config_path().string(),
                     position_of(text, value), key);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_ready_deployment_passes_without_a_warning) {
  Deployment deployment;
  const CommandResult result = deployment.check();
  BOOST_TEST(exited_with(result, 0), output_of(result));
  BOOST_TEST(contains(result.out, ": ok ("), output_of(result));
  BOOST_TEST(!contains(result.err, "error:"), output_of(result));
  BOOST_TEST(!contains(result.err, "warning:"), output_of(result));
}

BOOST_AUTO_TEST_CASE(an_unknown_user_is_an_error_at_server_user) {
  Deployment deployment;
  deployment.set("user", "\"portcullis-no-such-user\"");
  const CommandResult result = deployment.check();
  BOOST_TEST(exited_with(result, 1), output_of(result));
  BOOST_TEST(contains(result.err, message_at(deployment, "error", "server.user",
                                             "\"portcullis-no-such-user\"") +
                                      "unknown user 'portcullis-no-such-user'"),
             output_of(result));
}

BOOST_AUTO_TEST_CASE(no_user_as_root_is_an_error_because_run_refuses_to_start) {
  require_root();
  Deployment deployment;
  deployment.remove("user");
  const CommandResult result = deployment.check();
  BOOST_TEST(exited_with(result, 1), output_of(result));
  // Not written: the message is about the file as a whole.
  BOOST_TEST(contains(result.err, fmt::format("error: {}: server.user: not set: `run` refuses",
                                              deployment.config_path().string())),
             output_of(result));
}

BOOST_AUTO_TEST_CASE(a_state_dir_that_cannot_be_created_is_an_error) {
  Deployment deployment;
  write_file(deployment.dir() / "a-file", "", 0644);
  const std::string state_dir = (deployment.dir() / "a-file" / "state").string();
  deployment.set("state_dir", toml_quoted(state_dir));
  const CommandResult result = deployment.check();
  BOOST_TEST(exited_with(result, 1), output_of(result));
  BOOST_TEST(contains(result.err,
                      message_at(deployment, "error", "server.state_dir", toml_quoted(state_dir)) +
                          state_dir + " cannot be created: " +
                          (deployment.dir() / "a-file").string() + " is not a directory"),
             output_of(result));
}

BOOST_AUTO_TEST_CASE(a_missing_state_dir_run_creates_is_a_warning) {
  Deployment deployment;
  const std::string state_dir = (deployment.dir() / "new-state").string();
  deployment.set("state_dir", toml_quoted(state_dir));
  const CommandResult result = deployment.check();
  BOOST_TEST(exited_with(result, 0), output_of(result));
  BOOST_TEST(contains(result.err, message_at(deployment, "warning", "server.state_dir",
                                             toml_quoted(state_dir)) +
                                      state_dir + " does not exist: `run` creates it"),
             output_of(result));
  BOOST_TEST(!fs::exists(state_dir), "check must not create it");
}

BOOST_AUTO_TEST_CASE(missing_parents_under_a_umask_the_user_cannot_pass_are_an_error) {
  // systemd's unit sets UMask=0077: create_directories() would make the parents root's 0700.
  require_root();
  Deployment deployment;
  const std::string state_dir = (deployment.dir() / "var" / "lib" / "state").string();
  deployment.set("state_dir", toml_quoted(state_dir));
  deployment.write();
  const mode_t previous = ::umask(077);
  const CommandResult result = run_command(
      {portcullis_binary(), "check", "--config", deployment.config_path().string()}, 60s);
  ::umask(previous);
  BOOST_TEST(exited_with(result, 1), output_of(result));
  BOOST_TEST(contains(result.err,
                      message_at(deployment, "error", "server.state_dir", toml_quoted(state_dir)) +
                          state_dir + " and the directories above it"),
             output_of(result));
  BOOST_TEST(contains(result.err, "mode 0700 (umask 0077), which user 'nobody' cannot enter"),
             output_of(result));
}

BOOST_AUTO_TEST_CASE(a_state_dir_the_user_cannot_reach_is_an_error) {
  require_root();
  Deployment deployment;
  deployment.dir().make_subdir("closed", 0700);
  const std::string state_dir = deployment.dir().make_subdir("closed/state", 0700, "nobody");
  deployment.set("state_dir", toml_quoted(state_dir));
  const CommandResult result = deployment.check();
  BOOST_TEST(exited_with(result, 1), output_of(result));
  BOOST_TEST(contains(result.err,
                      message_at(deployment, "error", "server.state_dir", toml_quoted(state_dir)) +
                          "user 'nobody' cannot reach " + state_dir + ": Permission denied"),
             output_of(result));
}

BOOST_AUTO_TEST_CASE(a_log_directory_the_user_cannot_write_is_an_error) {
  require_root();
  Deployment deployment;
  const fs::path root_only = deployment.dir().make_subdir("root-log", 0700);
  const std::string rejections = (root_only / "rejections.jsonl").string();
  deployment.set("rejections", toml_quoted(rejections));
  const CommandResult result = deployment.check();
  BOOST_TEST(exited_with(result, 1), output_of(result));
  BOOST_TEST(contains(result.err,
                      message_at(deployment, "error", "log.rejections", toml_quoted(rejections)) +
                          "user 'nobody' cannot create files in " + root_only.string() +
                          ": Permission denied"),
             output_of(result));
  BOOST_TEST(contains(result.err, "when the log is rotated (SIGUSR1"), output_of(result));
}

BOOST_AUTO_TEST_CASE(a_missing_log_directory_is_an_error) {
  Deployment deployment;
  const std::string main_log = (deployment.dir() / "no-such-dir" / "portcullis.log").string();
  deployment.set("main", toml_quoted(main_log));
  const CommandResult result = deployment.check();
  BOOST_TEST(exited_with(result, 1), output_of(result));
  BOOST_TEST(
      contains(result.err, message_at(deployment, "error", "log.main", toml_quoted(main_log)) +
                               "the directory " + (deployment.dir() / "no-such-dir").string() +
                               " does not exist"),
      output_of(result));
}

BOOST_AUTO_TEST_CASE(a_key_only_root_can_read_is_an_error_since_a_reload_reads_it_as_the_user) {
  require_root();
  Deployment deployment;
  const fs::path key = deployment.certificate().key;
  BOOST_TEST_REQUIRE(::chown(key.c_str(), 0, 0) == 0);
  BOOST_TEST_REQUIRE(::chmod(key.c_str(), 0600) == 0);
  const CommandResult result = deployment.check();
  BOOST_TEST(exited_with(result, 1), output_of(result));
  BOOST_TEST(contains(result.err,
                      message_at(deployment, "error", "tls.mx.key", toml_quoted(key.string())) +
                          "user 'nobody' cannot read " + key.string() +
                          ": Permission denied; `run` reads it as root at start, but again as "
                          "user 'nobody' on a reload (SIGHUP)"),
             output_of(result));
}

BOOST_AUTO_TEST_CASE(a_list_file_only_root_can_read_fails_the_reload_as_the_user) {
  require_root();
  Deployment deployment;
  const fs::path list = deployment.etc_dir() / "clients.txt";
  write_file(list, "192.0.2.1\n", 0600);
  write_file(deployment.policy_path(),
             fmt::format("[lists]\nclients = \"file:{}\"\n[[rule]]\nname = \"listed\"\n"
                         "when = \"client.ip in clients\"\nthen = \"accept\"\n",
                         list.string()),
             0644);
  const CommandResult result = deployment.check();
  BOOST_TEST(exited_with(result, 1), output_of(result));
  BOOST_TEST(contains(result.err, fmt::format("error: {}: a reload (SIGHUP) as user 'nobody' "
                                              "fails: ",
                                              deployment.config_path().string())),
             output_of(result));
  BOOST_TEST(contains(result.err, list.string()), output_of(result));
}

BOOST_AUTO_TEST_CASE(an_ipv4_mapped_listen_address_is_refused_by_check_as_by_run) {
  Deployment deployment;
  const std::string address = fmt::format("[::ffff:127.0.0.1]:{}", free_loopback_port());
  deployment.set("listen6", toml_quoted(address));
  const CommandResult result = deployment.check();
  BOOST_TEST(exited_with(result, 1), output_of(result));
  BOOST_TEST(contains(result.err,
                      message_at(deployment, "error", "listen[1].address", toml_quoted(address)) +
                          address + " is an IPv4-mapped IPv6 address"),
             output_of(result));
  BOOST_TEST(contains(result.err, "fails with listen_failed"), output_of(result));

  // The same rule as `run`: it refuses the file the same way.
  const CommandResult run =
      run_command({portcullis_binary(), "run", "--config", deployment.config_path().string()}, 60s);
  BOOST_TEST(exited_with(run, 1), output_of(run));
  const std::string log = read_file(deployment.log_dir() / "portcullis.log");
  BOOST_TEST(contains(log, "listen_failed"), log);
  BOOST_TEST(contains(log, "cannot listen on " + address + ": Invalid argument"), log);
}

BOOST_AUTO_TEST_CASE(an_address_another_process_holds_is_an_error_naming_it) {
  Deployment deployment;
  const HeldPort held;
  const std::string address = fmt::format("127.0.0.1:{}", held.port());
  deployment.set("listen", toml_quoted(address));
  const CommandResult result = deployment.check();
  BOOST_TEST(exited_with(result, 1), output_of(result));
  BOOST_TEST(contains(result.err,
                      message_at(deployment, "error", "listen[0].address", toml_quoted(address)) +
                          fmt::format("{} is in use by pid {} (", address, ::getpid())),
             output_of(result));
  BOOST_TEST(contains(result.err, "`run` would fail with listen_failed"), output_of(result));
}

BOOST_AUTO_TEST_CASE(a_metrics_address_in_use_is_an_error) {
  Deployment deployment;
  const HeldPort held;
  const std::string address = fmt::format("127.0.0.1:{}", held.port());
  deployment.set("metrics", toml_quoted(address));
  const CommandResult result = deployment.check();
  BOOST_TEST(exited_with(result, 1), output_of(result));
  BOOST_TEST(contains(result.err,
                      message_at(deployment, "error", "metrics.address", toml_quoted(address)) +
                          fmt::format("{} is in use by pid {} (", address, ::getpid())),
             output_of(result));
  BOOST_TEST(contains(result.err, "`run` would fail with metrics_listen_failed"),
             output_of(result));
}

BOOST_AUTO_TEST_CASE(the_running_proxy_of_the_same_file_only_warns_another_one_is_an_error) {
  // `check` before a reload, while the proxy runs: its own listeners are expected to be taken.
  PortcullisOptions options;
  options.upstream_port = free_loopback_port();  // nothing there: only the listener matters
  options.wait_ready = false;
  PortcullisFixture proxy(options);
  BOOST_TEST_REQUIRE(wait_until_listens(proxy.port(), 10s), proxy.diagnostics());

  const CommandResult same =
      run_command({portcullis_binary(), "check", "--config", proxy.config_path().string()}, 60s);
  BOOST_TEST(exited_with(same, 0), output_of(same));
  BOOST_TEST(contains(same.err, fmt::format("is in use by the running `portcullis run` (pid {}) "
                                            "of this configuration",
                                            proxy.pid())),
             output_of(same));

  const fs::path copy = proxy.config_path().parent_path() / "copy.toml";
  write_file(copy, proxy.config_text(), 0644);
  const CommandResult other =
      run_command({portcullis_binary(), "check", "--config", copy.string()}, 60s);
  BOOST_TEST(exited_with(other, 1), output_of(other));
  BOOST_TEST(contains(other.err, fmt::format("is in use by another `portcullis run` (pid {}, "
                                             "config {})",
                                             proxy.pid(), proxy.config_path().string())),
             output_of(other));
  BOOST_TEST(proxy.running(), proxy.diagnostics());
}

BOOST_AUTO_TEST_CASE(as_another_user_the_check_judges_by_permission_bits_and_skips_low_ports) {
  // A check by hand without root, of a file meant for a root start that switches to daemon:
  // the user's access is read from permission bits, and port 25 is not tried.
  require_root();
  Deployment deployment;
  deployment.set("user", "\"daemon\"");
  ::chown(deployment.state_dir().c_str(), lookup_user("daemon").uid, lookup_user("daemon").gid);
  const fs::path root_only = deployment.dir().make_subdir("root-log", 0700);
  deployment.set("rejections", toml_quoted((root_only / "rejections.jsonl").string()));
  deployment.set("listen", "\"127.0.0.1:25\"");
  deployment.set("listen6", toml_quoted(fmt::format("127.0.0.2:{}", free_loopback_port())));
  // The key is nobody's (0600), so this check, as nobody, loads it as `run` would.
  const CommandResult result =
      deployment.check({"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"});
  BOOST_TEST(exited_with(result, 1), output_of(result));
  BOOST_TEST(contains(result.err, "server.user: this check runs as user 'nobody', not as root"),
             output_of(result));
  BOOST_TEST(contains(result.err,
                      message_at(deployment, "warning", "listen[0].address", "\"127.0.0.1:25\"") +
                          "127.0.0.1:25 not test-bound: ports below"),
             output_of(result));
  BOOST_TEST(contains(result.err,
                      fmt::format("log.rejections: user 'daemon' cannot create files in {}: {}: "
                                  "Permission denied (mode 0700, owner uid 0 gid 0)",
                                  root_only.string(), root_only.string())),
             output_of(result));
  // daemon cannot read nobody's 0600 key: a reload as daemon would fail.
  BOOST_TEST(contains(result.err, "tls.mx.key: user 'daemon' cannot read"), output_of(result));
  BOOST_TEST(!contains(result.err, "state_dir"), output_of(result));
}

namespace {

// The descriptors the check's limits.max_sessions warning says are needed (0 when there is no
// such warning).
unsigned long long descriptors_needed(const std::string& err) {
  const std::string marker = "sessions need about ";
  const size_t at = err.find(marker);
  if (at == std::string::npos) return 0;
  return std::stoull(err.substr(at + marker.size()));
}

CommandResult check_with_nofile(Deployment& deployment, unsigned long long soft,
                                unsigned long long hard) {
  return deployment.check({"prlimit", fmt::format("--nofile={}:{}", soft, hard), "--"});
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_descriptor_limit_below_what_max_sessions_needs_is_a_warning) {
  // Issue 16 point 3: 10000 sessions need a socket and maybe a spill file each, and more; a
  // hard RLIMIT_NOFILE of 256 cannot hold them. A warning (exit 0): `run` starts, and would
  // fail accept() once the descriptors are used up.
  Deployment deployment;
  deployment.set("max_sessions", "10000");
  const CommandResult result = check_with_nofile(deployment, 256, 256);
  BOOST_TEST(exited_with(result, 0), output_of(result));
  BOOST_TEST(contains(result.out, ": ok ("), output_of(result));
  const std::string at = message_at(deployment, "warning", "limits.max_sessions", "10000");
  BOOST_TEST(contains(result.err, at + "10000 sessions need about "), output_of(result));
  const unsigned long long needed = descriptors_needed(result.err);
  BOOST_TEST(needed >= 20000u, output_of(result));  // a socket and a spill file per session
  BOOST_TEST(contains(result.err, fmt::format("need about {} file descriptors", needed)),
             output_of(result));
  BOOST_TEST(contains(result.err, "but only 256 are available (RLIMIT_NOFILE: the hard limit"),
             output_of(result));
  BOOST_TEST(contains(result.err, "LimitNOFILE="), output_of(result));
}

BOOST_AUTO_TEST_CASE(the_descriptor_warning_starts_one_below_the_number_needed) {
  // The number in the warning is the threshold: a hard limit of exactly that many passes.
  // Only the hard limit counts, since `run` raises the soft limit to it.
  // 1500 sessions need about 3200: below the hard limit of this process (without
  // CAP_SYS_RESOURCE prlimit can only lower it; 4096 is the smallest usual hard limit).
  Deployment deployment;
  deployment.set("max_sessions", "1500");
  const unsigned long long needed = descriptors_needed(check_with_nofile(deployment, 256, 256).err);
  BOOST_TEST_REQUIRE(needed > 3000u);
  rlimit own{};
  BOOST_TEST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &own) == 0);
  BOOST_TEST_REQUIRE(own.rlim_max >= needed, "the test needs a hard limit of " << needed);
  const CommandResult enough = check_with_nofile(deployment, 256, needed);
  BOOST_TEST(exited_with(enough, 0), output_of(enough));
  BOOST_TEST(!contains(enough.err, "limits.max_sessions"), output_of(enough));
  BOOST_TEST(!contains(enough.err, "warning:"), output_of(enough));
  const CommandResult short_by_one = check_with_nofile(deployment, needed - 1, needed - 1);
  BOOST_TEST(exited_with(short_by_one, 0), output_of(short_by_one));
  BOOST_TEST(contains(short_by_one.err,
                      fmt::format("1500 sessions need about {} file descriptors", needed)),
             output_of(short_by_one));
  BOOST_TEST(contains(short_by_one.err, fmt::format("but only {} are available", needed - 1)),
             output_of(short_by_one));
}
