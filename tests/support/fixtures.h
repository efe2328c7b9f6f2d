// Real peers for integration tests: smtp-sink, a private Postfix instance, and the portcullis
// binary itself, each started on free loopback ports and stopped by pid.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "json_value.h"
#include "test_support.h"

namespace portcullis::test {

// /usr/sbin/smtp-sink dumping every message into its own file.
class SmtpSinkFixture {
 public:
  SmtpSinkFixture();
  ~SmtpSinkFixture();

  uint16_t port() const { return port_; }
  const std::filesystem::path& dump_dir() const { return dump_dir_; }
  // smtp-sink creates a dump file when DATA starts and fills it at the end, so a message
  // counts once its file is non-empty.
  size_t message_count() const;
  // Dump file contents (smtp-sink's X-* lines and Received first, LF line ends, unstuffed).
  // No order: smtp-sink may flush two files in the same instant.
  std::vector<std::string> messages() const;
  // The one dump containing `marker`; "" when none (or more than one) does.
  std::string message_with(const std::string& marker) const;
  bool wait_for_messages(size_t count, Millis timeout) const;
  bool running() { return process_->running(); }

 private:
  std::vector<std::filesystem::path> dump_files() const;

  TempDir dir_{"portcullis-sink"};
  std::filesystem::path dump_dir_;
  uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

// A private Postfix (scripts/postfix-instance.sh) on a free port, relaying example.test to an
// smtp-sink of its own.
class PostfixFixture {
 public:
  explicit PostfixFixture(const std::string& mynetworks = "127.0.0.1/32");
  ~PostfixFixture();

  uint16_t port() const { return port_; }
  SmtpSinkFixture& relay_sink() { return sink_; }
  const std::filesystem::path& dir() const { return dir_.path(); }
  std::string log() const;  // DIR/postfix.log
  bool wait_for_log(const std::string& needle, Millis timeout) const;
  const std::string& start_output() const { return start_output_; }

 private:
  SmtpSinkFixture sink_;
  TempDir dir_{"portcullis-postfix"};
  uint16_t port_ = 0;
  std::string start_output_;
};

// One line of the proxy's JSON main log.
struct LogEvent {
  std::string raw;
  JsonValue object;
  std::string event() const { return field("event"); }
  // A member as text ("" when absent).
  std::string field(const std::string& key) const;
  bool has(const std::string& key) const { return object.find(key) != nullptr; }
};

struct PortcullisOptions {
  uint16_t upstream_port = 0;
  std::string pass_client = "xclient";
  // Settings by section, as raw TOML values (strings quoted): they replace the defaults
  // below or add keys. Sections: server, upstream, limits, timeouts, log; others are added.
  //   [server] hostname "portcullis.test", state_dir, workers 2, user "nobody" (as root)
  //   [upstream] address, pass_client, reply_timeout 5
  //   [limits] max_errors 5     [timeouts] command 5, data_block 5
  //   [log] main = DIR/portcullis.log, format "json"
  std::map<std::string, std::map<std::string, std::string>> settings;
  std::vector<std::string> extra_listen;  // more [[listen]] addresses
  // More keys of the first [[listen]] block (mode, tls, proxy_protocol), raw TOML values.
  std::map<std::string, std::string> listen_settings;
  // More [[listen]] blocks after extra_listen, each the raw TOML of its body (address = ...).
  std::vector<std::string> extra_listen_blocks;
  // Before returning: wait until a session gets a 220 banner (the upstream probe is done).
  // Off for tests that expect the unreachable-upstream banner.
  bool wait_ready = true;
  // Run the binary through this command, which must exec it (the pid stays the proxy's), e.g.
  // {"prlimit", "--nofile=256:256", "--"}.
  std::vector<std::string> command_prefix;
};

// The portcullis binary ($PORTCULLIS_BINARY) with a config written into a temporary dir.
class PortcullisFixture {
 public:
  explicit PortcullisFixture(PortcullisOptions options);
  ~PortcullisFixture();

  uint16_t port() const { return port_; }
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  const std::filesystem::path& state_dir() const { return state_dir_; }
  const std::filesystem::path& log_path() const { return log_path_; }
  const std::string& config_text() const { return config_text_; }
  const std::filesystem::path& config_path() const { return config_path_; }
  // Replaces the config file (for a SIGHUP); config_text() keeps the text the proxy started
  // with.
  void rewrite_config(const std::string& text) const;

  std::string log_text() const;
  std::string stderr_text() const;
  std::vector<LogEvent> log_events() const;  // lines that are not JSON objects are skipped
  std::vector<LogEvent> events_named(const std::string& name) const;
  bool wait_for_event(const std::string& name, Millis timeout,
                      const std::function<bool(const LogEvent&)>& matches = {}) const;
  // True while the process has not exited by itself (a crash shows up here).
  bool running() { return process_ && process_->running(); }
  std::optional<ExitStatus> exit_status() { return process_->exit_status(); }
  ExitStatus stop();
  // The last lines of stderr and the log, for failure messages.
  std::string diagnostics() const;

 private:
  void start();

  PortcullisOptions options_;
  TempDir dir_{"portcullis-proxy"};
  std::filesystem::path state_dir_;
  std::filesystem::path log_path_;
  std::filesystem::path config_path_;
  std::string config_text_;
  uint16_t port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

// Renders the config TOML for `options` (exposed for the harness self-test).
std::string render_portcullis_config(const PortcullisOptions& options, uint16_t listen_port,
                                     const std::filesystem::path& state_dir,
                                     const std::filesystem::path& log_path);

}  // namespace portcullis::test
