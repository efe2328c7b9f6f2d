#include "dkim_key_record.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <vector>

namespace portcullis {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && is_space(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && is_space(text.back()))
    text.remove_suffix(1);
  return text;
}

// Lower case only: libopendkim finds tags case-sensitively but detects repeats
// case-insensitively, so upper case names are where the two could disagree.
bool is_plain_tag_name(std::string_view name) {
  if (name.empty() || name.front() < 'a' || name.front() > 'z') return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

bool is_base64_letter(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

}  // namespace

std::optional<std::string> decode_canonical_base64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::size_t padding = 0;
  while (padding < 2 && padding < text.size() && text[text.size() - 1 - padding] == '=')
    ++padding;
  for (std::size_t i = 0; i + padding < text.size(); ++i)
    if (!is_base64_letter(text[i])) return std::nullopt;
  if (text.empty()) return std::string();
  std::string out(text.size() / 4 * 3, '\0');
  // EVP_DecodeBlock writes whole groups (padding decoded as zero bytes, dropped below).
  const int written = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                      reinterpret_cast<const unsigned char*>(text.data()),
                                      static_cast<int>(text.size()));
  if (written < 0 || static_cast<std::size_t>(written) != out.size()) return std::nullopt;
  out.resize(out.size() - padding);
  return out;
}

void DkimKeyRecord::KeyFree::operator()(evp_pkey_st* key) const {
  EVP_PKEY_free(key);
}

std::optional<std::string_view> DkimKeyRecord::tag(std::string_view name) const {
  const auto found = tags_.find(name);
  if (found == tags_.end()) return std::nullopt;
  return std::string_view(found->second);
}

std::shared_ptr<const DkimKeyRecord> DkimKeyRecord::parse(std::string_view text) {
  auto record = std::make_shared<DkimKeyRecord>();
  if (text.empty()) return record;
  for (char c : text)
    if (!((c >= 0x20 && c <= 0x7e) || c == '\t')) return record;

  std::vector<std::string_view> specs;
  for (std::size_t start = 0;;) {
    const auto semicolon = text.find(';', start);
    specs.push_back(text.substr(
        start, semicolon == std::string_view::npos ? std::string_view::npos : semicolon - start));
    if (semicolon == std::string_view::npos) break;
    start = semicolon + 1;
  }
  // A final ';' leaves one empty tag-spec, which both parsers allow; any other is a syntax
  // error to libopendkim.
  if (trimmed(specs.back()).empty()) specs.pop_back();
  for (std::string_view spec : specs) {
    spec = trimmed(spec);
    const auto equals = spec.find('=');
    if (equals == std::string_view::npos) return record;
    const std::string_view name = trimmed(spec.substr(0, equals));
    if (!is_plain_tag_name(name)) return record;
    std::string value;
    for (char c : spec.substr(equals + 1))
      if (!is_space(c)) value += c;
    if (!record->tags_.emplace(std::string(name), std::move(value)).second) return record;
  }
  record->tags_.emplace("k", "rsa");  // libopendkim's default, RFC 6376 §3.6.1

  const auto key = record->tag("p");
  if (!key || key->empty()) return record;  // absent, or revoked (RFC 6376 §3.6.1)
  const auto der = decode_canonical_base64(*key);
  if (!der || der->empty()) return record;
  record->plain_ = true;

  const auto* bytes = reinterpret_cast<const unsigned char*>(der->data());
  const unsigned char* cursor = bytes;
  EVP_PKEY* rsa = d2i_PUBKEY(nullptr, &cursor, static_cast<long>(der->size()));
  if (rsa != nullptr && EVP_PKEY_get_base_id(rsa) == EVP_PKEY_RSA) {
    record->rsa_key_.reset(rsa);
    record->rsa_bits_ = 8 * static_cast<unsigned>(EVP_PKEY_get_size(rsa));
  } else {
    EVP_PKEY_free(rsa);
  }
  record->ed25519_key_.reset(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes, der->size()));
  // One of the two decodes fails for every key; its errors concern nobody else on this thread.
  ERR_clear_error();
  return record;
}

}  // namespace portcullis
