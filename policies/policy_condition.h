// Compiled conditions: a `when` syntax tree type-checked against the fact catalog and the
// [lists], and its evaluation with three-valued logic and a trace of every test.
//
// Evaluation: every test that reads an absent fact is `unknown`. `not unknown` is `unknown`;
// `and` is false if any part is false, else unknown if any part is unknown; `or` is true if any
// part is true, else unknown if any is. A rule matches only when its condition is true, so a
// comparison with an absent fact never matches, and neither does its negation: missing
// evidence never makes a rule fire. present(fact) tests presence itself.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fact_catalog.h"
#include "facts.h"
#include "policy_expression.h"
#include "policy_list.h"

namespace portcullis::policy {

struct CompiledOperand {
  bool is_fact = false;
  std::string fact;    // when is_fact
  FactValue constant;  // when !is_fact
  FactType type = FactType::boolean;
  // "spf" or a literal in condition syntax ('fail', 42, true, 192.0.2.1 as '192.0.2.1').
  std::string text() const;
};

struct Condition {
  enum class Kind {
    any_of,
    all_of,
    negate,
    compare,       // lhs op rhs
    in_list,       // lhs in list (a [lists] list, or an inline [...] list)
    in_list_fact,  // lhs in rhs (a list-typed fact)
    bool_fact,     // lhs (a bool fact)
    constant,      // lhs (true/false)
    present,       // present(lhs)
  };
  Kind kind = Kind::constant;
  std::vector<Condition> children;
  CompareOp op = CompareOp::equal;
  CompiledOperand lhs;
  CompiledOperand rhs;
  std::shared_ptr<const NamedList> list;
  bool inline_list = false;

  // Normalised condition text, with only the parentheses that precedence needs.
  std::string text() const;
};

enum class Truth { no, yes, unknown };
std::string_view truth_name(Truth truth);  // "false", "true", "unknown"

// One test of a condition as evaluated: its text, result and the evidence it saw.
struct CheckTrace {
  std::string test;
  Truth result = Truth::no;
  std::string detail;  // e.g. "spf is 'pass'"; "" for constants
};

// `checks` (may be null) receives one entry per test evaluated, in order; tests skipped by
// short-circuiting are not listed.
Truth evaluate(const Condition& condition, const Facts& facts, std::vector<CheckTrace>* checks);

struct CompileError {
  std::size_t offset = 0;
  std::string message;
};

// A fact a rule reads and the offset of its first use (in `when`, or in `then` for
// placeholders).
struct FactUse {
  std::string name;
  std::size_t offset = 0;
  bool in_then = false;
};

struct CompileContext {
  const FactCatalog* catalog = nullptr;
  // The [lists] list of that name, or nullptr.
  std::function<std::shared_ptr<const NamedList>(std::string_view)> find_list;
  std::vector<std::string> list_names;  // for "did you mean"
  std::string rule_name;
};

struct CompiledCondition {
  Condition root;
  std::vector<FactUse> facts;  // first use of each fact, in order of appearance
};

std::variant<CompiledCondition, std::vector<CompileError>> compile_condition(
    const SyntaxNode& syntax, const CompileContext& context);

// Resolves a fact a rule reads (in `when` or a `then` placeholder): nullptr plus an error
// message when it is unknown or its filter is not in the chain.
const FactSpec* resolve_fact(std::string_view name, const CompileContext& context,
                             std::string* error);

}  // namespace portcullis::policy
