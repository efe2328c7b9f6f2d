#include "session_facts.h"

namespace portcullis {

std::string domain_of(std::string_view path) {
  const size_t at = path.rfind('@');
  return at == std::string_view::npos ? std::string() : std::string(path.substr(at + 1));
}

void clear_facts_from(Facts& facts, const FactCatalog* catalog, Phase from) {
  facts.erase_if([&](std::string_view name) {
    const FactSpec* spec = catalog ? catalog->find(name) : nullptr;
    return spec && spec->known_from >= from;
  });
}

void record_connect_facts(Facts& facts, const std::optional<IpAddress>& client_ip,
                          std::uint16_t client_port) {
  if (client_ip) facts.set("client.ip", *client_ip);
  facts.set("client.port", static_cast<std::int64_t>(client_port));
}

void record_helo_facts(Facts& facts, const FactCatalog* catalog, const std::string& helo, bool tls,
                       const std::string& tls_version) {
  clear_facts_from(facts, catalog, Phase::helo);
  facts.set("helo", helo);
  facts.set("tls", tls);
  if (tls && !tls_version.empty()) facts.set("tls.version", tls_version);
}

void record_mail_facts(Facts& facts, const FactCatalog* catalog, const std::string& sender,
                       std::optional<std::int64_t> size) {
  clear_facts_from(facts, catalog, Phase::mail);
  facts.set("sender", sender);
  facts.set("sender.domain", domain_of(sender));
  if (size) facts.set("size", *size);
}

void record_rcpt_facts(Facts& facts, const FactCatalog* catalog, const std::string& rcpt,
                       std::int64_t accepted_so_far) {
  clear_facts_from(facts, catalog, Phase::rcpt);
  facts.set("rcpt", rcpt);
  facts.set("rcpt.domain", domain_of(rcpt));
  facts.set("rcpt.count", accepted_so_far);
}

void record_data_facts(Facts& facts, const FactCatalog* catalog, std::int64_t size,
                       std::int64_t accepted) {
  clear_facts_from(facts, catalog, Phase::data);
  facts.erase("rcpt");
  facts.erase("rcpt.domain");
  facts.set("size", size);
  facts.set("rcpt.count", accepted);
}

}  // namespace portcullis
