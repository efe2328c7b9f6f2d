// `portcullis report` (proxy/observe/rejection_report.h). Golden: tests/golden/report/sample.jsonl
// and its hand-written .ref files (text, --top 2, --json, error stream) compared exactly; plus the
// exit code for files that cannot be read, standard input, the line bound, the malformed-line
// listing limit and escaping of hostile names in the text output.
#define BOOST_TEST_MODULE rejection_report
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "json_reader.h"
#include "rejection_report.h"

namespace fs = std::filesystem;
using portcullis::parse_json;
using portcullis::ReportOptions;
using portcullis::run_report;

namespace {

fs::path golden_dir() {
  const char* root = std::getenv("PORTCULLIS_SOURCE_ROOT");
  if (root == nullptr) throw std::runtime_error("PORTCULLIS_SOURCE_ROOT is not set");
  return fs::path(root) / "tests" / "golden" / "report";
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct ReportRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

ReportRun run(const ReportOptions& options) {
  std::ostringstream out;
  std::ostringstream err;
  ReportRun result;
  result.exit_code = run_report(options, out, err);
  result.out = out.str();
  result.err = err.str();
  return result;
}

// The golden cases name the sample relatively ("sample.jsonl", as an operator would type it),
// so the expected outputs do not depend on where the checkout lives.
struct InGoldenDir {
  InGoldenDir() : previous(fs::current_path()) { fs::current_path(golden_dir()); }
  ~InGoldenDir() { fs::current_path(previous); }
  fs::path previous;
};

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "rejreport-test-XXXXXX").string();
    BOOST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  BOOST_REQUIRE(out.good());
}

const std::string minimal_record =
    R"({"ts":"2026-11-30T03:00:00.000Z","client_ip":"192.0.2.1","sender":null,)"
    R"("phase":"connect","rule":"r","mode":"enforce","action":"reject","source":"policy"})";

}  // namespace

BOOST_AUTO_TEST_CASE(golden_text) {
  InGoldenDir in_golden_dir;
  const auto result = run({{"sample.jsonl"}, false, 10});
  BOOST_TEST(result.exit_code == 0);
  BOOST_TEST(result.out == read_text("sample.txt.ref"));
  BOOST_TEST(result.err == read_text("sample.stderr.ref"));
}

BOOST_AUTO_TEST_CASE(golden_top_2) {
  InGoldenDir in_golden_dir;
  const auto result = run({{"sample.jsonl"}, false, 2});
  BOOST_TEST(result.exit_code == 0);
  BOOST_TEST(result.out == read_text("sample.top2.txt.ref"));
}

BOOST_AUTO_TEST_CASE(golden_json) {
  InGoldenDir in_golden_dir;
  const auto result = run({{"sample.jsonl"}, true, 10});
  BOOST_TEST(result.exit_code == 0);
  BOOST_TEST(result.out == read_text("sample.json.ref"));
  BOOST_TEST(result.err == read_text("sample.stderr.ref"));
  // One JSON object for tools.
  const auto value = parse_json(result.out);
  BOOST_REQUIRE(value.has_value());
  BOOST_TEST(value->is_object());
}

BOOST_AUTO_TEST_CASE(top_zero_shows_every_row) {
  InGoldenDir in_golden_dir;
  const auto all = run({{"sample.jsonl"}, true, 0});
  BOOST_TEST(all.exit_code == 0);
  const auto value = parse_json(all.out);
  BOOST_REQUIRE(value.has_value());
  BOOST_TEST(value->find("by_rule")->find("top")->as_array().size() == 8u);
  BOOST_TEST(*value->find("top")->as_integer() == 0);
}

BOOST_AUTO_TEST_CASE(several_files_add_up) {
  InGoldenDir in_golden_dir;
  const auto result = run({{"sample.jsonl", "sample.jsonl"}, true, 1});
  BOOST_TEST(result.exit_code == 0);
  const auto value = parse_json(result.out);
  BOOST_REQUIRE(value.has_value());
  BOOST_TEST(*value->find("records")->as_integer() == 40);
  BOOST_TEST(*value->find("malformed_lines")->as_integer() == 10);
  BOOST_TEST(value->find("files")->as_array().size() == 2u);
  // Five listed (all from the first copy), then the total.
  BOOST_TEST(result.err.find("sample.jsonl:25:") != std::string::npos);
  BOOST_TEST(result.err.find("portcullis report: 10 malformed lines (the first 5 listed)\n") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(missing_file_exits_2_without_a_report) {
  InGoldenDir in_golden_dir;
  const auto result = run({{"sample.jsonl", "no-such-file.jsonl"}, false, 10});
  BOOST_TEST(result.exit_code == 2);
  BOOST_TEST(result.out.empty());
  BOOST_TEST(result.err ==
             "portcullis report: no-such-file.jsonl: cannot open: No such file or directory\n");
}

BOOST_AUTO_TEST_CASE(directory_exits_2) {
  TempDir dir;
  const auto result = run({{dir.path().string()}, false, 10});
  BOOST_TEST(result.exit_code == 2);
  BOOST_TEST(result.out.empty());
  BOOST_TEST(result.err ==
             "portcullis report: " + dir.path().string() + ": cannot open: Is a directory\n");
}

BOOST_AUTO_TEST_CASE(unreadable_file_exits_2) {
  TempDir dir;
  const fs::path path = dir.path() / "locked.jsonl";
  write_file(path, minimal_record + "\n");
  fs::permissions(path, fs::perms::none);
  const auto result = run({{path.string()}, false, 10});
  if (::geteuid() == 0) {
    // root reads it anyway: then it must simply be reported.
    BOOST_TEST(result.exit_code == 0);
  } else {
    BOOST_TEST(result.exit_code == 2);
    BOOST_TEST(result.err.find("Permission denied") != std::string::npos, result.err);
  }
}

BOOST_AUTO_TEST_CASE(no_files_is_an_error) {
  const auto result = run({{}, false, 10});
  BOOST_TEST(result.exit_code == 2);
  BOOST_TEST(!result.err.empty());
}

BOOST_AUTO_TEST_CASE(dash_reads_standard_input) {
  // Put the sample on fd 0 for the run, then restore the real standard input.
  const int sample = ::open((golden_dir() / "sample.jsonl").c_str(), O_RDONLY | O_CLOEXEC);
  BOOST_REQUIRE(sample >= 0);
  const int saved_stdin = ::dup(STDIN_FILENO);
  BOOST_REQUIRE(saved_stdin >= 0);
  BOOST_REQUIRE(::dup2(sample, STDIN_FILENO) == STDIN_FILENO);
  ::close(sample);
  std::clearerr(stdin);
  const auto result = run({{"-"}, false, 10});
  ::dup2(saved_stdin, STDIN_FILENO);
  ::close(saved_stdin);
  std::clearerr(stdin);

  BOOST_TEST(result.exit_code == 0);
  std::string expected = read_text(golden_dir() / "sample.txt.ref");
  const std::string sample_heading = "Rejection log report: sample.jsonl\n";
  BOOST_REQUIRE(expected.compare(0, sample_heading.size(), sample_heading) == 0);
  expected.replace(0, sample_heading.size(), "Rejection log report: (stdin)\n");
  BOOST_TEST(result.out == expected);
  BOOST_TEST(result.err.find("portcullis report: (stdin):4: malformed line") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(line_bound_is_one_mebibyte) {
  TempDir dir;
  const fs::path path = dir.path() / "long.jsonl";
  // A valid record padded with JSON whitespace to exactly the bound is read; one byte more is
  // malformed and skipped, and the record after it is still read.
  std::string at_bound = minimal_record;
  at_bound.insert(1, portcullis::max_report_line_bytes - minimal_record.size(), ' ');
  BOOST_REQUIRE_EQUAL(at_bound.size(), portcullis::max_report_line_bytes);
  std::string over_bound = minimal_record;
  over_bound.insert(1, portcullis::max_report_line_bytes + 1 - minimal_record.size(), ' ');
  write_file(path, at_bound + "\n" + over_bound + "\n" + minimal_record + "\n");
  const auto result = run({{path.string()}, true, 10});
  BOOST_TEST(result.exit_code == 0);
  const auto value = parse_json(result.out);
  BOOST_REQUIRE(value.has_value());
  BOOST_TEST(*value->find("records")->as_integer() == 2);
  BOOST_TEST(*value->find("malformed_lines")->as_integer() == 1);
  BOOST_TEST(result.err == "portcullis report: " + path.string() +
                               ":2: malformed line: line longer than 1048576 bytes\n"
                               "portcullis report: 1 malformed line\n");
}

BOOST_AUTO_TEST_CASE(only_the_first_malformed_lines_are_listed) {
  TempDir dir;
  const fs::path path = dir.path() / "bad.jsonl";
  std::string content;
  for (int i = 0; i < 8; ++i)
    content += "{\"no_ts\":" + std::to_string(i) + "}\n";
  content += minimal_record + "\n";
  content += "\n";  // an empty line is not a record either
  write_file(path, content);
  const auto result = run({{path.string()}, false, 10});
  BOOST_TEST(result.exit_code == 0);
  const std::string name = path.string();
  std::string expected;
  for (int line = 1; line <= 5; ++line) {
    expected += "portcullis report: " + name + ":" + std::to_string(line) +
                ": malformed line: no \"ts\" string\n";
  }
  expected += "portcullis report: 9 malformed lines (the first 5 listed)\n";
  BOOST_TEST(result.err == expected);
  BOOST_TEST(result.out.find("  records          1\n") != std::string::npos, result.out);
}

BOOST_AUTO_TEST_CASE(hostile_names_are_escaped_in_text) {
  TempDir dir;
  const fs::path path = dir.path() / "hostile.jsonl";
  write_file(
      path,
      R"({"ts":"2026-11-30T03:00:00.000Z","client_ip":"192.0.2.1\u0000x",)"
      R"("sender":"x@EVIL\u001b[2J\u009b31m\\.example","rule":"line\nbreak","action":"reject"})"
      "\n");
  const auto text = run({{path.string()}, false, 10});
  BOOST_TEST(text.exit_code == 0);
  BOOST_TEST(text.out.find("      1  line\\x0Abreak\n") != std::string::npos, text.out);
  BOOST_TEST(text.out.find("      1  evil\\x1B[2j\\u009B31m\\\\.example\n") != std::string::npos,
             text.out);
  BOOST_TEST(text.out.find("      1  (invalid)\n") != std::string::npos, text.out);
  BOOST_TEST(text.out.find('\x1b') == std::string::npos);

  const auto json = run({{path.string()}, true, 10});
  const auto value = parse_json(json.out);
  BOOST_REQUIRE_MESSAGE(value.has_value(), json.out);
  const auto& domains = value->find("by_sender_domain")->find("top")->as_array();
  BOOST_REQUIRE_EQUAL(domains.size(), 1u);
  BOOST_TEST(*domains[0].find_string("name") ==
             "evil\x1b[2j\xC2\x9B"
             "31m\\.example");
}

BOOST_AUTO_TEST_CASE(delivered_means_accepted_by_the_upstream) {
  TempDir dir;
  const fs::path path = dir.path() / "delivered.jsonl";
  const std::string head = R"({"ts":"2026-11-30T03:00:00.000Z","client_ip":"192.0.2.1",)";
  write_file(
      path,
      head + R"("action":"accept","source":"upstream","queue_id":"ABC"})" + "\n" + head +
          R"("action":"delivered","source":"upstream"})" + "\n" +
          // An observed policy accept is not a delivery, nor a refusal.
          head + R"("action":"accept","mode":"observe","source":"policy","rule":"x"})" + "\n" +
          // An observed reject is not a refusal; an enforced upstream 421 is.
          head + R"("action":"reject","mode":"observe","source":"policy","rule":"y"})" + "\n" +
          head + R"("action":"disconnect","mode":"enforce","source":"upstream"})" + "\n");
  const auto result = run({{path.string()}, true, 10});
  BOOST_TEST(result.exit_code == 0);
  BOOST_TEST(result.err.empty(), result.err);
  const auto value = parse_json(result.out);
  BOOST_REQUIRE(value.has_value());
  BOOST_TEST(*value->find("records")->as_integer() == 5);
  BOOST_TEST(*value->find("delivered")->as_integer() == 2);
  BOOST_TEST(*value->find("observe_only")->as_integer() == 2);
  BOOST_TEST(*value->find("refusals")->as_integer() == 1);
  BOOST_TEST(*value->find("by_source")->find("upstream")->as_integer() == 3);
  BOOST_TEST(*value->find("by_source")->find("policy")->as_integer() == 2);
  BOOST_TEST(*value->find("by_rule")->find("distinct")->as_integer() == 2);
}
