// Process-wide metrics (DESIGN §6), declared once here and rendered as Prometheus text
// (exposition format 0.0.4) by the metrics listener.
//
// Thread-safe. Hot paths hold a Counter& (stable for the process lifetime) and increment it
// with one relaxed atomic add; a labelled family looks its child up under a shared lock (an
// exclusive lock only the first time a label set is seen). Label values are escaped when
// rendered. SECURITY: label values never come from a peer (rule and filter names come from the
// operator's files; phases, results and kinds are fixed words), so the series count is bounded
// by the configuration.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis {

class Counter {
 public:
  void increment(std::uint64_t by = 1) { value_.fetch_add(by, std::memory_order_relaxed); }
  std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  void add(std::int64_t by) { value_.fetch_add(by, std::memory_order_relaxed); }
  void set(std::int64_t value) { value_.store(value, std::memory_order_relaxed); }
  std::int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> value_{0};
};

// Fixed buckets in seconds (upper bounds, inclusive as Prometheus's `le`; +Inf implied).
// A negative duration counts as zero.
class Histogram {
 public:
  static constexpr std::array<double, 12> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                     0.05,   0.1,   0.25,   0.5,   1,    5};
  void observe(std::chrono::nanoseconds duration);
  // Cumulative counts per bound, then the +Inf count; sum in seconds.
  std::array<std::uint64_t, kBounds.size() + 1> cumulative() const;
  double sum_seconds() const;
  std::uint64_t count() const;

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<std::uint64_t> sum_nanoseconds_{0};
};

// A metric with labels: one child per label-value tuple, created on first use.
template <typename Child>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}

  // `values` in the order of the label names. The reference stays valid as long as the family.
  // Throws std::invalid_argument when the number of values differs from the number of names (a
  // programming error at the call site, caught by its tests).
  Child& with(const std::vector<std::string>& values);

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // A snapshot of the children, in label order.
  std::vector<std::pair<std::vector<std::string>, const Child*>> children() const;

 private:
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  mutable std::shared_mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<Child>> children_;
};

struct Metrics {
  Metrics() = default;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // DESIGN §6 core names (fixed).
  // Unlabelled metrics render under the name in their comment.
  Counter sessions_total;  // portcullis_sessions_total
  Gauge sessions_active;   // portcullis_sessions_active
  Family<Counter> decisions_total{"portcullis_decisions_total",
                                  "Policy decisions that were not a plain accept, and accepts "
                                  "by rule",
                                  {"phase", "rule", "action", "mode"}};
  Family<Counter> filter_results_total{
      "portcullis_filter_results_total", "Filter hook outcomes", {"filter", "result"}};
  Family<Counter> filter_warnings_total{
      "portcullis_filter_warnings_total",
      "Filter warnings: problems that did not fail the filter (a DNSBL's error answer)",
      {"filter"}};
  Family<Histogram> filter_duration_seconds{"portcullis_filter_duration_seconds",
                                            "Time from a filter hook's call to its result",
                                            {"filter"}};
  Family<Counter> upstream_replies_total{
      "portcullis_upstream_replies_total", "Replies from the upstream by class", {"class"}};
  Family<Counter> upstream_errors_total{
      "portcullis_upstream_errors_total", "Upstream connection failures by kind", {"kind"}};
  Family<Counter> reloads_total{
      "portcullis_reloads_total", "Configuration reloads (SIGHUP)", {"result"}};

  // Beyond the core set.
  Family<Counter> commands_total{"portcullis_commands_total",
                                 "SMTP commands from clients by verb and outcome",
                                 {"verb", "result"}};
  Family<Counter> tls_handshakes_total{
      "portcullis_tls_handshakes_total", "Client TLS handshakes by result", {"result"}};
  Family<Counter> messages_total{
      "portcullis_messages_total", "Messages by outcome (delivered, refused, failed)", {"result"}};
  Counter message_bytes_total;  // portcullis_message_bytes_total: bytes of delivered messages
  Family<Counter> session_ends_total{
      "portcullis_session_ends_total", "Sessions by end reason", {"reason"}};
  Gauge upstream_connections_active;  // portcullis_upstream_connections_active
  // portcullis_upstream_connections_reused_total: sessions served by a kept connection
  Counter upstream_connections_reused_total;
  Gauge upstream_up;  // portcullis_upstream_up: 1 when the last upstream probe succeeded
  // portcullis_config_last_reload_success_timestamp_seconds (Unix time)
  Gauge config_last_reload_success_timestamp_seconds;

  // Stress mode (SessionLimits): 1 while in it; portcullis_stress_episodes_total counts starts.
  Gauge stress_active;            // portcullis_stress_active
  Counter stress_episodes_total;  // portcullis_stress_episodes_total

  // DNS queries of the filters (proxy/dns), by record type (A, AAAA, MX, PTR, TXT) and outcome
  // (answer, no_data, nxdomain, temporary_failure, failure).
  Family<Counter> dns_queries_total{"portcullis_dns_queries_total",
                                    "DNS queries by record type and outcome",
                                    {"type", "outcome"}};
  Family<Histogram> dns_query_duration_seconds{
      "portcullis_dns_query_duration_seconds", "Time from a DNS query to its answer", {}};
  // portcullis_dns_cache_hits_total: queries answered at once (libunbound's cache, a local zone)
  Counter dns_cache_hits_total;

  // State-store calls that failed (proxy/store), by backend (lmdb) and status (full, error,
  // unavailable): each one is a filter whose failure_mode applied.
  Family<Counter> store_errors_total{"portcullis_store_errors_total",
                                     "State-store calls that failed, by backend and status",
                                     {"backend", "status"}};

  // The whole exposition, "# HELP"/"# TYPE" lines included; ends with a newline. Every metric
  // above in declaration order, then portcullis_build_info{version} (always 1). Depends only on
  // this object, so a local instance renders deterministically.
  std::string render() const;
};

// The process-wide instance.
Metrics& metrics();

// Prometheus's standard process metrics, read from /proc and getrlimit at call time:
// process_start_time_seconds, process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds. A value that cannot be read
// is left out. The metrics listener appends this to Metrics::render().
std::string render_process_metrics();

}  // namespace portcullis
