// A compiled policy: the rules of one or more policy files, type-checked against a fact
// catalog, with their [lists]. Immutable once loaded; share it as shared_ptr<const Policy>, so
// a reload swaps the pointer while running sessions keep the policy they started with.
#pragma once

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fact_catalog.h"
#include "policy_action.h"
#include "policy_condition.h"
#include "policy_list.h"
#include "session_phase.h"

namespace portcullis::policy {

struct Rule {
  std::string name;
  std::string file;   // as given to the loader
  unsigned line = 0;  // of its [[rule]] header
  Mode mode = Mode::enforce;
  Phase phase = Phase::connect;
  bool phase_explicit = false;
  Condition when;
  ActionSpec then;
  // Every fact the rule reads, in `when` and in `then` placeholders, in order of first use.
  std::vector<std::string> facts;

  // "file:line"
  std::string location() const;
};

class Policy {
 public:
  Policy() = default;
  Policy(std::vector<Rule> rules, std::map<std::string, std::shared_ptr<const NamedList>> lists,
         std::vector<std::string> files);
  // rules_at() points into rules(): a Policy stays where it was built (share it by pointer).
  Policy(const Policy&) = delete;
  Policy& operator=(const Policy&) = delete;

  // All rules in file order, then rule order.
  const std::vector<Rule>& rules() const { return rules_; }
  // The rules tried at a phase, in order.
  const std::vector<const Rule*>& rules_at(Phase phase) const {
    return by_phase_[static_cast<std::size_t>(phase)];
  }
  const std::map<std::string, std::shared_ptr<const NamedList>>& lists() const { return lists_; }
  const std::vector<std::string>& files() const { return files_; }

 private:
  std::vector<Rule> rules_;
  std::array<std::vector<const Rule*>, 5> by_phase_;
  std::map<std::string, std::shared_ptr<const NamedList>> lists_;
  std::vector<std::string> files_;
};

// An error with its place: FILE:LINE:COLUMN (1-based; columns count bytes).
struct Diagnostic {
  std::string file;
  unsigned line = 0;
  unsigned column = 0;
  std::string message;
  // "file:line:column: message"
  std::string to_string() const;
};

// Reads a whole file; nullopt with *error set when it cannot. Paths are as the loader
// computed them (a list file's path joined to its policy file's directory).
using FileReader =
    std::function<std::optional<std::string>(const std::string& path, std::string* error)>;
// Reads from disk, refusing files larger than max_policy_file_size.
std::optional<std::string> read_file_from_disk(const std::string& path, std::string* error);

inline constexpr std::size_t max_policy_file_size = 64 * 1024 * 1024;

struct LoadResult {
  std::shared_ptr<const Policy> policy;  // null when there are errors
  std::vector<Diagnostic> errors;        // in file order, then position
  bool ok() const { return policy != nullptr; }
  // The errors, one "file:line:column: message" per line.
  std::string error_text() const;
};

// Loads and compiles policy files (DESIGN §4). No files gives an empty policy (no rules).
LoadResult load_policy(const std::vector<std::string>& files, const FactCatalog& catalog,
                       const FileReader& reader = read_file_from_disk);

}  // namespace portcullis::policy
