#include "facts.h"

#include <fmt/format.h>

namespace portcullis {

namespace {

void append_quoted(std::string& out, std::string_view text) {
  out += '\'';
  for (unsigned char c : text) {
    if (c == '\'') {
      out += "''";
    } else if (c < 0x20 || c >= 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '\'';
}

}  // namespace

std::string_view fact_type_name(FactType type) {
  switch (type) {
    case FactType::boolean:
      return "bool";
    case FactType::integer:
      return "int";
    case FactType::string:
      return "string";
    case FactType::ip:
      return "ip";
    case FactType::list:
      return "list";
  }
  return "unknown";
}

std::string_view fact_type_with_article(FactType type) {
  switch (type) {
    case FactType::boolean:
      return "a bool";
    case FactType::integer:
      return "an int";
    case FactType::string:
      return "a string";
    case FactType::ip:
      return "an ip";
    case FactType::list:
      return "a list";
  }
  return "unknown";
}

FactType fact_type_of(const FactValue& value) {
  return static_cast<FactType>(value.index());
}

std::string format_fact_value(const FactValue& value) {
  std::string out;
  switch (fact_type_of(value)) {
    case FactType::boolean:
      out = std::get<bool>(value) ? "true" : "false";
      break;
    case FactType::integer:
      out = std::to_string(std::get<std::int64_t>(value));
      break;
    case FactType::string:
      append_quoted(out, std::get<std::string>(value));
      break;
    case FactType::ip:
      out = std::get<IpAddress>(value).to_string();
      break;
    case FactType::list: {
      out = "[";
      bool first = true;
      for (const auto& item : std::get<FactList>(value)) {
        if (!first) out += ", ";
        first = false;
        append_quoted(out, item);
      }
      out += "]";
      break;
    }
  }
  return out;
}

std::string format_fact_plain(const FactValue& value) {
  switch (fact_type_of(value)) {
    case FactType::string:
      return std::get<std::string>(value);
    case FactType::list: {
      std::string out;
      for (const auto& item : std::get<FactList>(value)) {
        if (!out.empty()) out += ", ";
        out += item;
      }
      return out;
    }
    default:
      return format_fact_value(value);
  }
}

void Facts::set(std::string name, FactValue value) {
  values_.insert_or_assign(std::move(name), std::move(value));
}

void Facts::erase(std::string_view name) {
  if (auto it = values_.find(name); it != values_.end()) values_.erase(it);
}

void Facts::erase_if(const std::function<bool(std::string_view)>& remove) {
  std::erase_if(values_, [&](const auto& entry) { return remove(entry.first); });
}

const FactValue* Facts::get(std::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? nullptr : &it->second;
}

std::optional<bool> Facts::boolean(std::string_view name) const {
  const FactValue* value = get(name);
  if (value == nullptr || !std::holds_alternative<bool>(*value)) return std::nullopt;
  return std::get<bool>(*value);
}

std::optional<std::int64_t> Facts::integer(std::string_view name) const {
  const FactValue* value = get(name);
  if (value == nullptr || !std::holds_alternative<std::int64_t>(*value)) return std::nullopt;
  return std::get<std::int64_t>(*value);
}

const std::string* Facts::string(std::string_view name) const {
  const FactValue* value = get(name);
  return value == nullptr ? nullptr : std::get_if<std::string>(value);
}

const IpAddress* Facts::ip(std::string_view name) const {
  const FactValue* value = get(name);
  return value == nullptr ? nullptr : std::get_if<IpAddress>(value);
}

const FactList* Facts::list(std::string_view name) const {
  const FactValue* value = get(name);
  return value == nullptr ? nullptr : std::get_if<FactList>(value);
}

}  // namespace portcullis
