#include "policy_expression.h"

#include <charconv>
#include <optional>

#include <fmt/format.h>

namespace portcullis::policy {

namespace {

enum class TokenKind {
  end,
  name,
  string,
  integer,
  left_paren,
  right_paren,
  left_bracket,
  right_bracket,
  comma,
  compare,
  keyword_and,
  keyword_or,
  keyword_not,
  keyword_in,
  keyword_true,
  keyword_false,
  keyword_present,
};

struct Token {
  TokenKind kind = TokenKind::end;
  Span span;
  std::string text;  // name or decoded string value
  std::int64_t integer = 0;
  CompareOp op = CompareOp::equal;
};

bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || (c >= '0' && c <= '9') || c == '-';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// Error-message form of a piece of the condition: at most 24 bytes, control bytes escaped.
std::string excerpt(std::string_view text) {
  std::string out;
  for (unsigned char c : text.substr(0, 24)) {
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > 24) out += "...";
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}

  // Reads the next token into *token; false with *error set on a lexical error.
  bool next(Token* token, SyntaxError* error) {
    while (pos_ < text_.size() && is_space(text_[pos_]))
      ++pos_;
    *token = Token{};
    token->span = {pos_, 0};
    if (pos_ >= text_.size()) return true;
    const std::size_t start = pos_;
    const char c = text_[pos_];
    auto single = [&](TokenKind kind) {
      token->kind = kind;
      token->span = {start, 1};
      ++pos_;
      return true;
    };
    switch (c) {
      case '(':
        return single(TokenKind::left_paren);
      case ')':
        return single(TokenKind::right_paren);
      case '[':
        return single(TokenKind::left_bracket);
      case ']':
        return single(TokenKind::right_bracket);
      case ',':
        return single(TokenKind::comma);
      case '\'':
        return lex_string(token, error);
      default:
        break;
    }
    if (c == '=' || c == '!' || c == '<' || c == '>') return lex_operator(token, error);
    if (is_digit(c) || (c == '-' && pos_ + 1 < text_.size() && is_digit(text_[pos_ + 1]))) {
      return lex_integer(token, error);
    }
    if (is_name_start(c)) return lex_name(token, error);
    error->offset = start;
    if (c == '"') {
      error->message = "strings are single-quoted: 'text'";
    } else {
      error->message = fmt::format("unexpected character '{}'", excerpt(text_.substr(start, 1)));
    }
    return false;
  }

 private:
  bool lex_string(Token* token, SyntaxError* error) {
    const std::size_t start = pos_;
    ++pos_;
    std::string value;
    // SECURITY: the loop advances at least one byte per step and stops at the end of the
    // (length-bounded) condition; control characters are refused so a condition cannot
    // smuggle line breaks into traces or logs.
    while (true) {
      if (pos_ >= text_.size()) {
        *error = {start, "unterminated string: a ' is missing"};
        return false;
      }
      const char c = text_[pos_];
      if (c == '\'') {
        if (pos_ + 1 < text_.size() && text_[pos_ + 1] == '\'') {
          value += '\'';
          pos_ += 2;
          continue;
        }
        ++pos_;
        break;
      }
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        *error = {pos_, "control character in a string"};
        return false;
      }
      value += c;
      ++pos_;
    }
    token->kind = TokenKind::string;
    token->text = std::move(value);
    token->span = {start, pos_ - start};
    return true;
  }

  bool lex_operator(Token* token, SyntaxError* error) {
    const std::size_t start = pos_;
    const char c = text_[pos_];
    const bool followed_by_equal = pos_ + 1 < text_.size() && text_[pos_ + 1] == '=';
    token->kind = TokenKind::compare;
    if (c == '=') {
      if (!followed_by_equal) {
        *error = {start, "'=' is not an operator; compare with '=='"};
        return false;
      }
      token->op = CompareOp::equal;
    } else if (c == '!') {
      if (!followed_by_equal) {
        *error = {start, "'!' is not an operator; use 'not' or '!='"};
        return false;
      }
      token->op = CompareOp::not_equal;
    } else if (c == '<') {
      token->op = followed_by_equal ? CompareOp::less_equal : CompareOp::less;
    } else {
      token->op = followed_by_equal ? CompareOp::greater_equal : CompareOp::greater;
    }
    pos_ += followed_by_equal ? 2 : 1;
    token->span = {start, pos_ - start};
    return true;
  }

  bool lex_integer(Token* token, SyntaxError* error) {
    const std::size_t start = pos_;
    if (text_[pos_] == '-') ++pos_;
    while (pos_ < text_.size() && is_digit(text_[pos_]))
      ++pos_;
    if (pos_ < text_.size() && (is_name_char(text_[pos_]) || text_[pos_] == '.')) {
      std::size_t end = pos_;
      while (end < text_.size() && (is_name_char(text_[end]) || text_[end] == '.'))
        ++end;
      *error = {start, fmt::format("'{}' is not a number, and a name cannot start with a digit",
                                   excerpt(text_.substr(start, end - start)))};
      return false;
    }
    const std::string_view digits = text_.substr(start, pos_ - start);
    std::int64_t value = 0;
    const auto [end, code] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (code != std::errc() || end != digits.data() + digits.size()) {
      *error = {start, fmt::format("the number {} is out of range", excerpt(digits))};
      return false;
    }
    token->kind = TokenKind::integer;
    token->integer = value;
    token->span = {start, pos_ - start};
    token->text = std::string(digits);
    return true;
  }

  bool lex_name(Token* token, SyntaxError* error) {
    const std::size_t start = pos_;
    while (true) {
      while (pos_ < text_.size() && is_name_char(text_[pos_]))
        ++pos_;
      if (pos_ < text_.size() && text_[pos_] == '.') {
        if (pos_ + 1 >= text_.size() || !is_name_char(text_[pos_ + 1])) {
          *error = {pos_ + 1, "expected a name part after '.'"};
          return false;
        }
        ++pos_;
        continue;
      }
      break;
    }
    const std::string_view name = text_.substr(start, pos_ - start);
    token->span = {start, pos_ - start};
    token->text = std::string(name);
    token->kind = TokenKind::name;
    if (name == "and") token->kind = TokenKind::keyword_and;
    if (name == "or") token->kind = TokenKind::keyword_or;
    if (name == "not") token->kind = TokenKind::keyword_not;
    if (name == "in") token->kind = TokenKind::keyword_in;
    if (name == "true") token->kind = TokenKind::keyword_true;
    if (name == "false") token->kind = TokenKind::keyword_false;
    if (name == "present") token->kind = TokenKind::keyword_present;
    return true;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text), lexer_(text) {}

  std::variant<SyntaxNode, SyntaxError> parse() {
    // SECURITY: the condition is bounded in length, and nesting (parentheses, 'not') is
    // bounded in depth, so recursion and work are bounded for any input.
    if (text_.size() > max_condition_length) {
      return SyntaxError{0, fmt::format("condition longer than {} bytes", max_condition_length)};
    }
    if (!advance()) return error_;
    if (current_.kind == TokenKind::end) {
      return SyntaxError{0, "empty condition: expected a fact name, a string, an integer or '('"};
    }
    auto node = parse_or(0);
    if (!node) return error_;
    if (current_.kind != TokenKind::end) {
      fail_at_current("expected 'and', 'or' or the end of the condition");
      return error_;
    }
    return std::move(*node);
  }

 private:
  bool advance() { return lexer_.next(&current_, &error_); }

  // Sets the error to `expected` followed by where the parser stands.
  std::nullopt_t fail_at_current(std::string_view expected) {
    if (error_.message.empty()) {
      error_.offset = current_.span.offset;
      error_.message =
          current_.kind == TokenKind::end
              ? fmt::format("{} at the end of the condition", expected)
              : fmt::format("{} at '{}'", expected,
                            excerpt(text_.substr(current_.span.offset, current_.span.length)));
    }
    return std::nullopt;
  }

  static Span join(Span first, Span last) {
    return {first.offset, last.offset + last.length - first.offset};
  }

  std::optional<SyntaxNode> parse_or(int depth) {
    auto first = parse_and(depth);
    if (!first) return std::nullopt;
    if (current_.kind != TokenKind::keyword_or) return first;
    SyntaxNode node;
    node.kind = SyntaxNode::Kind::any_of;
    node.children.push_back(std::move(*first));
    while (current_.kind == TokenKind::keyword_or) {
      if (!advance()) return std::nullopt;
      auto next = parse_and(depth);
      if (!next) return std::nullopt;
      node.children.push_back(std::move(*next));
    }
    node.span = join(node.children.front().span, node.children.back().span);
    return node;
  }

  std::optional<SyntaxNode> parse_and(int depth) {
    auto first = parse_unary(depth);
    if (!first) return std::nullopt;
    if (current_.kind != TokenKind::keyword_and) return first;
    SyntaxNode node;
    node.kind = SyntaxNode::Kind::all_of;
    node.children.push_back(std::move(*first));
    while (current_.kind == TokenKind::keyword_and) {
      if (!advance()) return std::nullopt;
      auto next = parse_unary(depth);
      if (!next) return std::nullopt;
      node.children.push_back(std::move(*next));
    }
    node.span = join(node.children.front().span, node.children.back().span);
    return node;
  }

  std::optional<SyntaxNode> parse_unary(int depth) {
    if (depth >= max_condition_nesting) {
      return fail_at_current(
          fmt::format("conditions nest deeper than {} levels", max_condition_nesting));
    }
    if (current_.kind != TokenKind::keyword_not) return parse_test(depth);
    const Span not_span = current_.span;
    if (!advance()) return std::nullopt;
    auto inner = parse_unary(depth + 1);
    if (!inner) return std::nullopt;
    SyntaxNode node;
    node.kind = SyntaxNode::Kind::negate;
    node.span = join(not_span, inner->span);
    node.children.push_back(std::move(*inner));
    return node;
  }

  std::optional<SyntaxNode> parse_test(int depth) {
    if (current_.kind == TokenKind::left_paren) {
      const Span open = current_.span;
      if (!advance()) return std::nullopt;
      auto inner = parse_or(depth + 1);
      if (!inner) return std::nullopt;
      if (current_.kind != TokenKind::right_paren) {
        return fail_at_current("expected 'and', 'or' or ')' to close '('");
      }
      inner->span = join(open, current_.span);
      if (!advance()) return std::nullopt;
      return inner;
    }
    if (current_.kind == TokenKind::keyword_present) return parse_present();
    auto lhs = parse_operand();
    if (!lhs) return std::nullopt;
    SyntaxNode node;
    node.lhs = std::move(*lhs);
    if (current_.kind == TokenKind::compare) {
      node.kind = SyntaxNode::Kind::compare;
      node.op = current_.op;
      if (!advance()) return std::nullopt;
      auto rhs = parse_operand();
      if (!rhs) return std::nullopt;
      node.rhs = std::move(*rhs);
      node.span = join(node.lhs.span, node.rhs.span);
      return node;
    }
    bool negated = false;
    if (current_.kind == TokenKind::keyword_not) {
      // Only "x not in set" continues a test with 'not'.
      negated = true;
      if (!advance()) return std::nullopt;
      if (current_.kind != TokenKind::keyword_in)
        return fail_at_current("expected 'in' after 'not'");
    }
    if (current_.kind == TokenKind::keyword_in) {
      if (!advance()) return std::nullopt;
      node.kind = SyntaxNode::Kind::member;
      if (!parse_set(&node)) return std::nullopt;
      if (!negated) return node;
      SyntaxNode outer;
      outer.kind = SyntaxNode::Kind::negate;
      outer.span = node.span;
      outer.children.push_back(std::move(node));
      return outer;
    }
    node.kind = SyntaxNode::Kind::operand;
    node.span = node.lhs.span;
    return node;
  }

  std::optional<SyntaxNode> parse_present() {
    SyntaxNode node;
    node.kind = SyntaxNode::Kind::present;
    const Span start = current_.span;
    if (!advance()) return std::nullopt;
    if (current_.kind != TokenKind::left_paren)
      return fail_at_current("expected '(' after 'present'");
    if (!advance()) return std::nullopt;
    if (current_.kind != TokenKind::name) return fail_at_current("expected a fact name");
    node.lhs.kind = SyntaxOperand::Kind::name;
    node.lhs.text = current_.text;
    node.lhs.span = current_.span;
    if (!advance()) return std::nullopt;
    if (current_.kind != TokenKind::right_paren) return fail_at_current("expected ')'");
    node.span = join(start, current_.span);
    if (!advance()) return std::nullopt;
    return node;
  }

  std::optional<SyntaxOperand> parse_operand() {
    SyntaxOperand operand;
    operand.span = current_.span;
    switch (current_.kind) {
      case TokenKind::name:
        operand.kind = SyntaxOperand::Kind::name;
        operand.text = current_.text;
        break;
      case TokenKind::string:
        operand.kind = SyntaxOperand::Kind::string;
        operand.text = current_.text;
        break;
      case TokenKind::integer:
        operand.kind = SyntaxOperand::Kind::integer;
        operand.integer = current_.integer;
        operand.text = current_.text;
        break;
      case TokenKind::keyword_true:
      case TokenKind::keyword_false:
        operand.kind = SyntaxOperand::Kind::boolean;
        operand.boolean = current_.kind == TokenKind::keyword_true;
        operand.text = operand.boolean ? "true" : "false";
        break;
      default:
        return fail_at_current("expected a fact name, a string, an integer or '('");
    }
    if (!advance()) return std::nullopt;
    return operand;
  }

  bool parse_set(SyntaxNode* node) {
    if (current_.kind == TokenKind::name) {
      node->set_name.kind = SyntaxOperand::Kind::name;
      node->set_name.text = current_.text;
      node->set_name.span = current_.span;
      node->span = join(node->lhs.span, current_.span);
      return advance();
    }
    if (current_.kind != TokenKind::left_bracket) {
      fail_at_current("expected a list name, a list fact or '[' after 'in'");
      return false;
    }
    node->set_is_inline = true;
    if (!advance()) return false;
    while (true) {
      if (current_.kind == TokenKind::right_bracket && !node->set_items.empty()) break;
      if (current_.kind != TokenKind::string) {
        fail_at_current(node->set_items.empty() ? "expected a string in the list"
                                                : "expected a string or ']'");
        return false;
      }
      node->set_items.push_back({current_.text, current_.span});
      if (!advance()) return false;
      if (current_.kind == TokenKind::comma) {
        if (!advance()) return false;
        continue;
      }
      if (current_.kind != TokenKind::right_bracket) {
        fail_at_current("expected ',' or ']'");
        return false;
      }
    }
    node->span = join(node->lhs.span, current_.span);
    return advance();
  }

  std::string_view text_;
  Lexer lexer_;
  Token current_;
  SyntaxError error_;
};

}  // namespace

std::string_view compare_op_text(CompareOp op) {
  switch (op) {
    case CompareOp::equal:
      return "==";
    case CompareOp::not_equal:
      return "!=";
    case CompareOp::less:
      return "<";
    case CompareOp::less_equal:
      return "<=";
    case CompareOp::greater:
      return ">";
    case CompareOp::greater_equal:
      return ">=";
  }
  return "?";
}

std::variant<SyntaxNode, SyntaxError> parse_condition(std::string_view text) {
  return Parser(text).parse();
}

std::string quote_string(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  out += '\'';
  return out;
}

}  // namespace portcullis::policy
