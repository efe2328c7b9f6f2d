#include "test_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

#include <fmt/core.h>

extern char** environ;

namespace portcullis::test {

namespace fs = std::filesystem;

namespace {

// Closes a file descriptor when it goes out of scope.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

std::string errno_text() {
  return std::strerror(errno);
}

// A numeric host and port as a sockaddr; false when the host is not a numeric address.
bool make_sockaddr(const std::string& host, uint16_t port, sockaddr_storage* storage,
                   socklen_t* length) {
  std::memset(storage, 0, sizeof *storage);
  auto* v4 = reinterpret_cast<sockaddr_in*>(storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    *length = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(storage);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    *length = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

std::string sockaddr_host(const sockaddr_storage& storage) {
  char text[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(storage).sin_addr, text, sizeof text);
  } else if (storage.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(storage).sin6_addr, text,
              sizeof text);
  }
  return text;
}

uint16_t sockaddr_port(const sockaddr_storage& storage) {
  if (storage.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in&>(storage).sin_port);
  }
  if (storage.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6&>(storage).sin6_port);
  }
  return 0;
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1000 * 1000));
}

std::string find_in_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
  std::istringstream stream(dirs);
  std::string dir;
  while (std::getline(stream, dir, ':')) {
    if (dir.empty()) continue;
    fs::path candidate = fs::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  for (const char* dir : {"/usr/sbin", "/sbin"}) {
    fs::path candidate = fs::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return name;
}

}  // namespace

// ---- environment ----

std::string required_env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    throw std::runtime_error(
        fmt::format("environment variable {} is not set (run the test through meson test)", name));
  }
  return value;
}

fs::path corpora_dir() {
  return required_env("PORTCULLIS_CORPORA");
}
fs::path source_root() {
  return required_env("PORTCULLIS_SOURCE_ROOT");
}
std::string portcullis_binary() {
  return required_env("PORTCULLIS_BINARY");
}
bool running_as_root() {
  return ::geteuid() == 0;
}

// ---- waiting ----

bool wait_until(const std::function<bool()>& done, Millis timeout, Millis interval) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (done()) return true;
    if (Clock::now() >= deadline) return done();
    std::this_thread::sleep_for(interval);
  }
}

long long elapsed_ms(Clock::time_point since) {
  return std::chrono::duration_cast<Millis>(Clock::now() - since).count();
}

// ---- ports ----

uint16_t free_loopback_port() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) throw std::runtime_error("socket: " + errno_text());
  sockaddr_storage address;
  socklen_t length = 0;
  make_sockaddr("127.0.0.1", 0, &address, &length);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), length) != 0) {
    throw std::runtime_error("bind 127.0.0.1:0: " + errno_text());
  }
  length = sizeof address;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw std::runtime_error("getsockname: " + errno_text());
  }
  return sockaddr_port(address);
}

bool port_accepts(const std::string& host, uint16_t port) {
  sockaddr_storage address;
  socklen_t length = 0;
  if (!make_sockaddr(host, port, &address, &length)) return false;
  UniqueFd fd(::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return false;
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), length) == 0;
}

bool wait_until_accepts(const std::string& host, uint16_t port, Millis timeout) {
  return wait_until([&] { return port_accepts(host, port); }, timeout, 50ms);
}

bool port_listens(uint16_t port) {
  // /proc/net/tcp lines: "sl local_address rem_address st ..." with "HEXADDR:HEXPORT" and
  // state 0A = LISTEN.
  const std::string port_suffix = fmt::format(":{:04X}", port);
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      fields >> slot >> local >> remote >> state;
      if (state == "0A" && local.size() > port_suffix.size() &&
          local.compare(local.size() - port_suffix.size(), port_suffix.size(), port_suffix) == 0) {
        return true;
      }
    }
  }
  return false;
}

bool wait_until_listens(uint16_t port, Millis timeout) {
  return wait_until([&] { return port_listens(port); }, timeout, 20ms);
}

// ---- files and bytes ----

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file(const fs::path& path, std::string_view content, mode_t mode) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + path.string());
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) throw std::runtime_error("cannot write " + path.string());
  }
  ::chmod(path.c_str(), mode);
}

std::string hex_decode(std::string_view hex) {
  if (hex.size() % 2 != 0) throw std::invalid_argument("odd number of hex digits");
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw std::invalid_argument(std::string("not a hex digit: ") + c);
  };
  std::string bytes;
  for (size_t i = 0; i < hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(digit(hex[i]) * 16 + digit(hex[i + 1])));
  }
  return bytes;
}

std::string printable(std::string_view bytes, size_t max_bytes) {
  std::string out;
  const size_t shown = std::min(bytes.size(), max_bytes);
  for (size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (shown < bytes.size()) out += fmt::format("...(+{} bytes)", bytes.size() - shown);
  return out;
}

size_t count_occurrences(std::string_view haystack, std::string_view needle) {
  if (needle.empty()) return 0;
  size_t count = 0;
  for (size_t at = haystack.find(needle); at != std::string_view::npos;
       at = haystack.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::string without_policy_rule(std::string_view policy_text, std::string_view rule_name) {
  const std::string name_line = "\nname = \"" + std::string(rule_name) + "\"\n";
  const size_t name_at = policy_text.find(name_line);
  const size_t begin = name_at == std::string_view::npos ? std::string_view::npos
                                                         : policy_text.rfind("[[rule]]\n", name_at);
  if (begin == std::string_view::npos) {
    throw std::runtime_error("the policy has no rule named \"" + std::string(rule_name) + "\"");
  }
  size_t end = policy_text.find("\n[[rule]]\n", name_at + 1);
  end = end == std::string_view::npos ? policy_text.size() : end + 1;
  return std::string(policy_text.substr(0, begin)) + std::string(policy_text.substr(end));
}

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
      lines.emplace_back(text.substr(start));
      break;
    }
    size_t stop = end;
    if (stop > start && text[stop - 1] == '\r') --stop;
    lines.emplace_back(text.substr(start, stop - start));
    start = end + 1;
  }
  return lines;
}

// ---- users ----

UserIds lookup_user(const std::string& name) {
  passwd entry{};
  passwd* found = nullptr;
  std::vector<char> scratch(16384);
  if (::getpwnam_r(name.c_str(), &entry, scratch.data(), scratch.size(), &found) != 0 ||
      found == nullptr) {
    throw std::runtime_error("unknown user " + name);
  }
  return {entry.pw_uid, entry.pw_gid};
}

void chown_to_user(const fs::path& path, const std::string& user) {
  const UserIds ids = lookup_user(user);
  if (::chown(path.c_str(), ids.uid, ids.gid) != 0) {
    throw std::runtime_error(fmt::format("chown {} {}: {}", user, path.string(), errno_text()));
  }
}

// ---- temporary directory ----

TempDir::TempDir(const std::string& prefix) {
  std::string pattern = (fs::path("/tmp") / (prefix + ".XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + pattern + ": " + errno_text());
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

void TempDir::chmod(mode_t mode) const {
  ::chmod(path_.c_str(), mode);
}

void TempDir::chown_to(const std::string& user) const {
  chown_to_user(path_, user);
}

fs::path TempDir::make_subdir(const std::string& name, mode_t mode,
                              const std::string& owner) const {
  fs::path dir = path_ / name;
  fs::create_directories(dir);
  ::chmod(dir.c_str(), mode);
  if (!owner.empty() && running_as_root()) chown_to_user(dir, owner);
  return dir;
}

// ---- child processes ----

std::string ExitStatus::describe() const {
  if (exited) return fmt::format("exit code {}", code);
  if (signal != 0) return fmt::format("killed by signal {} ({})", signal, ::strsignal(signal));
  return "unknown";
}

ChildProcess::ChildProcess(Options options) : options_(std::move(options)) {
  if (options_.argv.empty()) throw std::invalid_argument("ChildProcess: empty argv");
  // Everything the child needs is prepared here: after fork() in a threaded process only
  // async-signal-safe calls (dup2, execve, _exit) are allowed.
  const std::string program = find_in_path(options_.argv[0]);
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry)
    environment.emplace_back(*entry);
  for (const auto& extra : options_.extra_env) {
    const std::string name = extra.substr(0, extra.find('=') + 1);
    std::erase_if(environment, [&](const std::string& e) { return e.rfind(name, 0) == 0; });
    environment.push_back(extra);
  }
  std::vector<char*> argv_pointers;
  for (auto& arg : options_.argv)
    argv_pointers.push_back(arg.data());
  argv_pointers.push_back(nullptr);
  std::vector<char*> env_pointers;
  for (auto& entry : environment)
    env_pointers.push_back(entry.data());
  env_pointers.push_back(nullptr);

  auto open_output = [](const fs::path& path) {
    const char* target = path.empty() ? "/dev/null" : path.c_str();
    int fd = ::open(target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error(fmt::format("open {}: {}", target, errno_text()));
    return UniqueFd(fd);
  };
  UniqueFd null_in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  UniqueFd out = open_output(options_.stdout_file);
  UniqueFd err = open_output(options_.stderr_file);

  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork: " + errno_text());
  if (pid_ == 0) {
    // Same process group as the test, so `meson test` killing the group on a timeout takes
    // the child along; and a signal when the test dies some other way (the kernel drops this
    // setting when the child changes user, as portcullis and smtp-sink do as root).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::dup2(null_in.get(), 0);
    ::dup2(out.get(), 1);
    ::dup2(err.get(), 2);
    ::execve(program.c_str(), argv_pointers.data(), env_pointers.data());
    ::_exit(127);
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !status_) stop(2s);
}

bool ChildProcess::reap(bool block) {
  if (status_) return true;
  int raw = 0;
  pid_t result;
  do {
    result = ::waitpid(pid_, &raw, block ? 0 : WNOHANG);
  } while (result < 0 && errno == EINTR);
  if (result != pid_) return false;
  ExitStatus status;
  if (WIFEXITED(raw)) {
    status.exited = true;
    status.code = WEXITSTATUS(raw);
  } else if (WIFSIGNALED(raw)) {
    status.signal = WTERMSIG(raw);
  }
  status_ = status;
  return true;
}

bool ChildProcess::running() {
  return !reap(false);
}

std::optional<ExitStatus> ChildProcess::wait_for(Millis timeout) {
  wait_until([&] { return reap(false); }, timeout, 10ms);
  return status_;
}

void ChildProcess::send_signal(int signal_number) {
  if (!status_ && pid_ > 0) ::kill(pid_, signal_number);
}

ExitStatus ChildProcess::stop(Millis grace) {
  if (status_) return *status_;
  ::kill(pid_, SIGTERM);
  if (!wait_for(grace)) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
  return *status_;
}

CommandResult run_command(const std::vector<std::string>& argv, Millis timeout,
                          const std::vector<std::string>& extra_env) {
  TempDir scratch("portcullis-cmd");
  ChildProcess child({argv, extra_env, scratch / "out", scratch / "err"});
  CommandResult result;
  auto status = child.wait_for(timeout);
  if (!status) {
    result.timed_out = true;
    status = child.stop(2s);
  }
  result.status = *status;
  result.out = read_file(scratch / "out");
  result.err = read_file(scratch / "err");
  return result;
}

// ---- SMTP replies ----

std::string SmtpReply::enhanced() const {
  if (lines.empty()) return {};
  const std::string& first = lines.front();
  // class "." subject "." detail: 1 digit, 1-3 digits, 1-3 digits (RFC 3463)
  size_t end = first.find(' ');
  std::string candidate = first.substr(0, end);
  int dots = 0;
  for (char c : candidate) {
    if (c == '.') {
      ++dots;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return {};
    }
  }
  return dots == 2 && candidate.size() >= 5 ? candidate : std::string();
}

std::string SmtpReply::text() const {
  std::string joined;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) joined += '\n';
    joined += lines[i];
  }
  return joined;
}

std::string SmtpReply::describe() const {
  if (code == 0) {
    return fmt::format("<no reply{}{}>", closed ? ", connection closed" : ", timed out",
                       raw.empty() ? "" : ", got: " + printable(raw));
  }
  return printable(raw);
}

// ---- SMTP test client ----

SmtpTestClient::SmtpTestClient(const std::string& host, uint16_t port, Options options)
    : options_(std::move(options)) {
  sockaddr_storage address;
  socklen_t length = 0;
  if (!make_sockaddr(host, port, &address, &length)) {
    throw std::runtime_error("not a numeric address: " + host);
  }
  UniqueFd fd(::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) throw std::runtime_error("socket: " + errno_text());
  if (!options_.source_address.empty()) {
    sockaddr_storage source;
    socklen_t source_length = 0;
    if (!make_sockaddr(options_.source_address, 0, &source, &source_length)) {
      throw std::runtime_error("not a numeric address: " + options_.source_address);
    }
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&source), source_length) != 0) {
      throw std::runtime_error("bind " + options_.source_address + ": " + errno_text());
    }
  }
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), length) != 0) {
    throw std::runtime_error(fmt::format("connect {}:{}: {}", host, port, errno_text()));
  }
  fd_ = fd.release();
}

SmtpTestClient::~SmtpTestClient() {
  close();
}

SmtpTestClient::SmtpTestClient(SmtpTestClient&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      options_(std::move(other.options_)),
      buffer_(std::move(other.buffer_)),
      peer_closed_(other.peer_closed_) {}

SmtpTestClient& SmtpTestClient::operator=(SmtpTestClient&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    options_ = std::move(other.options_);
    buffer_ = std::move(other.buffer_);
    peer_closed_ = other.peer_closed_;
  }
  return *this;
}

void SmtpTestClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void SmtpTestClient::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

bool SmtpTestClient::send(std::string_view bytes) {
  while (!bytes.empty()) {
    if (fd_ < 0) return false;
    pollfd waiter{fd_, POLLOUT, 0};
    // A peer that stops reading must not hang the test for ever.
    if (::poll(&waiter, 1, static_cast<int>(std::max<Millis>(options_.timeout, 30s).count())) <=
        0) {
      return false;
    }
    ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(sent));
  }
  return true;
}

bool SmtpTestClient::fill(Clock::time_point deadline) {
  if (fd_ < 0 || peer_closed_) return false;
  pollfd waiter{fd_, POLLIN, 0};
  int ready = ::poll(&waiter, 1, remaining_ms(deadline));
  if (ready <= 0) return false;
  char chunk[16384];
  ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
  if (got < 0 && errno == EINTR) return true;
  if (got <= 0) {
    peer_closed_ = true;  // EOF or reset
    return false;
  }
  buffer_.append(chunk, static_cast<size_t>(got));
  return true;
}

SmtpReply SmtpTestClient::read_reply() {
  return read_reply(options_.timeout);
}

SmtpReply SmtpTestClient::read_reply(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  SmtpReply reply;
  size_t consumed = 0;
  // SECURITY: the peer is the program under test; a reply is bounded to 1 MiB and 1000 lines.
  constexpr size_t max_reply = 1 << 20;
  while (true) {
    size_t line_end = buffer_.find('\n', consumed);
    if (line_end == std::string::npos) {
      if (buffer_.size() - consumed > max_reply || reply.lines.size() > 1000) break;
      if (!fill(deadline)) {
        reply.closed = peer_closed_;
        reply.code = 0;
        reply.raw = buffer_.substr(0, buffer_.size());
        return reply;  // incomplete: nothing consumed, so the bytes stay for a later look
      }
      continue;
    }
    std::string line = buffer_.substr(consumed, line_end - consumed);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    consumed = line_end + 1;
    const bool well_formed =
        line.size() >= 3 &&
        std::all_of(line.begin(), line.begin() + 3,
                    [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) &&
        (line.size() == 3 || line[3] == ' ' || line[3] == '-');
    if (!well_formed) {
      reply.code = 0;
      reply.raw = buffer_.substr(0, consumed);
      buffer_.erase(0, consumed);
      return reply;
    }
    const int code = std::stoi(line.substr(0, 3));
    if (!reply.lines.empty() && code != reply.code) {
      reply.code = 0;  // codes differ between lines: not a valid reply
    } else {
      reply.code = code;
    }
    reply.lines.push_back(line.size() > 4 ? line.substr(4) : std::string());
    if (line.size() == 3 || line[3] == ' ') break;
  }
  reply.raw = buffer_.substr(0, consumed);
  buffer_.erase(0, consumed);
  return reply;
}

std::string SmtpTestClient::read_until_close(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (fill(deadline)) {
  }
  std::string all = std::move(buffer_);
  buffer_.clear();
  return all;
}

bool SmtpTestClient::wait_closed(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!peer_closed_ && Clock::now() < deadline)
    fill(deadline);
  return peer_closed_;
}

bool SmtpTestClient::silent_for(Millis timeout) {
  const size_t before = buffer_.size();
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline && !peer_closed_ && buffer_.size() == before)
    fill(deadline);
  return !peer_closed_ && buffer_.size() == before;
}

std::string SmtpTestClient::local_address() const {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
  return sockaddr_host(address);
}

uint16_t SmtpTestClient::local_port() const {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
  return sockaddr_port(address);
}

// ---- messages ----

long long scrape_metric(uint16_t port, const std::string& name) {
  try {
    SmtpTestClient http("127.0.0.1", port, {.source_address = "", .timeout = 5s});
    http.send("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    for (const auto& line : split_lines(http.read_until_close(5s))) {
      if (line.rfind(name + " ", 0) == 0) return std::stoll(line.substr(name.size() + 1));
    }
  } catch (const std::exception&) {
  }
  return -1;
}

std::string make_message(size_t approximate_size, const std::string& subject,
                         const std::string& marker) {
  std::string message = fmt::format(
      "From: <sender@example.test>\r\nTo: <recipient@example.test>\r\nSubject: {}\r\n"
      "Message-ID: <{}@example.test>\r\n\r\n",
      subject, marker);
  message += ".a line that starts with a dot\r\n";
  static const std::string alphabet =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";
  size_t line_number = 0;
  while (message.size() + marker.size() + 2 < approximate_size) {
    std::string line = fmt::format("{:08d} ", line_number++);
    while (line.size() < 76)
      line.push_back(alphabet[(line.size() + line_number) % 64]);
    message += line;
    message += "\r\n";
  }
  message += marker;
  message += "\r\n";
  return message;
}

std::string dot_stuff(std::string_view message) {
  std::string out;
  out.reserve(message.size() + message.size() / 64);
  bool line_start = true;
  for (char c : message) {
    if (line_start && c == '.') out.push_back('.');
    out.push_back(c);
    line_start = (c == '\n');
  }
  return out;
}

std::string dot_unstuff(std::string_view stuffed) {
  std::string out;
  out.reserve(stuffed.size());
  bool line_start = true;
  for (size_t i = 0; i < stuffed.size(); ++i) {
    const char c = stuffed[i];
    if (line_start && c == '.' && i + 1 < stuffed.size() && stuffed[i + 1] == '.') {
      line_start = false;
      continue;  // drop the first of the two dots
    }
    out.push_back(c);
    line_start = (c == '\n');
  }
  return out;
}

}  // namespace portcullis::test
