// The core facts a session records at each phase (DESIGN §4's table), in one place, so that
// `portcullis explain` records exactly what a live session does.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fact_catalog.h"
#include "facts.h"
#include "ip_address.h"
#include "session_phase.h"

namespace portcullis {

// The part after the last '@' ("" when there is none).
std::string domain_of(std::string_view path);

// Forgets the facts that become known at `from` or later (a new transaction, a new HELO,
// STARTTLS). Facts the catalog does not know are kept.
void clear_facts_from(Facts& facts, const FactCatalog* catalog, Phase from);

void record_connect_facts(Facts& facts, const std::optional<IpAddress>& client_ip,
                          std::uint16_t client_port);
// A new HELO/EHLO: the helo-phase facts are made again. `tls_version` "" when unknown.
void record_helo_facts(Facts& facts, const FactCatalog* catalog, const std::string& helo, bool tls,
                       const std::string& tls_version);
// A new transaction: `size` is SIZE= when the client declared it.
void record_mail_facts(Facts& facts, const FactCatalog* catalog, const std::string& sender,
                       std::optional<std::int64_t> size);
void record_rcpt_facts(Facts& facts, const FactCatalog* catalog, const std::string& rcpt,
                       std::int64_t accepted_so_far);
// End of data: the real size; rcpt and rcpt.domain are absent at data.
void record_data_facts(Facts& facts, const FactCatalog* catalog, std::int64_t size,
                       std::int64_t accepted);

}  // namespace portcullis
