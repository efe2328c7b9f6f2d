#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "filter_instance.h"
#include "net_address.h"
#include "policy.h"
#include "smtp_parser.h"

namespace portcullis {

enum class ListenMode { smtp, smtps, submission };
enum class PassClient { xclient, proxy_v2, none };
enum class LogFormat { text, json };
// How worker threads ask the kernel to schedule them (session/thread_scheduling.h).
enum class CpuScheduling { batch, normal };

// A [tls.NAME] block.
struct TlsCertificateKey {
  std::string certificate;  // PEM chain file
  std::string key;          // PEM private key file
};

struct TlsBlockConfig {
  std::string name;
  std::vector<TlsCertificateKey> certificates;  // one per key type (e.g. RSA and ECDSA)
  std::vector<std::string> sni;                 // names this block serves ("*.example.org" ok)
  std::string min_version = "TLSv1.2";
  std::string ciphers;                      // TLS 1.2 cipher list; "" = OpenSSL default
  std::string ciphersuites;                 // TLS 1.3; "" = OpenSSL default
  std::string groups;                       // "" = OpenSSL default
  bool request_client_certificate = false;  // ask, never require (port 25 must stay open)
};

enum class UpstreamTls { none, opportunistic, required };

struct TrustConfig {
  std::vector<std::string> proxy_peers;  // CIDRs allowed to send PROXY headers
  unsigned proxy_timeout = 5;
};

struct ListenConfig {
  NetAddress address;
  std::string address_text;  // as written
  ListenMode mode = ListenMode::smtp;
  std::string tls;  // name of a [tls.NAME] block; "" = no TLS on this listener
  bool proxy_protocol = false;
};

struct ServerConfig {
  std::string hostname;     // default: the system host name
  std::string authserv_id;  // default: hostname
  std::string state_dir = "/var/lib/portcullis";
  unsigned workers = 0;  // 0 = one per core (resolved at load: never 0 after load)
  std::string user;      // "" = not set
  CpuScheduling cpu_scheduling = CpuScheduling::batch;
  bool pin_workers = false;  // worker N on the Nth allowed CPU
};

struct UpstreamConfig {
  std::vector<NetAddress> addresses;  // tried in order
  PassClient pass_client = PassClient::xclient;
  UpstreamTls tls = UpstreamTls::none;
  std::string ca_file;
  std::string verify_name;
  unsigned max_connections = 100;
  unsigned reply_timeout = 300;
  // Seconds a connection left clean by a finished session is kept for the next session of the
  // same worker (re-greeted with XCLIENT); 0 = closed when its session ends.
  unsigned idle_timeout = 5;
};

struct LimitsConfig {
  unsigned max_sessions = 10000;
  unsigned max_sessions_per_ip = 50;
  uint64_t max_message_size = 52428800;
  unsigned max_recipients = 1000;
  unsigned max_errors = 20;
  unsigned max_junk_commands = 100;
  size_t max_line_length = 65536;
  size_t max_header_size = 102400;
  size_t spill_threshold = 1048576;
  BareLfMode bare_lf = BareLfMode::reject;
  // Stress mode starts when this percentage of max_sessions is open (0: never); see
  // SessionLimits.
  unsigned stress_threshold = 80;
};

struct TimeoutsConfig {
  unsigned command = 300;
  unsigned data_block = 180;
  unsigned stress_command = 10;  // `command` while in stress mode (the smaller of the two)
  unsigned drain = 30;           // SIGTERM: how long transactions in flight may still run
};

struct LogConfig {
  std::string main = "stderr";  // stderr | syslog | PATH
  LogFormat format = LogFormat::text;
  std::string rejections;  // "" = no rejection log
  bool all_transactions = false;
};

// [filters] and the [filter.NAME] blocks of the filters in the chain, validated and built.
struct FiltersConfig {
  std::vector<FilterInstance> chain;  // in [filters] chain order; empty = no filters
  // Core facts and the facts of every known filter (those in the chain enabled).
  std::shared_ptr<const FactCatalog> catalog;
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& filter : chain)
      out.push_back(filter.name);
    return out;
  }
};

// [policy]: the files, compiled against the chain's fact catalog when the config is loaded, so
// a reload swaps configuration and policy together.
struct PolicyConfig {
  std::vector<std::string> files;  // as resolved (relative paths: from the config's directory)
  bool delay_reject = true;
  std::shared_ptr<const policy::Policy> policy;  // never null after load (maybe no rules)
};

// Where a value was written in the config file (1-based; 0 when unknown).
struct ConfigPosition {
  int line = 0;
  int column = 0;
};

struct ConfigMessage;

// [dns]: the resolvers the DNS filters ask (through each worker's libunbound context) and how
// long one query may take.
struct DnsConfig {
  // "IP:PORT" each ("192.0.2.53:53", "[2001:db8::53]:53"). When the key is absent: the
  // nameservers of /etc/resolv.conf on port 53, read when the config is loaded (127.0.0.1:53
  // when it lists none, as the C library does).
  std::vector<std::string> resolvers;
  bool resolvers_from_resolv_conf = false;
  unsigned timeout = 5;  // seconds per query; below the DNS filters' timeout
};

// The nameservers a resolv.conf text lists, as "IP:53" / "[IPv6]:53" (zone-scoped link-local
// ones are left out: libunbound cannot forward to them); empty when it lists none.
std::vector<std::string> resolv_conf_nameservers(std::string_view text);

// [store]: where the state that outlives a session (rate counters, greylist triplets) is kept.
// Read at start only: a reload that changes it keeps the store that is open.
enum class StoreBackend { lmdb, redis };
// [store.redis]: one Redis shared by several nodes (each worker keeps its own connection).
struct RedisConfig {
  NetAddress address = *NetAddress::parse_host_port("127.0.0.1:6379");  // numeric only
  int database = 0;
  std::string prefix = "portcullis:";  // before every key
  std::string password;                // "" sends no AUTH
  int timeout_ms = 200;                // connect and each call; slower is unavailable
  bool operator==(const RedisConfig& other) const {
    return address.host_port() == other.address.host_port() && database == other.database &&
           prefix == other.prefix && password == other.password && timeout_ms == other.timeout_ms;
  }
};
struct StoreConfig {
  StoreBackend backend = StoreBackend::lmdb;
  RedisConfig redis;
  // Bytes the LMDB file may grow to; a full map fails the filters' store calls (their
  // failure_mode applies) until entries expire or the size is raised.
  std::uint64_t lmdb_map_size = std::uint64_t{1} << 30;
};

// The LMDB file of [store] (with its lock file beside it, "PATH-lock").
std::string lmdb_store_path(const ServerConfig& server);

struct MetricsConfig {
  std::optional<NetAddress> address;  // absent = no metrics listener
};

struct Config {
  std::string path;  // the file it was loaded from
  ServerConfig server;
  std::vector<ListenConfig> listeners;
  UpstreamConfig upstream;
  LimitsConfig limits;
  TimeoutsConfig timeouts;
  LogConfig log;
  std::vector<TlsBlockConfig> tls;  // [tls.NAME] blocks, in file order
  TrustConfig trust;
  FiltersConfig filters;
  PolicyConfig policy;
  MetricsConfig metrics;
  DnsConfig dns;
  StoreConfig store;
  // Where each key read from the file was written, by its dotted name ("server.user",
  // "listen[0].address", "tls.mx.key"), so that what is found wrong after loading (`check`
  // looking at the system) is reported at the value like a load error.
  std::unordered_map<std::string, ConfigPosition> positions;

  // A message about `key` at the place it was written (about the file as a whole when the key
  // was not written: a default).
  ConfigMessage message_about(const std::string& key, std::string text) const;

  const TlsBlockConfig* tls_block(const std::string& name) const {
    for (const auto& block : tls) {
      if (block.name == name) return &block;
    }
    return nullptr;
  }
};

struct ConfigMessage {
  std::string file;
  int line = 0;  // 0 when the message is about the file as a whole
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

// The file `run`, `check` and `explain` read without --config.
inline constexpr const char* default_config_path = "/etc/portcullis/portcullis.toml";

// A larger main config is refused unread (a few KiB is typical).
inline constexpr size_t max_config_file_size = 16 * 1024 * 1024;

// Reads and validates a config file (a regular file of at most max_config_file_size bytes):
// every error is reported (not only the first).
ConfigResult load_config(const std::string& path);
// Same, from text (tests); `name` stands for the file name in messages.
ConfigResult load_config_text(const std::string& text, const std::string& name);

}  // namespace portcullis
