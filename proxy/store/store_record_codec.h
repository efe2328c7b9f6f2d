// How a StoreRecord is kept in a backend's value: the expiry as 8 bytes, big-endian
// milliseconds since the Unix epoch, then the value's bytes as they are.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "state_store.h"

namespace portcullis {

inline constexpr std::size_t store_record_header_bytes = 8;

std::string encode_store_record(const StoreRecord& record);
// nullopt when `bytes` is shorter than the header (a corrupt record).
std::optional<StoreRecord> decode_store_record(std::string_view bytes);

// The same record (value and expiry), or absent for absent: an update from one to the other
// changes nothing and is not written (state_store.h).
bool same_store_record(const std::optional<StoreRecord>& a, const std::optional<StoreRecord>& b);

}  // namespace portcullis
