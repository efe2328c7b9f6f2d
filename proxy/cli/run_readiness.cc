#include "run_readiness.h"

#include <netinet/in.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "acceptor.h"
#include "descriptor_limit.h"
#include "event_handles.h"
#include "metrics_server.h"
#include "port_holder.h"
#include "privilege.h"

namespace portcullis {

namespace {

// Bits of /proc/self/status CapEff (linux/capability.h).
constexpr unsigned kCapChown = 0;
constexpr unsigned kCapFowner = 3;

std::string this_process_user() {
  const uid_t uid = ::geteuid();
  if (const passwd* entry = ::getpwuid(uid)) return fmt::format("user '{}'", entry->pw_name);
  return fmt::format("uid {}", uid);
}

// The capabilities this process may use, or nullopt when the kernel does not say.
std::optional<unsigned long long> effective_capabilities() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
  }
  return std::nullopt;
}

uint16_t unprivileged_port_start() {
  std::ifstream in("/proc/sys/net/ipv4/ip_unprivileged_port_start");
  unsigned value = 1024;
  in >> value;
  return static_cast<uint16_t>(value);
}

bool is_ipv4_mapped(const NetAddress& address) {
  if (!address.is_ipv6()) return false;
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&address.storage);
  return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr);
}

bool on_read_only_file_system(const std::string& path) {
  struct statvfs info {};
  return ::statvfs(path.c_str(), &info) == 0 && (info.f_flag & ST_RDONLY) != 0;
}

mode_t current_umask() {
  const mode_t mask = ::umask(0);
  ::umask(mask);
  return mask;
}

std::string errno_text() {
  return std::strerror(errno);
}

}  // namespace

RunReadiness::Report RunReadiness::check(const Config& config) {
  RunReadiness readiness(config);
  readiness.check_user();
  readiness.check_state_dir();
  if (config.log.main != "stderr" && config.log.main != "syslog") {
    readiness.check_log_file("log.main", config.log.main);
  }
  if (!config.log.rejections.empty()) {
    readiness.check_log_file("log.rejections", config.log.rejections);
  }
  readiness.check_reload_reads();
  readiness.check_listeners();
  readiness.check_descriptor_limit();
  return std::move(readiness.report_);
}

RunReadiness::RunReadiness(const Config& config) : config_(config), as_root_(::geteuid() == 0) {}

void RunReadiness::error(const std::string& key, std::string text) {
  report_.errors.push_back(config_.message_about(key, std::move(text)));
}

void RunReadiness::warning(const std::string& key, std::string text) {
  report_.warnings.push_back(config_.message_about(key, std::move(text)));
}

void RunReadiness::check_descriptor_limit() {
  // `run` started like this check inherits its limits (systemd's LimitNOFILE= applies to
  // ExecStartPre too) and raises the soft limit to the hard one: the hard limit is what counts.
  std::string failure;
  const auto limits = DescriptorLimit::current(&failure);
  if (!limits) return warning("limits.max_sessions", failure);
  const auto shortfall = DescriptorLimit::shortfall(
      config_, limits->hard,
      fmt::format("the hard limit, to which `run` raises the soft limit ({})", limits->soft));
  if (shortfall) warning("limits.max_sessions", *shortfall);
}

void RunReadiness::check_user() {
  const std::string& user = config_.server.user;
  if (user.empty()) {
    if (as_root_) {
      error("server.user",
            "not set: `run` refuses to start as root without it (refusing_to_run); set an "
            "unprivileged user");
    }
    after_start_ = UserAccess::as_this_process(this_process_user());
    return;
  }
  uid_t uid = 0;
  gid_t gid = 0;
  std::string lookup_error;
  if (!lookup_user(user, &uid, &gid, &lookup_error)) {
    error("server.user", lookup_error + ": `run` cannot switch to it (privilege_drop_failed)");
    return;
  }
  if (uid == 0) {
    error("server.user", fmt::format("'{}' is root: `run` refuses to switch to it "
                                     "(privilege_drop_failed); choose an unprivileged user",
                                     user));
    return;
  }
  user_uid_ = uid;
  if (as_root_) {
    switches_ = true;
    after_start_ = UserAccess::as_switched_user(user);
  } else if (uid == ::geteuid()) {
    after_start_ = UserAccess::as_this_process(fmt::format("user '{}'", user));
  } else {
    switches_ = true;
    start_seen_ = false;
    after_start_ = UserAccess::by_permission_bits(user, uid, gid);
    warning("server.user",
            fmt::format("this check runs as {}, not as root: it cannot switch to '{}' as `run` "
                        "started as root does, so what '{}' may do is judged from permission "
                        "bits (ACLs, mount options and capabilities unseen) and what `run` does "
                        "as root before the switch is not tried; run `portcullis check` as root "
                        "for the exact answer",
                        this_process_user(), user, user));
  }
}

void RunReadiness::check_state_dir_capabilities() {
  // prepare_state_dir() gives the directory to the user with chown() and chmod() on every
  // start: as root (uid 0, not the owner) both need a capability, which a systemd
  // CapabilityBoundingSet= can take away.
  const auto capabilities = effective_capabilities();
  if (!capabilities) return;
  std::string missing;
  for (const auto& [bit, name] : {std::pair{kCapChown, "CAP_CHOWN"}, {kCapFowner, "CAP_FOWNER"}}) {
    if ((*capabilities & (1ULL << bit)) == 0)
      missing += (missing.empty() ? "" : " and ") + std::string(name);
  }
  if (!missing.empty()) {
    error("server.state_dir",
          fmt::format("`run` gives {} to user '{}' at start (chown, chmod 0700), which needs "
                      "CAP_CHOWN and CAP_FOWNER; this process lacks {} (a systemd "
                      "CapabilityBoundingSet= without them?)",
                      config_.server.state_dir, config_.server.user, missing));
  }
}

void RunReadiness::check_state_dir() {
  namespace fs = std::filesystem;
  const std::string& path = config_.server.state_dir;
  const std::string key = "server.state_dir";
  const size_t errors_before = report_.errors.size();
  const std::string user = config_.server.user;
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0) {
    if (!S_ISDIR(info.st_mode)) {
      error(key, fmt::format("{} exists and is not a directory", path));
      return;
    }
    if (!switches_) {
      if (!after_start_) return;
      const auto answer = after_start_->check(path, W_OK | X_OK);
      if (answer.outcome == UserAccess::Outcome::denied) {
        error(key, fmt::format("{} cannot create files in {}: {}", after_start_->who(), path,
                               answer.reason));
      }
      return;
    }
    if (start_seen_) {
      if (on_read_only_file_system(path)) {
        error(key, fmt::format("{} is on a read-only file system: `run` cannot give it to user "
                               "'{}' (under systemd: list it in ReadWritePaths=)",
                               path, user));
      }
      check_state_dir_capabilities();
    }
    const std::string parent = fs::path(path).parent_path().string();
    const auto answer = after_start_->check(parent, X_OK);
    if (answer.outcome == UserAccess::Outcome::denied) {
      error(key, fmt::format("user '{}' cannot reach {}: {}", user, path, answer.reason));
    } else if (answer.outcome == UserAccess::Outcome::unknown) {
      warning(key, fmt::format("cannot tell whether user '{}' can reach {}: {}", user, path,
                               answer.reason));
    }
    if (report_.errors.size() == errors_before && info.st_uid != user_uid_) {
      warning(key, fmt::format("{} belongs to uid {}: `run` gives it to user '{}' (mode 0700) "
                               "at start",
                               path, info.st_uid, user));
    }
    return;
  }
  if (errno != ENOENT && errno != ENOTDIR) {
    if (errno == EACCES && !start_seen_) {
      warning(key, fmt::format("cannot tell whether {} exists: {}", path, errno_text()));
    } else {
      error(key, fmt::format("cannot look at {}: {}", path, errno_text()));
    }
    return;
  }

  // Missing (or a file in the way): `run` makes it with create_directories(), the missing
  // parents too.
  fs::path ancestor = fs::path(path).parent_path();
  size_t missing_levels = 1;
  std::error_code ec;
  while (!fs::exists(ancestor, ec) && ancestor != ancestor.root_path()) {
    ancestor = ancestor.parent_path();
    ++missing_levels;
  }
  if (!fs::is_directory(ancestor, ec)) {
    error(key, fmt::format("{} cannot be created: {} is not a directory", path, ancestor.string()));
    return;
  }
  if (start_seen_ && ::access(ancestor.c_str(), W_OK | X_OK) != 0) {
    error(key, fmt::format("{} does not exist and `run` cannot create it: {}: {}", path,
                           ancestor.string(), errno_text()));
  }
  if (switches_) {
    const mode_t mask = current_umask();
    if (missing_levels > 1 && (mask & S_IXOTH) != 0) {
      error(key, fmt::format("{} and the directories above it up to {} do not exist: `run` "
                             "would create those above it owned by root with mode {:04o} "
                             "(umask {:04o}), which user '{}' cannot enter; create it first "
                             "(install -d -o {} -m 0700 {})",
                             path, (ancestor / "").string(), 0777 & ~mask, mask, user, user, path));
    }
    const auto answer = after_start_->check(ancestor.string(), X_OK);
    if (answer.outcome == UserAccess::Outcome::denied) {
      error(key, fmt::format("user '{}' cannot reach {}: {}", user, path, answer.reason));
    }
    if (start_seen_) check_state_dir_capabilities();
  }
  if (report_.errors.size() == errors_before) {
    warning(key, fmt::format("{} does not exist: `run` creates it{}", path,
                             switches_ ? fmt::format(" and gives it to user '{}' (mode 0700)", user)
                                       : std::string()));
  }
}

void RunReadiness::check_log_file(const std::string& key, const std::string& path) {
  namespace fs = std::filesystem;
  const std::string directory = fs::path(path).parent_path().string();
  struct stat info {};
  if (::stat(directory.c_str(), &info) != 0) {
    if (errno == ENOENT) {
      error(key, fmt::format("the directory {} does not exist: `run` opens {} at start and "
                             "creates no directories",
                             directory, path));
    } else if (errno == EACCES && !start_seen_) {
      warning(key, fmt::format("cannot tell whether {} exists: {}", directory, errno_text()));
    } else {
      error(key, fmt::format("cannot look at {}: {}", directory, errno_text()));
    }
    return;
  }
  if (!S_ISDIR(info.st_mode)) {
    error(key, fmt::format("{} is not a directory", directory));
    return;
  }
  // At start `run` opens the file as whoever started it (root under systemd, whose
  // capabilities the unit may limit: access() answers with them).
  if (start_seen_) {
    const bool exists = ::access(path.c_str(), F_OK) == 0;
    if (exists && ::access(path.c_str(), W_OK) != 0) {
      error(key,
            fmt::format("`run` cannot open {} for appending at start: {}", path, errno_text()));
      return;
    }
    if (!exists && ::access(directory.c_str(), W_OK | X_OK) != 0) {
      error(key,
            fmt::format("`run` cannot create {} at start: {}: {}", path, directory, errno_text()));
      return;
    }
  }
  if (!after_start_) return;
  // Once running, it reopens the file on SIGUSR1, creating it when rotation has moved it away.
  const auto answer = after_start_->check(directory, W_OK | X_OK);
  const std::string why =
      switches_ ? fmt::format(
                      "after the switch `run` reopens {} there as {} when the log is "
                      "rotated (SIGUSR1; the logrotate snippet creates files as that "
                      "user too)",
                      path, after_start_->who())
                : fmt::format("`run` reopens {} there when the log is rotated (SIGUSR1)", path);
  if (answer.outcome == UserAccess::Outcome::denied) {
    error(key, fmt::format("{} cannot create files in {}: {}; {}", after_start_->who(), directory,
                           answer.reason, why));
  } else if (answer.outcome == UserAccess::Outcome::unknown) {
    warning(key, fmt::format("cannot tell whether {} can create files in {}: {}",
                             after_start_->who(), directory, answer.reason));
  }
}

void RunReadiness::check_reload_reads() {
  // Without a switch, `check` itself has just read every file as `run` will.
  if (!switches_ || !after_start_) return;
  std::vector<std::pair<std::string, std::string>> files;  // key, path
  files.emplace_back("", config_.path);
  for (const auto& file : config_.policy.files)
    files.emplace_back("policy.files", file);
  for (const auto& block : config_.tls) {
    for (const auto& pair : block.certificates) {
      files.emplace_back("tls." + block.name + ".certificate", pair.certificate);
      files.emplace_back("tls." + block.name + ".key", pair.key);
    }
  }
  if (config_.upstream.tls != UpstreamTls::none && !config_.upstream.ca_file.empty()) {
    files.emplace_back("upstream.ca_file", config_.upstream.ca_file);
  }
  bool all_readable = true;
  for (const auto& [key, path] : files) {
    const auto answer = after_start_->check(path, R_OK);
    if (answer.outcome == UserAccess::Outcome::allowed) continue;
    all_readable = false;
    const std::string what = fmt::format(
        "{} cannot read {}: {}; `run` reads it as root at start, but again as {} on "
        "a reload (SIGHUP), which then fails (reload_failed)",
        after_start_->who(), path, answer.reason, after_start_->who());
    if (answer.outcome == UserAccess::Outcome::denied) {
      error(key, what);
    } else {
      warning(key, fmt::format("cannot tell whether {} can read {}: {}", after_start_->who(), path,
                               answer.reason));
    }
  }
  if (!all_readable || !after_start_->exact()) return;
  // The whole reload as the user: the files the policy reads too (its list files).
  std::string run_error;
  const auto reload_errors = after_start_->run_as(
      [this] {
        std::vector<std::string> out;
        for (const auto& message : load_config(config_.path).errors)
          out.push_back(message.to_string());
        return out;
      },
      &run_error);
  if (!reload_errors) {
    warning("", fmt::format("a reload as {} was not tried: {}", after_start_->who(), run_error));
    return;
  }
  for (const auto& line : *reload_errors)
    error("", fmt::format("a reload (SIGHUP) as {} fails: {}", after_start_->who(), line));
}

void RunReadiness::report_bind_failure(const std::string& key, const NetAddress& address,
                                       const std::string& written, int error_number,
                                       const std::string& detail, const char* event) {
  const std::string where = written;
  if (error_number == EADDRINUSE || error_number == 0) {
    if (const auto holder = find_port_holder(address)) {
      if (holder->portcullis_run &&
          holder->config_path == comparable_path(config_.path, std::filesystem::current_path())) {
        warning(key, fmt::format("{} is in use by the running `portcullis run` (pid {}) of this "
                                 "configuration: expected while it runs; once it has stopped "
                                 "(a restart stops it before ExecStartPre runs) the address must "
                                 "be free",
                                 where, holder->pid));
        return;
      }
      const std::string who = holder->portcullis_run
                                  ? fmt::format("another `portcullis run` (pid {}, config {})",
                                                holder->pid, holder->config_path)
                                  : fmt::format("pid {} ({})", holder->pid, holder->name);
      error(key, fmt::format("{} is in use by {}: `run` would fail with {}", where, who, event));
      return;
    }
    if (error_number == EADDRINUSE) {
      error(key, fmt::format("{} is in use (by a process this check cannot see): `run` would "
                             "fail with {}",
                             where, event));
      return;
    }
  }
  if (error_number == EINVAL && is_ipv4_mapped(address)) {
    error(key, fmt::format("{} is an IPv4-mapped IPv6 address: `run` binds IPv6 addresses on "
                           "IPv6-only sockets (IPV6_V6ONLY), where the kernel refuses it ({}) "
                           "and `run` fails with {}; write the IPv4 address (\"{}\")",
                           where, std::strerror(error_number), event,
                           address.without_ipv4_mapping().host_port()));
    return;
  }
  std::string hint;
  if (error_number == EACCES && address.port() < unprivileged_port_start()) {
    hint = fmt::format(" (ports below {} need root or CAP_NET_BIND_SERVICE)",
                       unprivileged_port_start());
  }
  error(key,
        fmt::format("cannot bind {}: {}{}: `run` would fail with {}", where, detail, hint, event));
}

void RunReadiness::check_listeners() {
  EventBasePtr base(event_base_new());
  if (!base) {
    error("listen", "cannot create an event base to test-bind the listeners");
    return;
  }
  const uint16_t unprivileged = unprivileged_port_start();
  // `run` started as root binds low ports; this check, not root, cannot try them.
  const auto cannot_try = [&](const std::string& key, const NetAddress& address) {
    if (start_seen_ || address.port() >= unprivileged) return false;
    warning(key, fmt::format("{} not test-bound: ports below {} need root, which `run` has when "
                             "it binds them before switching to '{}'; run `portcullis check` as "
                             "root to test it",
                             address.host_port(), unprivileged, config_.server.user));
    return true;
  };
  for (size_t i = 0; i < config_.listeners.size(); ++i) {
    const ListenConfig& listen = config_.listeners[i];
    const std::string key = fmt::format("listen[{}].address", i);
    if (cannot_try(key, listen.address)) continue;
    // Closed again at once: `check` only asks whether `run` could bind it.
    const ListenerPtr listener =
        Acceptor::bind_listener(base.get(), listen.address, nullptr, nullptr);
    if (!listener) {
      const int error_number = errno;
      report_bind_failure(key, listen.address, listen.address_text, error_number,
                          std::strerror(error_number), "listen_failed");
    }
  }
  if (config_.metrics.address && !cannot_try("metrics.address", *config_.metrics.address)) {
    std::string detail;
    const auto metrics = MetricsServer::start(
        base.get(), config_.metrics.address->host_port(), [] { return false; }, &detail);
    // MetricsServer::start() keeps errno to itself (it is in `detail`): the holder, if any, is
    // found by address.
    if (!metrics)
      report_bind_failure("metrics.address", *config_.metrics.address,
                          config_.metrics.address->host_port(), 0, detail, "metrics_listen_failed");
  }
}

}  // namespace portcullis
