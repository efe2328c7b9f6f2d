#include "greylist_sender.h"

#include <vector>

namespace portcullis {

namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == separator) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

// BATV (draft-levine-smtp-batv): prvs=TAG=LOCAL@DOMAIN, TAG being 10 characters (K DDD SSSSSS).
std::string without_batv(const std::string& address) {
  if (!starts_with(address, "prvs=")) return address;
  const std::string_view rest = std::string_view(address).substr(5);
  const auto equals = rest.find('=');
  if (equals == std::string_view::npos || equals != 10) return address;
  const std::string_view original = rest.substr(equals + 1);
  if (original.empty() || original.front() == '@') return address;
  return std::string(original);
}

// SRS (Shevek's scheme, as libsrs2 and postsrsd write it):
//   SRS0=HASH=TT=ORIG-DOMAIN=ORIG-LOCAL@FORWARDER
//   SRS1=HASH=FIRST-FORWARDER==HASH=TT=ORIG-DOMAIN=ORIG-LOCAL@FORWARDER
// The separator after SRS0/SRS1 may also be '+' or '-'.
std::string without_srs(const std::string& address) {
  const auto at = address.rfind('@');
  if (at == std::string::npos) return address;
  std::string_view local = std::string_view(address).substr(0, at);
  if (local.size() < 5 || !(starts_with(local, "srs0") || starts_with(local, "srs1"))) {
    return address;
  }
  const char separator = local[4];
  if (separator != '=' && separator != '+' && separator != '-') return address;
  if (starts_with(local, "srs1")) {
    const auto inner = local.find("==");
    if (inner == std::string_view::npos) return address;
    local = local.substr(inner + 2);  // HASH=TT=ORIG-DOMAIN=ORIG-LOCAL
  } else {
    local = local.substr(5);
  }
  // HASH=TT=ORIG-DOMAIN=ORIG-LOCAL; the original local part may itself hold '='.
  const auto parts = split(local, '=');
  if (parts.size() < 4 || parts[2].empty()) return address;
  std::string original_local(local.substr(parts[0].size() + parts[1].size() + parts[2].size() + 3));
  if (original_local.empty()) return address;
  return original_local + "@" + std::string(parts[2]);
}

}  // namespace

std::string normalise_greylist_sender(std::string_view sender) {
  if (sender.empty()) return {};
  return without_srs(without_batv(lower(sender)));
}

}  // namespace portcullis
