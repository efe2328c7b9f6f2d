// The DKIM check of one message, fed as it arrives: the header section is collected and handed
// to libopendkim field by field; at its end the key queries (TXT <s>._domainkey.<d>) of the
// first max_signatures signatures start on the session's resolver, and the body is hashed as
// it comes. finish() runs dkim_eom, whose key lookups are answered from those prefetched
// records, and reads every signature's result. No call ever waits for DNS.
//
// Destroying it cancels its queries. Every method runs on the session's loop thread.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dkim_library.h"
#include "dkim_result.h"
#include "dns_resolver.h"

namespace portcullis {

class DkimVerification {
 public:
  // `resolver` may be null: then no key can be fetched, and a signature needing one ends as
  // temperror ("no resolver").
  DkimVerification(std::shared_ptr<const DkimLibrary> library, DnsResolver* resolver);
  ~DkimVerification();
  DkimVerification(const DkimVerification&) = delete;
  DkimVerification& operator=(const DkimVerification&) = delete;

  // The message's next bytes (CRLF line ends; a chunk may end anywhere).
  void feed(std::string_view bytes);
  // The message is complete: ends the header section if no empty line came. Idempotent.
  void end_of_message();

  // After end_of_message(): true when no key query is still in flight.
  bool keys_ready() const { return pending_queries_ == 0; }
  // Called once, from a resolver callback, when the last pending key query answers. It may
  // destroy this object.
  void on_keys_ready(std::function<void()> ready) { keys_ready_ = std::move(ready); }
  // After end_of_message() and once keys_ready(): the verdicts. Call once.
  DkimOutcome finish();
  // After finish(): how many signatures passed with a cached key (for tests and traces).
  std::size_t passed_with_cached_key() const { return passed_with_cached_key_.size(); }

  // The callbacks DkimLibrary registers for this class.
  static DkimLibrary::Callbacks callbacks();
  // The key lookup libopendkim calls inside dkim_eom (DkimLibrary::KeyLookup).
  static int lookup_key(dkim* handle, dkim_siginfo* signature, unsigned char* buffer,
                        std::size_t length);
  // libopendkim's final callback, inside dkim_eom (DkimLibrary::FinalCheck).
  static int final_check(dkim* handle, dkim_siginfo** signatures, int count);

 private:
  struct Key {
    bool answered = false;
    DnsAnswer answer;
    std::unique_ptr<DnsQuery> query;
  };
  struct HandleFree {
    void operator()(dkim* handle) const;
  };

  void take_header_bytes(std::string_view bytes);
  void end_of_header(std::size_t header_length);
  void add_header_field(std::string_view field);
  void start_key_queries();
  void hash_body(std::string_view bytes);
  int answer_key(dkim_siginfo* signature, unsigned char* buffer, std::size_t length);
  void check_with_cached_keys(dkim_siginfo** signatures, int count);
  DkimSignatureResult signature_result(dkim_siginfo* signature) const;

  std::shared_ptr<const DkimLibrary> library_;
  DnsResolver* resolver_;
  std::unique_ptr<dkim, HandleFree> handle_;
  std::string header_;  // the header section until its end is seen
  std::size_t header_scanned_ = 0;
  bool header_done_ = false;
  bool has_signatures_ = false;
  bool message_done_ = false;
  std::size_t signature_fields_ = 0;
  std::size_t signatures_not_checked_ = 0;
  std::string message_error_;        // set: the message cannot be checked (permerror)
  std::map<std::string, Key> keys_;  // by lower-case query name
  // Signatures we told libopendkim to ignore, with the reason (our permerror).
  std::map<const dkim_siginfo*, std::string> not_checked_;
  // Signatures that passed with a cached key (and that libopendkim was told to ignore), with
  // the key size to report.
  std::map<const dkim_siginfo*, unsigned> passed_with_cached_key_;
  std::size_t pending_queries_ = 0;
  std::function<void()> keys_ready_;
};

}  // namespace portcullis
