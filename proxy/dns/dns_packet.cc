#include "dns_packet.h"

#include <arpa/nameser.h>
#include <resolv.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

namespace portcullis {

namespace {

std::string rcode_name(int rcode) {
  switch (rcode) {
    case ns_r_formerr:
      return "FORMERR";
    case ns_r_servfail:
      return "SERVFAIL";
    case ns_r_notimpl:
      return "NOTIMP";
    case ns_r_refused:
      return "REFUSED";
    default:
      return "RCODE " + std::to_string(rcode);
  }
}

DnsAnswer failed(DnsOutcome outcome, std::string reason) {
  DnsAnswer answer;
  answer.outcome = outcome;
  answer.reason = std::move(reason);
  return answer;
}

// A compressed name inside the packet, expanded; nullopt when it does not expand.
std::optional<std::string> expand_name(const ns_msg& message, const unsigned char* at) {
  std::array<char, NS_MAXDNAME> buffer{};
  if (ns_name_uncompress(ns_msg_base(message), ns_msg_end(message), at, buffer.data(),
                         buffer.size()) < 0) {
    return std::nullopt;
  }
  return normalized_dns_name(buffer.data());
}

struct ParsedRecord {
  std::string owner;
  int type = 0;
  std::uint32_t ttl = 0;
  const unsigned char* rdata = nullptr;
  std::size_t rdlength = 0;
};

// The TXT rdata's character-strings; nullopt when a length runs past the rdata.
std::optional<std::vector<std::string>> txt_strings(const unsigned char* rdata,
                                                    std::size_t length) {
  std::vector<std::string> strings;
  std::size_t at = 0;
  while (at < length) {
    const std::size_t piece = rdata[at];
    ++at;
    if (piece > length - at) return std::nullopt;
    strings.emplace_back(reinterpret_cast<const char*>(rdata + at), piece);
    at += piece;
  }
  return strings;
}

// One record of the asked type as a DnsRecord; nullopt when its rdata is malformed.
std::optional<DnsRecord> to_record(const ns_msg& message, const ParsedRecord& parsed,
                                   DnsType type) {
  DnsRecord record;
  switch (type) {
    case DnsType::a: {
      if (parsed.rdlength != 4) return std::nullopt;
      std::array<std::uint8_t, 4> bytes{};
      std::copy_n(parsed.rdata, 4, bytes.begin());
      record.address = IpAddress::v4(bytes);
      return record;
    }
    case DnsType::aaaa: {
      if (parsed.rdlength != 16) return std::nullopt;
      std::array<std::uint8_t, 16> bytes{};
      std::copy_n(parsed.rdata, 16, bytes.begin());
      record.address = IpAddress::v6(bytes);
      return record;
    }
    case DnsType::ptr: {
      auto target = expand_name(message, parsed.rdata);
      if (!target) return std::nullopt;
      record.name = std::move(*target);
      return record;
    }
    case DnsType::mx: {
      if (parsed.rdlength < 3) return std::nullopt;
      record.preference = static_cast<std::uint16_t>((parsed.rdata[0] << 8) | parsed.rdata[1]);
      auto exchange = expand_name(message, parsed.rdata + 2);
      if (!exchange) return std::nullopt;
      record.name = std::move(*exchange);
      return record;
    }
    case DnsType::txt: {
      auto strings = txt_strings(parsed.rdata, parsed.rdlength);
      if (!strings) return std::nullopt;
      record.strings = std::move(*strings);
      return record;
    }
  }
  return std::nullopt;
}

}  // namespace

std::string normalized_dns_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string lowered(name);
  std::transform(lowered.begin(), lowered.end(), lowered.begin(), [](unsigned char c) {
    return static_cast<char>((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
  });
  return lowered;
}

DnsAnswer parse_dns_answer(const unsigned char* packet, std::size_t size, std::string_view name,
                           DnsType type) {
  ns_msg message;
  if (packet == nullptr || size == 0 || size > 65535 ||
      ns_initparse(packet, static_cast<int>(size), &message) < 0) {
    return failed(DnsOutcome::failure, "malformed packet");
  }
  const int rcode = ns_msg_getflag(message, ns_f_rcode);
  if (ns_msg_getflag(message, ns_f_tc) != 0) {
    return failed(DnsOutcome::temporary_failure, "truncated");
  }
  if (rcode == ns_r_nxdomain) return failed(DnsOutcome::nxdomain, "");
  if (rcode == ns_r_servfail) return failed(DnsOutcome::temporary_failure, rcode_name(rcode));
  if (rcode != ns_r_noerror) return failed(DnsOutcome::failure, rcode_name(rcode));

  std::vector<ParsedRecord> answers;
  const int count = ns_msg_count(message, ns_s_an);
  for (int index = 0; index < count; ++index) {
    ns_rr rr;
    if (ns_parserr(&message, ns_s_an, index, &rr) < 0) {
      return failed(DnsOutcome::failure, "malformed packet");
    }
    if (ns_rr_class(rr) != ns_c_in) continue;
    answers.push_back(ParsedRecord{normalized_dns_name(ns_rr_name(rr)), ns_rr_type(rr),
                                   ns_rr_ttl(rr), ns_rr_rdata(rr), ns_rr_rdlen(rr)});
  }

  const int wanted = static_cast<int>(type);
  std::string current = normalized_dns_name(name);
  for (int hop = 0; hop <= max_cname_hops; ++hop) {
    DnsAnswer answer;
    std::optional<std::uint32_t> min_ttl;
    for (const auto& parsed : answers) {
      if (parsed.type != wanted || parsed.owner != current) continue;
      auto record = to_record(message, parsed, type);
      if (!record) return failed(DnsOutcome::failure, "malformed record");
      answer.records.push_back(std::move(*record));
      min_ttl = std::min(min_ttl.value_or(parsed.ttl), parsed.ttl);
    }
    if (!answer.records.empty()) {
      answer.outcome = DnsOutcome::answer;
      answer.ttl = *min_ttl;
      return answer;
    }
    const auto alias = std::find_if(answers.begin(), answers.end(), [&](const ParsedRecord& r) {
      return r.type == ns_t_cname && r.owner == current;
    });
    if (alias == answers.end()) return failed(DnsOutcome::no_data, "");
    auto target = expand_name(message, alias->rdata);
    if (!target) return failed(DnsOutcome::failure, "malformed record");
    current = std::move(*target);
  }
  return failed(DnsOutcome::failure, "CNAME chain too long");
}

}  // namespace portcullis
