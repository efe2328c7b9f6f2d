// TLS pieces for the integration tests: certificates made at run time with the openssl tool,
// an SMTP client that can switch to TLS in the middle of a session (STARTTLS) or start with it,
// `openssl s_client` runs, and an in-process upstream MTA that offers STARTTLS and can inject
// plaintext after its 220. Black-box like the rest of tests/support: none of the proxy's code.
#pragma once

#include <openssl/ssl.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "test_support.h"

namespace portcullis::test {

// ---- certificates ----

struct CertificatePair {
  std::filesystem::path certificate;
  std::filesystem::path key;
  std::string common_name;
};

// A self-signed certificate for `common_name` (also its DNS subjectAltName) and its key, as
// DIR/STEM.crt and DIR/STEM.key. The proxy drops to "nobody" and must be able to read both for
// a reload: the key is 0600 and owned by nobody when running as root, the certificate 0644.
// `key_type`: "ec" (P-256, quick to make) or "rsa" (2048 bits). Throws when openssl fails.
CertificatePair make_self_signed_certificate(const std::filesystem::path& dir,
                                             const std::string& stem,
                                             const std::string& common_name,
                                             const std::string& key_type = "ec");
// Gives `path` to nobody (as root) with `mode`, so the dropped proxy can read it.
void hand_to_proxy_user(const std::filesystem::path& path, mode_t mode);

// A TOML string literal (quotes and backslashes escaped).
std::string toml_quoted(const std::string& text);

// ---- openssl s_client ----

// Runs `openssl s_client -connect 127.0.0.1:PORT ARGS... -ign_eof` and feeds it `input_chunks`
// on stdin, one every `pause` (the first after `pause` too, so the handshake is done first).
// s_client exits when the server closes the connection, or is killed after `timeout`.
CommandResult run_s_client(uint16_t port, const std::vector<std::string>& args,
                           const std::vector<std::string>& input_chunks, Millis pause = 500ms,
                           Millis timeout = 20s);
// The CN of the "subject=" line s_client printed for the server's certificate; "" if none.
std::string s_client_subject_cn(const std::string& output);

// ---- SMTP client with TLS ----

struct SslSessionFree {
  void operator()(SSL_SESSION* session) const { SSL_SESSION_free(session); }
};
struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslSessionPtr = std::unique_ptr<SSL_SESSION, SslSessionFree>;
using SslCtxHandle = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslHandle = std::unique_ptr<SSL, SslFree>;

// Owns a file descriptor: closed when the object dies.
class FdHandle {
 public:
  explicit FdHandle(int fd = -1) : fd_(fd) {}
  ~FdHandle() { reset(); }
  FdHandle(const FdHandle&) = delete;
  FdHandle& operator=(const FdHandle&) = delete;
  int get() const { return fd_; }
  void reset(int fd = -1);

 private:
  int fd_;
};

struct TlsHandshakeOptions {
  std::string server_name;         // SNI; "" sends none
  int min_version = 0;             // e.g. TLS1_2_VERSION; 0: OpenSSL's default
  int max_version = 0;             // 0: OpenSSL's default (TLS 1.3)
  SSL_SESSION* session = nullptr;  // offered for resumption when set
};

// A non-blocking TCP client with timeouts that speaks SMTP in plaintext and, after start_tls(),
// over TLS on the same socket. Never verifies the server's certificate (the tests inspect it).
class TlsSmtpClient {
 public:
  struct Options {
    std::string source_address;  // bind to this local address first
    Millis timeout = 10s;        // default for reads and the handshake
  };

  // Connects to host:port (numeric); throws std::runtime_error on failure.
  TlsSmtpClient(const std::string& host, uint16_t port, Options options);
  TlsSmtpClient(const std::string& host, uint16_t port) : TlsSmtpClient(host, port, Options{}) {}
  TlsSmtpClient(const TlsSmtpClient&) = delete;
  TlsSmtpClient& operator=(const TlsSmtpClient&) = delete;

  // Writes all bytes in one go (plaintext or TLS, whichever is active); false when it failed.
  bool send(std::string_view bytes);
  bool send_line(std::string_view line) { return send(std::string(line) + "\r\n"); }
  SmtpReply read_reply() { return read_reply(options_.timeout); }
  SmtpReply read_reply(Millis timeout);
  SmtpReply command(std::string_view line) {
    send_line(line);
    return read_reply();
  }
  // True when `timeout` passes with no application byte and no close.
  bool silent_for(Millis timeout);
  // True when the peer closes (or the connection fails) within `timeout`; bytes that arrive
  // meanwhile are kept in buffered().
  bool wait_closed(Millis timeout);
  const std::string& buffered() const { return buffer_; }

  // The TLS handshake on this socket; false with `*error` set when it fails. Plaintext bytes
  // already buffered stay in buffered() (a test can look at them).
  bool start_tls(const TlsHandshakeOptions& options, std::string* error);
  bool tls_active() const { return ssl_ != nullptr && handshake_done_; }
  std::string protocol() const;  // "TLSv1.3" …
  std::string cipher() const;    // "TLS_AES_256_GCM_SHA384" …
  std::string peer_common_name() const;
  bool session_reused() const;
  // The server sent a CertificateRequest during the handshake.
  bool certificate_requested() const { return certificate_requested_; }
  // The session for a later resumption (read a reply first: TLS 1.3 tickets come after the
  // handshake).
  SslSessionPtr session() const;
  // Client-initiated renegotiation (TLS 1.2 only): true when the server went through with it.
  bool renegotiate(std::string* error);

 private:
  enum class Wait { read, write };
  // Waits for the socket until `deadline`; false on timeout.
  bool wait(Wait what, Clock::time_point deadline);
  // Reads whatever is available into buffer_; false on timeout, close or error.
  bool fill(Clock::time_point deadline);
  static int on_client_certificate_request(SSL* ssl, X509** certificate, EVP_PKEY** key);

  FdHandle fd_;
  Options options_;
  std::string buffer_;
  bool closed_ = false;
  SslCtxHandle ctx_;
  SslHandle ssl_;
  bool handshake_done_ = false;
  bool certificate_requested_ = false;
};

// ---- an upstream MTA that offers STARTTLS ----

struct TlsUpstreamBehaviour {
  std::string greeting = "220 upstream.example.test ESMTP TlsUpstream";
  bool offer_starttls = true;
  // EHLO keywords before TLS (STARTTLS is added when offered) and over TLS.
  std::vector<std::string> plain_keywords = {"PIPELINING", "ENHANCEDSTATUSCODES"};
  std::vector<std::string> tls_keywords = {
      "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME",
      "XCLIENT ADDR PORT NAME REVERSE_NAME HELO PROTO DESTADDR DESTPORT"};
  // Sent right after "220 2.0.0 Ready to start TLS\r\n" in the same write: plaintext injected
  // where the client must not read it (CVE-2021-38371 class).
  std::string injected_after_starttls;
};

struct TlsUpstreamConnection {
  std::vector<std::string> plain_commands;  // command lines before TLS, line end removed
  std::vector<std::string> tls_commands;    // command lines over TLS
  bool tls = false;                         // the handshake completed
  std::string tls_protocol;                 // "TLSv1.3" …
  std::string tls_error;                    // why the handshake failed
  std::vector<std::string> messages;        // bytes after 354 up to (not including) CRLF.CRLF
  bool open = true;

  // Every command, plaintext ones first.
  std::vector<std::string> all_commands() const;
  size_t count_verb(const std::string& verb) const;  // over both lists, case-insensitive
  bool looks_like_probe() const;                     // nothing beyond EHLO/HELO/NOOP/RSET/QUIT
};

// Listens on 127.0.0.1 (a free port); one thread per connection. Replies 250 to MAIL, RCPT,
// RSET and NOOP, 220 to XCLIENT (as Postfix does), 354 to DATA and "250 2.0.0 Ok: queued as
// TLSQn" to the end of the message.
class TlsUpstream {
 public:
  TlsUpstream(const CertificatePair& certificate, TlsUpstreamBehaviour behaviour);
  ~TlsUpstream();
  TlsUpstream(const TlsUpstream&) = delete;
  TlsUpstream& operator=(const TlsUpstream&) = delete;

  uint16_t port() const { return port_; }
  std::vector<TlsUpstreamConnection> connections() const;
  std::vector<TlsUpstreamConnection> session_connections() const;  // without the probes
  bool wait_for(const std::function<bool(const std::vector<TlsUpstreamConnection>&)>& done,
                Millis timeout) const;

 private:
  void accept_loop();
  void serve(int fd, size_t index);

  TlsUpstreamBehaviour behaviour_;
  SslCtxHandle ctx_;
  FdHandle listen_fd_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;  // guards records_ and open_fds_
  std::vector<TlsUpstreamConnection> records_;
  std::vector<int> open_fds_;
  std::vector<std::thread> connection_threads_;  // only touched by the accept thread
  std::thread accept_thread_;
};

}  // namespace portcullis::test
