#define BOOST_TEST_MODULE message_store
#include <boost/test/unit_test.hpp>

#include <dirent.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "message_store.h"

using portcullis::MessageStore;

namespace {

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/msgstore-test-XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    BOOST_REQUIRE(::mkdtemp(buffer.data()) != nullptr);
    path_ = buffer.data();
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all, ignored);
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<std::string> directory_entries(const std::string& path) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(path)) {
    names.push_back(entry.path().filename().string());
  }
  return names;
}

// Open descriptors of this process that point at a file inside `dir`, e.g.
// "/tmp/msgstore-test-abc/#123 (deleted)" for an O_TMPFILE file.
std::vector<std::string> open_files_in(const std::string& dir) {
  std::vector<std::string> targets;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code error;
    const auto target = std::filesystem::read_symlink(entry.path(), error);
    if (error) continue;
    const std::string text = target.string();
    if (text.rfind(dir + "/", 0) == 0) targets.push_back(entry.path().string());
  }
  return targets;
}

std::string read_all(MessageStore& store, size_t chunk_size) {
  store.rewind();
  std::string all;
  std::string chunk;
  while (store.read(&chunk, chunk_size)) {
    BOOST_REQUIRE(!chunk.empty());
    BOOST_REQUIRE(chunk.size() <= chunk_size);
    all += chunk;
  }
  return all;
}

std::string pattern_bytes(size_t size, unsigned seed) {
  std::string bytes(size, '\0');
  uint32_t state = seed * 2654435761u + 1;
  for (char& c : bytes) {
    state = state * 1664525u + 1013904223u;
    c = static_cast<char>(state >> 24);
  }
  return bytes;
}

// Makes the file-system checks apply to this thread as if it were "nobody", so a read-only
// directory is refused even when the tests run as root.
class AsNobodyForFiles {
 public:
  AsNobodyForFiles() : previous_(::setfsuid(65534)) {}
  ~AsNobodyForFiles() { ::setfsuid(previous_); }

 private:
  int previous_;
};

}  // namespace

BOOST_AUTO_TEST_CASE(below_threshold_stays_in_memory) {
  TempDir dir;
  MessageStore store(100, dir.path());
  BOOST_TEST(store.append("Subject: hi\r\n\r\n"));
  BOOST_TEST(store.append("body\r\n"));
  BOOST_TEST(!store.spilled());
  BOOST_TEST(store.size() == 21u);
  BOOST_TEST(read_all(store, 4) == "Subject: hi\r\n\r\nbody\r\n");
  BOOST_TEST(open_files_in(dir.path()).empty());
  BOOST_TEST(directory_entries(dir.path()).empty());
}

BOOST_AUTO_TEST_CASE(exactly_the_threshold_stays_in_memory) {
  TempDir dir;
  MessageStore store(10, dir.path());
  BOOST_TEST(store.append("0123456789"));
  BOOST_TEST(!store.spilled());
  BOOST_TEST(store.append("A"));
  BOOST_TEST(store.spilled());
  BOOST_TEST(read_all(store, 3) == "0123456789A");
}

BOOST_AUTO_TEST_CASE(above_threshold_spills_to_an_unnamed_private_file) {
  TempDir dir;
  MessageStore store(16, dir.path());
  BOOST_TEST(store.append("first part, 21 bytes"));
  BOOST_TEST(store.spilled());
  BOOST_TEST(store.append(" and more"));
  BOOST_TEST(store.size() == 29u);
  BOOST_TEST(store.error().empty());

  // The file is open but has no name in the directory.
  BOOST_TEST(directory_entries(dir.path()).empty());
  const auto open_files = open_files_in(dir.path());
  BOOST_REQUIRE(open_files.size() == 1u);
  struct stat status {};
  BOOST_REQUIRE(::stat(open_files[0].c_str(), &status) == 0);
  BOOST_TEST((status.st_mode & 07777) == 0600u);
  BOOST_TEST(status.st_nlink == 0u);
  BOOST_TEST(status.st_size == 29);

  BOOST_TEST(read_all(store, 7) == "first part, 21 bytes and more");
  // Reading twice gives the same bytes.
  BOOST_TEST(read_all(store, 1000) == "first part, 21 bytes and more");

  store.clear();
  BOOST_TEST(!store.spilled());
  BOOST_TEST(store.size() == 0u);
  BOOST_TEST(open_files_in(dir.path()).empty());
  BOOST_TEST(directory_entries(dir.path()).empty());
  std::string chunk = "stale";
  BOOST_TEST(!store.read(&chunk, 10));
  BOOST_TEST(chunk.empty());
}

BOOST_AUTO_TEST_CASE(threshold_zero_spills_at_the_first_byte) {
  TempDir dir;
  MessageStore store(0, dir.path());
  BOOST_TEST(store.append(""));
  BOOST_TEST(!store.spilled());
  BOOST_TEST(store.append("x"));
  BOOST_TEST(store.spilled());
  BOOST_TEST(open_files_in(dir.path()).size() == 1u);
  BOOST_TEST(read_all(store, 10) == "x");
}

BOOST_AUTO_TEST_CASE(store_is_reusable_after_clear) {
  TempDir dir;
  MessageStore store(4, dir.path());
  BOOST_TEST(store.append("123456"));
  BOOST_TEST(store.spilled());
  store.clear();
  BOOST_TEST(store.append("ab"));
  BOOST_TEST(!store.spilled());
  BOOST_TEST(read_all(store, 10) == "ab");
  BOOST_TEST(store.append("cdefgh"));
  BOOST_TEST(store.spilled());
  BOOST_TEST(read_all(store, 10) == "abcdefgh");
}

BOOST_AUTO_TEST_CASE(destructor_closes_the_file) {
  TempDir dir;
  {
    MessageStore store(1, dir.path());
    BOOST_TEST(store.append("spilled"));
    BOOST_TEST(open_files_in(dir.path()).size() == 1u);
  }
  BOOST_TEST(open_files_in(dir.path()).empty());
}

BOOST_AUTO_TEST_CASE(missing_directory_fails_and_keeps_the_message) {
  TempDir dir;
  MessageStore store(4, dir.path() + "/does-not-exist");
  BOOST_TEST(store.append("abc"));
  BOOST_TEST(!store.append("defgh"));
  BOOST_TEST(!store.spilled());
  BOOST_TEST(store.error().find("No such file or directory") != std::string::npos);
  BOOST_TEST(store.error().find(dir.path() + "/does-not-exist") != std::string::npos);
  BOOST_TEST(store.size() == 3u);
  BOOST_TEST(read_all(store, 10) == "abc");
}

BOOST_AUTO_TEST_CASE(unwritable_directory_fails_with_an_error) {
  TempDir dir;
  BOOST_REQUIRE(::chmod(dir.path().c_str(), 0555) == 0);
  MessageStore store(4, dir.path());
  bool appended = true;
  {
    AsNobodyForFiles as_nobody;
    BOOST_TEST(store.append("abcd"));
    appended = store.append("efgh");
  }
  BOOST_TEST(!appended);
  BOOST_TEST(!store.spilled());
  BOOST_TEST(store.error().find("Permission denied") != std::string::npos);
  BOOST_TEST(store.size() == 4u);
  BOOST_TEST(read_all(store, 10) == "abcd");
  BOOST_TEST(directory_entries(dir.path()).empty());
}

BOOST_AUTO_TEST_CASE(twenty_megabytes_round_trip) {
  TempDir dir;
  MessageStore store(1048576, dir.path());
  const std::string message = pattern_bytes(20 * 1024 * 1024, 7);
  for (size_t offset = 0; offset < message.size(); offset += 65536) {
    BOOST_REQUIRE(store.append(std::string_view(message).substr(offset, 65536)));
  }
  BOOST_TEST(store.spilled());
  BOOST_TEST(store.size() == message.size());
  BOOST_TEST(directory_entries(dir.path()).empty());
  const std::string back = read_all(store, 100000);
  BOOST_TEST(back.size() == message.size());
  BOOST_TEST((back == message));
  store.clear();
  BOOST_TEST(open_files_in(dir.path()).empty());
}

// --- the header section ----------------------------------------------------------------------

namespace {

std::string header_section_of(MessageStore& store, size_t max_bytes) {
  std::string header = "stale";
  BOOST_REQUIRE(store.read_header_section(max_bytes, &header));
  return header;
}

const std::string kHeaderAndBody =
    "Received: from a\r\n\tby b\r\n"
    "Authentication-Results: mx.example.org; spf=pass\r\n"
    "\r\n"
    "body line\r\n";
const std::string kHeaderOnly =
    "Received: from a\r\n\tby b\r\n"
    "Authentication-Results: mx.example.org; spf=pass\r\n";

}  // namespace

BOOST_AUTO_TEST_CASE(header_section_in_memory) {
  TempDir dir;
  MessageStore store(1000, dir.path());
  BOOST_REQUIRE(store.append(kHeaderAndBody));
  BOOST_TEST(!store.spilled());
  BOOST_TEST(header_section_of(store, 102400) == kHeaderOnly);
}

BOOST_AUTO_TEST_CASE(header_section_spilled_leaves_the_read_position_alone) {
  TempDir dir;
  MessageStore store(8, dir.path());
  BOOST_REQUIRE(store.append(kHeaderAndBody));
  BOOST_TEST(store.spilled());
  store.rewind();
  std::string chunk;
  BOOST_REQUIRE(store.read(&chunk, 10));
  BOOST_TEST(chunk == "Received: ");
  BOOST_TEST(header_section_of(store, 102400) == kHeaderOnly);
  BOOST_REQUIRE(store.read(&chunk, 8));
  BOOST_TEST(chunk == "from a\r\n");
}

BOOST_AUTO_TEST_CASE(header_section_without_an_empty_line_is_the_whole_message) {
  TempDir dir;
  MessageStore store(1000, dir.path());
  BOOST_REQUIRE(store.append("A: 1\r\nB: 2\r\n"));
  BOOST_TEST(header_section_of(store, 102400) == "A: 1\r\nB: 2\r\n");
  BOOST_TEST(header_section_of(store, 12) == "A: 1\r\nB: 2\r\n");
  // One byte short of holding it all: B might go on, so only A is sure.
  BOOST_TEST(header_section_of(store, 11) == "A: 1\r\n");
}

BOOST_AUTO_TEST_CASE(header_section_of_a_message_that_starts_with_the_empty_line) {
  TempDir dir;
  MessageStore store(1000, dir.path());
  BOOST_REQUIRE(store.append("\r\nAuthentication-Results: mx.example.org; none\r\n"));
  BOOST_TEST(header_section_of(store, 102400) == "");
}

BOOST_AUTO_TEST_CASE(header_section_of_an_empty_message) {
  TempDir dir;
  MessageStore store(1000, dir.path());
  BOOST_TEST(header_section_of(store, 102400) == "");
}

BOOST_AUTO_TEST_CASE(header_section_is_bounded_and_never_ends_inside_a_field) {
  TempDir dir;
  MessageStore store(4, dir.path());
  // Offsets: "A: 1\r\n" 0-5, "B: 2\r\n" 6-11, "\tcont\r\n" 12-18, "C: 3\r\n" 19-24, "\r\n" 25.
  BOOST_REQUIRE(store.append("A: 1\r\nB: 2\r\n\tcont\r\nC: 3\r\n\r\nbody\r\n"));
  BOOST_TEST(store.spilled());
  BOOST_TEST(header_section_of(store, 1000) == "A: 1\r\nB: 2\r\n\tcont\r\nC: 3\r\n");
  BOOST_TEST(header_section_of(store, 25) == "A: 1\r\nB: 2\r\n\tcont\r\nC: 3\r\n");
  // 24: bytes 0-25 are read, so the empty line (25-26) is not seen whole and C could go on
  // with a continuation line at 25: C is left out.
  BOOST_TEST(header_section_of(store, 24) == "A: 1\r\nB: 2\r\n\tcont\r\n");
  BOOST_TEST(header_section_of(store, 19) == "A: 1\r\nB: 2\r\n\tcont\r\n");
  // 18: the start of C (offset 19) is beyond the limit, so B's continuation may go on.
  BOOST_TEST(header_section_of(store, 18) == "A: 1\r\n");
  BOOST_TEST(header_section_of(store, 6) == "A: 1\r\n");
  BOOST_TEST(header_section_of(store, 5) == "");
  BOOST_TEST(header_section_of(store, 0) == "");
}

BOOST_AUTO_TEST_CASE(seek_moves_the_sequential_read) {
  TempDir dir;
  for (const size_t threshold : {size_t{1000}, size_t{2}}) {
    MessageStore store(threshold, dir.path());
    BOOST_REQUIRE(store.append("0123456789"));
    store.rewind();
    store.seek(7);
    std::string chunk;
    BOOST_REQUIRE(store.read(&chunk, 100));
    BOOST_TEST(chunk == "789");
    store.seek(2);
    BOOST_REQUIRE(store.read(&chunk, 3));
    BOOST_TEST(chunk == "234");
    store.seek(50);  // past the end: at the end
    BOOST_TEST(!store.read(&chunk, 100));
  }
}
