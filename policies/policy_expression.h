// The condition language of policy rules (`when`): lexer and parser to an untyped syntax tree.
//
// Pure text in, tree out; no TOML, no catalog. Types are checked by the compiler
// (policy_condition.h) against the fact catalog and the [lists]. Grammar (docs/policy-language.md):
//
//   condition  := or_expr END
//   or_expr    := and_expr { 'or' and_expr }
//   and_expr   := unary { 'and' unary }
//   unary      := 'not' unary | test
//   test       := '(' or_expr ')'
//               | 'present' '(' NAME ')'
//               | operand [ cmp_op operand | 'in' set | 'not' 'in' set ]
//   operand    := NAME | STRING | INTEGER | 'true' | 'false'
//   set        := NAME | '[' STRING { ',' STRING } [ ',' ] ']'
//   cmp_op     := '==' | '!=' | '<' | '<=' | '>' | '>='
//
// NAME is a fact or list name: letters, digits, '_' and '-', dot-separated, not starting with a
// digit or '-'. STRING is single-quoted; a quote inside is doubled ('it''s'); no other
// escapes. INTEGER is an optional '-' and decimal digits (int64).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace portcullis::policy {

// A byte range inside the condition text.
struct Span {
  std::size_t offset = 0;
  std::size_t length = 0;
};

enum class CompareOp { equal, not_equal, less, less_equal, greater, greater_equal };
std::string_view compare_op_text(CompareOp op);

struct SyntaxOperand {
  enum class Kind { name, string, integer, boolean };
  Kind kind = Kind::name;
  std::string text;  // the name, or the string's value (quotes removed, '' undoubled)
  std::int64_t integer = 0;
  bool boolean = false;
  Span span;
};

struct SyntaxListItem {
  std::string text;
  Span span;
};

struct SyntaxNode {
  enum class Kind {
    any_of,   // or: children
    all_of,   // and: children
    negate,   // not: children[0]
    compare,  // lhs op rhs
    member,   // lhs in set_name / set_items
    present,  // present(lhs)
    operand,  // a bare operand used as a condition: lhs
  };
  Kind kind = Kind::operand;
  std::vector<SyntaxNode> children;
  CompareOp op = CompareOp::equal;
  SyntaxOperand lhs;
  SyntaxOperand rhs;
  // member: either a name (set_is_inline false) or inline items.
  bool set_is_inline = false;
  SyntaxOperand set_name;
  std::vector<SyntaxListItem> set_items;
  Span span;
};

struct SyntaxError {
  std::size_t offset = 0;
  std::string message;
};

// Limits that keep parsing bounded whatever the input (see SECURITY notes in expression.cc).
inline constexpr std::size_t max_condition_length = 16 * 1024;
inline constexpr int max_condition_nesting = 64;

// Parses a whole condition. The error, if any, is the first one met.
std::variant<SyntaxNode, SyntaxError> parse_condition(std::string_view text);

// Quotes a string for the condition language: 'it''s'.
std::string quote_string(std::string_view text);

}  // namespace portcullis::policy
