// UserAccess: the permission-bit judgement (a check without root) must give the kernel's answer
// for plain modes and owners; the kernel is asked by a child switched to nobody as root, or by
// this process otherwise.
#define BOOST_TEST_MODULE user_access
#include <boost/test/unit_test.hpp>

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "user_access.h"

using portcullis::UserAccess;
namespace fs = std::filesystem;

namespace {

struct Identity {
  std::string name;
  uid_t uid;
  gid_t gid;
};

// As root: nobody, asked through a switched child. Otherwise: this process's own user.
Identity subject() {
  const passwd* entry = ::geteuid() == 0 ? ::getpwnam("nobody") : ::getpwuid(::geteuid());
  BOOST_TEST_REQUIRE(entry != nullptr);
  return {entry->pw_name, entry->pw_uid, entry->pw_gid};
}

UserAccess kernel_for(const Identity& who) {
  return ::geteuid() == 0 ? UserAccess::as_switched_user(who.name)
                          : UserAccess::as_this_process("user '" + who.name + "'");
}

class Tree {
 public:
  Tree() {
    char pattern[] = "/tmp/portcullis-user-access.XXXXXX";
    BOOST_TEST_REQUIRE(::mkdtemp(pattern) != nullptr);
    root_ = pattern;
    ::chmod(root_.c_str(), 0755);
  }
  ~Tree() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  Tree(const Tree&) = delete;
  Tree& operator=(const Tree&) = delete;

  // A directory or file under the tree with `mode`, owned by `uid`:`gid` when root.
  fs::path make(const std::string& name, bool directory, mode_t mode, uid_t uid, gid_t gid) {
    const fs::path path = root_ / name;
    if (directory) {
      fs::create_directories(path);
    } else {
      std::ofstream(path) << "x\n";
    }
    if (::geteuid() == 0) BOOST_TEST_REQUIRE(::chown(path.c_str(), uid, gid) == 0);
    BOOST_TEST_REQUIRE(::chmod(path.c_str(), mode) == 0);
    paths_.push_back(path);
    return path;
  }
  const std::vector<fs::path>& paths() const { return paths_; }
  const fs::path& root() const { return root_; }

 private:
  fs::path root_;
  std::vector<fs::path> paths_;
};

std::string outcome_name(UserAccess::Outcome outcome) {
  switch (outcome) {
    case UserAccess::Outcome::allowed:
      return "allowed";
    case UserAccess::Outcome::denied:
      return "denied";
    case UserAccess::Outcome::unknown:
      return "unknown";
  }
  return "?";
}

}  // namespace

BOOST_AUTO_TEST_CASE(permission_bits_agree_with_the_kernel) {
  const Identity who = subject();
  const bool root = ::geteuid() == 0;
  // Owned by the subject, by root (another owner and group), or root's with the subject's
  // group: each class of the mode decides somewhere below.
  const uid_t other_uid = root ? 0 : who.uid;
  const gid_t other_gid = root ? 0 : who.gid;
  Tree tree;
  for (const mode_t mode : {0700, 0750, 0755, 0705, 0070, 0007, 0500, 0300, 0000}) {
    const std::string suffix = fmt::format("{:04o}", mode);
    tree.make("own-dir-" + suffix, true, mode, who.uid, who.gid);
    tree.make("other-dir-" + suffix, true, mode, other_uid, other_gid);
    tree.make("group-dir-" + suffix, true, mode, other_uid, who.gid);
    tree.make("own-file-" + suffix, false, mode & 0666, who.uid, who.gid);
    tree.make("other-file-" + suffix, false, mode & 0666, other_uid, other_gid);
  }
  // Behind directories that may or may not be entered.
  tree.make("closed", true, 0700, other_uid, other_gid);
  tree.make("closed/file", false, 0644, who.uid, who.gid);
  tree.make("open", true, 0711, other_uid, other_gid);
  tree.make("open/file", false, 0644, who.uid, who.gid);

  const UserAccess kernel = kernel_for(who);
  const UserAccess bits = UserAccess::by_permission_bits(who.name, who.uid, who.gid);
  size_t denied = 0;
  for (const fs::path& path : tree.paths()) {
    for (const int mode : {R_OK, W_OK, X_OK, R_OK | W_OK, W_OK | X_OK}) {
      const auto by_kernel = kernel.check(path.string(), mode);
      const auto by_bits = bits.check(path.string(), mode);
      BOOST_TEST(outcome_name(by_bits.outcome) == outcome_name(by_kernel.outcome),
                 path.string() << " mode " << mode << ": kernel " << by_kernel.reason << ", bits "
                               << by_bits.reason);
      if (by_kernel.outcome == UserAccess::Outcome::denied) ++denied;
    }
  }
  // The tree has modes that refuse: the comparison is not between two "allowed" everywhere.
  BOOST_TEST(denied > 20u);
}

BOOST_AUTO_TEST_CASE(a_denial_by_permission_bits_names_the_directory_that_refuses) {
  const Identity who = subject();
  Tree tree;
  const fs::path closed = tree.make("closed", true, 0000, who.uid, who.gid);
  const auto answer = UserAccess::by_permission_bits(who.name, who.uid, who.gid)
                          .check((closed / "inside").string(), R_OK);
  BOOST_TEST((answer.outcome != UserAccess::Outcome::allowed));
  if (::geteuid() == 0) {
    // Root can look inside to tell: nobody could not enter closed.
    BOOST_TEST((answer.outcome == UserAccess::Outcome::denied));
    BOOST_TEST(answer.reason ==
               fmt::format("{}: Permission denied (mode 0000, owner uid {} gid {})",
                           closed.string(), who.uid, who.gid));
  }
  const auto missing = UserAccess::by_permission_bits(who.name, who.uid, who.gid)
                           .check((tree.root() / "missing").string(), R_OK);
  BOOST_TEST((missing.outcome == UserAccess::Outcome::denied));
  BOOST_TEST(missing.reason == (tree.root() / "missing").string() + ": No such file or directory");
}

BOOST_AUTO_TEST_CASE(a_switch_to_an_unknown_user_cannot_answer) {
  const auto answer = UserAccess::as_switched_user("portcullis-no-such-user").check("/", R_OK);
  BOOST_TEST((answer.outcome == UserAccess::Outcome::unknown));
  BOOST_TEST(answer.reason.find("unknown user 'portcullis-no-such-user'") != std::string::npos,
             answer.reason);
}
