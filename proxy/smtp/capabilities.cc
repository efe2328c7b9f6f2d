// SECURITY: parses the upstream's EHLO reply. SmtpReplyParser already bounds the line count and
// line length; here SIZE digits are bounded so the number cannot overflow.
#include "capabilities.h"

#include <algorithm>
#include <cctype>

namespace portcullis {
namespace {

std::string upper_case(std::string_view text) {
  std::string upper(text);
  for (char& c : upper)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return upper;
}

std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> words;
  size_t position = 0;
  while (position < line.size()) {
    while (position < line.size() && (line[position] == ' ' || line[position] == '\t')) {
      ++position;
    }
    size_t end = position;
    while (end < line.size() && line[end] != ' ' && line[end] != '\t')
      ++end;
    if (end > position) words.push_back(line.substr(position, end - position));
    position = end;
  }
  return words;
}

// RFC 1870: "SIZE" alone or "SIZE 0" means no fixed limit. Anything unreadable is treated the
// same: the upstream will still refuse what it cannot take, at MAIL or at end of data.
uint64_t parse_size(const std::vector<std::string_view>& words) {
  if (words.size() < 2) return 0;
  const std::string_view digits = words[1];
  if (digits.empty() || digits.size() > 19) return 0;
  uint64_t value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return 0;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

}  // namespace

UpstreamCapabilities parse_ehlo_reply(const SmtpReply& reply) {
  UpstreamCapabilities capabilities;
  if (reply.code != 250) return capabilities;
  // The first line is the greeting ("250-mx.example.org ESMTP"), not a keyword.
  for (size_t i = 1; i < reply.lines.size(); ++i) {
    const std::string& line = reply.lines[i];
    const auto words = split_words(line);
    if (words.empty()) continue;  // smtp-sink ends its reply with an empty "250 " line
    capabilities.keywords.push_back(line);
    const std::string keyword = upper_case(words[0]);
    if (keyword == "PIPELINING") {
      capabilities.pipelining = true;
    } else if (keyword == "8BITMIME") {
      capabilities.eightbitmime = true;
    } else if (keyword == "SMTPUTF8") {
      capabilities.smtputf8 = true;
    } else if (keyword == "DSN") {
      capabilities.dsn = true;
    } else if (keyword == "STARTTLS") {
      capabilities.starttls = true;
    } else if (keyword == "CHUNKING") {
      capabilities.chunking = true;
    } else if (keyword == "ENHANCEDSTATUSCODES") {
      capabilities.enhancedstatuscodes = true;
    } else if (keyword == "SIZE") {
      capabilities.size = parse_size(words);
    } else if (keyword == "XCLIENT") {
      capabilities.xclient = true;
      for (size_t w = 1; w < words.size(); ++w) {
        capabilities.xclient_attrs.insert(upper_case(words[w]));
      }
    }
  }
  return capabilities;
}

ClientOffer compute_client_offer(const UpstreamCapabilities& upstream, uint64_t max_message_size,
                                 bool starttls_available) {
  ClientOffer offer;
  offer.size_limit = max_message_size;
  if (upstream.size && *upstream.size > 0) {
    offer.size_limit = std::min(offer.size_limit, *upstream.size);
  }
  // Their parameters are relayed unchanged, so only what the upstream understands is offered.
  offer.eightbitmime = upstream.eightbitmime;
  offer.smtputf8 = upstream.smtputf8;
  offer.dsn = upstream.dsn;
  offer.starttls = starttls_available;
  return offer;
}

SmtpReply build_ehlo_reply(std::string_view hostname, const ClientOffer& offer) {
  std::vector<std::string> lines;
  lines.emplace_back(hostname);
  lines.emplace_back("PIPELINING");
  lines.push_back("SIZE " + std::to_string(offer.size_limit));
  lines.emplace_back("ENHANCEDSTATUSCODES");
  if (offer.eightbitmime) lines.emplace_back("8BITMIME");
  if (offer.smtputf8) lines.emplace_back("SMTPUTF8");
  if (offer.dsn) lines.emplace_back("DSN");
  if (offer.starttls) lines.emplace_back("STARTTLS");
  return SmtpReply::make(250, lines);
}

}  // namespace portcullis
