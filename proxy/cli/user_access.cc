#include "user_access.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>

#include "privilege.h"

namespace portcullis {

namespace {

// The first byte of the child's answer when it could not run the probe as the user.
constexpr char kSwitchFailed = '\x01';

bool write_all(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

std::string mode_text(const struct stat& info) {
  return fmt::format("mode {:04o}, owner uid {} gid {}", info.st_mode & 07777, info.st_uid,
                     info.st_gid);
}

}  // namespace

UserAccess UserAccess::as_this_process(std::string who) {
  return UserAccess(Method::this_process, "", std::move(who), 0, 0);
}

UserAccess UserAccess::as_switched_user(std::string user) {
  std::string who = fmt::format("user '{}'", user);
  return UserAccess(Method::switched_user, std::move(user), std::move(who), 0, 0);
}

UserAccess UserAccess::by_permission_bits(std::string user, uid_t uid, gid_t gid) {
  std::string who = fmt::format("user '{}'", user);
  return UserAccess(Method::permission_bits, std::move(user), std::move(who), uid, gid);
}

UserAccess::Answer UserAccess::check(const std::string& path, int mode) const {
  if (method_ == Method::permission_bits) return check_permission_bits(path, mode);
  std::string error;
  const auto lines = run_as(
      [&]() -> std::vector<std::string> {
        if (::access(path.c_str(), mode) == 0) return {};
        return {std::strerror(errno)};
      },
      &error);
  if (!lines) return {Outcome::unknown, error};
  if (lines->empty()) return {};
  return {Outcome::denied, lines->front()};
}

std::optional<std::vector<std::string>> UserAccess::run_as(
    const std::function<std::vector<std::string>()>& probe, std::string* error) const {
  if (method_ == Method::permission_bits) {
    *error = "cannot act as " + who_ + " without root";
    return std::nullopt;
  }
  if (method_ == Method::this_process) return probe();

  // A child switches, never this process: `check` goes on as root afterwards (the listeners'
  // test binds may need it), and the switch is the same call `run` makes.
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    *error = fmt::format("cannot create a pipe: {}", std::strerror(errno));
    return std::nullopt;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t child = ::fork();
  if (child < 0) {
    *error = fmt::format("cannot fork: {}", std::strerror(errno));
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return std::nullopt;
  }
  if (child == 0) {
    ::close(pipe_fds[0]);
    std::string answer;
    try {
      std::string switch_error;
      if (!drop_privileges(user_, &switch_error)) {
        answer = kSwitchFailed + switch_error;
      } else {
        for (const auto& line : probe())
          answer += line + '\n';
      }
    } catch (const std::exception& e) {
      answer = kSwitchFailed + std::string(e.what());
    }
    // _exit: the parent's atexit handlers and buffered output are the parent's.
    ::_exit(write_all(pipe_fds[1], answer) ? 0 : 1);
  }
  ::close(pipe_fds[1]);
  std::string answer;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(pipe_fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    answer.append(buffer, static_cast<size_t>(n));
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    *error = fmt::format("the check as {} did not finish", who_);
    return std::nullopt;
  }
  if (!answer.empty() && answer.front() == kSwitchFailed) {
    *error = answer.substr(1);
    return std::nullopt;
  }
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < answer.size()) {
    const size_t end = answer.find('\n', start);
    lines.push_back(answer.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

UserAccess::Answer UserAccess::check_permission_bits(const std::string& path, int mode) const {
  const auto permits = [this](const struct stat& info, int wanted) {
    // Owner, else group, else others: the first class that applies decides, as in the kernel.
    const unsigned bits = info.st_uid == uid_   ? (info.st_mode >> 6) & 7
                          : info.st_gid == gid_ ? (info.st_mode >> 3) & 7
                                                : info.st_mode & 7;
    const unsigned need =
        ((wanted & R_OK) ? 4u : 0u) | ((wanted & W_OK) ? 2u : 0u) | ((wanted & X_OK) ? 1u : 0u);
    return (bits & need) == need;
  };
  const std::filesystem::path full = std::filesystem::absolute(path).lexically_normal();
  std::filesystem::path walked;
  std::vector<std::filesystem::path> steps;
  for (const auto& part : full) {
    walked /= part;
    steps.push_back(walked);
  }
  for (size_t i = 0; i < steps.size(); ++i) {
    const bool last = i + 1 == steps.size();
    struct stat info {};
    if (::stat(steps[i].c_str(), &info) != 0) {
      if (errno == EACCES) {
        return {Outcome::unknown,
                fmt::format("this process may not look at {}", steps[i].string())};
      }
      return {Outcome::denied, fmt::format("{}: {}", steps[i].string(), std::strerror(errno))};
    }
    if (!last && !S_ISDIR(info.st_mode)) {
      return {Outcome::denied, fmt::format("{}: {}", steps[i].string(), std::strerror(ENOTDIR))};
    }
    const int wanted = last ? mode : X_OK;
    if (!permits(info, wanted)) {
      return {Outcome::denied,
              fmt::format("{}: Permission denied ({})", steps[i].string(), mode_text(info))};
    }
  }
  return {};
}

}  // namespace portcullis
