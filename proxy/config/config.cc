// Configuration loading (DESIGN §9). Validation is table-driven: each section is a schema of
// key → parser (type, range, choices) that writes into one config struct, so a later stage adds
// a section by adding a table. Every problem of a file is reported, each with its position.
#include "config.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <functional>
#include <set>
#include <sstream>
#include <thread>
#include <toml.hpp>
#include <tuple>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "net_prefix.h"
#include "policy_toml_text.h"
#include "registry.h"

namespace portcullis {
namespace {

constexpr int64_t one_gib = int64_t{1} << 30;
constexpr int64_t one_tib = int64_t{1} << 40;

class Context {
 public:
  Context(std::string file, std::string_view text) : file_(std::move(file)) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  struct Position {
    int line = 0;
    int column = 0;
  };
  // Where `value` starts. toml11's location() counts the lines from the start of the file on
  // every call, which made a file with many messages quadratic; this looks the offset up in a
  // line index built once.
  Position position(const toml::value& value) const {
    const auto* region = dynamic_cast<const toml::detail::region*>(toml::detail::get_region(value));
    if (!region || !region->source()) return {};
    const auto offset = static_cast<size_t>(region->first() - region->begin());
    const auto next_line = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    const auto line = static_cast<size_t>(next_line - line_starts_.begin());
    return {static_cast<int>(line), static_cast<int>(offset - line_starts_[line - 1] + 1)};
  }

  void error(const toml::value& at, std::string key, std::string text) {
    errors_.push_back(message(at, std::move(key), std::move(text)));
  }
  void warning(const toml::value& at, std::string key, std::string text) {
    warnings_.push_back(message(at, std::move(key), std::move(text)));
  }
  void file_error(std::string key, std::string text) {
    errors_.push_back(ConfigMessage{file_, 0, 0, std::move(key), std::move(text)});
  }
  void add(ConfigMessage message) { errors_.push_back(std::move(message)); }
  void record_position(const std::string& key, const toml::value& value) {
    const Position where = position(value);
    positions_[key] = ConfigPosition{where.line, where.column};
  }
  std::unordered_map<std::string, ConfigPosition> take_positions() { return std::move(positions_); }

  // Where each listener's address was written, to report duplicates at the second one.
  struct ListenerAddress {
    std::string host_port;
    std::string key;
    const toml::value* value;
  };
  std::vector<ListenerAddress> listener_addresses;

  // [filters] chain and [policy] files as written, resolved once every section is read.
  const toml::value* filters_chain = nullptr;
  const toml::value* filter_blocks = nullptr;
  const toml::value* policy_files = nullptr;

  const std::string& file() const { return file_; }

  bool has_errors() const { return !errors_.empty(); }
  std::vector<ConfigMessage> take_errors() { return sorted(std::move(errors_)); }
  std::vector<ConfigMessage> take_warnings() { return sorted(std::move(warnings_)); }

 private:
  ConfigMessage message(const toml::value& at, std::string key, std::string text) const {
    const Position where = position(at);
    return ConfigMessage{file_, where.line, where.column, std::move(key), std::move(text)};
  }

  // In file order; messages about the file as a whole (line 0) come last.
  // Messages about other files (policy files) come after, in the order they were found.
  std::vector<ConfigMessage> sorted(std::vector<ConfigMessage> messages) const {
    std::stable_sort(messages.begin(), messages.end(),
                     [this](const ConfigMessage& a, const ConfigMessage& b) {
                       const auto order = [this](const ConfigMessage& m) {
                         if (m.file != file_) return std::tuple(1, 0, 0);
                         return std::tuple(0, m.line == 0 ? INT_MAX : m.line, m.column);
                       };
                       return order(a) < order(b);
                     });
    return messages;
  }

  std::string file_;
  std::vector<size_t> line_starts_;  // offset of each line's first byte
  std::vector<ConfigMessage> errors_;
  std::vector<ConfigMessage> warnings_;
  std::unordered_map<std::string, ConfigPosition> positions_;
};

std::string_view type_phrase(toml::value_t type) {
  switch (type) {
    case toml::value_t::boolean:
      return "a boolean";
    case toml::value_t::integer:
      return "an integer";
    case toml::value_t::floating:
      return "a float";
    case toml::value_t::string:
      return "a string";
    case toml::value_t::offset_datetime:
    case toml::value_t::local_datetime:
      return "a date-time";
    case toml::value_t::local_date:
      return "a date";
    case toml::value_t::local_time:
      return "a time";
    case toml::value_t::array:
      return "an array";
    case toml::value_t::table:
      return "a table";
    case toml::value_t::empty:
      break;
  }
  return "nothing";
}

bool expect_type(const toml::value& value, toml::value_t type, Context& context,
                 const std::string& key) {
  if (value.type() == type) return true;
  context.error(value, key,
                fmt::format("expected {}, got {}", type_phrase(type), type_phrase(value.type())));
  return false;
}

// Values are quoted in messages with control bytes made visible (a stray CR would otherwise
// hide the rest of the message on a terminal).
std::string quote_value(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7F) {
      out += fmt::format("\\x{:02X}", byte);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

// --- fields ---------------------------------------------------------------------------------

template <typename Target>
struct Field {
  std::string_view key;
  std::function<void(const toml::value&, Target&, Context&, const std::string&)> parse;
  bool required = false;
};

template <typename Target>
using Schema = std::vector<Field<Target>>;

// A text check returns the error text, or nothing when the value is fine.
using TextCheck = std::function<std::optional<std::string>(const std::string&)>;

template <typename Target, typename Number>
Field<Target> integer_field(std::string_view key, Number Target::*member, int64_t min, int64_t max,
                            std::string_view why = {}) {
  return {key, [=](const toml::value& value, Target& target, Context& context,
                   const std::string& dotted) {
            if (!expect_type(value, toml::value_t::integer, context, dotted)) return;
            const int64_t number = value.as_integer();
            if (number < min || number > max) {
              const std::string reason = why.empty() ? "" : fmt::format(" ({})", why);
              context.error(value, dotted,
                            max == INT64_MAX
                                ? fmt::format("must be at least {}{}, got {}", min, reason, number)
                                : fmt::format("must be between {} and {}{}, got {}", min, max,
                                              reason, number));
              return;
            }
            target.*member = static_cast<Number>(number);
          }};
}

template <typename Target>
Field<Target> bool_field(std::string_view key, bool Target::*member) {
  return {key, [=](const toml::value& value, Target& target, Context& context,
                   const std::string& dotted) {
            if (!expect_type(value, toml::value_t::boolean, context, dotted)) return;
            target.*member = value.as_boolean();
          }};
}

template <typename Target>
Field<Target> string_field(std::string_view key, std::string Target::*member,
                           TextCheck check = nullptr) {
  return {key, [=](const toml::value& value, Target& target, Context& context,
                   const std::string& dotted) {
            if (!expect_type(value, toml::value_t::string, context, dotted)) return;
            const std::string& text = value.as_string().str;
            if (check) {
              if (auto problem = check(text)) {
                context.error(value, dotted, *problem);
                return;
              }
            }
            target.*member = text;
          }};
}

template <typename Enum>
struct Choice {
  std::string_view name;
  Enum value;
};

// `after` may refuse a valid choice (features not built yet) or warn about it.
template <typename Target, typename Enum>
Field<Target> enum_field(
    std::string_view key, Enum Target::*member, std::vector<Choice<Enum>> choices,
    std::function<bool(Enum, const toml::value&, Context&, const std::string&)> after = nullptr) {
  return {key, [=](const toml::value& value, Target& target, Context& context,
                   const std::string& dotted) {
            if (!expect_type(value, toml::value_t::string, context, dotted)) return;
            const std::string& text = value.as_string().str;
            for (const auto& choice : choices) {
              if (choice.name != text) continue;
              if (after && !after(choice.value, value, context, dotted)) return;
              target.*member = choice.value;
              return;
            }
            std::string names;
            for (const auto& choice : choices) {
              if (!names.empty()) names += ", ";
              names += choice.name;
            }
            context.error(value, dotted,
                          fmt::format("must be one of {}, got {}", names, quote_value(text)));
          }};
}

// --- value checks ---------------------------------------------------------------------------

// Host names end up in SMTP replies and headers: only letters, digits, '-' and '.'.
std::optional<std::string> check_domain(const std::string& text) {
  const bool valid = !text.empty() && text.size() <= 253 && text.front() != '.' &&
                     text.front() != '-' && std::all_of(text.begin(), text.end(), [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                              (c >= '0' && c <= '9') || c == '-' || c == '.';
                     });
  if (valid) return std::nullopt;
  return fmt::format("must be a domain name (letters, digits, '-' and '.'), got {}",
                     quote_value(text));
}

std::optional<std::string> check_absolute_path(const std::string& text) {
  if (!text.empty() && text.front() == '/') return std::nullopt;
  return fmt::format("must be an absolute path, got {}", quote_value(text));
}

std::optional<std::string> check_log_target(const std::string& text) {
  if (text == "stderr" || text == "syslog" || (!text.empty() && text.front() == '/')) {
    return std::nullopt;
  }
  return fmt::format("must be \"stderr\", \"syslog\" or an absolute path, got {}",
                     quote_value(text));
}

// A numeric address with a port that can be connected to or bound (not 0).
std::optional<NetAddress> parse_address(const toml::value& value, Context& context,
                                        const std::string& key) {
  if (!expect_type(value, toml::value_t::string, context, key)) return std::nullopt;
  const std::string& text = value.as_string().str;
  auto address = NetAddress::parse_host_port(text);
  if (!address) {
    context.error(value, key,
                  fmt::format("expected a numeric \"IP:PORT\" or \"[IPv6]:PORT\", got {}",
                              quote_value(text)));
    return std::nullopt;
  }
  if (address->port() == 0) {
    context.error(value, key,
                  fmt::format("port must be between 1 and 65535, got {}", quote_value(text)));
    return std::nullopt;
  }
  return address;
}

// A string, or an array of strings.
std::optional<std::vector<std::string>> string_list(const toml::value& value, Context& context,
                                                    const std::string& key, bool single_allowed) {
  if (single_allowed && value.is_string()) return std::vector<std::string>{value.as_string().str};
  if (!value.is_array()) {
    context.error(value, key,
                  fmt::format("expected {}an array of strings, got {}",
                              single_allowed ? "a string or " : "", type_phrase(value.type())));
    return std::nullopt;
  }
  std::vector<std::string> items;
  for (const auto& item : value.as_array()) {
    if (!item.is_string()) {
      context.error(
          item, key,
          fmt::format("expected an array of strings, found {}", type_phrase(item.type())));
      return std::nullopt;
    }
    items.push_back(item.as_string().str);
  }
  return items;
}

// --- schemas --------------------------------------------------------------------------------

Schema<ServerConfig> server_schema() {
  return {
      string_field("hostname", &ServerConfig::hostname, check_domain),
      string_field("authserv_id", &ServerConfig::authserv_id, check_domain),
      string_field("state_dir", &ServerConfig::state_dir, check_absolute_path),
      integer_field("workers", &ServerConfig::workers, 0, 256),
      string_field("user", &ServerConfig::user),
      enum_field<ServerConfig, CpuScheduling>(
          "cpu_scheduling", &ServerConfig::cpu_scheduling,
          {{"batch", CpuScheduling::batch}, {"normal", CpuScheduling::normal}}),
      bool_field("pin_workers", &ServerConfig::pin_workers),
  };
}

Schema<ListenConfig> listen_schema() {
  return {
      {"address",
       [](const toml::value& value, ListenConfig& listener, Context& context,
          const std::string& key) {
         if (auto address = parse_address(value, context, key)) {
           listener.address = *address;
           listener.address_text = value.as_string().str;
           context.listener_addresses.push_back({address->host_port(), key, &value});
         }
       },
       true},
      enum_field<ListenConfig, ListenMode>("mode", &ListenConfig::mode,
                                           {{"smtp", ListenMode::smtp},
                                            {"smtps", ListenMode::smtps},
                                            {"submission", ListenMode::submission}}),
      string_field("tls", &ListenConfig::tls),
      bool_field("proxy_protocol", &ListenConfig::proxy_protocol),
  };
}

Schema<UpstreamConfig> upstream_schema() {
  return {
      {"address",
       [](const toml::value& value, UpstreamConfig& upstream, Context& context,
          const std::string& key) {
         if (value.is_string()) {
           if (auto address = parse_address(value, context, key)) {
             upstream.addresses.push_back(*address);
           }
           return;
         }
         if (!value.is_array()) {
           context.error(value, key,
                         fmt::format("expected a string or an array of strings, got {}",
                                     type_phrase(value.type())));
           return;
         }
         const auto& list = value.as_array();
         if (list.empty()) context.error(value, key, "must list at least one address");
         for (size_t i = 0; i < list.size(); ++i) {
           if (auto address = parse_address(list[i], context, fmt::format("{}[{}]", key, i))) {
             upstream.addresses.push_back(*address);
           }
         }
       },
       true},
      enum_field<UpstreamConfig, PassClient>(
          "pass_client", &UpstreamConfig::pass_client,
          {{"xclient", PassClient::xclient},
           {"proxy-v2", PassClient::proxy_v2},
           {"none", PassClient::none}},
          [](PassClient pass, const toml::value& value, Context& context, const std::string& key) {
            if (pass == PassClient::none) {
              context.warning(value, key,
                              "the upstream sees Portcullis's address as the client; use xclient "
                              "or proxy-v2 unless the upstream needs no client identity");
            }
            return true;
          }),
      enum_field<UpstreamConfig, UpstreamTls>("tls", &UpstreamConfig::tls,
                                              {{"none", UpstreamTls::none},
                                               {"opportunistic", UpstreamTls::opportunistic},
                                               {"required", UpstreamTls::required}}),
      string_field("ca_file", &UpstreamConfig::ca_file),
      string_field("verify_name", &UpstreamConfig::verify_name),
      integer_field("max_connections", &UpstreamConfig::max_connections, 1, 10000),
      integer_field("reply_timeout", &UpstreamConfig::reply_timeout, 1, 599,
                    "below the client's 600 s end-of-data timeout"),
      integer_field("idle_timeout", &UpstreamConfig::idle_timeout, 0, 60,
                    "below Postfix's smtpd_timeout"),
  };
}

// A [tls.NAME] block while it is read: certificate and key lists are paired at the end.
struct TlsBlockInput {
  TlsBlockConfig block;
  std::vector<std::string> certificates;
  std::vector<std::string> keys;
  const toml::value* key_value = nullptr;
  bool path_error = false;  // already reported; pairing is not judged then
};

Schema<TlsBlockInput> tls_schema() {
  auto paths = [](std::vector<std::string> TlsBlockInput::*member, bool remember_key) {
    return [=](const toml::value& value, TlsBlockInput& input, Context& context,
               const std::string& key) {
      auto list = string_list(value, context, key, true);
      if (!list) {
        input.path_error = true;
        return;
      }
      for (const auto& path : *list) {
        if (auto problem = check_absolute_path(path)) {
          input.path_error = true;
          return context.error(value, key, *problem);
        }
      }
      input.*member = std::move(*list);
      if (remember_key) input.key_value = &value;
    };
  };
  auto text = [](std::string TlsBlockConfig::*member) {
    return [=](const toml::value& value, TlsBlockInput& input, Context& context,
               const std::string& key) {
      if (expect_type(value, toml::value_t::string, context, key)) {
        input.block.*member = value.as_string().str;
      }
    };
  };
  return {
      {"certificate", paths(&TlsBlockInput::certificates, false), true},
      {"key", paths(&TlsBlockInput::keys, true), true},
      {"sni",
       [](const toml::value& value, TlsBlockInput& input, Context& context,
          const std::string& key) {
         if (auto names = string_list(value, context, key, false)) {
           for (const auto& name : *names) {
             const std::string bare = name.rfind("*.", 0) == 0 ? name.substr(2) : name;
             if (auto problem = check_domain(bare)) return context.error(value, key, *problem);
           }
           input.block.sni = std::move(*names);
         }
       }},
      {"min_version",
       [](const toml::value& value, TlsBlockInput& input, Context& context,
          const std::string& key) {
         if (!expect_type(value, toml::value_t::string, context, key)) return;
         const std::string& version = value.as_string().str;
         if (version != "TLSv1" && version != "TLSv1.1" && version != "TLSv1.2" &&
             version != "TLSv1.3") {
           return context.error(value, key,
                                fmt::format("must be one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3, "
                                            "got {}",
                                            quote_value(version)));
         }
         input.block.min_version = version;
       }},
      {"ciphers", text(&TlsBlockConfig::ciphers)},
      {"ciphersuites", text(&TlsBlockConfig::ciphersuites)},
      {"groups", text(&TlsBlockConfig::groups)},
      {"request_client_certificate",
       [](const toml::value& value, TlsBlockInput& input, Context& context,
          const std::string& key) {
         if (expect_type(value, toml::value_t::boolean, context, key)) {
           input.block.request_client_certificate = value.as_boolean();
         }
       }},
  };
}

Schema<TrustConfig> trust_schema() {
  return {
      {"proxy_peers",
       [](const toml::value& value, TrustConfig& trust, Context& context, const std::string& key) {
         auto peers = string_list(value, context, key, false);
         if (!peers) return;
         for (const auto& peer : *peers) {
           if (!NetPrefix::parse(peer)) {
             return context.error(
                 value, key,
                 fmt::format("expected addresses or CIDR prefixes, got {}", quote_value(peer)));
           }
         }
         trust.proxy_peers = std::move(*peers);
       }},
      integer_field("proxy_timeout", &TrustConfig::proxy_timeout, 1, 300),
  };
}

Schema<LimitsConfig> limits_schema() {
  return {
      integer_field("max_sessions", &LimitsConfig::max_sessions, 1, 1000000),
      integer_field("max_sessions_per_ip", &LimitsConfig::max_sessions_per_ip, 1, 1000000),
      integer_field("max_message_size", &LimitsConfig::max_message_size, 1024, one_tib),
      integer_field("max_recipients", &LimitsConfig::max_recipients, 1, 100000),
      integer_field("max_errors", &LimitsConfig::max_errors, 1, 1000),
      integer_field("max_junk_commands", &LimitsConfig::max_junk_commands, 1, 1000000000),
      // RFC 5321 4.5.3.1.6: a text line of 1000 octets including CRLF must be accepted.
      integer_field("max_line_length", &LimitsConfig::max_line_length, 1000, one_gib),
      integer_field("max_header_size", &LimitsConfig::max_header_size, 1000, one_gib),
      integer_field("spill_threshold", &LimitsConfig::spill_threshold, 0, one_gib),
      enum_field<LimitsConfig, BareLfMode>(
          "bare_lf", &LimitsConfig::bare_lf,
          {{"reject", BareLfMode::reject}, {"normalize", BareLfMode::normalize}}),
      integer_field("stress_threshold", &LimitsConfig::stress_threshold, 0, 100),
  };
}

Schema<TimeoutsConfig> timeouts_schema() {
  return {
      integer_field("command", &TimeoutsConfig::command, 1, 3600),
      integer_field("data_block", &TimeoutsConfig::data_block, 1, 3600),
      integer_field("stress_command", &TimeoutsConfig::stress_command, 1, 3600),
      integer_field("drain", &TimeoutsConfig::drain, 0, 3600),
  };
}

Schema<LogConfig> log_schema() {
  return {
      string_field("main", &LogConfig::main, check_log_target),
      enum_field<LogConfig, LogFormat>("format", &LogConfig::format,
                                       {{"text", LogFormat::text}, {"json", LogFormat::json}}),
      string_field("rejections", &LogConfig::rejections, check_absolute_path),
      bool_field("all_transactions", &LogConfig::all_transactions),
  };
}

Schema<PolicyConfig> policy_schema() {
  return {
      {"files",
       [](const toml::value& value, PolicyConfig&, Context& context, const std::string& key) {
         if (string_list(value, context, key, false)) context.policy_files = &value;
       }},
      bool_field("delay_reject", &PolicyConfig::delay_reject),
  };
}

Schema<MetricsConfig> metrics_schema() {
  return {
      {"address",
       [](const toml::value& value, MetricsConfig& metrics, Context& context,
          const std::string& key) {
         if (auto address = parse_address(value, context, key)) metrics.address = *address;
       }},
  };
}

Schema<DnsConfig> dns_schema() {
  return {
      {"resolvers",
       [](const toml::value& value, DnsConfig& dns, Context& context, const std::string& key) {
         auto items = string_list(value, context, key, false);
         if (!items) return;
         if (items->empty()) {
           return context.error(value, key,
                                "must list at least one resolver (\"IP:PORT\"); leave the key "
                                "out to use the nameservers of /etc/resolv.conf");
         }
         const auto& list = value.as_array();
         for (size_t i = 0; i < list.size(); ++i) {
           if (auto address = parse_address(list[i], context, fmt::format("{}[{}]", key, i))) {
             dns.resolvers.push_back(address->host_port());
           }
         }
       }},
      integer_field("timeout", &DnsConfig::timeout, 1, 60),
  };
}

template <typename Target>
void load_table(const toml::value& table, const Schema<Target>& schema, Target& target,
                Context& context, const std::string& prefix);

Schema<RedisConfig> redis_schema() {
  return {
      {"address",
       [](const toml::value& value, RedisConfig& redis, Context& context, const std::string& key) {
         if (auto address = parse_address(value, context, key)) redis.address = *address;
       }},
      // Redis's default build has 16 databases; a larger configured count is still accepted
      // here and refused by SELECT at connect, which is logged.
      integer_field("database", &RedisConfig::database, 0, 1 << 20),
      string_field("prefix", &RedisConfig::prefix,
                   [](const std::string& text) -> std::optional<std::string> {
                     for (unsigned char c : text) {
                       if (c <= ' ' || c >= 0x7f) {
                         return "must be printable ASCII without spaces (it starts every key)";
                       }
                     }
                     return std::nullopt;
                   }),
      string_field("password", &RedisConfig::password),
      // At least 10 ms (a loopback round trip with room to spare), at most a minute.
      integer_field("timeout_ms", &RedisConfig::timeout_ms, 10, 60000),
  };
}

Schema<StoreConfig> store_schema() {
  return {
      enum_field<StoreConfig, StoreBackend>(
          "backend", &StoreConfig::backend,
          {{"lmdb", StoreBackend::lmdb}, {"redis", StoreBackend::redis}}),
      {"redis",
       [](const toml::value& value, StoreConfig& store, Context& context, const std::string& key) {
         if (!expect_type(value, toml::value_t::table, context, key)) return;
         load_table(value, redis_schema(), store.redis, context, key);
       }},
      // At least 1 MiB: below that the file holds too few records to be of use; at most 1 TiB
      // (address space is reserved for the whole map).
      integer_field("lmdb_map_size", &StoreConfig::lmdb_map_size, int64_t{1} << 20,
                    int64_t{1} << 40),
  };
}

template <typename Target>
void load_table(const toml::value& table, const Schema<Target>& schema, Target& target,
                Context& context, const std::string& prefix) {
  for (const auto& [key, value] : table.as_table()) {
    const std::string dotted = prefix + "." + key;
    const auto field = std::find_if(schema.begin(), schema.end(),
                                    [&](const Field<Target>& f) { return f.key == key; });
    if (field == schema.end()) {
      context.error(value, dotted, "unknown key");
      continue;
    }
    context.record_position(dotted, value);
    field->parse(value, target, context, dotted);
  }
  for (const auto& field : schema) {
    if (field.required && table.as_table().count(std::string(field.key)) == 0) {
      context.error(table, prefix + "." + std::string(field.key), "missing required key");
    }
  }
}

// --- sections -------------------------------------------------------------------------------

struct Section {
  std::string_view name;
  std::function<void(const toml::value&, Config&, Context&)> load;
};

template <typename Target>
Section table_section(std::string_view name, Target Config::*member, Schema<Target> schema) {
  return {name, [=](const toml::value& value, Config& config, Context& context) {
            const std::string key(name);
            if (!expect_type(value, toml::value_t::table, context, key)) return;
            load_table(value, schema, config.*member, context, key);
          }};
}

template <typename Element>
Section array_section(std::string_view name, std::vector<Element> Config::*member,
                      Schema<Element> schema) {
  return {name, [=](const toml::value& value, Config& config, Context& context) {
            const std::string key(name);
            const bool tables =
                value.is_array() && std::all_of(value.as_array().begin(), value.as_array().end(),
                                                [](const toml::value& e) { return e.is_table(); });
            if (!tables) {
              context.error(value, key,
                            fmt::format("expected an array of tables ([[{}]]), got {}", name,
                                        type_phrase(value.type())));
              return;
            }
            const auto& elements = value.as_array();
            for (size_t i = 0; i < elements.size(); ++i) {
              Element element;
              load_table(elements[i], schema, element, context, fmt::format("{}[{}]", name, i));
              (config.*member).push_back(std::move(element));
            }
          }};
}

// [filters]: only `chain`, checked against the registry once the [filter.NAME] blocks are read.
Section filters_section() {
  return {"filters", [](const toml::value& value, Config&, Context& context) {
            if (!expect_type(value, toml::value_t::table, context, "filters")) return;
            for (const auto& [key, item] : value.as_table()) {
              if (key != "chain") {
                context.error(item, "filters." + key, "unknown key (expected chain)");
                continue;
              }
              if (string_list(item, context, "filters.chain", false)) context.filters_chain = &item;
            }
          }};
}

Section filter_blocks_section() {
  return {"filter", [](const toml::value& value, Config&, Context& context) {
            if (expect_type(value, toml::value_t::table, context, "filter")) {
              context.filter_blocks = &value;
            }
          }};
}

// [tls.NAME] blocks: a table of tables, each read with tls_schema().
Section tls_section() {
  return {"tls", [](const toml::value& value, Config& config, Context& context) {
            if (!expect_type(value, toml::value_t::table, context, "tls")) return;
            for (const auto& [name, block_value] : value.as_table()) {
              const std::string prefix = "tls." + name;
              if (!expect_type(block_value, toml::value_t::table, context, prefix)) continue;
              TlsBlockInput input;
              input.block.name = name;
              load_table(block_value, tls_schema(), input, context, prefix);
              if (input.key_value && !input.path_error &&
                  input.certificates.size() != input.keys.size()) {
                context.error(*input.key_value, prefix + ".key",
                              fmt::format("lists {} key(s) for {} certificate(s); they are paired "
                                          "in order",
                                          input.keys.size(), input.certificates.size()));
                continue;
              }
              for (size_t i = 0; i < input.certificates.size() && i < input.keys.size(); ++i) {
                input.block.certificates.push_back({input.certificates[i], input.keys[i]});
              }
              config.tls.push_back(std::move(input.block));
            }
          }};
}

const std::vector<Section>& sections() {
  static const std::vector<Section> all = {
      table_section("server", &Config::server, server_schema()),
      array_section("listen", &Config::listeners, listen_schema()),
      table_section("upstream", &Config::upstream, upstream_schema()),
      table_section("limits", &Config::limits, limits_schema()),
      table_section("timeouts", &Config::timeouts, timeouts_schema()),
      table_section("log", &Config::log, log_schema()),
      tls_section(),
      table_section("trust", &Config::trust, trust_schema()),
      filters_section(),
      filter_blocks_section(),
      table_section("policy", &Config::policy, policy_schema()),
      table_section("metrics", &Config::metrics, metrics_schema()),
      table_section("dns", &Config::dns, dns_schema()),
      table_section("store", &Config::store, store_schema()),
  };
  return all;
}

// --- whole-file checks and defaults -------------------------------------------------------

void check_required_sections(const toml::value& root, Config& config, Context& context) {
  const auto& table = root.as_table();
  if (table.count("listen") == 0) {
    context.file_error("listen", "missing required key (at least one [[listen]] block)");
  } else if (config.listeners.empty() && table.at("listen").is_array()) {
    context.error(table.at("listen"), "listen", "at least one [[listen]] block is required");
  }
  if (table.count("upstream") == 0) context.file_error("upstream.address", "missing required key");
  // SECURITY: "required" promises an authenticated upstream; without a name to check, any
  // certificate from a trusted CA would pass for it.
  if (config.upstream.tls == UpstreamTls::required && config.upstream.verify_name.empty() &&
      table.count("upstream") != 0 && table.at("upstream").is_table()) {
    const auto& upstream = table.at("upstream").as_table();
    const auto tls = upstream.find("tls");
    context.error(tls != upstream.end() ? tls->second : table.at("upstream"),
                  "upstream.verify_name",
                  "required when upstream.tls is \"required\": the name the upstream's "
                  "certificate must carry");
  }
}

void check_duplicate_listeners(Context& context) {
  const auto& seen = context.listener_addresses;
  std::unordered_map<std::string_view, size_t> first_use;
  for (size_t i = 0; i < seen.size(); ++i) {
    const auto [found, inserted] = first_use.emplace(seen[i].host_port, i);
    if (inserted) continue;
    context.error(*seen[i].value, seen[i].key,
                  fmt::format("duplicate listener address {}, also used by {}",
                              quote_value(seen[i].host_port), seen[found->second].key));
  }
}

// Listener TLS settings refer to [tls.NAME] blocks, which may come later in the file.
void check_listener_tls(const toml::value& root, const Config& config, Context& context) {
  const auto& table = root.as_table();
  if (table.count("listen") == 0 || !table.at("listen").is_array()) return;
  const auto& elements = table.at("listen").as_array();
  for (size_t i = 0; i < elements.size() && i < config.listeners.size(); ++i) {
    if (!elements[i].is_table()) continue;
    const auto& listen_table = elements[i].as_table();
    const ListenConfig& listener = config.listeners[i];
    const std::string prefix = fmt::format("listen[{}]", i);
    if (listener.tls.empty()) {
      if (listener.mode != ListenMode::smtp && listen_table.count("mode")) {
        context.error(listen_table.at("mode"), prefix + ".mode",
                      fmt::format("mode {} needs TLS: set tls to the name of a [tls.NAME] block",
                                  quote_value(listen_table.at("mode").as_string().str)));
      }
    } else if (!config.tls_block(listener.tls) && listen_table.count("tls")) {
      context.error(listen_table.at("tls"), prefix + ".tls",
                    fmt::format("there is no [tls.{}] block", listener.tls));
    }
    if (listener.proxy_protocol && config.trust.proxy_peers.empty() &&
        listen_table.count("proxy_protocol")) {
      context.warning(listen_table.at("proxy_protocol"), prefix + ".proxy_protocol",
                      "[trust] proxy_peers is empty: every connection to this listener will be "
                      "closed");
    }
  }
}

// A [filter.NAME] value as the registry sees it: TOML-free, with positions.
std::optional<SettingValue> setting_value(const toml::value& value, Context& context,
                                          const std::string& key) {
  SettingValue out;
  const Context::Position where = context.position(value);
  out.line = static_cast<unsigned>(where.line);
  out.column = static_cast<unsigned>(where.column);
  switch (value.type()) {
    case toml::value_t::boolean:
      out.value = value.as_boolean();
      return out;
    case toml::value_t::integer:
      out.value = static_cast<std::int64_t>(value.as_integer());
      return out;
    case toml::value_t::string:
      out.value = value.as_string().str;
      return out;
    case toml::value_t::array: {
      SettingArray items;
      const auto& array = value.as_array();
      for (size_t i = 0; i < array.size(); ++i) {
        auto item = setting_value(array[i], context, fmt::format("{}[{}]", key, i));
        if (!item) return std::nullopt;
        items.push_back(std::move(*item));
      }
      out.value = std::move(items);
      return out;
    }
    case toml::value_t::table: {
      SettingTable table;
      for (const auto& [name, item] : value.as_table()) {
        auto converted = setting_value(item, context, key + "." + name);
        if (!converted) return std::nullopt;
        table.emplace_back(name, std::move(*converted));
      }
      std::sort(table.begin(), table.end(), [](const auto& a, const auto& b) {
        return std::pair(a.second.line, a.second.column) <
               std::pair(b.second.line, b.second.column);
      });
      out.value = std::move(table);
      return out;
    }
    default:
      context.error(value, key,
                    fmt::format("expected a boolean, an integer, a string, an array or a table, "
                                "got {}",
                                type_phrase(value.type())));
      return std::nullopt;
  }
}

// Builds one filter from its [filter.NAME] block (or defaults when there is none).
std::optional<FilterInstance> build_filter(const FilterDefinition& definition,
                                           const toml::value* block, Context& context) {
  const std::string prefix = "filter." + definition.name;
  FilterInstance instance;
  instance.name = definition.name;
  instance.hooks = definition.hooks;
  instance.streams_message = definition.streams_message;
  for (const auto& fact : definition.facts)
    instance.facts.push_back(fact.name);
  SettingTable settings;
  bool ok = true;
  if (block) {
    for (const auto& [key, value] : block->as_table()) {
      const std::string dotted = prefix + "." + key;
      if (key == "timeout") {
        if (!expect_type(value, toml::value_t::integer, context, dotted)) {
          ok = false;
        } else if (value.as_integer() < 1 || value.as_integer() > 3600) {
          context.error(value, dotted,
                        fmt::format("must be between 1 and 3600, got {}", value.as_integer()));
          ok = false;
        } else {
          instance.timeout = std::chrono::seconds(value.as_integer());
        }
      } else if (key == "failure_mode") {
        const bool is_string = expect_type(value, toml::value_t::string, context, dotted);
        const std::string text = is_string ? value.as_string().str : "";
        if (text == "tempfail") {
          instance.failure_mode = FailureMode::tempfail;
        } else if (text == "continue") {
          instance.failure_mode = FailureMode::continue_session;
        } else {
          if (is_string) {
            context.error(
                value, dotted,
                fmt::format("must be one of tempfail, continue, got {}", quote_value(text)));
          }
          ok = false;
        }
      } else if (auto converted = setting_value(value, context, dotted)) {
        settings.emplace_back(key, std::move(*converted));
      } else {
        ok = false;
      }
    }
  }
  std::vector<SettingError> errors;
  std::shared_ptr<const FilterFactory> factory;
  try {
    factory = definition.build(settings, errors);
  } catch (const std::exception& error) {
    errors.push_back({"", error.what()});
  }
  const Context::Position block_position = block ? context.position(*block) : Context::Position{};
  for (const auto& error : errors) {
    const bool positioned = error.line > 0;
    context.add(ConfigMessage{
        context.file(), positioned ? static_cast<int>(error.line) : block_position.line,
        positioned ? static_cast<int>(error.column) : block_position.column,
        error.key.empty() ? prefix : prefix + "." + error.key, error.message});
  }
  if (!ok || !errors.empty() || !factory) {
    if (errors.empty() && ok) {
      context.file_error(prefix, "the filter could not be built from its settings");
    }
    return std::nullopt;
  }
  if (definition.minimum_timeout) {
    const auto least = definition.minimum_timeout(settings);
    if (instance.timeout < least) {
      const Context::Position at = block ? context.position(*block) : Context::Position{};
      context.add(ConfigMessage{
          context.file(), at.line, at.column, prefix + ".timeout",
          fmt::format("must be at least {} s with these settings (every call would time out), "
                      "got {} s",
                      std::chrono::ceil<std::chrono::seconds>(least).count(),
                      std::chrono::duration_cast<std::chrono::seconds>(instance.timeout).count())});
      return std::nullopt;
    }
  }
  if (definition.configured_facts) {
    for (const auto& fact : definition.configured_facts(*factory))
      instance.facts.push_back(fact.name);
  }
  instance.factory = std::move(factory);
  return instance;
}

std::string known_filter_names() {
  std::string names;
  for (const FilterDefinition* definition : filter_definitions()) {
    if (!names.empty()) names += ", ";
    names += definition->name;
  }
  return names;
}

void build_filters(Config& config, Context& context) {
  std::vector<std::string> chain;
  if (context.filters_chain) {
    const auto& items = context.filters_chain->as_array();
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string& name = items[i].as_string().str;
      const std::string key = fmt::format("filters.chain[{}]", i);
      if (!find_filter_definition(name)) {
        context.error(items[i], key,
                      fmt::format("unknown filter {} (built-in filters: {})", quote_value(name),
                                  known_filter_names()));
      } else if (std::find(chain.begin(), chain.end(), name) != chain.end()) {
        context.error(items[i], key, fmt::format("filter {} is listed twice", quote_value(name)));
      } else {
        chain.push_back(name);
      }
    }
  }
  const toml::value::table_type* blocks =
      context.filter_blocks ? &context.filter_blocks->as_table() : nullptr;
  if (blocks) {
    for (const auto& [name, block] : *blocks) {
      const std::string key = "filter." + name;
      const FilterDefinition* definition = find_filter_definition(name);
      if (!definition) {
        context.error(block, key,
                      fmt::format("unknown filter {} (built-in filters: {})", quote_value(name),
                                  known_filter_names()));
        continue;
      }
      if (!expect_type(block, toml::value_t::table, context, key)) continue;
      if (std::find(chain.begin(), chain.end(), name) == chain.end()) {
        // Validated all the same, so that enabling it later does not reveal old mistakes.
        build_filter(*definition, &block, context);
        context.warning(block, key,
                        "this filter is not in [filters] chain: its settings are not used");
      }
    }
  }
  for (const auto& name : chain) {
    const toml::value* block = nullptr;
    if (blocks) {
      auto found = blocks->find(name);
      if (found != blocks->end() && found->second.is_table()) block = &found->second;
    }
    if (auto instance = build_filter(*find_filter_definition(name), block, context)) {
      config.filters.chain.push_back(std::move(*instance));
    }
  }
}

// Policy files are compiled against the chain's catalog (a rule reading the fact of a filter
// that is not in the chain is an error). Relative paths are taken from the config's directory.
void load_policies(Config& config, Context& context) {
  std::vector<std::string> files;
  if (context.policy_files) {
    std::string directory;
    if (const size_t slash = context.file().rfind('/'); slash != std::string::npos) {
      directory = context.file().substr(0, slash + 1);
    }
    for (const auto& item : context.policy_files->as_array()) {
      const std::string& path = item.as_string().str;
      files.push_back(!path.empty() && path.front() != '/' ? directory + path : path);
    }
  }
  config.policy.files = files;
  config.filters.catalog = std::make_shared<const FactCatalog>(
      fact_catalog_for_chain(config.filters.names(), configured_rate_limits(config.filters.chain)));
  policy::LoadResult loaded = policy::load_policy(files, *config.filters.catalog);
  for (const auto& error : loaded.errors) {
    context.add(ConfigMessage{error.file, static_cast<int>(error.line),
                              static_cast<int>(error.column), "", error.message});
  }
  config.policy.policy = std::move(loaded.policy);
}

void resolve_defaults(Config& config, Context& context) {
  if (config.server.hostname.empty()) {
    char buffer[256] = {};
    if (::gethostname(buffer, sizeof buffer - 1) != 0) {
      context.file_error(
          "server.hostname",
          fmt::format("cannot read the system host name ({}); set it here", std::strerror(errno)));
    } else if (auto problem = check_domain(buffer)) {
      context.file_error(
          "server.hostname",
          fmt::format("the system host name is not usable: {}; set it here", *problem));
    } else {
      config.server.hostname = buffer;
    }
  }
  if (config.server.authserv_id.empty()) config.server.authserv_id = config.server.hostname;
  if (config.server.workers == 0) {
    config.server.workers = std::max(1u, std::thread::hardware_concurrency());
  }
  if (config.dns.resolvers.empty()) {
    std::string ignored;
    const auto text = policy::read_regular_file("/etc/resolv.conf", max_config_file_size, &ignored);
    config.dns.resolvers = resolv_conf_nameservers(text.value_or(""));
    if (config.dns.resolvers.empty()) config.dns.resolvers.push_back("127.0.0.1:53");
    config.dns.resolvers_from_resolv_conf = true;
  }
}

// The filters that ask DNS: their timeout must leave room for one whole DNS query, so that a
// silent server ends as the filter's temporary DNS error (temperror), not as a filter timeout.
void check_dns_filter_timeouts(const Config& config, Context& context) {
  static const std::set<std::string, std::less<>> dns_filters = {"spf", "fcrdns", "dnsbl", "dkim",
                                                                 "dmarc"};
  const auto dns_timeout = std::chrono::seconds(config.dns.timeout);
  for (const auto& filter : config.filters.chain) {
    if (dns_filters.count(filter.name) == 0 || filter.timeout > dns_timeout) continue;
    context.file_error(
        "filter." + filter.name + ".timeout",
        fmt::format("must be above [dns] timeout ({} s), got {} s: a silent DNS server would "
                    "end every call as a filter timeout instead of a DNS temporary error",
                    config.dns.timeout,
                    std::chrono::duration_cast<std::chrono::seconds>(filter.timeout).count()));
  }
}

std::string first_line_of(std::string_view text) {
  text = text.substr(0, text.find('\n'));
  constexpr std::string_view error_prefix = "[error] ";
  if (text.substr(0, error_prefix.size()) == error_prefix) text.remove_prefix(error_prefix.size());
  return std::string(text);
}

}  // namespace

std::string lmdb_store_path(const ServerConfig& server) {
  std::string path = server.state_dir;
  if (path.empty() || path.back() != '/') path += '/';
  return path + "store.mdb";
}

std::vector<std::string> resolv_conf_nameservers(std::string_view text) {
  std::vector<std::string> servers;
  std::istringstream lines{std::string(text)};
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string keyword;
    std::string address;
    if (!(words >> keyword >> address) || keyword != "nameserver") continue;
    const auto parsed = NetAddress::parse_host_port(
        address.find(':') == std::string::npos ? address + ":53" : "[" + address + "]:53");
    if (parsed) servers.push_back(parsed->host_port());
  }
  return servers;
}

std::string ConfigMessage::to_string() const {
  std::string out = file;
  if (line > 0) {
    out += fmt::format(":{}", line);
    if (column > 0) out += fmt::format(":{}", column);
  }
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += text;
  return out;
}

ConfigMessage Config::message_about(const std::string& key, std::string text) const {
  const auto found = positions.find(key);
  const ConfigPosition where = found == positions.end() ? ConfigPosition{} : found->second;
  return ConfigMessage{path, where.line, where.column, key, std::move(text)};
}

ConfigResult load_config_text(const std::string& text, const std::string& name) {
  ConfigResult result;
  if (policy::toml_nesting_depth(text) > policy::max_toml_nesting) {
    // SECURITY: toml11 parses arrays and inline tables recursively; deep nesting would
    // overflow the stack (a crash of `check`, or of the running proxy on SIGHUP).
    result.errors.push_back(ConfigMessage{
        name, 0, 0, "",
        fmt::format("arrays and tables nest deeper than {} levels", policy::max_toml_nesting)});
    return result;
  }
  Context context(name, text);
  toml::value root;
  try {
    std::istringstream stream(text);
    root = toml::parse(stream, name);
  } catch (const toml::syntax_error& error) {
    const toml::source_location location = error.location();
    result.errors.push_back(ConfigMessage{name, static_cast<int>(location.line()),
                                          static_cast<int>(location.column()), "",
                                          first_line_of(error.what())});
    return result;
  } catch (const std::exception& error) {
    result.errors.push_back(ConfigMessage{name, 0, 0, "", first_line_of(error.what())});
    return result;
  }

  Config config;
  config.path = name;
  for (const auto& [key, value] : root.as_table()) {
    const auto section = std::find_if(sections().begin(), sections().end(),
                                      [&](const Section& s) { return s.name == key; });
    if (section == sections().end()) {
      context.error(value, key, "unknown key");
      continue;
    }
    section->load(value, config, context);
  }
  check_required_sections(root, config, context);
  check_duplicate_listeners(context);
  check_listener_tls(root, config, context);
  const bool section_errors = context.has_errors();
  build_filters(config, context);
  if (!section_errors && !context.has_errors()) load_policies(config, context);
  if (!context.has_errors()) check_dns_filter_timeouts(config, context);
  if (!context.has_errors()) resolve_defaults(config, context);

  result.errors = context.take_errors();
  result.warnings = context.take_warnings();
  config.positions = context.take_positions();
  if (result.errors.empty()) result.config = std::move(config);
  return result;
}

ConfigResult load_config(const std::string& path) {
  std::string error;
  auto text = policy::read_regular_file(path, max_config_file_size, &error);
  if (!text) {
    ConfigResult result;
    result.errors.push_back(ConfigMessage{path, 0, 0, "", "cannot read the file: " + error});
    return result;
  }
  return load_config_text(*text, path);
}

}  // namespace portcullis
