#include "tls_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/core.h>

namespace portcullis::test {

namespace fs = std::filesystem;

namespace {

std::string openssl_error_queue() {
  std::string text;
  while (unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text;
}

std::string upper(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return text;
}

std::string first_word_upper(const std::string& line) {
  return upper(line.substr(0, line.find(' ')));
}

bool parse_ipv4_or_ipv6(const std::string& host, uint16_t port, sockaddr_storage* storage,
                        socklen_t* length) {
  std::memset(storage, 0, sizeof *storage);
  auto* v4 = reinterpret_cast<sockaddr_in*>(storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    *length = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(storage);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    *length = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

std::string seconds_text(Millis duration) {
  const auto ms = duration.count();
  return fmt::format("{}.{:03}", ms / 1000, ms % 1000);
}

}  // namespace

void FdHandle::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

// ---- certificates ----

CertificatePair make_self_signed_certificate(const fs::path& dir, const std::string& stem,
                                             const std::string& common_name,
                                             const std::string& key_type) {
  CertificatePair pair{dir / (stem + ".crt"), dir / (stem + ".key"), common_name};
  std::vector<std::string> argv = {"openssl", "req", "-x509", "-nodes", "-days", "30"};
  if (key_type == "rsa") {
    argv.insert(argv.end(), {"-newkey", "rsa:2048"});
  } else {
    argv.insert(argv.end(), {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"});
  }
  argv.insert(argv.end(), {"-keyout", pair.key.string(), "-out", pair.certificate.string(), "-subj",
                           "/CN=" + common_name, "-addext", "subjectAltName=DNS:" + common_name});
  const CommandResult result = run_command(argv, 30s);
  if (!result.status.success()) {
    throw std::runtime_error(fmt::format("openssl req for {} failed ({}): {}", common_name,
                                         result.status.describe(), result.err));
  }
  hand_to_proxy_user(pair.certificate, 0644);
  hand_to_proxy_user(pair.key, 0600);
  return pair;
}

void hand_to_proxy_user(const fs::path& path, mode_t mode) {
  if (::chmod(path.c_str(), mode) != 0) {
    throw std::runtime_error("chmod " + path.string() + ": " + std::strerror(errno));
  }
  if (running_as_root()) chown_to_user(path, "nobody");
}

std::string toml_quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

// ---- openssl s_client ----

CommandResult run_s_client(uint16_t port, const std::vector<std::string>& args,
                           const std::vector<std::string>& input_chunks, Millis pause,
                           Millis timeout) {
  // The chunks travel in environment variables, so no quoting can go wrong.
  std::string script = "{ ";
  std::vector<std::string> environment;
  for (size_t i = 0; i < input_chunks.size(); ++i) {
    script += fmt::format("sleep {}; printf '%s' \"$S_CLIENT_INPUT_{}\"; ", seconds_text(pause), i);
    environment.push_back(fmt::format("S_CLIENT_INPUT_{}={}", i, input_chunks[i]));
  }
  script += "} | exec openssl s_client \"$@\"";
  std::vector<std::string> argv = {"/bin/sh",       "-c",       script,
                                   "s_client_feed", "-connect", fmt::format("127.0.0.1:{}", port)};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("-ign_eof");
  return run_command(argv, timeout, environment);
}

std::string s_client_subject_cn(const std::string& output) {
  for (const auto& line : split_lines(output)) {
    if (line.rfind("subject=", 0) != 0) continue;
    // OpenSSL 3 prints "subject=CN = name"; older ones "subject=/CN=name".
    size_t at = line.find("CN = ");
    size_t skip = 5;
    if (at == std::string::npos) {
      at = line.find("CN=");
      skip = 3;
    }
    if (at == std::string::npos) return {};
    std::string name = line.substr(at + skip);
    return name.substr(0, name.find_first_of(",/"));
  }
  return {};
}

// ---- SMTP client with TLS ----

TlsSmtpClient::TlsSmtpClient(const std::string& host, uint16_t port, Options options)
    : options_(std::move(options)) {
  sockaddr_storage address;
  socklen_t length = 0;
  if (!parse_ipv4_or_ipv6(host, port, &address, &length)) {
    throw std::runtime_error("not a numeric address: " + host);
  }
  fd_.reset(::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd_.get() < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  if (!options_.source_address.empty()) {
    sockaddr_storage source;
    socklen_t source_length = 0;
    if (!parse_ipv4_or_ipv6(options_.source_address, 0, &source, &source_length)) {
      throw std::runtime_error("not a numeric address: " + options_.source_address);
    }
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&source), source_length) != 0) {
      throw std::runtime_error("bind " + options_.source_address + ": " + std::strerror(errno));
    }
  }
  if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&address), length) != 0) {
    throw std::runtime_error(fmt::format("connect {}:{}: {}", host, port, std::strerror(errno)));
  }
  ::fcntl(fd_.get(), F_SETFL, ::fcntl(fd_.get(), F_GETFL) | O_NONBLOCK);
}

bool TlsSmtpClient::wait(Wait what, Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
  if (left <= 0) return false;
  pollfd entry{fd_.get(), static_cast<short>(what == Wait::read ? POLLIN : POLLOUT), 0};
  const int ready = ::poll(&entry, 1, static_cast<int>(left));
  return ready > 0;
}

bool TlsSmtpClient::send(std::string_view bytes) {
  if (closed_) return false;
  const auto deadline = Clock::now() + options_.timeout;
  if (ssl_) {
    while (!bytes.empty()) {
      ERR_clear_error();
      const int written = SSL_write(ssl_.get(), bytes.data(), static_cast<int>(bytes.size()));
      if (written > 0) {
        bytes.remove_prefix(static_cast<size_t>(written));
        continue;
      }
      const int error = SSL_get_error(ssl_.get(), written);
      if (error == SSL_ERROR_WANT_WRITE && wait(Wait::write, deadline)) continue;
      if (error == SSL_ERROR_WANT_READ && wait(Wait::read, deadline)) continue;
      return false;
    }
    return true;
  }
  while (!bytes.empty()) {
    const ssize_t written = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (written > 0) {
      bytes.remove_prefix(static_cast<size_t>(written));
      continue;
    }
    if (written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait(Wait::write, deadline)) {
      continue;
    }
    if (written < 0 && errno == EINTR) continue;
    return false;
  }
  return true;
}

bool TlsSmtpClient::fill(Clock::time_point deadline) {
  if (closed_) return false;
  char chunk[16384];
  while (true) {
    if (ssl_) {
      ERR_clear_error();
      const int got = SSL_read(ssl_.get(), chunk, sizeof chunk);
      if (got > 0) {
        buffer_.append(chunk, static_cast<size_t>(got));
        return true;
      }
      const int error = SSL_get_error(ssl_.get(), got);
      if (error == SSL_ERROR_WANT_READ) {
        if (!wait(Wait::read, deadline)) return false;
        continue;
      }
      if (error == SSL_ERROR_WANT_WRITE) {
        if (!wait(Wait::write, deadline)) return false;
        continue;
      }
      closed_ = true;  // close_notify, EOF or a fatal alert: nothing more will come
      return false;
    }
    const ssize_t got = ::recv(fd_.get(), chunk, sizeof chunk, 0);
    if (got > 0) {
      buffer_.append(chunk, static_cast<size_t>(got));
      return true;
    }
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (!wait(Wait::read, deadline)) return false;
      continue;
    }
    closed_ = true;
    return false;
  }
}

SmtpReply TlsSmtpClient::read_reply(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  // SECURITY: the peer is the program under test; a reply is bounded to 1 MiB.
  constexpr size_t max_reply = 1 << 20;
  while (true) {
    SmtpReply reply;
    size_t consumed = 0;
    bool complete = false;
    bool malformed = false;
    while (!complete && !malformed) {
      const size_t line_end = buffer_.find('\n', consumed);
      if (line_end == std::string::npos) break;
      std::string line = buffer_.substr(consumed, line_end - consumed);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      consumed = line_end + 1;
      malformed =
          line.size() < 3 ||
          !std::all_of(line.begin(), line.begin() + 3,
                       [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) ||
          (line.size() > 3 && line[3] != ' ' && line[3] != '-');
      if (malformed) break;
      reply.code = std::stoi(line.substr(0, 3));
      reply.lines.push_back(line.size() > 4 ? line.substr(4) : std::string());
      complete = line.size() == 3 || line[3] == ' ';
    }
    if (complete || malformed) {
      if (malformed) reply.code = 0;
      reply.raw = buffer_.substr(0, consumed);
      buffer_.erase(0, consumed);
      return reply;
    }
    if (buffer_.size() > max_reply || !fill(deadline)) {
      SmtpReply incomplete;
      incomplete.closed = closed_;
      incomplete.raw = buffer_;
      return incomplete;  // nothing consumed: the bytes stay for a later look
    }
  }
}

bool TlsSmtpClient::silent_for(Millis timeout) {
  if (!buffer_.empty()) return false;
  const bool got_bytes = fill(Clock::now() + timeout);
  return !got_bytes && !closed_;
}

bool TlsSmtpClient::wait_closed(Millis timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!closed_ && Clock::now() < deadline) {
    fill(deadline);
  }
  return closed_;
}

int TlsSmtpClient::on_client_certificate_request(SSL* ssl, X509**, EVP_PKEY**) {
  auto* self = static_cast<TlsSmtpClient*>(SSL_get_app_data(ssl));
  if (self) self->certificate_requested_ = true;
  return 0;  // no certificate: the server must go on without one
}

bool TlsSmtpClient::start_tls(const TlsHandshakeOptions& options, std::string* error) {
  ERR_clear_error();
  ctx_.reset(SSL_CTX_new(TLS_client_method()));
  if (!ctx_) {
    *error = "SSL_CTX_new: " + openssl_error_queue();
    return false;
  }
  SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_NONE, nullptr);
  if (options.min_version) SSL_CTX_set_min_proto_version(ctx_.get(), options.min_version);
  if (options.max_version) SSL_CTX_set_max_proto_version(ctx_.get(), options.max_version);
  SSL_CTX_set_client_cert_cb(ctx_.get(), &TlsSmtpClient::on_client_certificate_request);
  ssl_.reset(SSL_new(ctx_.get()));
  if (!ssl_ || SSL_set_fd(ssl_.get(), fd_.get()) != 1) {
    *error = "SSL_new/SSL_set_fd: " + openssl_error_queue();
    ssl_.reset();
    return false;
  }
  SSL_set_app_data(ssl_.get(), this);
  if (!options.server_name.empty()) {
    SSL_set_tlsext_host_name(ssl_.get(), options.server_name.c_str());
  }
  if (options.session) SSL_set_session(ssl_.get(), options.session);
  const auto deadline = Clock::now() + options_.timeout;
  while (true) {
    ERR_clear_error();
    const int result = SSL_connect(ssl_.get());
    if (result == 1) {
      handshake_done_ = true;
      return true;
    }
    const int code = SSL_get_error(ssl_.get(), result);
    if (code == SSL_ERROR_WANT_READ && wait(Wait::read, deadline)) continue;
    if (code == SSL_ERROR_WANT_WRITE && wait(Wait::write, deadline)) continue;
    const std::string queue = openssl_error_queue();
    *error = fmt::format(
        "SSL_connect failed (SSL_get_error {}{}): {}", code,
        code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE ? ", timed out" : "",
        queue.empty() ? std::string("connection closed") : queue);
    closed_ = true;
    return false;
  }
}

std::string TlsSmtpClient::protocol() const {
  return ssl_ ? SSL_get_version(ssl_.get()) : "";
}

std::string TlsSmtpClient::cipher() const {
  const SSL_CIPHER* current = ssl_ ? SSL_get_current_cipher(ssl_.get()) : nullptr;
  return current ? SSL_CIPHER_get_name(current) : "";
}

std::string TlsSmtpClient::peer_common_name() const {
  if (!ssl_) return {};
  std::unique_ptr<X509, decltype(&X509_free)> peer(SSL_get1_peer_certificate(ssl_.get()),
                                                   &X509_free);
  if (!peer) return {};
  char name[256] = {};
  const int length = X509_NAME_get_text_by_NID(X509_get_subject_name(peer.get()), NID_commonName,
                                               name, sizeof name);
  return length > 0 ? std::string(name, static_cast<size_t>(length)) : std::string();
}

bool TlsSmtpClient::session_reused() const {
  return ssl_ && SSL_session_reused(ssl_.get()) == 1;
}

SslSessionPtr TlsSmtpClient::session() const {
  return SslSessionPtr(ssl_ ? SSL_get1_session(ssl_.get()) : nullptr);
}

bool TlsSmtpClient::renegotiate(std::string* error) {
  if (!tls_active()) {
    *error = "TLS is not active";
    return false;
  }
  ERR_clear_error();
  if (SSL_renegotiate(ssl_.get()) != 1) {
    *error = "SSL_renegotiate: " + openssl_error_queue();
    return false;
  }
  const auto deadline = Clock::now() + options_.timeout;
  while (true) {
    ERR_clear_error();
    const int result = SSL_do_handshake(ssl_.get());
    if (result == 1) return true;
    const int code = SSL_get_error(ssl_.get(), result);
    if (code == SSL_ERROR_WANT_READ && wait(Wait::read, deadline)) continue;
    if (code == SSL_ERROR_WANT_WRITE && wait(Wait::write, deadline)) continue;
    const std::string queue = openssl_error_queue();
    *error = fmt::format("renegotiation failed (SSL_get_error {}): {}", code,
                         queue.empty() ? std::string("no OpenSSL error") : queue);
    return false;
  }
}

// ---- an upstream MTA that offers STARTTLS ----

std::vector<std::string> TlsUpstreamConnection::all_commands() const {
  std::vector<std::string> all = plain_commands;
  all.insert(all.end(), tls_commands.begin(), tls_commands.end());
  return all;
}

size_t TlsUpstreamConnection::count_verb(const std::string& verb) const {
  size_t count = 0;
  for (const auto& line : all_commands()) {
    if (first_word_upper(line) == upper(verb)) ++count;
  }
  return count;
}

bool TlsUpstreamConnection::looks_like_probe() const {
  for (const auto& line : all_commands()) {
    const std::string verb = first_word_upper(line);
    if (verb != "EHLO" && verb != "HELO" && verb != "NOOP" && verb != "RSET" && verb != "QUIT") {
      return false;
    }
  }
  return true;
}

TlsUpstream::TlsUpstream(const CertificatePair& certificate, TlsUpstreamBehaviour behaviour)
    : behaviour_(std::move(behaviour)) {
  ERR_clear_error();
  ctx_.reset(SSL_CTX_new(TLS_server_method()));
  if (!ctx_ ||
      SSL_CTX_use_certificate_chain_file(ctx_.get(), certificate.certificate.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx_.get(), certificate.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw std::runtime_error("TlsUpstream: cannot load the certificate: " + openssl_error_queue());
  }
  listen_fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (listen_fd_.get() < 0 ||
      ::bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listen_fd_.get(), 64) != 0 ||
      ::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw std::runtime_error(std::string("TlsUpstream: cannot listen: ") + std::strerror(errno));
  }
  port_ = ntohs(address.sin_port);
  accept_thread_ = std::thread([this] { accept_loop(); });
}

TlsUpstream::~TlsUpstream() {
  stopping_ = true;
  accept_thread_.join();
  {
    std::lock_guard lock(mutex_);
    for (int fd : open_fds_)
      ::shutdown(fd, SHUT_RDWR);  // wakes the connection threads; each closes its own fd
  }
  for (auto& thread : connection_threads_)
    thread.join();
}

void TlsUpstream::accept_loop() {
  while (!stopping_) {
    pollfd entry{listen_fd_.get(), POLLIN, 0};
    if (::poll(&entry, 1, 100) <= 0) continue;
    const int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    size_t index = 0;
    {
      std::lock_guard lock(mutex_);
      index = records_.size();
      records_.emplace_back();
      open_fds_.push_back(fd);
    }
    connection_threads_.emplace_back([this, fd, index] { serve(fd, index); });
  }
}

void TlsUpstream::serve(int raw_fd, size_t index) {
  FdHandle fd(raw_fd);
  // The proxy under test is the only peer; a stuck test must not hang this thread for ever.
  timeval limit{30, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  SslHandle ssl;
  std::string buffer;
  bool tls = false;

  auto write_all = [&](std::string_view bytes) {
    if (tls) return SSL_write(ssl.get(), bytes.data(), static_cast<int>(bytes.size())) > 0;
    while (!bytes.empty()) {
      const ssize_t written = ::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (written <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(written));
    }
    return true;
  };
  // SECURITY: a line is bounded to 64 KiB; the peer is the proxy under test.
  auto read_line = [&](std::string* line) {
    while (buffer.find('\n') == std::string::npos) {
      if (buffer.size() > 65536) return false;
      char chunk[8192];
      const int got = tls ? SSL_read(ssl.get(), chunk, sizeof chunk)
                          : static_cast<int>(::recv(fd.get(), chunk, sizeof chunk, 0));
      if (got <= 0) return false;
      buffer.append(chunk, static_cast<size_t>(got));
    }
    const size_t end = buffer.find('\n');
    *line = buffer.substr(0, end + 1);
    buffer.erase(0, end + 1);
    return true;
  };
  auto record = [&](auto&& change) {
    std::lock_guard lock(mutex_);
    change(records_[index]);
  };
  auto ehlo_reply = [&] {
    std::vector<std::string> keywords = tls ? behaviour_.tls_keywords : behaviour_.plain_keywords;
    if (!tls && behaviour_.offer_starttls) keywords.push_back("STARTTLS");
    std::string reply = "250";
    reply += keywords.empty() ? " " : "-";
    reply += "upstream.example.test\r\n";
    for (size_t i = 0; i < keywords.size(); ++i) {
      reply += (i + 1 == keywords.size() ? "250 " : "250-") + keywords[i] + "\r\n";
    }
    return reply;
  };

  size_t queued = 0;
  bool open = write_all(behaviour_.greeting + "\r\n");
  std::string line;
  while (open && !stopping_ && read_line(&line)) {
    std::string command = line;
    while (!command.empty() && (command.back() == '\n' || command.back() == '\r')) {
      command.pop_back();
    }
    record([&](TlsUpstreamConnection& r) {
      (tls ? r.tls_commands : r.plain_commands).push_back(command);
    });
    const std::string verb = first_word_upper(command);
    if (verb == "EHLO") {
      open = write_all(ehlo_reply());
    } else if (verb == "HELO") {
      open = write_all("250 upstream.example.test\r\n");
    } else if (verb == "STARTTLS" && behaviour_.offer_starttls && !tls) {
      // One write: the 220 and whatever is injected after it arrive together.
      open = write_all("220 2.0.0 Ready to start TLS\r\n" + behaviour_.injected_after_starttls);
      buffer.clear();
      ssl.reset(SSL_new(ctx_.get()));
      ERR_clear_error();
      if (open && ssl && SSL_set_fd(ssl.get(), fd.get()) == 1 && SSL_accept(ssl.get()) == 1) {
        tls = true;
        const std::string protocol = SSL_get_version(ssl.get());
        record([&](TlsUpstreamConnection& r) {
          r.tls = true;
          r.tls_protocol = protocol;
        });
      } else {
        const std::string why = openssl_error_queue();
        record([&](TlsUpstreamConnection& r) {
          r.tls_error = why.empty() ? std::string("handshake failed") : why;
        });
        open = false;
      }
    } else if (verb == "STARTTLS") {
      open = write_all(tls ? "554 5.5.1 Error: TLS already active\r\n"
                           : "502 5.5.1 Error: command not implemented\r\n");
    } else if (verb == "XCLIENT") {
      open = write_all(behaviour_.greeting + "\r\n");
    } else if (verb == "MAIL") {
      open = write_all("250 2.1.0 Ok\r\n");
    } else if (verb == "RCPT") {
      open = write_all("250 2.1.5 Ok\r\n");
    } else if (verb == "RSET" || verb == "NOOP") {
      open = write_all("250 2.0.0 Ok\r\n");
    } else if (verb == "DATA") {
      open = write_all("354 End data with <CR><LF>.<CR><LF>\r\n");
      std::string message;
      std::string data_line;
      bool ended = false;
      while (open && read_line(&data_line)) {
        if (data_line == ".\r\n") {
          ended = true;
          break;
        }
        message += data_line;
      }
      if (!ended) break;
      record([&](TlsUpstreamConnection& r) { r.messages.push_back(message); });
      open = write_all(fmt::format("250 2.0.0 Ok: queued as TLSQ{}\r\n", ++queued));
    } else if (verb == "QUIT") {
      write_all("221 2.0.0 Bye\r\n");
      break;
    } else {
      open = write_all("502 5.5.2 Error: command not recognized\r\n");
    }
  }
  record([&](TlsUpstreamConnection& r) { r.open = false; });
  std::lock_guard lock(mutex_);
  std::erase(open_fds_, fd.get());
  ssl.reset();
  fd.reset();  // closed while no one can shut it down by number any more
}

std::vector<TlsUpstreamConnection> TlsUpstream::connections() const {
  std::lock_guard lock(mutex_);
  return records_;
}

std::vector<TlsUpstreamConnection> TlsUpstream::session_connections() const {
  std::vector<TlsUpstreamConnection> sessions;
  for (auto& connection : connections()) {
    if (!connection.looks_like_probe()) sessions.push_back(std::move(connection));
  }
  return sessions;
}

bool TlsUpstream::wait_for(
    const std::function<bool(const std::vector<TlsUpstreamConnection>&)>& done,
    Millis timeout) const {
  return wait_until([&] { return done(connections()); }, timeout, 20ms);
}

}  // namespace portcullis::test
