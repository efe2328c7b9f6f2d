// Facts: the evidence that filters and the session record and that policy rules read.
//
// A fact is a name (e.g. "client.ip", "spf", "rate.conn_per_ip.exceeded") and a typed value.
// A fact nobody recorded is absent; absence is not a value of any type (DESIGN §4: every
// comparison with an absent fact is false). The names and types of the known facts live in
// the FactCatalog (fact_catalog.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ip_address.h"

namespace portcullis {

enum class FactType { boolean, integer, string, ip, list };

// "bool", "int", "string", "ip", "list": the names used in docs and error messages.
std::string_view fact_type_name(FactType type);
// The same with an article for prose: "a bool", "an int", "a string", "an ip", "a list".
std::string_view fact_type_with_article(FactType type);

using FactList = std::vector<std::string>;
// The alternatives are in FactType order, so value.index() == static_cast<int>(type).
using FactValue = std::variant<bool, std::int64_t, std::string, IpAddress, FactList>;

FactType fact_type_of(const FactValue& value);

// Policy-language rendering, as used in traces: true, 42, 'text' (a quote doubled), 192.0.2.1,
// ['a', 'b']. Control characters and bytes outside printable ASCII are shown as \xHH, so a
// trace line stays one line whatever a client sent.
std::string format_fact_value(const FactValue& value);

// Plain rendering for reply texts and headers: text as is, lists joined with ", ".
std::string format_fact_plain(const FactValue& value);

class Facts {
 public:
  void set(std::string name, FactValue value);
  void erase(std::string_view name);
  // Removes every fact for which `remove` returns true (e.g. the helo-phase facts after
  // STARTTLS).
  void erase_if(const std::function<bool(std::string_view name)>& remove);
  void clear() { values_.clear(); }

  bool has(std::string_view name) const { return get(name) != nullptr; }
  // nullptr when absent.
  const FactValue* get(std::string_view name) const;

  // Typed getters: absent, or present with another type, gives nullopt / nullptr.
  std::optional<bool> boolean(std::string_view name) const;
  std::optional<std::int64_t> integer(std::string_view name) const;
  const std::string* string(std::string_view name) const;
  const IpAddress* ip(std::string_view name) const;
  const FactList* list(std::string_view name) const;

  std::size_t size() const { return values_.size(); }
  bool empty() const { return values_.empty(); }
  // In name order.
  auto begin() const { return values_.begin(); }
  auto end() const { return values_.end(); }

 private:
  std::map<std::string, FactValue, std::less<>> values_;
};

}  // namespace portcullis
