#include "state_store.h"

namespace portcullis {

const char* store_status_name(StoreStatus status) {
  switch (status) {
    case StoreStatus::ok:
      return "ok";
    case StoreStatus::unavailable:
      return "unavailable";
    case StoreStatus::full:
      return "full";
    case StoreStatus::error:
      break;
  }
  return "error";
}

std::string store_key(const std::vector<std::string_view>& parts) {
  static const char* const hex = "0123456789ABCDEF";
  std::string key;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i != 0) key.push_back(':');
    for (const char c : parts[i]) {
      const auto byte = static_cast<unsigned char>(c);
      if (byte <= 0x20 || byte >= 0x7f || c == ':' || c == '%') {
        key.push_back('%');
        key.push_back(hex[byte >> 4]);
        key.push_back(hex[byte & 0xf]);
      } else {
        key.push_back(c);
      }
    }
  }
  return key;
}

}  // namespace portcullis
