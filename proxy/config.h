#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "net_address.h"
#include "smtp_parser.h"

namespace portcullis {

enum class ListenMode { smtp, smtps, submission };
enum class PassClient { xclient, proxy_v2, none };
enum class LogFormat { text, json };

struct ListenConfig {
  NetAddress address;
  std::string address_text;  // as written
  ListenMode mode = ListenMode::smtp;
  std::string tls;           // name of a [tls.NAME] block; "" = no TLS on this listener
  bool proxy_protocol = false;
};

struct ServerConfig {
  std::string hostname;     // default: the system host name
  std::string authserv_id;  // default: hostname
  std::string state_dir = "/var/lib/portcullis";
  unsigned workers = 0;     // 0 = one per core (resolved at load: never 0 after load)
  std::string user;         // "" = not set
};

struct UpstreamConfig {
  std::vector<NetAddress> addresses;  // tried in order
  PassClient pass_client = PassClient::xclient;
  std::string tls = "none";
  std::string ca_file;
  std::string verify_name;
  unsigned max_connections = 100;
  unsigned reply_timeout = 300;
};

struct LimitsConfig {
  unsigned max_sessions = 10000;
  unsigned max_sessions_per_ip = 50;
  uint64_t max_message_size = 52428800;
  unsigned max_recipients = 1000;
  unsigned max_errors = 20;
  size_t max_line_length = 65536;
  size_t max_header_size = 102400;
  size_t spill_threshold = 1048576;
  BareLfMode bare_lf = BareLfMode::reject;
};

struct TimeoutsConfig {
  unsigned command = 300;
  unsigned data_block = 180;
};

struct LogConfig {
  std::string main = "stderr";  // stderr | syslog | PATH
  LogFormat format = LogFormat::text;
};

struct Config {
  std::string path;  // the file it was loaded from
  ServerConfig server;
  std::vector<ListenConfig> listeners;
  UpstreamConfig upstream;
  LimitsConfig limits;
  TimeoutsConfig timeouts;
  LogConfig log;
};

struct ConfigMessage {
  std::string file;
  int line = 0;    // 0 when the message is about the file as a whole
  int column = 0;
  std::string key;  // dotted, e.g. "limits.max_errors" or "listen[1].mode"
  std::string text;
  // "FILE:LINE:COLUMN: KEY: TEXT" (LINE/COLUMN omitted when unknown)
  std::string to_string() const;
};

struct ConfigResult {
  std::optional<Config> config;         // set when there are no errors
  std::vector<ConfigMessage> errors;    // unknown keys, wrong types, out-of-range values …
  std::vector<ConfigMessage> warnings;  // e.g. pass_client = "none"
};

// Reads and validates a config file: every error is reported (not only the first).
ConfigResult load_config(const std::string& path);
// Same, from text (tests); `name` stands for the file name in messages.
ConfigResult load_config_text(const std::string& text, const std::string& name);

}  // namespace portcullis
