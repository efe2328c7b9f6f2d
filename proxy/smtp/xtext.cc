#include "xtext.h"

namespace portcullis {

std::string xtext_encode(std::string_view text) {
  static constexpr char hex_digits[] = "0123456789ABCDEF";
  std::string encoded;
  encoded.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= '!' && byte <= '~' && byte != '+' && byte != '=') {
      encoded.push_back(c);
    } else {
      encoded.push_back('+');
      encoded.push_back(hex_digits[byte >> 4]);
      encoded.push_back(hex_digits[byte & 0x0F]);
    }
  }
  return encoded;
}

}  // namespace portcullis
