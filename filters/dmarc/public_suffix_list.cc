#include "public_suffix_list.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "idna_label.h"

namespace portcullis {

namespace {

// RFC 1035 §2.3.4 (presentation form, without the root's dot); a Unicode name is measured in
// its UTF-8 bytes, which are never fewer than its A-labels' minus the "xn--" prefixes.
constexpr std::size_t kMaxNameBytes = 253;

std::vector<std::string_view> split_labels(std::string_view name) {
  std::vector<std::string_view> labels;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = name.find('.', start);
    labels.push_back(name.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return labels;
}

// The A-label form of each label; nullopt when one is empty or not UTF-8.
std::optional<std::vector<std::string>> ascii_labels(std::string_view name) {
  std::vector<std::string> out;
  for (std::string_view label : split_labels(name)) {
    if (label.empty()) return std::nullopt;
    auto ascii = idna_ascii_label(label);
    if (!ascii) return std::nullopt;
    out.push_back(std::move(*ascii));
  }
  return out;
}

std::string join_from(const std::vector<std::string>& labels, std::size_t first) {
  std::string out;
  for (std::size_t i = first; i < labels.size(); ++i) {
    if (!out.empty()) out.push_back('.');
    out += labels[i];
  }
  return out;
}

}  // namespace

std::optional<PublicSuffixList> PublicSuffixList::load(const std::string& path,
                                                       std::string& error) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    error = "cannot read the public suffix list " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) {
    error = "cannot read the public suffix list " + path;
    return std::nullopt;
  }
  PublicSuffixList list = parse(text.str());
  if (list.rule_count() == 0) {
    error = "the public suffix list " + path + " holds no rule";
    return std::nullopt;
  }
  return list;
}

PublicSuffixList PublicSuffixList::parse(std::string_view text) {
  PublicSuffixList list;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    // A rule is the line's first whitespace-free run; "//" starts a comment line.
    const std::size_t space = line.find_first_of(" \t\r");
    if (space != std::string_view::npos) line = line.substr(0, space);
    if (line.empty() || line.starts_with("//")) continue;
    std::unordered_set<std::string>* into = &list.rules_;
    if (line.starts_with("!")) {
      into = &list.exceptions_;
      line.remove_prefix(1);
    } else if (line.starts_with("*.")) {
      into = &list.wildcards_;
      line.remove_prefix(2);
    }
    auto labels = ascii_labels(line);
    if (!labels) continue;  // not a rule the matcher could ever use
    into->insert(join_from(*labels, 0));
  }
  return list;
}

std::optional<std::string> PublicSuffixList::organizational_domain(std::string_view domain) const {
  if (domain.ends_with('.')) domain.remove_suffix(1);
  // Longer is no DNS name, and the work below grows with the square of the label count.
  if (domain.empty() || domain.size() > kMaxNameBytes) return std::nullopt;
  auto labels = ascii_labels(domain);
  if (!labels) return std::nullopt;
  const std::size_t count = labels->size();

  // The number of labels of the public suffix: an exception rule wins and its suffix is the
  // rule minus its first label; otherwise the longest rule, "*" (one label) at the least.
  std::size_t suffix_labels = 1;
  bool exception = false;
  for (std::size_t first = 0; first < count && !exception; ++first) {
    const std::string candidate = join_from(*labels, first);
    if (exceptions_.contains(candidate)) {
      suffix_labels = count - first - 1;
      exception = true;
      break;
    }
    if (rules_.contains(candidate)) suffix_labels = std::max(suffix_labels, count - first);
    if (first + 1 < count && wildcards_.contains(join_from(*labels, first + 1)))
      suffix_labels = std::max(suffix_labels, count - first);
  }
  if (count <= suffix_labels) return std::nullopt;

  // The same labels as written (so a Unicode name keeps its Unicode form), ASCII lower-cased.
  const std::vector<std::string_view> written = split_labels(domain);
  std::string out;
  for (std::size_t i = count - suffix_labels - 1; i < count; ++i) {
    if (!out.empty()) out.push_back('.');
    for (char c : written[i])
      out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  return out;
}

}  // namespace portcullis
