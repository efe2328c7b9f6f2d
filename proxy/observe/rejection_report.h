// `portcullis report FILE... [--json] [--top N]` (DESIGN §6): a summary of rejection logs.
// Totals (records, refusals, observe-only, delivered, by source) and the top N by rule, action,
// phase, client network (/24 for IPv4, /64 for IPv6), sender domain and hour, as aligned text
// tables for a person or one JSON object for tools. docs/rejection-log.md describes both
// outputs and how each record is counted.
// SECURITY: log files are untrusted input (records carry peer-supplied strings, and a file may
// be damaged or hand-edited). Lines are read with a bound (longer ones are counted as
// malformed and skipped without being stored), parsed by the strict json_reader, and every
// name printed as text has its control characters escaped so nothing reaches the terminal raw.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>
#include <vector>

namespace portcullis {

struct ReportOptions {
  std::vector<std::string> files;  // "-" = standard input
  bool json = false;
  std::size_t top = 10;  // rows per table; 0 = all
};

// Lines longer than this (without the newline) are malformed.
inline constexpr std::size_t max_report_line_bytes = 1024 * 1024;
// Malformed lines listed one by one on the error stream; the rest are only counted.
inline constexpr std::size_t max_listed_malformed_lines = 5;

// Reads every file, writes the report to `out` and problems to `err`. Returns 0, or 2 when a
// file cannot be opened or read (then nothing is written to `out`: a partial summary would
// look complete). Malformed lines are reported on `err` and do not change the exit code.
int run_report(const ReportOptions& options, std::ostream& out, std::ostream& err);

}  // namespace portcullis
