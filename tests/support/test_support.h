// Test support for integration tests: free loopback ports, child processes stopped by pid,
// temporary directories, and a blocking SMTP test client. Black-box on purpose: nothing here
// uses the proxy's own code, so a bug in the proxy cannot hide in a shared helper.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace portcullis::test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

// ---- environment (set by tests/meson.build) ----

// The value of `name`; throws std::runtime_error naming the variable when it is unset.
std::string required_env(const char* name);
std::filesystem::path corpora_dir();  // $PORTCULLIS_CORPORA
std::filesystem::path source_root();  // $PORTCULLIS_SOURCE_ROOT
std::string portcullis_binary();      // $PORTCULLIS_BINARY
bool running_as_root();

// ---- waiting ----

// Polls `done` until it returns true or `timeout` passes; returns its last result.
bool wait_until(const std::function<bool()>& done, Millis timeout, Millis interval = 20ms);
// Milliseconds since `since` (a plain number, so Boost.Test can print it).
long long elapsed_ms(Clock::time_point since);

// ---- ports (loopback only) ----

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
uint16_t free_loopback_port();
// One connect attempt to host:port (numeric IPv4/IPv6), closed at once.
bool port_accepts(const std::string& host, uint16_t port);
// Connects every 50 ms until one succeeds (true) or `timeout` passes (false).
bool wait_until_accepts(const std::string& host, uint16_t port, Millis timeout);
// True when a socket listens on `port` (any local address), read from /proc/net/tcp{,6};
// unlike a connect, this leaves no session in the peer's logs.
bool port_listens(uint16_t port);
bool wait_until_listens(uint16_t port, Millis timeout);

// ---- files and bytes ----

std::string read_file(const std::filesystem::path& path);  // binary; "" when unreadable
void write_file(const std::filesystem::path& path, std::string_view content, mode_t mode = 0644);
std::string hex_decode(std::string_view hex);  // throws std::invalid_argument on bad input
// Bytes shown for a failure message: printable ASCII as is, the rest as \r \n \xHH; cut to
// `max_bytes` of input with "..." appended.
std::string printable(std::string_view bytes, size_t max_bytes = 400);
size_t count_occurrences(std::string_view haystack, std::string_view needle);
bool contains(std::string_view haystack, std::string_view needle);
bool starts_with_nocase(std::string_view text, std::string_view prefix);
std::vector<std::string> split_lines(std::string_view text);  // on LF; a CR before LF dropped

// ---- policy files ----

// `policy_text` without its [[rule]] named `rule_name`: from that rule's "[[rule]]" line to
// the next "[[rule]]" line or the end. Throws std::runtime_error when there is no such rule.
// For tests that run policies/default.toml without a filter one of its rules needs.
std::string without_policy_rule(std::string_view policy_text, std::string_view rule_name);

// ---- users ----

struct UserIds {
  uid_t uid;
  gid_t gid;
};
UserIds lookup_user(const std::string& name);  // throws when unknown
void chown_to_user(const std::filesystem::path& path, const std::string& user);

// ---- temporary directory ----

// A fresh directory under /tmp, removed with everything in it when the object dies.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "portcullis-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  void chmod(mode_t mode) const;
  void chown_to(const std::string& user) const;
  // Creates path()/name with `mode`, owned by `owner` when given (and running as root).
  std::filesystem::path make_subdir(const std::string& name, mode_t mode = 0755,
                                    const std::string& owner = "") const;

 private:
  std::filesystem::path path_;
};

// ---- child processes ----

struct ExitStatus {
  bool exited = false;  // normal exit: `code` is valid
  int code = -1;
  int signal = 0;  // killed by this signal
  bool success() const { return exited && code == 0; }
  std::string describe() const;
};

// A child process started with fork/exec, stdout/stderr to files, stopped by its pid only.
// The destructor stops it (SIGTERM, then SIGKILL after the grace period), so no test leaves
// a child behind.
class ChildProcess {
 public:
  struct Options {
    std::vector<std::string> argv;       // argv[0]: a path, or a name looked up in PATH
    std::vector<std::string> extra_env;  // "NAME=value", added to this process's environment
    std::filesystem::path stdout_file;   // empty: /dev/null
    std::filesystem::path stderr_file;   // empty: /dev/null
  };

  explicit ChildProcess(Options options);  // throws std::runtime_error when it cannot start
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // False once it has exited (its status is then kept).
  bool running();
  std::optional<ExitStatus> exit_status() const { return status_; }
  // Waits up to `timeout` for it to exit by itself.
  std::optional<ExitStatus> wait_for(Millis timeout);
  void send_signal(int signal_number);
  // SIGTERM, wait up to `grace`, then SIGKILL; returns how it ended.
  ExitStatus stop(Millis grace = 5s);
  const Options& options() const { return options_; }

 private:
  bool reap(bool block);

  Options options_;
  pid_t pid_ = -1;
  std::optional<ExitStatus> status_;
};

struct CommandResult {
  ExitStatus status;
  std::string out;
  std::string err;
  bool timed_out = false;
};

// Runs argv to completion (killed after `timeout`), capturing stdout and stderr.
CommandResult run_command(const std::vector<std::string>& argv, Millis timeout,
                          const std::vector<std::string>& extra_env = {});

// ---- SMTP test client ----

struct SmtpReply {
  int code = 0;                    // 0: no reply (closed, timed out, or not SMTP: see `raw`)
  std::vector<std::string> lines;  // text after "NNN-" / "NNN " of each line
  std::string raw;                 // the reply as received, line ends included
  bool closed = false;             // the connection ended before a complete reply

  // "X.Y.Z" at the start of the first line, or "".
  std::string enhanced() const;
  std::string text() const;  // the lines joined with '\n'
  bool positive_completion() const { return code >= 200 && code < 300; }
  std::string describe() const;  // for failure messages
};

// A blocking TCP client with timeouts, for driving SMTP servers byte by byte.
class SmtpTestClient {
 public:
  struct Options {
    std::string source_address = {};  // bind to this local address first (e.g. "127.0.0.2")
    Millis timeout = 10s;             // default for reads
  };

  // Connects to host:port (numeric); throws std::runtime_error on failure.
  SmtpTestClient(const std::string& host, uint16_t port, Options options);
  SmtpTestClient(const std::string& host, uint16_t port) : SmtpTestClient(host, port, Options{}) {}
  ~SmtpTestClient();
  SmtpTestClient(const SmtpTestClient&) = delete;
  SmtpTestClient& operator=(const SmtpTestClient&) = delete;
  SmtpTestClient(SmtpTestClient&& other) noexcept;
  SmtpTestClient& operator=(SmtpTestClient&& other) noexcept;

  // Writes all bytes; false when the peer is gone.
  bool send(std::string_view bytes);
  bool send_line(std::string_view line) { return send(std::string(line) + "\r\n"); }
  // One (multi-line) reply; code 0 and closed=true when the peer closed first.
  SmtpReply read_reply();
  SmtpReply read_reply(Millis timeout);
  SmtpReply command(std::string_view line) {
    send_line(line);
    return read_reply();
  }
  // Everything until the peer closes (or `timeout`).
  std::string read_until_close(Millis timeout);
  // True when the peer closes within `timeout`; bytes that arrive meanwhile stay buffered.
  bool wait_closed(Millis timeout);
  bool peer_closed() const { return peer_closed_; }
  // True when `timeout` passes with no byte and no close.
  bool silent_for(Millis timeout);
  const std::string& buffered() const { return buffer_; }

  std::string local_address() const;
  uint16_t local_port() const;
  void shutdown_write();
  void close();

 private:
  // Reads more into buffer_ until `deadline`; false on timeout or close.
  bool fill(Clock::time_point deadline);

  int fd_ = -1;
  Options options_;
  std::string buffer_;
  bool peer_closed_ = false;
};

// A metric without labels from the /metrics listener on 127.0.0.1:`port`; -1 when absent or
// unreachable.
long long scrape_metric(uint16_t port, const std::string& name);

// A plain message of about `approximate_size` bytes: headers, then lines of printable text
// (76 octets + CRLF), one line starting with '.', and `marker` as the last body line.
std::string make_message(size_t approximate_size, const std::string& subject,
                         const std::string& marker);
// RFC 5321 4.5.2 transparency, as a client does it: a '.' starting a line is doubled.
std::string dot_stuff(std::string_view message);
// The reverse, for a stuffed message body without its terminator.
std::string dot_unstuff(std::string_view stuffed);

}  // namespace portcullis::test
