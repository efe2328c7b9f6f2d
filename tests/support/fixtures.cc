#include "fixtures.h"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <stdexcept>

#include <fmt/core.h>

namespace portcullis::test {

namespace fs = std::filesystem;

namespace {

std::string toml_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

std::string tail_lines(const std::string& text, size_t lines) {
  size_t at = text.size();
  for (size_t seen = 0; at > 0 && seen <= lines;) {
    --at;
    if (text[at] == '\n') ++seen;
  }
  return at == 0 ? text : text.substr(at + 1);
}

}  // namespace

// ---- smtp-sink ----

SmtpSinkFixture::SmtpSinkFixture() {
  // smtp-sink drops to nobody when started as root; its dump dir must be writable by nobody.
  dir_.chmod(0755);
  dump_dir_ = dir_.make_subdir("dump", 0755, "nobody");
  port_ = free_loopback_port();
  std::vector<std::string> argv = {"/usr/sbin/smtp-sink"};
  if (running_as_root()) {
    argv.insert(argv.end(), {"-u", "nobody"});
  }
  argv.insert(argv.end(),
              {"-d", (dump_dir_ / "%H%M%S.").string(), fmt::format("127.0.0.1:{}", port_), "100"});
  process_ = std::make_unique<ChildProcess>(
      ChildProcess::Options{argv, {}, dir_ / "sink.out", dir_ / "sink.err"});
  if (!wait_until_listens(port_, 10s)) {
    throw std::runtime_error(
        fmt::format("smtp-sink did not listen on {}: {}", port_, read_file(dir_ / "sink.err")));
  }
}

SmtpSinkFixture::~SmtpSinkFixture() {
  process_->stop(2s);
}

std::vector<fs::path> SmtpSinkFixture::dump_files() const {
  std::vector<std::pair<fs::file_time_type, fs::path>> found;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(dump_dir_, error)) {
    if (entry.is_regular_file(error) && entry.file_size(error) > 0) {
      found.emplace_back(entry.last_write_time(error), entry.path());
    }
  }
  std::sort(found.begin(), found.end());
  std::vector<fs::path> paths;
  for (auto& [time, path] : found)
    paths.push_back(path);
  return paths;
}

size_t SmtpSinkFixture::message_count() const {
  return dump_files().size();
}

std::vector<std::string> SmtpSinkFixture::messages() const {
  std::vector<std::string> contents;
  for (const auto& path : dump_files())
    contents.push_back(read_file(path));
  return contents;
}

std::string SmtpSinkFixture::message_with(const std::string& marker) const {
  std::string found;
  size_t matches = 0;
  for (auto& content : messages()) {
    if (contains(content, marker)) {
      found = std::move(content);
      ++matches;
    }
  }
  return matches == 1 ? found : std::string();
}

bool SmtpSinkFixture::wait_for_messages(size_t count, Millis timeout) const {
  return wait_until([&] { return message_count() >= count; }, timeout, 50ms);
}

// ---- Postfix ----

PostfixFixture::PostfixFixture(const std::string& mynetworks) {
  if (!running_as_root()) {
    throw std::runtime_error("a private Postfix instance needs root (Postfix's master)");
  }
  dir_.chmod(0755);
  port_ = free_loopback_port();
  const fs::path script = source_root() / "scripts" / "postfix-instance.sh";
  auto result = run_command({script.string(), "start", dir_.path().string(), std::to_string(port_),
                             fmt::format("127.0.0.1:{}", sink_.port()), mynetworks},
                            30s);
  start_output_ = result.out + result.err;
  if (!result.status.success()) {
    throw std::runtime_error(fmt::format("{} start failed ({}): {}", script.string(),
                                         result.status.describe(), start_output_));
  }
}

PostfixFixture::~PostfixFixture() {
  const fs::path script = source_root() / "scripts" / "postfix-instance.sh";
  run_command({script.string(), "stop", dir_.path().string()}, 30s);
}

std::string PostfixFixture::log() const {
  return read_file(dir_ / "postfix.log");
}

bool PostfixFixture::wait_for_log(const std::string& needle, Millis timeout) const {
  return wait_until([&] { return contains(log(), needle); }, timeout, 50ms);
}

// ---- portcullis ----

std::string LogEvent::field(const std::string& key) const {
  const JsonValue* value = object.find(key);
  return value ? value->to_text() : std::string();
}

std::string render_portcullis_config(const PortcullisOptions& options, uint16_t listen_port,
                                     const fs::path& state_dir, const fs::path& log_path) {
  using Section = std::vector<std::pair<std::string, std::string>>;
  auto merged = [&](const std::string& name, Section defaults) {
    auto it = options.settings.find(name);
    if (it == options.settings.end()) return defaults;
    for (const auto& [key, value] : it->second) {
      auto existing = std::find_if(defaults.begin(), defaults.end(),
                                   [&](const auto& kv) { return kv.first == key; });
      if (existing != defaults.end()) {
        existing->second = value;
      } else {
        defaults.emplace_back(key, value);
      }
    }
    // An empty value removes a default key.
    std::erase_if(defaults, [](const auto& kv) { return kv.second.empty(); });
    return defaults;
  };
  auto render = [](const std::string& header, const Section& section) {
    std::string out = "[" + header + "]\n";
    for (const auto& [key, value] : section)
      out += key + " = " + value + "\n";
    return out + "\n";
  };

  Section server = {{"hostname", toml_string("portcullis.test")},
                    {"state_dir", toml_string(state_dir.string())},
                    {"workers", "2"}};
  // As root the proxy must drop privileges; as another user it cannot, so `user` is left out.
  if (running_as_root()) server.emplace_back("user", toml_string("nobody"));

  std::string text = "# written by the integration test harness\n";
  text += render("server", merged("server", server));
  text += "[[listen]]\naddress = " + toml_string(fmt::format("127.0.0.1:{}", listen_port)) + "\n";
  for (const auto& [key, value] : options.listen_settings)
    text += key + " = " + value + "\n";
  text += "\n";
  for (const auto& address : options.extra_listen) {
    text += "[[listen]]\naddress = " + toml_string(address) + "\n\n";
  }
  for (const auto& block : options.extra_listen_blocks)
    text += "[[listen]]\n" + block + "\n\n";
  text +=
      render("upstream",
             merged("upstream",
                    {{"address", toml_string(fmt::format("127.0.0.1:{}", options.upstream_port))},
                     {"pass_client", toml_string(options.pass_client)},
                     {"reply_timeout", "5"}}));
  text += render("limits", merged("limits", {{"max_errors", "5"}}));
  text += render("timeouts", merged("timeouts", {{"command", "5"}, {"data_block", "5"}}));
  text += render("log", merged("log", {{"main", toml_string(log_path.string())},
                                       {"format", toml_string("json")}}));
  for (const auto& [name, values] : options.settings) {
    if (name == "server" || name == "upstream" || name == "limits" || name == "timeouts" ||
        name == "log") {
      continue;
    }
    text += render(name, merged(name, {}));
  }
  return text;
}

PortcullisFixture::PortcullisFixture(PortcullisOptions options) : options_(std::move(options)) {
  // The proxy runs as nobody after binding: it must reach its state_dir and its log.
  dir_.chmod(0755);
  if (running_as_root()) dir_.chown_to("nobody");
  state_dir_ = dir_.make_subdir("state", 0700, "nobody");
  log_path_ = dir_ / "portcullis.log";
  config_path_ = dir_ / "portcullis.toml";
  port_ = free_loopback_port();
  config_text_ = render_portcullis_config(options_, port_, state_dir_, log_path_);
  write_file(config_path_, config_text_, 0644);
  start();
}

void PortcullisFixture::rewrite_config(const std::string& text) const {
  // Written aside and renamed, so that the proxy never reads half a file.
  const fs::path written = config_path_.string() + ".new";
  write_file(written, text, 0644);
  fs::rename(written, config_path_);
}

void PortcullisFixture::start() {
  std::vector<std::string> argv = options_.command_prefix;
  for (std::string part :
       {portcullis_binary(), std::string("run"), std::string("--config"), config_path_.string()}) {
    argv.push_back(std::move(part));
  }
  process_ = std::make_unique<ChildProcess>(
      ChildProcess::Options{std::move(argv), {}, dir_ / "stdout", dir_ / "stderr"});
  const bool listening =
      wait_until([&] { return port_listens(port_) || !process_->running(); }, 15s) &&
      process_->running();
  if (!listening) {
    throw std::runtime_error(
        fmt::format("portcullis did not listen on 127.0.0.1:{} ({})\n{}", port_,
                    process_->exit_status() ? process_->exit_status()->describe()
                                            : std::string("still running"),
                    diagnostics()));
  }
  if (!options_.wait_ready) return;
  // The listener may come up before the upstream probe finishes; until then sessions get
  // 421 4.4.1. Ready = a session gets its 220.
  std::string last;
  const bool ready = wait_until(
      [&] {
        try {
          SmtpTestClient client("127.0.0.1", port_, {.source_address = "", .timeout = 5s});
          SmtpReply banner = client.read_reply();
          last = banner.describe();
          if (banner.code != 220) return false;
          client.command("QUIT");
          return true;
        } catch (const std::exception& error) {
          last = error.what();
          return false;
        }
      },
      15s, 200ms);
  if (!ready) {
    throw std::runtime_error(
        fmt::format("portcullis never gave a 220 banner (last: {})\n{}", last, diagnostics()));
  }
}

PortcullisFixture::~PortcullisFixture() {
  if (process_) process_->stop(5s);
  // Every test that runs the binary also checks that no session met a defect: a move its state
  // table does not allow, or an exception stopped at a callback (each ends only its session,
  // so the test's own checks could still pass).
  try {
    const std::string log = log_text();
    for (const char* defect : {"session_state_invalid", "callback_failed"}) {
      const size_t at = log.find(defect);
      BOOST_CHECK_MESSAGE(at == std::string::npos, "the proxy logged "
                                                       << defect << ": "
                                                       << log.substr(log.rfind('\n', at) + 1, 400));
    }
  } catch (const std::exception& error) {
    BOOST_CHECK_MESSAGE(false, "could not read the proxy's log: " << error.what());
  }
}

ExitStatus PortcullisFixture::stop() {
  return process_->stop(5s);
}

std::string PortcullisFixture::log_text() const {
  return read_file(log_path_);
}

std::string PortcullisFixture::stderr_text() const {
  return read_file(dir_ / "stderr");
}

std::vector<LogEvent> PortcullisFixture::log_events() const {
  std::vector<LogEvent> events;
  for (const auto& line : split_lines(log_text())) {
    if (line.empty()) continue;
    auto parsed = parse_json(line);
    if (!parsed || !parsed->is_object()) continue;
    events.push_back({line, std::move(*parsed)});
  }
  return events;
}

std::vector<LogEvent> PortcullisFixture::events_named(const std::string& name) const {
  std::vector<LogEvent> matching;
  for (auto& event : log_events()) {
    if (event.event() == name) matching.push_back(std::move(event));
  }
  return matching;
}

bool PortcullisFixture::wait_for_event(const std::string& name, Millis timeout,
                                       const std::function<bool(const LogEvent&)>& matches) const {
  return wait_until(
      [&] {
        for (const auto& event : events_named(name)) {
          if (!matches || matches(event)) return true;
        }
        return false;
      },
      timeout, 50ms);
}

std::string PortcullisFixture::diagnostics() const {
  return fmt::format("--- portcullis stderr (tail) ---\n{}\n--- portcullis log (tail) ---\n{}",
                     tail_lines(stderr_text(), 20), tail_lines(log_text(), 30));
}

}  // namespace portcullis::test
