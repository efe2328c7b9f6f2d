// The header fields the session prepends to a relayed message: Received, Authentication-Results
// and the policy's tags.
// SECURITY: values that may come from the client are made header-safe (no CR/LF).
#include "session.h"

#include <fmt/format.h>

#include <ctime>

#include "authentication_results.h"
#include "client_names.h"

#include "session_internal.h"

namespace portcullis {

using namespace session_detail;

namespace {

// Header values come from policy placeholders, i.e. maybe from the client: a CR or LF would
// start a header of the client's choosing.
std::string header_safe(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 && c != '\t') c = ' ';
    if (byte == 0x7f) c = ' ';
  }
  return out;
}

}  // namespace

// Portcullis's own trace header (RFC 5321 4.4; protocol names from RFC 3848), so that what
// XCLIENT cannot carry (TLS) reaches the message.
std::string Session::received_header() const {
  const char* protocol =
      esmtp_ ? (tls_active_ ? "ESMTPS" : "ESMTP") : (tls_active_ ? "SMTPS" : "SMTP");
  char date[64];
  const time_t now = time(nullptr);
  tm utc{};
  gmtime_r(&now, &utc);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &utc);
  std::string header =
      fmt::format("Received: from {} ({} [{}{}])\r\n\tby {} (Portcullis) with {} id {}", helo_,
                  header_safe(received_client_name(facts_)), peer_.is_ipv6() ? "IPv6:" : "",
                  peer_.ip(), config_->server.hostname, protocol, id_);
  if (tls_active_) header += fmt::format("\r\n\t(using {})", tls_description_);
  header += fmt::format(";\r\n\t{}\r\n", date);
  return header;
}

// The methods whose evidence exists (RFC 8601); none → "; none".
std::vector<AuthenticationMethodResult> Session::authentication_results() const {
  std::vector<AuthenticationMethodResult> results;
  if (auto iprev = iprev_result(facts_, peer_.ip())) results.push_back(std::move(*iprev));
  if (const std::string* spf = facts_.string("spf")) {
    AuthenticationMethodResult spf_result{"spf", *spf, {}, {}};
    if (const std::string* domain = facts_.string("spf.domain")) {
      spf_result.properties.push_back({"smtp.mailfrom", *domain});
    }
    results.push_back(std::move(spf_result));
  }
  // The dkim filter gives one entry per signature it checked; without signatures the fact
  // alone says "none".
  bool dkim_entries = false;
  for (const AuthenticationEntry& entry : authentication_entries_) {
    if (entry.method != "dkim") continue;
    results.push_back({entry.method, entry.result, entry.properties, entry.reason});
    dkim_entries = true;
  }
  if (const std::string* dkim = facts_.string("dkim"); dkim && !dkim_entries) {
    AuthenticationMethodResult dkim_result{"dkim", *dkim, {}, {}};
    const FactList* domains = facts_.list("dkim.domains");
    if (domains && !domains->empty())
      dkim_result.properties.push_back({"header.d", domains->front()});
    results.push_back(std::move(dkim_result));
  }
  if (const std::string* dmarc = facts_.string("dmarc")) {
    AuthenticationMethodResult dmarc_result{"dmarc", *dmarc, {}, {}};
    if (const std::string* domain = facts_.string("dmarc.domain")) {
      dmarc_result.properties.push_back({"header.from", *domain});
    }
    results.push_back(std::move(dmarc_result));
  }
  return results;
}

// What goes in front of the message: our Received header (RFC 5321 4.4: the top), our
// Authentication-Results right below it (as an MTA with a milter writes them, RFC 8601 5), then
// the policy's tags.
std::string Session::message_headers() const {
  std::string headers = received_header();
  headers += authentication_results_header(config_->server.authserv_id, authentication_results());
  if (policy_) {
    for (const policy::Tag& tag : policy_->message_tags()) {
      headers += header_safe(tag.header) + ": " + header_safe(tag.value) + "\r\n";
    }
  }
  return headers;
}

}  // namespace portcullis
