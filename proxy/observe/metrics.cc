// Metrics registry and its Prometheus text exposition (format 0.0.4).
//
// SECURITY: label values and help texts are escaped on output, so an operator's rule name with a
// quote, backslash or newline cannot break the exposition. render_process_metrics() reads
// /proc/self/stat and /proc/stat (kernel-generated, but still read with a bounded buffer) and
// counts /proc/self/fd.
#include "metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>

#ifndef PORTCULLIS_VERSION
#define PORTCULLIS_VERSION "unknown"
#endif

namespace portcullis {
namespace {

constexpr std::uint64_t kNanosecondsPerSecond = 1'000'000'000;

// The bounds in integer nanoseconds, so an observation exactly on a bound lands in that bucket
// (`le` is inclusive) without floating-point rounding deciding it.
constexpr std::array<std::uint64_t, Histogram::kBounds.size()> bounds_in_nanoseconds() {
  std::array<std::uint64_t, Histogram::kBounds.size()> result{};
  for (std::size_t i = 0; i < result.size(); ++i)
    result[i] = static_cast<std::uint64_t>(Histogram::kBounds[i] * 1e9 + 0.5);
  return result;
}
constexpr auto kBoundsNanoseconds = bounds_in_nanoseconds();

// Label values: backslash, double quote and line feed are escaped (exposition format 0.0.4).
void append_escaped_label_value(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

// HELP text: backslash and line feed are escaped (quotes are not, per the format).
std::string escape_help(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void append_header(std::string& out, std::string_view name, std::string_view help,
                   std::string_view type) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, escape_help(help),
                 name, type);
}

// `{a="x",b="y"` without the closing brace, so a histogram can add `le`; empty when there are
// no labels and no extra label will follow.
std::string label_block(const std::vector<std::string>& names,
                        const std::vector<std::string>& values) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    out += i == 0 ? '{' : ',';
    out += names[i];
    out += "=\"";
    append_escaped_label_value(out, values[i]);
    out += '"';
  }
  return out;
}

std::string close_labels(const std::string& block) {
  return block.empty() ? block : block + "}";
}

// Shortest text that reads back as the same double ("0.0005", "1", "1e-05"), as Prometheus's
// own clients print floats.
std::string format_double(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  return fmt::format("{}", value);
}

template <typename Value>
void append_scalar(std::string& out, std::string_view name, std::string_view help,
                   std::string_view type, Value value) {
  append_header(out, name, help, type);
  fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
}

void append_counter_family(std::string& out, const Family<Counter>& family) {
  append_header(out, family.name(), family.help(), "counter");
  for (const auto& [values, counter] : family.children())
    fmt::format_to(std::back_inserter(out), "{}{} {}\n", family.name(),
                   close_labels(label_block(family.label_names(), values)), counter->value());
}

void append_histogram_family(std::string& out, const Family<Histogram>& family) {
  append_header(out, family.name(), family.help(), "histogram");
  for (const auto& [values, histogram] : family.children()) {
    const std::string labels = label_block(family.label_names(), values);
    const std::string bucket_open = labels.empty() ? "{" : labels + ",";
    // One snapshot of the buckets: the +Inf bucket and _count are the same number even while
    // other threads observe.
    const auto cumulative = histogram->cumulative();
    for (std::size_t i = 0; i < Histogram::kBounds.size(); ++i)
      fmt::format_to(std::back_inserter(out), "{}_bucket{}le=\"{}\"}} {}\n", family.name(),
                     bucket_open, format_double(Histogram::kBounds[i]), cumulative[i]);
    fmt::format_to(std::back_inserter(out), "{}_bucket{}le=\"+Inf\"}} {}\n", family.name(),
                   bucket_open, cumulative.back());
    fmt::format_to(std::back_inserter(out), "{}_sum{} {}\n", family.name(), close_labels(labels),
                   format_double(histogram->sum_seconds()));
    fmt::format_to(std::back_inserter(out), "{}_count{} {}\n", family.name(), close_labels(labels),
                   cumulative.back());
  }
}

// Reads at most `limit` bytes of a small kernel file; nullopt when it cannot be opened.
std::optional<std::string> read_small_file(const char* path, std::size_t limit) {
  std::FILE* file = std::fopen(path, "re");
  if (file == nullptr) return std::nullopt;
  std::string content(limit, '\0');
  const std::size_t length = std::fread(content.data(), 1, limit, file);
  std::fclose(file);
  content.resize(length);
  return content;
}

// Fields of /proc/self/stat after the command name, which may itself hold spaces and
// parentheses: fields[0] is field 3 (state) of proc(5).
std::vector<std::string_view> proc_stat_fields(std::string_view stat) {
  std::vector<std::string_view> fields;
  const auto close = stat.rfind(')');
  if (close == std::string_view::npos) return fields;
  std::string_view rest = stat.substr(close + 1);
  while (!rest.empty()) {
    const auto start = rest.find_first_not_of(" \n");
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    const auto end = std::min(rest.find_first_of(" \n"), rest.size());
    fields.push_back(rest.substr(0, end));
    rest.remove_prefix(end);
  }
  return fields;
}

std::optional<std::uint64_t> parse_unsigned(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

// System boot time (seconds since the epoch), from the `btime` line of /proc/stat.
std::optional<std::uint64_t> boot_time_seconds() {
  const auto stat = read_small_file("/proc/stat", 64 * 1024);
  if (!stat) return std::nullopt;
  const auto at = stat->find("\nbtime ");
  if (at == std::string::npos) return std::nullopt;
  const auto begin = at + 7;
  const auto end = stat->find('\n', begin);
  return parse_unsigned(std::string_view(*stat).substr(begin, end - begin));
}

std::optional<std::uint64_t> open_file_descriptors() {
  DIR* directory = opendir("/proc/self/fd");
  if (directory == nullptr) return std::nullopt;
  std::uint64_t count = 0;
  while (const dirent* entry = readdir(directory)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(directory);
  // The directory stream's own descriptor was counted too.
  return count > 0 ? count - 1 : 0;
}

}  // namespace

void Histogram::observe(std::chrono::nanoseconds duration) {
  const std::uint64_t nanoseconds =
      duration.count() < 0 ? 0 : static_cast<std::uint64_t>(duration.count());
  const auto bucket = static_cast<std::size_t>(
      std::lower_bound(kBoundsNanoseconds.begin(), kBoundsNanoseconds.end(), nanoseconds) -
      kBoundsNanoseconds.begin());
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_nanoseconds_.fetch_add(nanoseconds, std::memory_order_relaxed);
}

std::array<std::uint64_t, Histogram::kBounds.size() + 1> Histogram::cumulative() const {
  std::array<std::uint64_t, kBounds.size() + 1> result{};
  std::uint64_t running = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    result[i] = running;
  }
  return result;
}

double Histogram::sum_seconds() const {
  return static_cast<double>(sum_nanoseconds_.load(std::memory_order_relaxed)) /
         static_cast<double>(kNanosecondsPerSecond);
}

std::uint64_t Histogram::count() const {
  return cumulative().back();
}

template <typename Child>
Child& Family<Child>::with(const std::vector<std::string>& values) {
  if (values.size() != label_names_.size())
    throw std::invalid_argument(fmt::format("{}: {} label values for {} label names", name_,
                                            values.size(), label_names_.size()));
  {
    std::shared_lock lock(mutex_);
    const auto found = children_.find(values);
    if (found != children_.end()) return *found->second;
  }
  std::unique_lock lock(mutex_);
  // Another thread may have inserted the same label set between the two locks.
  auto [position, inserted] = children_.try_emplace(values);
  if (inserted) position->second = std::make_unique<Child>();
  return *position->second;
}

template <typename Child>
std::vector<std::pair<std::vector<std::string>, const Child*>> Family<Child>::children() const {
  std::shared_lock lock(mutex_);
  std::vector<std::pair<std::vector<std::string>, const Child*>> result;
  result.reserve(children_.size());
  for (const auto& [values, child] : children_)
    result.emplace_back(values, child.get());
  return result;
}

template class Family<Counter>;
template class Family<Histogram>;

std::string Metrics::render() const {
  std::string out;
  out.reserve(8192);
  append_scalar(out, "portcullis_sessions_total", "Client sessions accepted", "counter",
                sessions_total.value());
  append_scalar(out, "portcullis_sessions_active", "Client sessions open now", "gauge",
                sessions_active.value());
  append_counter_family(out, decisions_total);
  append_counter_family(out, filter_results_total);
  append_counter_family(out, filter_warnings_total);
  append_histogram_family(out, filter_duration_seconds);
  append_counter_family(out, upstream_replies_total);
  append_counter_family(out, upstream_errors_total);
  append_counter_family(out, reloads_total);
  append_counter_family(out, commands_total);
  append_counter_family(out, tls_handshakes_total);
  append_counter_family(out, messages_total);
  append_scalar(out, "portcullis_message_bytes_total", "Bytes of delivered messages", "counter",
                message_bytes_total.value());
  append_counter_family(out, session_ends_total);
  append_scalar(out, "portcullis_upstream_connections_active", "Open connections to the upstream",
                "gauge", upstream_connections_active.value());
  append_scalar(out, "portcullis_upstream_connections_reused_total",
                "Sessions served by an upstream connection kept from an earlier session", "counter",
                upstream_connections_reused_total.value());
  append_scalar(out, "portcullis_upstream_up", "1 when the last upstream probe succeeded, else 0",
                "gauge", upstream_up.value());
  append_scalar(out, "portcullis_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful configuration load or reload", "gauge",
                config_last_reload_success_timestamp_seconds.value());
  append_scalar(out, "portcullis_stress_active",
                "1 while in stress mode (open sessions past [limits] stress_threshold)", "gauge",
                stress_active.value());
  append_scalar(out, "portcullis_stress_episodes_total", "Times stress mode started", "counter",
                stress_episodes_total.value());
  append_counter_family(out, dns_queries_total);
  append_histogram_family(out, dns_query_duration_seconds);
  append_scalar(out, "portcullis_dns_cache_hits_total",
                "DNS queries answered at once from the resolver's cache or a local zone", "counter",
                dns_cache_hits_total.value());
  append_counter_family(out, store_errors_total);
  append_header(out, "portcullis_build_info", "Portcullis version; the value is always 1", "gauge");
  out += "portcullis_build_info{version=\"";
  append_escaped_label_value(out, PORTCULLIS_VERSION);
  out += "\"} 1\n";
  return out;
}

Metrics& metrics() {
  static Metrics instance;
  return instance;
}

std::string render_process_metrics() {
  std::string out;
  const auto stat = read_small_file("/proc/self/stat", 4096);
  const auto fields = stat ? proc_stat_fields(*stat) : std::vector<std::string_view>{};
  // proc(5) field numbers minus 3: utime 14, stime 15, starttime 22, vsize 23, rss 24.
  auto field = [&fields](std::size_t proc_field) -> std::optional<std::uint64_t> {
    if (proc_field < 3 || proc_field - 3 >= fields.size()) return std::nullopt;
    return parse_unsigned(fields[proc_field - 3]);
  };
  const long ticks_per_second = sysconf(_SC_CLK_TCK);
  const long page_size = sysconf(_SC_PAGESIZE);

  static const std::optional<std::uint64_t> boot_time = boot_time_seconds();
  if (const auto start_ticks = field(22); start_ticks && boot_time && ticks_per_second > 0) {
    append_scalar(
        out, "process_start_time_seconds", "Start time of the process since unix epoch in seconds",
        "gauge",
        format_double(static_cast<double>(*boot_time) +
                      static_cast<double>(*start_ticks) / static_cast<double>(ticks_per_second)));
  }
  if (const auto user = field(14), system = field(15); user && system && ticks_per_second > 0) {
    append_scalar(out, "process_cpu_seconds_total", "Total user and system CPU time in seconds",
                  "counter",
                  format_double(static_cast<double>(*user + *system) /
                                static_cast<double>(ticks_per_second)));
  }
  if (const auto rss_pages = field(24); rss_pages && page_size > 0) {
    append_scalar(out, "process_resident_memory_bytes", "Resident memory size in bytes", "gauge",
                  *rss_pages * static_cast<std::uint64_t>(page_size));
  }
  if (const auto virtual_bytes = field(23)) {
    append_scalar(out, "process_virtual_memory_bytes", "Virtual memory size in bytes", "gauge",
                  *virtual_bytes);
  }
  if (const auto open = open_file_descriptors()) {
    append_scalar(out, "process_open_fds", "Number of open file descriptors", "gauge", *open);
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    append_scalar(out, "process_max_fds", "Maximum number of open file descriptors", "gauge",
                  static_cast<std::uint64_t>(limit.rlim_cur));
  }
  return out;
}

}  // namespace portcullis
