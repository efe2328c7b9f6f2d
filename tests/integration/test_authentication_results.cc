// Authentication-Results end to end (DESIGN §4, RFC 8601 §5): a client's copies of the field
// that claim Portcullis's authserv-id never reach the upstream, copies with other ids pass
// unchanged, and the message carries exactly one field with our id, added above the client's
// header. The message is judged here with plain string handling, not the proxy's own parser.
#define BOOST_TEST_MODULE integration_authentication_results
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <optional>
#include <string>
#include <vector>

#include "fixtures.h"
#include "recording_upstream.h"
#include "test_support.h"

using namespace portcullis::test;

namespace {

struct HeaderField {
  std::string name;   // as written
  std::string value;  // unfolded: line ends removed, continuation WSP kept
  std::string raw;    // the bytes of the field, line ends included
};

// The fields of the header section of an unstuffed message with CRLF line ends.
std::vector<HeaderField> header_fields(const std::string& message) {
  std::vector<HeaderField> fields;
  size_t position = 0;
  while (position < message.size()) {
    size_t end = message.find("\r\n", position);
    if (end == std::string::npos || end == position) break;  // the empty line ends the header
    end += 2;
    while (end < message.size() && (message[end] == ' ' || message[end] == '\t')) {
      const size_t next = message.find("\r\n", end);
      end = next == std::string::npos ? message.size() : next + 2;
    }
    const std::string raw = message.substr(position, end - position);
    const size_t colon = raw.find(':');
    HeaderField field;
    field.raw = raw;
    field.name = raw.substr(0, colon == std::string::npos ? raw.size() : colon);
    while (!field.name.empty() && (field.name.back() == ' ' || field.name.back() == '\t')) {
      field.name.pop_back();
    }
    if (colon != std::string::npos) {
      for (size_t i = colon + 1; i < raw.size(); ++i) {
        if (raw[i] != '\r' && raw[i] != '\n') field.value.push_back(raw[i]);
      }
    }
    fields.push_back(field);
    position = end;
  }
  return fields;
}

std::string lower(std::string text) {
  for (char& c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return text;
}

// The authserv-id of an Authentication-Results value in the forms these tests send and
// expect: white space and comments (nested, no quoted-pairs), then the id up to white space,
// ';' or '('.
std::string authserv_id_of(const std::string& value) {
  size_t i = 0;
  while (i < value.size()) {
    if (value[i] == ' ' || value[i] == '\t') {
      ++i;
    } else if (value[i] == '(') {
      int depth = 0;
      do {
        if (value[i] == '(') ++depth;
        if (value[i] == ')') --depth;
        ++i;
      } while (i < value.size() && depth > 0);
    } else {
      break;
    }
  }
  const size_t end = value.find_first_of(" \t;(", i);
  return lower(value.substr(i, end == std::string::npos ? std::string::npos : end - i));
}

// Sends one message through the proxy and returns it as the upstream got it (unstuffed).
std::optional<std::string> relay_one(const PortcullisFixture& proxy, RecordingUpstream& upstream,
                                     const std::string& message) {
  SmtpTestClient client("127.0.0.1", proxy.port(), {.source_address = "127.0.0.2"});
  BOOST_TEST(client.read_reply().code == 220);
  BOOST_TEST(client.command("EHLO client.example.test").code == 250);
  BOOST_TEST(client.command("MAIL FROM:<alice@example.test>").code == 250);
  BOOST_TEST(client.command("RCPT TO:<bob@example.test>").code == 250);
  BOOST_TEST(client.command("DATA").code == 354);
  client.send(dot_stuff(message) + ".\r\n");
  const auto final_reply = client.read_reply(15s);
  BOOST_TEST(final_reply.code == 250, final_reply.describe());
  client.command("QUIT");
  if (!upstream.wait_for(
          [](const std::vector<RecordedConnection>& connections) {
            for (const auto& connection : connections) {
              if (!connection.messages.empty()) return true;
            }
            return false;
          },
          5s)) {
    return std::nullopt;
  }
  for (const auto& connection : upstream.session_connections()) {
    if (connection.messages.empty()) continue;
    const std::string& raw = connection.messages.front().raw;
    BOOST_REQUIRE(raw.size() >= 3u);
    return dot_unstuff(std::string_view(raw).substr(0, raw.size() - 3));  // without ".\r\n"
  }
  return std::nullopt;
}

const std::string kForgedMarker = "forged-7f3a";
const std::string kOtherField =
    "Authentication-Results: other.example; spf=fail smtp.mailfrom=example.test\r\n";

// A client message with two forged copies of our field (one plain, one folded with another
// case and a comment), one from another authserv-id, and our id once more in the body.
std::string client_message(const std::string& our_id, const std::string& body_filler = "") {
  return "Authentication-Results: " + our_id + "; spf=pass (" + kForgedMarker +
         ") smtp.mailfrom=bank.example\r\n" + kOtherField +
         "From: Alice <alice@example.test>\r\n"
         "authentication-results : (" +
         kForgedMarker + ")\r\n\t" + lower(our_id) +
         ";\r\n\tdkim=pass header.d=bank.example\r\n"
         "To: bob@example.test\r\n"
         "Subject: authentication results\r\n"
         "\r\n"
         "Authentication-Results: " +
         our_id + "; this body line stays\r\n" + body_filler + "end of message\r\n";
}

// `our_id` as configured (the proxy writes it so); `client_id` as the client wrote it.
void check_relayed(const std::string& relayed, const std::string& our_id,
                   const std::string& client_id) {
  BOOST_TEST_INFO("relayed: " << printable(relayed, 2000));
  const auto fields = header_fields(relayed);
  size_t ours = 0;
  size_t ours_index = 0;
  size_t other = 0;
  size_t from_index = fields.size();
  for (size_t i = 0; i < fields.size(); ++i) {
    if (lower(fields[i].name) == "from") from_index = std::min(from_index, i);
    if (lower(fields[i].name) != "authentication-results") continue;
    if (authserv_id_of(fields[i].value) == lower(our_id)) {
      ++ours;
      ours_index = i;
    }
    if (fields[i].raw == kOtherField) ++other;
  }
  BOOST_TEST(ours == 1u);  // ours, added by the proxy; both forged copies gone
  BOOST_TEST(other == 1u);
  BOOST_TEST(ours_index < from_index);  // above the client's own header
  // Ours precedes the other id's field too: it was prepended, not put in the forged one's place.
  BOOST_TEST(relayed.find("Authentication-Results: " + our_id) < relayed.find(kOtherField));
  // No trace of the forged copies, anywhere.
  BOOST_TEST(relayed.find(kForgedMarker) == std::string::npos);
  BOOST_TEST(relayed.find("bank.example") == std::string::npos);
  // The client's header below the removed fields is intact, and so is the body.
  BOOST_TEST(relayed.find(kOtherField +
                          "From: Alice <alice@example.test>\r\nTo: bob@example.test"
                          "\r\nSubject: authentication results\r\n\r\n"
                          "Authentication-Results: " +
                          client_id + "; this body line stays\r\n") != std::string::npos);
  BOOST_TEST(relayed.size() >= 16u);
  BOOST_TEST(relayed.substr(relayed.size() - 16) == "end of message\r\n");
}

}  // namespace

BOOST_AUTO_TEST_CASE(forged_copies_with_the_default_id_are_removed) {
  RecordingUpstream upstream;
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  PortcullisFixture proxy(options);  // hostname portcullis.test, so the authserv-id too
  const auto relayed = relay_one(proxy, upstream, client_message("portcullis.test"));
  BOOST_REQUIRE_MESSAGE(relayed.has_value(), proxy.diagnostics());
  check_relayed(*relayed, "portcullis.test", "portcullis.test");
  BOOST_TEST(proxy.running(), proxy.diagnostics());
}

BOOST_AUTO_TEST_CASE(the_configured_authserv_id_decides_not_the_hostname) {
  RecordingUpstream upstream;
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  options.settings["server"]["authserv_id"] = "\"auth.portcullis.test\"";
  PortcullisFixture proxy(options);
  // A copy claiming the host name is someone else's: it stays.
  const std::string hostname_field = "Authentication-Results: portcullis.test; spf=none\r\n";
  const auto relayed =
      relay_one(proxy, upstream, hostname_field + client_message("Auth.Portcullis.test"));
  BOOST_REQUIRE_MESSAGE(relayed.has_value(), proxy.diagnostics());
  check_relayed(*relayed, "auth.portcullis.test", "Auth.Portcullis.test");
  BOOST_TEST(relayed->find(hostname_field) != std::string::npos);
}

BOOST_AUTO_TEST_CASE(forged_copies_are_removed_from_a_spilled_message) {
  RecordingUpstream upstream;
  PortcullisOptions options;
  options.upstream_port = upstream.port();
  options.settings["limits"]["spill_threshold"] = "4096";
  PortcullisFixture proxy(options);
  std::string filler;
  for (int line = 0; filler.size() < 300 * 1024; ++line) {
    filler += (line % 5 == 0 ? ".dotted line " : "plain line ") + std::to_string(line) + "\r\n";
  }
  const auto relayed = relay_one(proxy, upstream, client_message("portcullis.test", filler));
  BOOST_REQUIRE_MESSAGE(relayed.has_value(), proxy.diagnostics());
  check_relayed(*relayed, "portcullis.test", "portcullis.test");
  BOOST_TEST(relayed->find(filler) != std::string::npos);
}
