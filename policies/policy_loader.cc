// Loading policy files: TOML structure, [lists] (inline and file:), [[rule]] keys, and the
// compilation of each rule (condition, action, placeholders, phase) with file:line:column
// errors.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <toml.hpp>

#include <fmt/format.h>

#include "policy.h"
#include "policy_toml_text.h"

namespace portcullis::policy {

namespace {

using TomlValue = toml::basic_value<toml::discard_comments, std::map, std::vector>;

constexpr std::size_t max_rule_name = 200;

std::string type_with_article(const TomlValue& value) {
  switch (value.type()) {
    case toml::value_t::boolean:
      return "a boolean";
    case toml::value_t::integer:
      return "an integer";
    case toml::value_t::floating:
      return "a float";
    case toml::value_t::string:
      return "a string";
    case toml::value_t::array:
      return "an array";
    case toml::value_t::table:
      return "a table";
    default:
      return "a date or time";
  }
}

bool is_list_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  const char first = name.front();
  if (!((first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z') || first == '_')) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

bool is_keyword(std::string_view name) {
  for (std::string_view keyword : {"and", "or", "not", "in", "true", "false", "present"}) {
    if (name == keyword) return true;
  }
  return false;
}

struct ListDefinition {
  std::string file;
  unsigned line = 0;
  unsigned column = 0;
};

class Loader {
 public:
  Loader(const FactCatalog& catalog, const FileReader& reader)
      : catalog_(catalog), reader_(reader) {}

  void read(const std::string& file) {
    const std::size_t file_index = files_.size();
    files_.push_back(file);
    std::string error;
    auto text = reader_(file, &error);
    if (!text) {
      report(file_index, 0, {file, 0, 0, fmt::format("cannot read the policy file: {}", error)});
      return;
    }
    auto source = std::make_unique<Source>();
    source->file = file;
    source->index = file_index;
    source->text = std::move(*text);
    if (const auto bad = find_invalid_utf8(source->text)) {
      const TextPosition where = position_of(source->text, *bad);
      report(file_index, 0,
             {file, where.line, where.column, "invalid UTF-8; a policy file must be UTF-8"});
      return;
    }
    if (toml_nesting_depth(source->text) > max_toml_nesting) {
      report(file_index, 0,
             {file, 1, 1,
              fmt::format("arrays and tables nest deeper than {} levels", max_toml_nesting)});
      return;
    }
    try {
      std::istringstream stream(source->text);
      source->root = toml::parse<toml::discard_comments, std::map, std::vector>(stream, file);
    } catch (const toml::syntax_error& e) {
      report_toml_error(file_index, file, e.what(), e.location());
      return;
    } catch (const toml::exception& e) {
      report_toml_error(file_index, file, e.what(), e.location());
      return;
    } catch (const std::exception& e) {
      report(file_index, 0, {file, 1, 1, fmt::format("invalid TOML: {}", e.what())});
      return;
    }
    read_structure(*source);
    sources_.push_back(std::move(source));
  }

  void compile_all() {
    for (auto& source : sources_) {
      for (const TomlValue* rule : source->rules)
        compile_rule(*source, *rule);
    }
  }

  LoadResult result() {
    LoadResult result;
    std::stable_sort(diagnostics_.begin(), diagnostics_.end(),
                     [](const Ordered& a, const Ordered& b) { return a.key < b.key; });
    for (auto& ordered : diagnostics_)
      result.errors.push_back(std::move(ordered.diagnostic));
    if (result.errors.empty()) {
      result.policy = std::make_shared<const Policy>(std::move(rules_), std::move(lists_), files_);
    }
    return result;
  }

 private:
  struct Source {
    std::string file;
    std::size_t index = 0;
    std::string text;
    TomlValue root;
    std::vector<const TomlValue*> rules;
  };

  struct Ordered {
    std::tuple<std::size_t, unsigned, unsigned, unsigned> key;
    Diagnostic diagnostic;
  };

  // `sub_line` orders several errors reported for one position (a list file's lines).
  void report(std::size_t file_index, unsigned sub_line, Diagnostic diagnostic) {
    diagnostics_.push_back(
        {{file_index, diagnostic.line, sub_line, diagnostic.column}, std::move(diagnostic)});
  }

  void report_at(const Source& source, TextPosition position, std::string message,
                 unsigned sub_line = 0) {
    report(source.index, sub_line,
           {source.file, position.line, position.column, std::move(message)});
  }

  static TextPosition start_of(const TomlValue& value) {
    const auto location = value.location();
    return {static_cast<unsigned>(location.line()), static_cast<unsigned>(location.column())};
  }

  // The position of `key` on the line of its value, or the value's own position.
  static TextPosition key_position(const TomlValue& value, std::string_view key) {
    const auto location = value.location();
    const std::string line = location.line_str();
    const std::size_t limit = std::min<std::size_t>(location.column(), line.size());
    const std::size_t found = std::string_view(line).substr(0, limit).rfind(key);
    if (found == std::string_view::npos) return start_of(value);
    return {static_cast<unsigned>(location.line()), static_cast<unsigned>(found + 1)};
  }

  // Where byte `offset` of a string value came from in the file.
  static TextPosition inside(const Source& source, const TomlValue& value, std::size_t offset) {
    const TextPosition start = start_of(value);
    const auto positions = map_string_token(source.text, start.line, start.column);
    if (positions.size() != value.as_string().str.size() + 1 || offset >= positions.size()) {
      return start;
    }
    return positions[offset];
  }

  void report_toml_error(std::size_t file_index, const std::string& file, const std::string& what,
                         const toml::source_location& location) {
    // toml11's message: "[error] summary\n --> file\n   |\n 5 | text\n   |     ^--- note".
    // The marked line and caret give the position (location() is often the file start).
    std::istringstream lines(what);
    std::string summary;
    std::getline(lines, summary);
    if (summary.starts_with("[error] ")) summary.erase(0, 8);
    unsigned line = static_cast<unsigned>(location.line());
    unsigned column = static_cast<unsigned>(location.column());
    std::string text;
    bool found_line = false;
    while (std::getline(lines, text)) {
      if (!found_line) {
        const auto bar = text.find(" | ");
        if (bar == std::string::npos) continue;
        const std::string number = text.substr(0, bar);
        if (number.find_first_not_of(' ') != std::string::npos &&
            number.find_first_not_of(" 0123456789") == std::string::npos) {
          line = static_cast<unsigned>(std::stoul(number));
          found_line = true;
        }
        continue;
      }
      // The caret line under it: "<indent>|<one space><column - 1 spaces>^".
      const auto pipe = text.find('|');
      const auto caret = text.find('^');
      if (pipe != std::string::npos && caret != std::string::npos && caret > pipe + 1) {
        column = static_cast<unsigned>(caret - pipe - 1);
      }
      break;
    }
    report(file_index, 0, {file, line, column, fmt::format("invalid TOML: {}", summary)});
  }

  void read_structure(Source& source) {
    if (!source.root.is_table()) return;
    for (const auto& [key, value] : source.root.as_table()) {
      if (key == "lists") {
        if (!value.is_table()) {
          report_at(source, key_position(value, key), "[lists] must be a table");
          continue;
        }
        for (const auto& [name, definition] : value.as_table()) {
          read_list(source, name, definition);
        }
      } else if (key == "rule") {
        if (!value.is_array()) {
          report_at(source, key_position(value, key),
                    fmt::format("rule must be an array of tables ([[rule]]), not {}",
                                type_with_article(value)));
          continue;
        }
        for (const auto& rule : value.as_array()) {
          if (!rule.is_table()) {
            report_at(source, start_of(rule),
                      fmt::format("a rule must be a table, not {}", type_with_article(rule)));
            continue;
          }
          source.rules.push_back(&rule);
        }
      } else {
        report_at(source, value.is_table() ? start_of(value) : key_position(value, key),
                  fmt::format("unknown key '{}' (a policy file has [lists] and [[rule]])", key));
      }
    }
    // Rules run in file order: toml11 keeps array order.
  }

  void read_list(Source& source, const std::string& name, const TomlValue& definition) {
    const TextPosition position =
        definition.is_table() ? start_of(definition) : key_position(definition, name);
    if (definition.is_table()) {
      report_at(source, position,
                fmt::format("list '{}' is a table; list names cannot contain '.' and a list is "
                            "an array of strings or \"file:PATH\"",
                            name));
      return;
    }
    bool name_ok = true;
    if (!is_list_name(name)) {
      report_at(source, position,
                fmt::format("list name '{}' must be letters, digits, '_' and '-', starting with "
                            "a letter or '_'",
                            name));
      name_ok = false;
    } else if (is_keyword(name)) {
      report_at(source, position, fmt::format("list name '{}' is a keyword", name));
      name_ok = false;
    } else if (catalog_.find(name) != nullptr) {
      report_at(source, position, fmt::format("list name '{}' is the name of a fact", name));
      name_ok = false;
    } else if (auto it = list_definitions_.find(name); it != list_definitions_.end()) {
      report_at(source, position,
                fmt::format("list '{}' is already defined at {}:{}:{}", name, it->second.file,
                            it->second.line, it->second.column));
      return;
    }
    const std::string location = fmt::format("{}:{}", source.file, position.line);
    std::vector<ListEntry> entries;
    if (definition.is_array()) {
      for (const auto& item : definition.as_array()) {
        if (!item.is_string()) {
          report_at(
              source, start_of(item),
              fmt::format("list '{}': entries are strings, not {}", name, type_with_article(item)));
          continue;
        }
        std::string error;
        auto entry = parse_list_entry(item.as_string().str, &error);
        if (!entry) {
          report_at(source, start_of(item), fmt::format("list '{}': {}", name, error));
          continue;
        }
        entry->location = fmt::format("{}:{}", source.file, start_of(item).line);
        entries.push_back(std::move(*entry));
      }
    } else if (definition.is_string() && definition.as_string().str.starts_with("file:")) {
      read_list_file(source, name, definition, position, &entries);
    } else {
      report_at(source, start_of(definition),
                fmt::format(
                    "list '{}' must be an array of strings or \"file:PATH\", not {}", name,
                    definition.is_string()
                        ? fmt::format("the string \"{}\"", definition.as_string().str.substr(0, 40))
                        : type_with_article(definition)));
      return;
    }
    if (!name_ok) return;
    list_definitions_[name] = {source.file, position.line, position.column};
    list_names_.push_back(name);
    lists_[name] = std::make_shared<const NamedList>(name, location, std::move(entries));
  }

  void read_list_file(Source& source, const std::string& name, const TomlValue& definition,
                      TextPosition position, std::vector<ListEntry>* entries) {
    const std::string relative = definition.as_string().str.substr(5);
    if (relative.empty()) {
      report_at(source, start_of(definition), fmt::format("list '{}': file: needs a path", name));
      return;
    }
    const std::filesystem::path written(relative);
    const std::string path =
        written.is_absolute()
            ? relative
            : (std::filesystem::path(source.file).parent_path() / written).generic_string();
    std::string error;
    auto text = reader_(path, &error);
    if (!text) {
      report_at(source, start_of(definition),
                fmt::format("list '{}': cannot read {}: {}", name, path, error));
      return;
    }
    std::size_t line_start = 0;
    unsigned line_number = 0;
    // SECURITY: one pass over a file the reader bounded in size; each entry is bounded by
    // parse_list_entry.
    while (line_start < text->size()) {
      std::size_t line_end = text->find('\n', line_start);
      if (line_end == std::string::npos) line_end = text->size();
      ++line_number;
      std::string_view line(text->data() + line_start, line_end - line_start);
      line_start = line_end + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (const auto hash = line.find('#'); hash != std::string_view::npos) {
        line = line.substr(0, hash);
      }
      std::size_t first = 0;
      while (first < line.size() && (line[first] == ' ' || line[first] == '\t'))
        ++first;
      std::size_t last = line.size();
      while (last > first && (line[last - 1] == ' ' || line[last - 1] == '\t'))
        --last;
      if (first == last) continue;
      std::string error_message;
      auto entry = parse_list_entry(line.substr(first, last - first), &error_message);
      if (!entry) {
        // Reported under the policy file's position so errors stay in file order.
        report(source.index, line_number,
               {path, line_number, static_cast<unsigned>(first + 1),
                fmt::format("list '{}': {}", name, error_message)});
        // Keep the sort key at the list definition.
        diagnostics_.back().key = {source.index, position.line, line_number, position.column};
        continue;
      }
      entry->location = fmt::format("{}:{}", path, line_number);
      entries->push_back(std::move(*entry));
    }
  }

  void compile_rule(const Source& source, const TomlValue& table) {
    const TextPosition header = start_of(table);
    const TomlValue* name_value = nullptr;
    const TomlValue* when_value = nullptr;
    const TomlValue* then_value = nullptr;
    const TomlValue* mode_value = nullptr;
    const TomlValue* phase_value = nullptr;
    bool ok = true;
    std::set<std::string> mistyped;  // present but not a string: already reported
    for (const auto& [key, value] : table.as_table()) {
      const TomlValue** slot = nullptr;
      if (key == "name") slot = &name_value;
      if (key == "when") slot = &when_value;
      if (key == "then") slot = &then_value;
      if (key == "mode") slot = &mode_value;
      if (key == "phase") slot = &phase_value;
      if (slot == nullptr) {
        report_at(source, key_position(value, key),
                  fmt::format("unknown key '{}' in a rule (expected name, when, then, mode or "
                              "phase)",
                              key));
        ok = false;
        continue;
      }
      if (!value.is_string()) {
        report_at(source, start_of(value),
                  fmt::format("{} must be a string, not {}", key, type_with_article(value)));
        ok = false;
        mistyped.insert(key);
        continue;
      }
      *slot = &value;
    }
    Rule rule;
    rule.file = source.file;
    rule.line = header.line;
    if (name_value != nullptr) {
      rule.name = name_value->as_string().str;
      const bool printable = std::all_of(rule.name.begin(), rule.name.end(), [](char c) {
        return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
      });
      if (rule.name.empty() || rule.name.size() > max_rule_name || !printable) {
        report_at(source, start_of(*name_value),
                  fmt::format("a rule name must be 1 to {} bytes without control characters",
                              max_rule_name));
        return;
      }
      if (auto it = rule_names_.find(rule.name); it != rule_names_.end()) {
        report_at(source, start_of(*name_value),
                  fmt::format("rule name \"{}\" is already used at {}", rule.name, it->second));
        ok = false;
      } else {
        rule_names_[rule.name] = fmt::format("{}:{}", source.file, header.line);
      }
    } else {
      if (mistyped.count("name") == 0) report_at(source, header, "a rule needs a name");
      return;
    }
    if (when_value == nullptr && mistyped.count("when") == 0) {
      report_at(source, header, fmt::format("rule \"{}\" needs a when", rule.name));
      ok = false;
    }
    if (then_value == nullptr && mistyped.count("then") == 0) {
      report_at(source, header, fmt::format("rule \"{}\" needs a then", rule.name));
      ok = false;
    }
    if (mode_value != nullptr) {
      const std::string& mode = mode_value->as_string().str;
      if (mode == "observe") {
        rule.mode = Mode::observe;
      } else if (mode != "enforce") {
        report_at(
            source, start_of(*mode_value),
            fmt::format("mode must be \"enforce\" or \"observe\", not \"{}\"", mode.substr(0, 40)));
        ok = false;
      }
    }
    if (phase_value != nullptr) {
      const auto phase = parse_phase(phase_value->as_string().str);
      if (!phase) {
        report_at(source, start_of(*phase_value),
                  fmt::format("phase must be connect, helo, mail, rcpt or data, not \"{}\"",
                              phase_value->as_string().str.substr(0, 40)));
        ok = false;
      } else {
        rule.phase = *phase;
        rule.phase_explicit = true;
      }
    }
    if (when_value == nullptr || then_value == nullptr) return;

    CompileContext context;
    context.catalog = &catalog_;
    context.find_list = [this](std::string_view list_name) -> std::shared_ptr<const NamedList> {
      auto it = lists_.find(std::string(list_name));
      return it == lists_.end() ? nullptr : it->second;
    };
    context.list_names = list_names_;
    context.rule_name = rule.name;

    std::vector<FactUse> uses;
    const std::string& when_text = when_value->as_string().str;
    auto syntax = parse_condition(when_text);
    if (const auto* error = std::get_if<SyntaxError>(&syntax)) {
      report_at(source, inside(source, *when_value, error->offset), error->message);
      ok = false;
    } else {
      auto compiled = compile_condition(std::get<SyntaxNode>(syntax), context);
      if (auto* errors = std::get_if<std::vector<CompileError>>(&compiled)) {
        for (const auto& error : *errors) {
          report_at(source, inside(source, *when_value, error.offset), error.message);
        }
        ok = false;
      } else {
        auto& condition = std::get<CompiledCondition>(compiled);
        rule.when = std::move(condition.root);
        uses = std::move(condition.facts);
      }
    }

    const std::string& then_text = then_value->as_string().str;
    auto action = parse_action(then_text);
    if (const auto* error = std::get_if<ActionError>(&action)) {
      report_at(source, inside(source, *then_value, error->offset), error->message);
      ok = false;
    } else {
      rule.then = std::move(std::get<ActionSpec>(action));
      std::vector<const TemplatePart*> placeholders;
      if (rule.then.reply) {
        for (const auto& part : rule.then.reply->text.parts)
          placeholders.push_back(&part);
      }
      for (const auto& part : rule.then.header_value.parts)
        placeholders.push_back(&part);
      for (const TemplatePart* part : placeholders) {
        if (!part->is_placeholder) continue;
        std::string message;
        if (resolve_fact(part->text, context, &message) == nullptr) {
          report_at(source, inside(source, *then_value, part->offset), message);
          ok = false;
          continue;
        }
        if (std::none_of(uses.begin(), uses.end(),
                         [&](const FactUse& use) { return use.name == part->text; })) {
          uses.push_back({part->text, part->offset, true});
        }
      }
    }
    if (!ok) return;

    if (!assign_phase(source, *when_value, *then_value, uses, &rule)) return;
    for (const auto& use : uses)
      rule.facts.push_back(use.name);
    rules_.push_back(std::move(rule));
  }

  bool assign_phase(const Source& source, const TomlValue& when_value, const TomlValue& then_value,
                    const std::vector<FactUse>& uses, Rule* rule) {
    auto where = [&](const FactUse& use) {
      return inside(source, use.in_then ? then_value : when_value, use.offset);
    };
    auto known = [](const FactSpec& spec) {
      // Facts stay known to the end of data unless they say otherwise (rcpt: only at rcpt).
      if (spec.known_until == Phase::data) {
        return fmt::format("known from {}", phase_name(spec.known_from));
      }
      if (spec.known_from == spec.known_until) {
        return fmt::format("known only at {}", phase_name(spec.known_from));
      }
      return fmt::format("known from {} to {}", phase_name(spec.known_from),
                         phase_name(spec.known_until));
    };
    bool ok = true;
    if (rule->phase_explicit) {
      for (const auto& use : uses) {
        const FactSpec& spec = *catalog_.find(use.name);
        if (spec.known_from > rule->phase || spec.known_until < rule->phase) {
          report_at(source, where(use),
                    fmt::format("rule \"{}\" runs at {} (its phase), but reads {}, which is {}",
                                rule->name, phase_name(rule->phase), use.name, known(spec)));
          ok = false;
        }
      }
      return ok;
    }
    // The earliest phase at which every fact is known: the latest known_from.
    const FactUse* latest = nullptr;
    Phase phase = Phase::connect;
    for (const auto& use : uses) {
      const FactSpec& spec = *catalog_.find(use.name);
      if (latest == nullptr || spec.known_from > phase) {
        latest = &use;
        phase = spec.known_from;
      }
    }
    for (const auto& use : uses) {
      const FactSpec& spec = *catalog_.find(use.name);
      if (spec.known_until < phase) {
        report_at(
            source, where(use),
            fmt::format("rule \"{}\" reads {} ({}) and {} ({}): no phase knows both", rule->name,
                        use.name, known(spec), latest->name, known(*catalog_.find(latest->name))));
        ok = false;
      }
    }
    rule->phase = phase;
    return ok;
  }

  const FactCatalog& catalog_;
  const FileReader& reader_;
  std::vector<std::string> files_;
  std::vector<std::unique_ptr<Source>> sources_;
  std::vector<Ordered> diagnostics_;
  std::map<std::string, ListDefinition> list_definitions_;
  std::vector<std::string> list_names_;
  std::map<std::string, std::shared_ptr<const NamedList>> lists_;
  std::map<std::string, std::string> rule_names_;
  std::vector<Rule> rules_;
};

}  // namespace

std::string Rule::location() const {
  return fmt::format("{}:{}", file, line);
}

Policy::Policy(std::vector<Rule> rules,
               std::map<std::string, std::shared_ptr<const NamedList>> lists,
               std::vector<std::string> files)
    : rules_(std::move(rules)), lists_(std::move(lists)), files_(std::move(files)) {
  for (const Rule& rule : rules_)
    by_phase_[static_cast<std::size_t>(rule.phase)].push_back(&rule);
}

std::string Diagnostic::to_string() const {
  if (line == 0) return fmt::format("{}: {}", file, message);
  return fmt::format("{}:{}:{}: {}", file, line, column, message);
}

std::string LoadResult::error_text() const {
  std::string out;
  for (const auto& error : errors)
    out += error.to_string() + "\n";
  return out;
}

std::optional<std::string> read_file_from_disk(const std::string& path, std::string* error) {
  return read_regular_file(path, max_policy_file_size, error);
}

LoadResult load_policy(const std::vector<std::string>& files, const FactCatalog& catalog,
                       const FileReader& reader) {
  Loader loader(catalog, reader);
  for (const auto& file : files)
    loader.read(file);
  loader.compile_all();
  return loader.result();
}

}  // namespace portcullis::policy
