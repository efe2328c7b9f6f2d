// `portcullis report`: reads rejection logs line by line and prints the summary; see the header.
// SECURITY: untrusted input. A line is accumulated only up to max_report_line_bytes; the rest
// of a longer line is skipped chunk by chunk, so memory stays bounded whatever the file holds.
// JSON is parsed by the strict json_reader (depth-limited). Names printed as text go through
// text_safe() (no raw control bytes reach a terminal); names printed as JSON through
// json_string(). Memory grows with the number of distinct names, which is what is reported.
#include "rejection_report.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string_view>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include "json_reader.h"
#include "rejection_log.h"

namespace portcullis {
namespace {

constexpr std::string_view message_prefix = "portcullis report: ";
constexpr std::size_t read_chunk_bytes = 64 * 1024;

// Closes what fopen() opened; standard input belongs to the process and stays open.
struct InputFileClose {
  void operator()(std::FILE* file) const {
    if (file != stdin) std::fclose(file);
  }
};
using InputFilePtr = std::unique_ptr<std::FILE, InputFileClose>;

using Counts = std::map<std::string, std::uint64_t>;

struct Summary {
  std::vector<std::string> files;  // display names
  std::uint64_t records = 0;
  std::uint64_t refusals = 0;
  std::uint64_t observe_only = 0;
  std::uint64_t delivered = 0;
  std::uint64_t malformed = 0;
  Counts by_source;
  Counts by_rule;
  Counts by_action;
  Counts by_phase;
  Counts by_network;
  Counts by_domain;
  Counts by_hour;
};

struct Table {
  const char* title;      // "By rule"
  const char* column;     // "rule"
  const char* json_name;  // "by_rule"
  const Counts* counts;
};

std::string error_text(int error_number) {
  return std::error_code(error_number, std::generic_category()).message();
}

// A name for a person's terminal: backslash doubled, C0 controls and DEL as \xHH, C1 controls
// as \u00HH, bytes that are not UTF-8 as \xHH; everything else (UTF-8 text) unchanged.
std::string text_safe(std::string_view name) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(name.size());
  std::size_t i = 0;
  while (i < name.size()) {
    const auto byte = static_cast<unsigned char>(name[i]);
    if (byte == '\\') {
      out += "\\\\";
      ++i;
    } else if (byte >= 0x20 && byte < 0x7F) {
      out.push_back(static_cast<char>(byte));
      ++i;
    } else if (const std::size_t length = byte >= 0x80 ? utf8_sequence_length(name.substr(i)) : 0;
               length == 2 && byte == 0xC2 && static_cast<unsigned char>(name[i + 1]) < 0xA0) {
      const auto code = static_cast<unsigned char>(name[i + 1]);
      out += "\\u00";
      out.push_back(hex[code >> 4]);
      out.push_back(hex[code & 0x0F]);
      i += 2;
    } else if (length > 0) {
      out.append(name.substr(i, length));
      i += length;
    } else {
      out += "\\x";
      out.push_back(hex[byte >> 4]);
      out.push_back(hex[byte & 0x0F]);
      ++i;
    }
  }
  return out;
}

std::string display_name(const std::string& file) {
  return file == "-" ? "(stdin)" : file;
}

bool digits_at(std::string_view text, std::size_t pos, std::size_t count) {
  if (pos + count > text.size()) return false;
  for (std::size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
  }
  return true;
}

int number_at(std::string_view text, std::size_t pos, std::size_t count) {
  int value = 0;
  for (std::size_t i = pos; i < pos + count; ++i)
    value = value * 10 + (text[i] - '0');
  return value;
}

// "2026-11-30T03:50:28.123Z": RFC 3339 in UTC, as the writer produces it (optional fraction
// of any length). The hour table groups by the text, so other offsets are not accepted.
bool is_rfc3339_utc(std::string_view ts) {
  if (!digits_at(ts, 0, 4) || ts.size() < 20 || ts[4] != '-' || !digits_at(ts, 5, 2) ||
      ts[7] != '-' || !digits_at(ts, 8, 2) || ts[10] != 'T' || !digits_at(ts, 11, 2) ||
      ts[13] != ':' || !digits_at(ts, 14, 2) || ts[16] != ':' || !digits_at(ts, 17, 2)) {
    return false;
  }
  const int month = number_at(ts, 5, 2);
  const int day = number_at(ts, 8, 2);
  if (month < 1 || month > 12 || day < 1 || day > 31 || number_at(ts, 11, 2) > 23 ||
      number_at(ts, 14, 2) > 59 || number_at(ts, 17, 2) > 60) {
    return false;
  }
  std::size_t pos = 19;
  if (ts[pos] == '.') {
    ++pos;
    const std::size_t fraction_start = pos;
    while (pos < ts.size() && ts[pos] >= '0' && ts[pos] <= '9')
      ++pos;
    if (pos == fraction_start) return false;
  }
  return pos + 1 == ts.size() && ts[pos] == 'Z';
}

// A string member, or `fallback` when it is absent, null, empty or not a string.
std::string field_or(const JsonValue& record, std::string_view name, std::string_view fallback) {
  const std::string* value = record.find_string(name);
  return value != nullptr && !value->empty() ? *value : std::string(fallback);
}

// "192.0.2.0/24" for IPv4 (and IPv4-mapped IPv6), "2001:db8:1:2::/64" for IPv6.
std::string client_network(const JsonValue& record) {
  const std::string* ip = record.find_string("client_ip");
  if (ip == nullptr || ip->empty()) return "(none)";
  if (ip->find('\0') != std::string::npos) return "(invalid)";  // inet_pton would stop at it
  char text[INET6_ADDRSTRLEN] = {};
  in_addr v4{};
  in6_addr v6{};
  if (::inet_pton(AF_INET, ip->c_str(), &v4) == 1) {
    // The address is in network order: the last octet is the last byte.
    reinterpret_cast<unsigned char*>(&v4.s_addr)[3] = 0;
  } else if (::inet_pton(AF_INET6, ip->c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {
      std::memcpy(&v4.s_addr, v6.s6_addr + 12, 4);
      reinterpret_cast<unsigned char*>(&v4.s_addr)[3] = 0;
    } else {
      std::memset(v6.s6_addr + 8, 0, 8);
      ::inet_ntop(AF_INET6, &v6, text, sizeof text);
      return std::string(text) + "/64";
    }
  } else {
    return "(invalid)";
  }
  ::inet_ntop(AF_INET, &v4, text, sizeof text);
  return std::string(text) + "/24";
}

// The part after the last '@', lower-cased; "<>" for the null sender; "(none)" before MAIL.
std::string sender_domain(const JsonValue& record) {
  const std::string* sender = record.find_string("sender");
  if (sender == nullptr) return "(none)";
  if (sender->empty()) return "<>";
  const std::size_t at = sender->rfind('@');
  if (at == std::string::npos || at + 1 == sender->size()) return "(no domain)";
  std::string domain = sender->substr(at + 1);
  for (char& c : domain) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return domain;
}

bool is_refusing_action(std::string_view action) {
  return action == "reject" || action == "tempfail" || action == "disconnect";
}

void tally(const JsonValue& record, const std::string& ts, Summary* summary) {
  ++summary->records;
  const std::string action = field_or(record, "action", "(none)");
  const bool observe = field_or(record, "mode", "") == "observe";
  if (observe) ++summary->observe_only;
  if (is_refusing_action(action) && !observe) ++summary->refusals;
  const std::string source = field_or(record, "source", "(none)");
  // A delivered message is the upstream's acceptance ([log] all_transactions); "delivered"
  // is read as well so logs are counted alike whichever of the two names wrote them.
  if (source == "upstream" && (action == "accept" || action == "delivered")) ++summary->delivered;
  ++summary->by_source[source];
  const std::string rule = field_or(record, "rule", "");
  if (!rule.empty()) ++summary->by_rule[rule];
  ++summary->by_action[action];
  ++summary->by_phase[field_or(record, "phase", "(none)")];
  ++summary->by_network[client_network(record)];
  ++summary->by_domain[sender_domain(record)];
  ++summary->by_hour[ts.substr(0, 13)];
}

// Why a line is not a record, or nullopt when it was counted.
std::optional<std::string> take_line(std::string_view line, bool overlong, Summary* summary) {
  if (overlong) return fmt::format("line longer than {} bytes", max_report_line_bytes);
  std::string error;
  const auto value = parse_json(line, &error);
  if (!value) return "not valid JSON (" + error + ")";
  if (!value->is_object()) return std::string("not a JSON object");
  const std::string* ts = value->find_string("ts");
  if (ts == nullptr) return std::string("no \"ts\" string");
  if (!is_rfc3339_utc(*ts)) return std::string("\"ts\" is not an RFC 3339 time");
  tally(*value, *ts, summary);
  return std::nullopt;
}

struct MalformedReporter {
  std::ostream& err;
  std::size_t listed = 0;

  void report(const std::string& file, std::uint64_t line_number, const std::string& reason) {
    if (listed >= max_listed_malformed_lines) return;
    ++listed;
    err << message_prefix << text_safe(file) << ':' << line_number
        << ": malformed line: " << text_safe(reason) << '\n';
  }
};

// Reads one opened input to its end; false (after a message) on a read error.
bool read_input(std::FILE* file, const std::string& name, Summary* summary,
                MalformedReporter* malformed, std::ostream& err) {
  std::vector<char> chunk(read_chunk_bytes);
  std::string line;
  bool overlong = false;
  std::uint64_t line_number = 0;
  const auto finish_line = [&] {
    ++line_number;
    if (auto reason = take_line(line, overlong, summary)) {
      ++summary->malformed;
      malformed->report(name, line_number, *reason);
    }
    line.clear();
    overlong = false;
  };
  while (true) {
    const std::size_t got = std::fread(chunk.data(), 1, chunk.size(), file);
    std::string_view data(chunk.data(), got);
    while (!data.empty()) {
      const std::size_t newline = data.find('\n');
      const std::string_view piece = data.substr(0, newline);
      if (!overlong) {
        if (line.size() + piece.size() > max_report_line_bytes) {
          overlong = true;
          line.clear();
          line.shrink_to_fit();
        } else {
          line.append(piece);
        }
      }
      if (newline == std::string_view::npos) break;
      finish_line();
      data.remove_prefix(newline + 1);
    }
    if (got < chunk.size()) break;
  }
  if (std::ferror(file)) {
    err << message_prefix << text_safe(name) << ": read error: " << error_text(errno) << '\n';
    return false;
  }
  if (!line.empty() || overlong) finish_line();  // a last line without its newline
  return true;
}

// Opens a file for reading; nullptr after a message when it cannot be read.
InputFilePtr open_input(const std::string& file, std::ostream& err) {
  if (file == "-") return InputFilePtr(stdin);
  InputFilePtr input(std::fopen(file.c_str(), "re"));
  if (!input) {
    err << message_prefix << text_safe(file) << ": cannot open: " << error_text(errno) << '\n';
    return nullptr;
  }
  struct stat info {};
  if (::fstat(::fileno(input.get()), &info) == 0 && S_ISDIR(info.st_mode)) {
    err << message_prefix << text_safe(file) << ": cannot open: " << error_text(EISDIR) << '\n';
    return nullptr;
  }
  return input;
}

// Count descending, then name ascending (byte order), so equal counts always print alike.
std::vector<std::pair<std::string, std::uint64_t>> ranked(const Counts& counts) {
  std::vector<std::pair<std::string, std::uint64_t>> rows(counts.begin(), counts.end());
  std::stable_sort(rows.begin(), rows.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  return rows;
}

std::size_t shown_rows(std::size_t distinct, std::size_t top) {
  return top == 0 ? distinct : std::min(distinct, top);
}

std::vector<Table> tables_of(const Summary& summary) {
  return {
      {"By rule", "rule", "by_rule", &summary.by_rule},
      {"By action", "action", "by_action", &summary.by_action},
      {"By phase", "phase", "by_phase", &summary.by_phase},
      {"By client network", "network", "by_client_network", &summary.by_network},
      {"By sender domain", "sender domain", "by_sender_domain", &summary.by_domain},
      {"By hour", "hour", "by_hour", &summary.by_hour},
  };
}

std::string join_names(const std::vector<std::string>& names, std::string_view separator,
                       std::string (*render)(std::string_view)) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += separator;
    out += render(names[i]);
  }
  return out;
}

void write_text(const Summary& summary, std::size_t top, std::ostream& out) {
  out << "Rejection log report: " << join_names(summary.files, ", ", text_safe) << "\n\n";

  std::vector<std::pair<std::string, std::uint64_t>> totals = {
      {"records", summary.records},
      {"refusals", summary.refusals},
      {"observe-only", summary.observe_only},
      {"delivered", summary.delivered},
  };
  for (const auto& [source, count] : summary.by_source) {
    totals.emplace_back("source " + text_safe(source), count);
  }
  totals.emplace_back("malformed lines", summary.malformed);
  std::size_t label_width = 0;
  std::size_t value_width = 0;
  for (const auto& [label, count] : totals) {
    label_width = std::max(label_width, label.size());
    value_width = std::max(value_width, fmt::formatted_size("{}", count));
  }
  out << "Totals\n";
  for (const auto& [label, count] : totals) {
    out << fmt::format("  {:<{}}  {:>{}}\n", label, label_width, count, value_width);
  }

  for (const Table& table : tables_of(summary)) {
    const auto rows = ranked(*table.counts);
    const std::size_t shown = shown_rows(rows.size(), top);
    out << '\n' << table.title << ' ';
    if (shown < rows.size()) {
      out << fmt::format("(top {} of {})\n", shown, rows.size());
    } else {
      out << fmt::format("({} distinct)\n", rows.size());
    }
    if (rows.empty()) {
      out << "  no records\n";
      continue;
    }
    // The widest count is the first one (rows are sorted by count).
    const std::size_t count_width =
        std::max<std::size_t>(5, fmt::formatted_size("{}", rows.front().second));
    out << fmt::format("  {:>{}}  {}\n", "count", count_width, table.column);
    for (std::size_t i = 0; i < shown; ++i) {
      out << fmt::format("  {:>{}}  {}\n", rows[i].second, count_width, text_safe(rows[i].first));
    }
  }
}

std::string json_name(std::string_view name) {
  return json_string(name);
}

void write_json(const Summary& summary, std::size_t top, std::ostream& out) {
  out << "{\n";
  out << "  \"files\": [" << join_names(summary.files, ", ", json_name) << "],\n";
  out << "  \"records\": " << summary.records << ",\n";
  out << "  \"refusals\": " << summary.refusals << ",\n";
  out << "  \"observe_only\": " << summary.observe_only << ",\n";
  out << "  \"delivered\": " << summary.delivered << ",\n";
  out << "  \"by_source\": {";
  bool first = true;
  for (const auto& [source, count] : summary.by_source) {
    out << (first ? "" : ", ") << json_string(source) << ": " << count;
    first = false;
  }
  out << "},\n";
  out << "  \"malformed_lines\": " << summary.malformed << ",\n";
  out << "  \"top\": " << top;
  for (const Table& table : tables_of(summary)) {
    const auto rows = ranked(*table.counts);
    const std::size_t shown = shown_rows(rows.size(), top);
    out << ",\n  \"" << table.json_name << "\": {\"distinct\": " << rows.size() << ", \"top\": [";
    for (std::size_t i = 0; i < shown; ++i) {
      out << (i == 0 ? "\n" : ",\n") << "    {\"name\": " << json_string(rows[i].first)
          << ", \"count\": " << rows[i].second << '}';
    }
    out << (shown > 0 ? "\n  ]}" : "]}");
  }
  out << "\n}\n";
}

}  // namespace

int run_report(const ReportOptions& options, std::ostream& out, std::ostream& err) {
  if (options.files.empty()) {
    err << message_prefix << "no input files (\"-\" reads standard input)\n";
    return 2;
  }
  // Every file is opened before any is read: a missing one stops the report before it starts.
  std::vector<InputFilePtr> inputs;
  bool all_open = true;
  for (const auto& file : options.files) {
    inputs.push_back(open_input(file, err));
    if (!inputs.back()) all_open = false;
  }
  if (!all_open) return 2;

  Summary summary;
  MalformedReporter malformed{err};
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const std::string name = display_name(options.files[i]);
    summary.files.push_back(name);
    if (!read_input(inputs[i].get(), name, &summary, &malformed, err)) return 2;
  }
  if (summary.malformed > 0) {
    err << message_prefix << summary.malformed << " malformed line"
        << (summary.malformed == 1 ? "" : "s");
    if (summary.malformed > malformed.listed)
      err << " (the first " << malformed.listed << " listed)";
    err << '\n';
  }

  if (options.json) {
    write_json(summary, options.top, out);
  } else {
    write_text(summary, options.top, out);
  }
  out.flush();
  return out ? 0 : 2;
}

}  // namespace portcullis
