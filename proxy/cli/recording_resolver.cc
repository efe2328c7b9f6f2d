#include "recording_resolver.h"

#include <fmt/format.h>

#include "rejection_log.h"

namespace portcullis {

namespace {

// TXT strings as the zone file writes them; bytes outside printable ASCII as \xHH so that a
// hostile record cannot write control characters to the terminal.
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (const unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c > 0x7e) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string record_text(DnsType type, const DnsRecord& record) {
  switch (type) {
    case DnsType::a:
    case DnsType::aaaa:
      return record.address ? record.address->to_string() : "";
    case DnsType::ptr:
      return record.name;
    case DnsType::mx:
      return fmt::format("{} {}", record.preference, record.name);
    case DnsType::txt: {
      std::string out;
      for (const auto& piece : record.strings) {
        if (!out.empty()) out += ' ';
        out += quoted(piece);
      }
      return out;
    }
  }
  return "";
}

}  // namespace

std::string describe_exchange(const DnsExchange& exchange) {
  std::string out = fmt::format("{} {} → ", dns_type_name(exchange.type), exchange.name);
  if (!exchange.answer) return out + "no answer (cancelled: the filter ended first)";
  const DnsAnswer& answer = *exchange.answer;
  out += dns_outcome_name(answer.outcome);
  for (std::size_t i = 0; i < answer.records.size(); ++i) {
    out += i == 0 ? " " : ", ";
    out += record_text(exchange.type, answer.records[i]);
  }
  if (!answer.reason.empty()) out += fmt::format(" ({})", answer.reason);
  return out;
}

std::string exchange_json(const DnsExchange& exchange) {
  std::string records = "[";
  std::string outcome = "null";
  std::string reason = "null";
  if (exchange.answer) {
    outcome = json_string(dns_outcome_name(exchange.answer->outcome));
    if (!exchange.answer->reason.empty()) reason = json_string(exchange.answer->reason);
    for (const auto& record : exchange.answer->records) {
      if (records.size() > 1) records += ',';
      records += json_string(record_text(exchange.type, record));
    }
  }
  records += ']';
  return fmt::format("{{\"name\":{},\"type\":{},\"outcome\":{},\"records\":{},\"reason\":{}}}",
                     json_string(exchange.name), json_string(dns_type_name(exchange.type)), outcome,
                     records, reason);
}

RecordingResolver::RecordingResolver(std::shared_ptr<DnsResolver> inner)
    : inner_(std::move(inner)) {}

std::unique_ptr<DnsQuery> RecordingResolver::resolve(std::string_view name, DnsType type,
                                                     std::function<void(DnsAnswer)> callback) {
  auto slot = std::make_shared<DnsExchange>();
  slot->name = std::string(name);
  slot->type = type;
  asked_.push_back(slot);
  return inner_->resolve(name, type, [slot, callback = std::move(callback)](DnsAnswer answer) {
    slot->answer = answer;
    callback(std::move(answer));
  });
}

std::vector<DnsExchange> RecordingResolver::take() {
  std::vector<DnsExchange> out;
  out.reserve(asked_.size());
  for (const auto& slot : asked_)
    out.push_back(*slot);
  asked_.clear();
  return out;
}

}  // namespace portcullis
