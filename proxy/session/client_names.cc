// SECURITY: client.name and client.ptr come from DNS data the client's network may control. The
// fcrdns filter records only plain host names; the header writers escape again, and XCLIENT
// values are xtext-encoded by build_xclient_commands.
#include "client_names.h"

namespace portcullis {

namespace {

constexpr const char* unavailable = "[UNAVAILABLE]";
constexpr const char* temporarily_unavailable = "[TEMPUNAVAIL]";

bool lookup_failed_temporarily(const Facts& facts) {
  const std::string* fcrdns = facts.string("fcrdns");
  return fcrdns != nullptr && *fcrdns == "temperror";
}

}  // namespace

XclientNames xclient_names(const Facts& facts) {
  const std::string fallback =
      lookup_failed_temporarily(facts) ? temporarily_unavailable : unavailable;
  XclientNames names;
  const std::string* name = facts.string("client.name");
  const std::string* ptr = facts.string("client.ptr");
  names.name = name != nullptr ? *name : fallback;
  names.reverse_name = ptr != nullptr ? *ptr : fallback;
  return names;
}

std::string received_client_name(const Facts& facts) {
  const std::string* name = facts.string("client.name");
  return name != nullptr ? *name : "unknown";
}

std::optional<AuthenticationMethodResult> iprev_result(const Facts& facts,
                                                       const std::string& client_ip) {
  const std::vector<std::pair<std::string, std::string>> properties = {{"policy.iprev", client_ip}};
  if (const std::string* name = facts.string("client.name")) {
    return AuthenticationMethodResult{"iprev", "pass", properties, *name};
  }
  const std::string* fcrdns = facts.string("fcrdns");
  if (fcrdns == nullptr) return std::nullopt;
  if (*fcrdns == "fail") {
    const std::string* ptr = facts.string("client.ptr");
    return AuthenticationMethodResult{"iprev", "fail", properties,
                                      ptr != nullptr ? *ptr + " does not resolve back" : ""};
  }
  if (*fcrdns == "none") {
    return AuthenticationMethodResult{"iprev", "permerror", properties, "no PTR record"};
  }
  if (*fcrdns == "temperror") {
    return AuthenticationMethodResult{"iprev", "temperror", properties, ""};
  }
  return std::nullopt;  // "pass" without client.name cannot be recorded by the filter
}

}  // namespace portcullis
