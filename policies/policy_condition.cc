#include "policy_condition.h"

#include <algorithm>

#include <fmt/format.h>

namespace portcullis::policy {

namespace {

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// ---- compilation -------------------------------------------------------------------------

class Compiler {
 public:
  explicit Compiler(const CompileContext& context) : context_(context) {}

  std::optional<Condition> compile(const SyntaxNode& node) {
    using K = SyntaxNode::Kind;
    Condition out;
    switch (node.kind) {
      case K::any_of:
      case K::all_of: {
        out.kind = node.kind == K::any_of ? Condition::Kind::any_of : Condition::Kind::all_of;
        bool ok = true;
        for (const auto& child : node.children) {
          auto compiled = compile(child);
          if (compiled) {
            out.children.push_back(std::move(*compiled));
          } else {
            ok = false;  // go on: report the errors of every part
          }
        }
        if (!ok) return std::nullopt;
        return out;
      }
      case K::negate: {
        auto inner = compile(node.children.front());
        if (!inner) return std::nullopt;
        out.kind = Condition::Kind::negate;
        out.children.push_back(std::move(*inner));
        return out;
      }
      case K::present: {
        std::string message;
        const FactSpec* spec = resolve_fact(node.lhs.text, context_, &message);
        if (spec == nullptr) return fail(node.lhs.span.offset, message);
        use(node.lhs);
        out.kind = Condition::Kind::present;
        out.lhs = fact_operand(*spec);
        return out;
      }
      case K::operand:
        return compile_bare(node.lhs);
      case K::compare:
        return compile_compare(node);
      case K::member:
        return compile_member(node);
    }
    return std::nullopt;
  }

  std::vector<CompileError> errors;
  std::vector<FactUse> facts;

 private:
  std::nullopt_t fail(std::size_t offset, std::string message) {
    errors.push_back({offset, std::move(message)});
    return std::nullopt;
  }

  void use(const SyntaxOperand& operand) {
    auto seen = std::find_if(facts.begin(), facts.end(),
                             [&](const FactUse& fact) { return fact.name == operand.text; });
    if (seen == facts.end()) facts.push_back({operand.text, operand.span.offset, false});
  }

  static CompiledOperand fact_operand(const FactSpec& spec) {
    CompiledOperand operand;
    operand.is_fact = true;
    operand.fact = spec.name;
    operand.type = spec.type;
    return operand;
  }

  // Resolves a NAME used as a value; reports lists used as values and unknown names.
  std::optional<CompiledOperand> resolve_value(const SyntaxOperand& syntax) {
    if (syntax.kind != SyntaxOperand::Kind::name) {
      CompiledOperand operand;
      switch (syntax.kind) {
        case SyntaxOperand::Kind::string:
          operand.constant = syntax.text;
          operand.type = FactType::string;
          break;
        case SyntaxOperand::Kind::integer:
          operand.constant = syntax.integer;
          operand.type = FactType::integer;
          break;
        default:
          operand.constant = syntax.boolean;
          operand.type = FactType::boolean;
          break;
      }
      return operand;
    }
    if (context_.catalog->find(syntax.text) == nullptr && context_.find_list &&
        context_.find_list(syntax.text) != nullptr) {
      return fail(syntax.span.offset,
                  fmt::format("'{}' is a list; test membership with 'FACT in {}'", syntax.text,
                              syntax.text));
    }
    std::string message;
    const FactSpec* spec = resolve_fact(syntax.text, context_, &message);
    if (spec == nullptr) return fail(syntax.span.offset, message);
    use(syntax);
    return fact_operand(*spec);
  }

  static std::string describe(const CompiledOperand& operand) {
    return fmt::format("{} is {}", operand.text(), fact_type_with_article(operand.type));
  }

  std::optional<Condition> compile_bare(const SyntaxOperand& syntax) {
    auto operand = resolve_value(syntax);
    if (!operand) return std::nullopt;
    Condition out;
    if (operand->type == FactType::boolean) {
      out.kind = operand->is_fact ? Condition::Kind::bool_fact : Condition::Kind::constant;
      out.lhs = std::move(*operand);
      return out;
    }
    if (!operand->is_fact) {
      return fail(syntax.span.offset,
                  fmt::format("expected a condition, but {}", describe(*operand)));
    }
    std::string example;
    switch (operand->type) {
      case FactType::integer:
        example = fmt::format("{} > 0", operand->fact);
        break;
      case FactType::ip:
        example = fmt::format("{} in LIST", operand->fact);
        break;
      case FactType::list:
        example = fmt::format("'x' in {}", operand->fact);
        break;
      default:
        example = fmt::format("{} == '...'", operand->fact);
        break;
    }
    return fail(syntax.span.offset, fmt::format("expected a condition, but {}; compare it, e.g. {}",
                                                describe(*operand), example));
  }

  std::optional<Condition> compile_compare(const SyntaxNode& node) {
    auto lhs = resolve_value(node.lhs);
    auto rhs = resolve_value(node.rhs);
    if (!lhs || !rhs) return std::nullopt;
    const std::string_view op = compare_op_text(node.op);
    for (const auto* side : {&*lhs, &*rhs}) {
      if (side->type == FactType::list) {
        return fail(node.span.offset, fmt::format("{} is a list; test membership with 'x' in {}",
                                                  side->fact, side->fact));
      }
    }
    // An ip compared with a string literal: the literal must be an address.
    for (auto [ip_side, literal_side, literal_syntax] :
         {std::tuple{&*lhs, &*rhs, &node.rhs}, std::tuple{&*rhs, &*lhs, &node.lhs}}) {
      if (ip_side->type == FactType::ip && !literal_side->is_fact &&
          literal_side->type == FactType::string) {
        auto address = IpAddress::parse(std::get<std::string>(literal_side->constant));
        if (!address) {
          return fail(literal_syntax->span.offset,
                      fmt::format("{} is not an IP address ({})", literal_side->text(),
                                  describe(*ip_side)));
        }
        literal_side->constant = *address;
        literal_side->type = FactType::ip;
      }
    }
    const bool ordering = node.op != CompareOp::equal && node.op != CompareOp::not_equal;
    if (ordering) {
      for (const auto* side : {&*lhs, &*rhs}) {
        if (side->type != FactType::integer) {
          return fail(node.span.offset,
                      fmt::format("'{}' compares integers, but {}", op, describe(*side)));
        }
      }
    } else if (lhs->type != rhs->type) {
      return fail(node.span.offset, fmt::format("'{}' compares values of one type, but {} and {}",
                                                op, describe(*lhs), describe(*rhs)));
    }
    Condition out;
    out.kind = Condition::Kind::compare;
    out.op = node.op;
    out.lhs = std::move(*lhs);
    out.rhs = std::move(*rhs);
    return out;
  }

  std::optional<Condition> compile_member(const SyntaxNode& node) {
    auto lhs = resolve_value(node.lhs);
    Condition out;
    out.kind = Condition::Kind::in_list;
    std::shared_ptr<const NamedList> list;
    if (node.set_is_inline) {
      std::vector<ListEntry> entries;
      bool ok = true;
      for (const auto& item : node.set_items) {
        std::string message;
        auto entry = parse_list_entry(item.text, &message);
        if (!entry) {
          fail(item.span.offset, message);
          ok = false;
          continue;
        }
        entries.push_back(std::move(*entry));
      }
      if (!ok || !lhs) return std::nullopt;
      list = std::make_shared<const NamedList>("", "", std::move(entries));
      out.inline_list = true;
    } else {
      const std::string& name = node.set_name.text;
      const FactSpec* spec = context_.catalog->find(name);
      if (spec == nullptr) list = context_.find_list ? context_.find_list(name) : nullptr;
      if (spec == nullptr && list == nullptr) {
        std::vector<std::string> candidates = context_.list_names;
        for (const auto& fact : context_.catalog->facts()) {
          if (fact.type == FactType::list) candidates.push_back(fact.name);
        }
        return fail(node.set_name.span.offset, fmt::format("unknown list or list fact '{}'{}", name,
                                                           suggestion(name, candidates)));
      }
      if (spec != nullptr) {
        std::string message;
        if (resolve_fact(name, context_, &message) == nullptr) {
          return fail(node.set_name.span.offset, message);
        }
        use(node.set_name);
        if (spec->type != FactType::list) {
          return fail(node.set_name.span.offset,
                      fmt::format("'in' needs a list on its right, but {} is {}", name,
                                  fact_type_with_article(spec->type)));
        }
        if (!lhs) return std::nullopt;
        if (lhs->type != FactType::string) {
          return fail(node.lhs.span.offset,
                      fmt::format("membership in {} (a list of strings) needs a string on "
                                  "its left, but {}",
                                  name, describe(*lhs)));
        }
        out.kind = Condition::Kind::in_list_fact;
        out.lhs = std::move(*lhs);
        out.rhs = fact_operand(*spec);
        return out;
      }
    }
    if (!lhs) return std::nullopt;
    const std::string list_label =
        out.inline_list ? std::string("the list") : fmt::format("list '{}'", list->name());
    if (lhs->type == FactType::ip) {
      if (!list->empty() && !list->has_networks()) {
        return fail(node.lhs.span.offset,
                    fmt::format("{} has no network entries (CIDR or IP address) to match {} "
                                "against, only domains and addresses",
                                list_label, lhs->text()));
      }
    } else if (lhs->type == FactType::string) {
      if (!list->empty() && !list->has_names()) {
        return fail(node.lhs.span.offset,
                    fmt::format("{} has only network entries, but {}; a string is matched "
                                "against domain and address entries",
                                list_label, describe(*lhs)));
      }
    } else {
      return fail(
          node.lhs.span.offset,
          fmt::format("'in' matches an ip or a string against a list, but {}", describe(*lhs)));
    }
    out.lhs = std::move(*lhs);
    out.list = std::move(list);
    return out;
  }

  static std::string suggestion(std::string_view name, const std::vector<std::string>& names) {
    if (name.size() > 64) return "";
    std::string best;
    std::size_t best_distance = 3;
    for (const auto& candidate : names) {
      if (candidate.size() > 64) continue;
      // Levenshtein distance on short names only (bounded above).
      std::vector<std::size_t> row(candidate.size() + 1);
      for (std::size_t j = 0; j <= candidate.size(); ++j)
        row[j] = j;
      for (std::size_t i = 1; i <= name.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= candidate.size(); ++j) {
          const std::size_t above = row[j];
          row[j] = std::min(
              {row[j] + 1, row[j - 1] + 1, diagonal + (name[i - 1] == candidate[j - 1] ? 0 : 1)});
          diagonal = above;
        }
      }
      if (row[candidate.size()] < best_distance) {
        best_distance = row[candidate.size()];
        best = candidate;
      }
    }
    return best.empty() ? "" : fmt::format(" (did you mean '{}'?)", best);
  }

  const CompileContext& context_;
};

// ---- evaluation --------------------------------------------------------------------------

// The value of an operand: the constant, the fact's value, or nullptr when the fact is absent.
const FactValue* value_of(const CompiledOperand& operand, const Facts& facts) {
  return operand.is_fact ? facts.get(operand.fact) : &operand.constant;
}

void describe_fact(const CompiledOperand& operand, const FactValue* value, std::string* detail) {
  if (!operand.is_fact) return;
  if (!detail->empty()) *detail += ", ";
  *detail += value == nullptr ? fmt::format("{} is absent", operand.fact)
                              : fmt::format("{} is {}", operand.fact, format_fact_value(*value));
}

bool compare_values(CompareOp op, const FactValue& a, const FactValue& b) {
  if (a.index() != b.index()) return op == CompareOp::not_equal;
  bool equal = false;
  if (const auto* text = std::get_if<std::string>(&a)) {
    equal = equal_ignoring_case(*text, std::get<std::string>(b));
  } else if (const auto* address = std::get_if<IpAddress>(&a)) {
    equal = address->same_address(std::get<IpAddress>(b));
  } else if (const auto* number = std::get_if<std::int64_t>(&a)) {
    const std::int64_t other = std::get<std::int64_t>(b);
    switch (op) {
      case CompareOp::less:
        return *number < other;
      case CompareOp::less_equal:
        return *number <= other;
      case CompareOp::greater:
        return *number > other;
      case CompareOp::greater_equal:
        return *number >= other;
      default:
        equal = *number == other;
        break;
    }
  } else {
    equal = a == b;
  }
  return op == CompareOp::equal ? equal : !equal;
}

Truth from_bool(bool value) {
  return value ? Truth::yes : Truth::no;
}

Truth evaluate_leaf(const Condition& condition, const Facts& facts, std::string* detail) {
  using K = Condition::Kind;
  switch (condition.kind) {
    case K::constant:
      return from_bool(std::get<bool>(condition.lhs.constant));
    case K::bool_fact: {
      const FactValue* value = value_of(condition.lhs, facts);
      describe_fact(condition.lhs, value, detail);
      if (value == nullptr || !std::holds_alternative<bool>(*value)) return Truth::unknown;
      return from_bool(std::get<bool>(*value));
    }
    case K::present: {
      const FactValue* value = value_of(condition.lhs, facts);
      describe_fact(condition.lhs, value, detail);
      return from_bool(value != nullptr);
    }
    case K::compare: {
      const FactValue* lhs = value_of(condition.lhs, facts);
      const FactValue* rhs = value_of(condition.rhs, facts);
      describe_fact(condition.lhs, lhs, detail);
      describe_fact(condition.rhs, rhs, detail);
      if (lhs == nullptr || rhs == nullptr) return Truth::unknown;
      // A fact recorded with a type other than the catalog's is treated as absent.
      if (fact_type_of(*lhs) != condition.lhs.type || fact_type_of(*rhs) != condition.rhs.type) {
        return Truth::unknown;
      }
      return from_bool(compare_values(condition.op, *lhs, *rhs));
    }
    case K::in_list_fact: {
      const FactValue* lhs = value_of(condition.lhs, facts);
      const FactValue* rhs = value_of(condition.rhs, facts);
      describe_fact(condition.lhs, lhs, detail);
      describe_fact(condition.rhs, rhs, detail);
      if (lhs == nullptr || rhs == nullptr) return Truth::unknown;
      const auto* needle = std::get_if<std::string>(lhs);
      const auto* haystack = std::get_if<FactList>(rhs);
      if (needle == nullptr || haystack == nullptr) return Truth::unknown;
      return from_bool(std::any_of(haystack->begin(), haystack->end(), [&](const auto& item) {
        return equal_ignoring_case(item, *needle);
      }));
    }
    case K::in_list: {
      const FactValue* lhs = value_of(condition.lhs, facts);
      describe_fact(condition.lhs, lhs, detail);
      if (lhs == nullptr) return Truth::unknown;
      const ListEntry* entry = nullptr;
      if (const auto* address = std::get_if<IpAddress>(lhs)) {
        entry = condition.list->match_ip(*address);
      } else if (const auto* text = std::get_if<std::string>(lhs)) {
        entry = condition.list->match_string(*text);
      } else {
        return Truth::unknown;
      }
      if (entry == nullptr) return Truth::no;
      if (!detail->empty()) *detail += ", ";
      *detail += fmt::format("listed as {}", quote_string(entry->text));
      if (!entry->location.empty()) *detail += fmt::format(" at {}", entry->location);
      return Truth::yes;
    }
    default:
      return Truth::unknown;
  }
}

// Precedence for printing: or 1, and 2, not 3, tests 4.
int precedence(const Condition& condition) {
  switch (condition.kind) {
    case Condition::Kind::any_of:
      return 1;
    case Condition::Kind::all_of:
      return 2;
    case Condition::Kind::negate:
      return 3;
    default:
      return 4;
  }
}

std::string text_at(const Condition& condition, int context_precedence) {
  std::string text = condition.text();
  if (precedence(condition) < context_precedence) return "(" + text + ")";
  return text;
}

}  // namespace

std::string CompiledOperand::text() const {
  if (is_fact) return fact;
  switch (fact_type_of(constant)) {
    case FactType::string:
      return quote_string(std::get<std::string>(constant));
    case FactType::ip:
      return quote_string(std::get<IpAddress>(constant).to_string());
    default:
      return format_fact_value(constant);
  }
}

std::string Condition::text() const {
  switch (kind) {
    case Kind::any_of:
    case Kind::all_of: {
      std::string out;
      for (const auto& child : children) {
        if (!out.empty()) out += kind == Kind::any_of ? " or " : " and ";
        // "a or (b or c)" keeps its parentheses: they were written, and are harmless.
        out += text_at(child, precedence(*this) + 1);
      }
      return out;
    }
    case Kind::negate:
      return "not " + text_at(children.front(), 3);
    case Kind::compare:
      return fmt::format("{} {} {}", lhs.text(), compare_op_text(op), rhs.text());
    case Kind::in_list_fact:
      return fmt::format("{} in {}", lhs.text(), rhs.text());
    case Kind::in_list: {
      if (!inline_list) return fmt::format("{} in {}", lhs.text(), list->name());
      std::string items;
      for (const auto& entry : list->entries()) {
        if (!items.empty()) items += ", ";
        items += quote_string(entry.text);
      }
      return fmt::format("{} in [{}]", lhs.text(), items);
    }
    case Kind::bool_fact:
    case Kind::constant:
      return lhs.text();
    case Kind::present:
      return fmt::format("present({})", lhs.fact);
  }
  return "";
}

std::string_view truth_name(Truth truth) {
  switch (truth) {
    case Truth::yes:
      return "true";
    case Truth::no:
      return "false";
    case Truth::unknown:
      return "unknown";
  }
  return "unknown";
}

Truth evaluate(const Condition& condition, const Facts& facts, std::vector<CheckTrace>* checks) {
  using K = Condition::Kind;
  switch (condition.kind) {
    case K::all_of: {
      Truth result = Truth::yes;
      for (const auto& child : condition.children) {
        const Truth part = evaluate(child, facts, checks);
        if (part == Truth::no) return Truth::no;
        if (part == Truth::unknown) result = Truth::unknown;
      }
      return result;
    }
    case K::any_of: {
      Truth result = Truth::no;
      for (const auto& child : condition.children) {
        const Truth part = evaluate(child, facts, checks);
        if (part == Truth::yes) return Truth::yes;
        if (part == Truth::unknown) result = Truth::unknown;
      }
      return result;
    }
    case K::negate: {
      const Truth inner = evaluate(condition.children.front(), facts, checks);
      if (inner == Truth::unknown) return Truth::unknown;
      return inner == Truth::yes ? Truth::no : Truth::yes;
    }
    default: {
      std::string detail;
      const Truth result = evaluate_leaf(condition, facts, &detail);
      if (checks != nullptr) checks->push_back({condition.text(), result, std::move(detail)});
      return result;
    }
  }
}

const FactSpec* resolve_fact(std::string_view name, const CompileContext& context,
                             std::string* error) {
  const FactSpec* spec = context.catalog->find(name);
  if (spec == nullptr) {
    std::string message = fmt::format("unknown fact '{}'", name);
    const auto similar = context.catalog->similar_names(name);
    if (!similar.empty()) message += fmt::format(" (did you mean '{}'?)", similar.front());
    if (const std::string hint = context.catalog->hint_for_unknown(name); !hint.empty()) {
      message += "; " + hint;
    }
    *error = std::move(message);
    return nullptr;
  }
  if (!context.catalog->available(*spec)) {
    *error = fmt::format("rule \"{}\" reads fact {} of filter {}, which is not in [filters] chain",
                         context.rule_name, spec->name, spec->filter);
    return nullptr;
  }
  return spec;
}

std::variant<CompiledCondition, std::vector<CompileError>> compile_condition(
    const SyntaxNode& syntax, const CompileContext& context) {
  Compiler compiler(context);
  auto root = compiler.compile(syntax);
  if (!root || !compiler.errors.empty()) return std::move(compiler.errors);
  return CompiledCondition{std::move(*root), std::move(compiler.facts)};
}

}  // namespace portcullis::policy
