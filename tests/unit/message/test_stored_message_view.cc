// StoredMessageView and its readers over a MessageStore in memory and spilled to a file: size,
// the header section read once, independent readers, and the relay's sequential position left
// alone by them.
#define BOOST_TEST_MODULE stored_message_view
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "message_store.h"
#include "stored_message_view.h"

using portcullis::MessageReader;
using portcullis::MessageStore;
using portcullis::StoredMessageView;

namespace {

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/stored-view-test-XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    BOOST_REQUIRE(::mkdtemp(buffer.data()) != nullptr);
    path_ = buffer.data();
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const std::string header =
    "From: a@example.org\r\nTo: b@example.net\r\nSubject: a test\r\n with a folded line\r\n";

std::string body_of(std::size_t size) {
  std::string body;
  for (std::size_t line = 0; body.size() < size; ++line)
    body += "line " + std::to_string(line) + " of the body\r\n";
  return body;
}

// Everything a reader gives, `max_bytes` at a time.
std::string read_all(MessageReader& reader, std::size_t max_bytes) {
  std::string all;
  std::string chunk;
  while (reader.read(&chunk, max_bytes)) {
    BOOST_TEST_REQUIRE(!chunk.empty());
    BOOST_TEST_REQUIRE(chunk.size() <= max_bytes);
    all += chunk;
  }
  BOOST_TEST(reader.error().empty());
  return all;
}

// A store holding `message`, appended in pieces of `piece` bytes.
std::unique_ptr<MessageStore> store_of(const std::string& message, std::size_t spill_threshold,
                                       const std::string& dir, std::size_t piece = 100) {
  auto store = std::make_unique<MessageStore>(spill_threshold, dir);
  for (std::size_t at = 0; at < message.size(); at += piece)
    BOOST_TEST_REQUIRE(store->append(std::string_view(message).substr(at, piece)));
  return store;
}

}  // namespace

BOOST_AUTO_TEST_CASE(in_memory_message_gives_size_header_and_the_whole_message) {
  TempDir dir;
  const std::string message = header + "\r\n" + body_of(500);
  auto store = store_of(message, 1 << 20, dir.path());
  BOOST_TEST_REQUIRE(!store->spilled());
  const StoredMessageView view(*store, 64 * 1024);
  BOOST_TEST(view.header_read());
  BOOST_TEST(view.size() == message.size());
  BOOST_TEST(view.header_section() == header);
  auto reader = view.read_from_start();
  BOOST_TEST(read_all(*reader, 7) == message);
  std::string chunk;
  BOOST_TEST(!reader->read(&chunk, 10));  // stays at the end
  BOOST_TEST(chunk.empty());
}

BOOST_AUTO_TEST_CASE(spilled_message_is_read_from_the_file_by_independent_readers) {
  TempDir dir;
  const std::string message = header + "\r\n" + body_of(200 * 1024);
  auto store = store_of(message, 4096, dir.path(), 1000);
  BOOST_TEST_REQUIRE(store->spilled());
  const StoredMessageView view(*store, 64 * 1024);
  BOOST_TEST(view.header_section() == header);
  BOOST_TEST(view.size() == message.size());

  // Two readers and the store's own sequential reading, interleaved: each keeps its place.
  auto first = view.read_from_start();
  auto second = view.read_from_start();
  std::string first_bytes;
  std::string second_bytes;
  std::string relayed;
  std::string chunk;
  store->rewind();
  bool more = true;
  while (more) {
    more = false;
    if (first->read(&chunk, 4093)) {
      first_bytes += chunk;
      more = true;
    }
    if (store->read(&chunk, 8192)) {
      relayed += chunk;
      more = true;
    }
    if (second->read(&chunk, 1)) {
      second_bytes += chunk;
      more = true;
    }
  }
  BOOST_TEST(first_bytes == message);
  BOOST_TEST(second_bytes == message);
  BOOST_TEST(relayed == message);
  BOOST_TEST(first->error().empty());
  BOOST_TEST(store->error().empty());
}

BOOST_AUTO_TEST_CASE(making_the_view_leaves_the_relay_position_where_it_was) {
  TempDir dir;
  const std::string message = header + "\r\n" + body_of(10 * 1024);
  auto store = store_of(message, 1024, dir.path());
  BOOST_TEST_REQUIRE(store->spilled());
  store->seek(100);
  const StoredMessageView view(*store, 64 * 1024);
  std::string chunk;
  BOOST_TEST_REQUIRE(store->read(&chunk, 50));
  BOOST_TEST(chunk == message.substr(100, 50));
}

BOOST_AUTO_TEST_CASE(a_message_without_an_empty_line_is_all_header) {
  TempDir dir;
  auto store = store_of(header, 1 << 20, dir.path());
  const StoredMessageView view(*store, 64 * 1024);
  BOOST_TEST(view.header_section() == header);
  BOOST_TEST(view.size() == header.size());
}

BOOST_AUTO_TEST_CASE(an_empty_message_reads_nothing) {
  TempDir dir;
  MessageStore store(1024, dir.path());
  const StoredMessageView view(store, 64 * 1024);
  BOOST_TEST(view.size() == 0u);
  BOOST_TEST(view.header_section().empty());
  auto reader = view.read_from_start();
  std::string chunk = "left over";
  BOOST_TEST(!reader->read(&chunk, 100));
  BOOST_TEST(chunk.empty());
  BOOST_TEST(reader->error().empty());
}

BOOST_AUTO_TEST_CASE(a_reader_asked_for_no_bytes_reads_nothing_and_keeps_its_place) {
  TempDir dir;
  const std::string message = header + "\r\nbody\r\n";
  auto store = store_of(message, 1 << 20, dir.path());
  const StoredMessageView view(*store, 64 * 1024);
  auto reader = view.read_from_start();
  std::string chunk;
  BOOST_TEST(!reader->read(&chunk, 0));
  BOOST_TEST(read_all(*reader, 5) == message);
}
