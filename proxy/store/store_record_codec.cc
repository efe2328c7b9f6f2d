#include "store_record_codec.h"

#include <chrono>
#include <cstdint>

namespace portcullis {

std::string encode_store_record(const StoreRecord& record) {
  const auto milliseconds =
      std::chrono::duration_cast<std::chrono::milliseconds>(record.expires.time_since_epoch())
          .count();
  const auto bits = static_cast<std::uint64_t>(milliseconds);
  std::string bytes(store_record_header_bytes, '\0');
  for (std::size_t i = 0; i < store_record_header_bytes; ++i) {
    bytes[i] = static_cast<char>((bits >> (8 * (store_record_header_bytes - 1 - i))) & 0xff);
  }
  bytes += record.value;
  return bytes;
}

std::optional<StoreRecord> decode_store_record(std::string_view bytes) {
  if (bytes.size() < store_record_header_bytes) return std::nullopt;
  std::uint64_t bits = 0;
  for (std::size_t i = 0; i < store_record_header_bytes; ++i) {
    bits = (bits << 8) | static_cast<unsigned char>(bytes[i]);
  }
  StoreRecord record;
  record.expires = StoreClock::time_point(std::chrono::duration_cast<StoreClock::duration>(
      std::chrono::milliseconds(static_cast<std::int64_t>(bits))));
  record.value = std::string(bytes.substr(store_record_header_bytes));
  return record;
}

bool same_store_record(const std::optional<StoreRecord>& a, const std::optional<StoreRecord>& b) {
  if (!a || !b) return !a && !b;
  return a->value == b->value && a->expires == b->expires;
}

}  // namespace portcullis
