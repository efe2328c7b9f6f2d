// The Public Suffix List (https://publicsuffix.org/list/) as DMARC uses it (RFC 7489 §3.2):
// the organisational domain of a name is its public suffix plus one label. Loaded from the
// distribution's file (Debian `publicsuffix`: /usr/share/publicsuffix/public_suffix_list.dat)
// when the config is loaded, so a reload picks up a new list. Both sections (ICANN and
// PRIVATE) are used, as the list's own test vectors expect. Rules are kept in their A-label
// form (idna_label.h), so a name matches whether written in Unicode or punycode.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

namespace portcullis {

class PublicSuffixList {
 public:
  // The list read from `path`; nullopt with `error` set when the file cannot be read or holds
  // no rule.
  static std::optional<PublicSuffixList> load(const std::string& path, std::string& error);
  // The list from its text (the file's format: one rule a line, "//" comments, "*." wildcards,
  // "!" exceptions).
  static PublicSuffixList parse(std::string_view text);

  // The registrable (organisational) domain of `domain`: its last labels, as written but with
  // ASCII lower-cased, one more than the longest matching public suffix (exceptions first, the
  // implicit "*" rule when nothing matches). nullopt for a name that is itself a public
  // suffix, an empty name, a leading dot or an empty label, or a label that is not UTF-8.
  // A trailing dot (the root) is ignored; a name longer than 253 bytes has none.
  std::optional<std::string> organizational_domain(std::string_view domain) const;

  std::size_t rule_count() const { return rules_.size() + wildcards_.size() + exceptions_.size(); }

 private:
  std::unordered_set<std::string> rules_;       // "co.uk"
  std::unordered_set<std::string> wildcards_;   // "*.ck" stored as "ck"
  std::unordered_set<std::string> exceptions_;  // "!www.ck" stored as "www.ck"
};

}  // namespace portcullis
