#include "idna_label.h"

#include <cstdint>
#include <vector>

namespace portcullis {

namespace {

constexpr std::uint32_t kBase = 36;
constexpr std::uint32_t kTMin = 1;
constexpr std::uint32_t kTMax = 26;
constexpr std::uint32_t kSkew = 38;
constexpr std::uint32_t kDamp = 700;
constexpr std::uint32_t kInitialBias = 72;
constexpr std::uint32_t kInitialN = 128;
constexpr std::size_t kMaxLabel = 63;

std::optional<std::vector<std::uint32_t>> decode_utf8(std::string_view text) {
  std::vector<std::uint32_t> points;
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    std::uint32_t point = 0;
    if (lead < 0x80) {
      length = 1;
      point = lead;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2;
      point = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      point = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      point = lead & 0x07;
    } else {
      return std::nullopt;
    }
    if (i + length > text.size()) return std::nullopt;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return std::nullopt;
      point = (point << 6) | (next & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8 (RFC 3629).
    static constexpr std::uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (point < kSmallest[length] || point > 0x10FFFF || (point >= 0xD800 && point <= 0xDFFF))
      return std::nullopt;
    points.push_back(point);
    i += length;
  }
  return points;
}

char digit_char(std::uint32_t digit) {
  return static_cast<char>(digit < 26 ? 'a' + digit : '0' + (digit - 26));
}

std::uint32_t adapt(std::uint32_t delta, std::uint32_t count, bool first) {
  delta = first ? delta / kDamp : delta / 2;
  delta += delta / count;
  std::uint32_t k = 0;
  while (delta > ((kBase - kTMin) * kTMax) / 2) {
    delta /= kBase - kTMin;
    k += kBase;
  }
  return k + (kBase - kTMin + 1) * delta / (delta + kSkew);
}

}  // namespace

std::optional<std::string> idna_ascii_label(std::string_view label) {
  auto points = decode_utf8(label);
  if (!points) return std::nullopt;
  std::string basic;
  for (std::uint32_t point : *points) {
    if (point < 0x80) {
      char c = static_cast<char>(point);
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      basic.push_back(c);
    }
  }
  if (basic.size() == points->size()) return basic;
  for (std::uint32_t& point : *points)
    if (point >= 'A' && point <= 'Z') point = point - 'A' + 'a';

  // RFC 3492 §6.3, with the lengths bounded by kMaxLabel so no arithmetic can overflow.
  std::string out = "xn--" + basic;
  if (!basic.empty()) out.push_back('-');
  std::uint32_t n = kInitialN;
  std::uint32_t delta = 0;
  std::uint32_t bias = kInitialBias;
  std::uint32_t handled = static_cast<std::uint32_t>(basic.size());
  const auto total = static_cast<std::uint32_t>(points->size());
  if (total > kMaxLabel) return std::nullopt;
  while (handled < total) {
    std::uint32_t next = 0x110000;
    for (std::uint32_t point : *points)
      if (point >= n && point < next) next = point;
    delta += (next - n) * (handled + 1);
    n = next;
    for (std::uint32_t point : *points) {
      if (point < n) ++delta;
      if (point != n) continue;
      std::uint32_t q = delta;
      for (std::uint32_t k = kBase;; k += kBase) {
        const std::uint32_t t = k <= bias ? kTMin : (k >= bias + kTMax ? kTMax : k - bias);
        if (q < t) break;
        out.push_back(digit_char(t + (q - t) % (kBase - t)));
        q = (q - t) / (kBase - t);
      }
      out.push_back(digit_char(q));
      bias = adapt(delta, handled + 1, handled == static_cast<std::uint32_t>(basic.size()));
      delta = 0;
      ++handled;
      if (out.size() > kMaxLabel) return std::nullopt;
    }
    ++delta;
    ++n;
  }
  return out;
}

std::optional<std::string> idna_ascii_domain(std::string_view domain) {
  std::string out;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = domain.find('.', start);
    const std::string_view label =
        domain.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty()) return std::nullopt;
    auto ascii = idna_ascii_label(label);
    if (!ascii) return std::nullopt;
    if (!out.empty()) out.push_back('.');
    out += *ascii;
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

}  // namespace portcullis
