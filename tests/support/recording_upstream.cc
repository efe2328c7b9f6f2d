#include "recording_upstream.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <stdexcept>

#include <fmt/core.h>

namespace portcullis::test {

namespace {

constexpr std::string_view signature_bytes("\r\n\r\n\0\r\nQUIT\n", 12);

// SECURITY: the peer is the proxy under test; a command line longer than this is answered
// 500 and dropped instead of being buffered without limit.
constexpr size_t max_command_line = 100000;

std::string first_word_upper(std::string_view line) {
  std::string word;
  for (char c : line) {
    if (c == ' ') break;
    word.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return word;
}

int reply_code(std::string_view reply) {
  if (reply.size() < 3) return 0;
  for (int i = 0; i < 3; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(reply[i]))) return 0;
  }
  return (reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0');
}

}  // namespace

std::string_view proxy_v2_signature() {
  return signature_bytes;
}

size_t RecordedConnection::count_verb(const std::string& verb) const {
  return static_cast<size_t>(std::count_if(commands.begin(), commands.end(), [&](const auto& c) {
    return first_word_upper(c) == verb;
  }));
}

bool RecordedConnection::looks_like_probe() const {
  return std::all_of(commands.begin(), commands.end(), [](const std::string& command) {
    const std::string verb = first_word_upper(command);
    return verb == "EHLO" || verb == "HELO" || verb == "NOOP" || verb == "RSET" || verb == "QUIT";
  });
}

struct RecordingUpstream::Connection {
  struct Pending {
    Clock::time_point due;
    std::string bytes;
    bool close_after = false;
    std::optional<size_t> acknowledges;  // index of the message this final reply is for
  };
  enum class State { awaiting_proxy_header, command, data, closed };

  int fd = -1;
  size_t id = 0;
  State state = State::command;
  Clock::time_point header_deadline;
  std::string input;
  std::string data;
  size_t data_scan_from = 0;
  std::deque<Pending> pending;
  std::string out;
  bool close_when_flushed = false;
  std::vector<size_t> acknowledge_when_flushed;

  ~Connection() {
    if (fd >= 0) ::close(fd);
  }
};

RecordingUpstream::RecordingUpstream(UpstreamBehaviour behaviour, uint16_t port)
    : behaviour_(std::move(behaviour)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    const std::string error = std::strerror(errno);
    ::close(listen_fd_);
    throw std::runtime_error(
        fmt::format("RecordingUpstream: bind/listen 127.0.0.1:{}: {}", port, error));
  }
  socklen_t length = sizeof address;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
  port_ = ntohs(address.sin_port);

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error("pipe2 failed");
  }
  wake_read_fd_ = pipe_fds[0];
  wake_write_fd_ = pipe_fds[1];
  thread_ = std::thread([this] { serve(); });
}

RecordingUpstream::~RecordingUpstream() {
  stop();
  if (wake_read_fd_ >= 0) ::close(wake_read_fd_);
  if (wake_write_fd_ >= 0) ::close(wake_write_fd_);
}

void RecordingUpstream::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  const char byte = 'x';
  [[maybe_unused]] auto ignored = ::write(wake_write_fd_, &byte, 1);
  thread_.join();
}

void RecordingUpstream::set_behaviour(UpstreamBehaviour behaviour) {
  std::lock_guard lock(mutex_);
  behaviour_ = std::move(behaviour);
}

UpstreamBehaviour RecordingUpstream::behaviour() const {
  std::lock_guard lock(mutex_);
  return behaviour_;
}

std::vector<RecordedConnection> RecordingUpstream::connections() const {
  std::lock_guard lock(mutex_);
  return records_;
}

std::vector<RecordedConnection> RecordingUpstream::session_connections() const {
  std::lock_guard lock(mutex_);
  std::vector<RecordedConnection> sessions;
  for (const auto& record : records_) {
    if (!record.looks_like_probe()) sessions.push_back(record);
  }
  return sessions;
}

size_t RecordingUpstream::acknowledged_messages() const {
  std::lock_guard lock(mutex_);
  size_t count = 0;
  for (const auto& record : records_) {
    count += static_cast<size_t>(std::count_if(record.messages.begin(), record.messages.end(),
                                               [](const auto& m) { return m.acknowledged; }));
  }
  return count;
}

size_t RecordingUpstream::total_acknowledged() const {
  std::lock_guard lock(mutex_);
  return total_acknowledged_;
}

size_t RecordingUpstream::recorded_messages() const {
  std::lock_guard lock(mutex_);
  size_t count = 0;
  for (const auto& record : records_)
    count += record.messages.size();
  return count;
}

bool RecordingUpstream::wait_for(
    const std::function<bool(const std::vector<RecordedConnection>&)>& done, Millis timeout) const {
  return wait_until(
      [&] {
        std::lock_guard lock(mutex_);
        return done(records_);
      },
      timeout);
}

void RecordingUpstream::clear() {
  std::lock_guard lock(mutex_);
  std::erase_if(records_, [](const RecordedConnection& record) { return !record.open; });
}

void RecordingUpstream::clear_including_open() {
  std::lock_guard lock(mutex_);
  std::erase_if(records_, [](const RecordedConnection& record) { return !record.open; });
  for (RecordedConnection& record : records_) {
    record.proxy_header.clear();
    record.received.clear();
    record.commands.clear();
    record.messages.clear();
  }
}

RecordedConnection& RecordingUpstream::record(Connection& connection) {
  // Called with mutex_ held. Open connections are never cleared, so the record exists.
  auto it = std::find_if(records_.begin(), records_.end(),
                         [&](const RecordedConnection& r) { return r.index == connection.id; });
  return *it;
}

void RecordingUpstream::serve() {
  while (!stopping_) {
    std::vector<pollfd> waiters;
    waiters.push_back({listen_fd_, POLLIN, 0});
    waiters.push_back({wake_read_fd_, POLLIN, 0});
    auto next_wake = Clock::now() + 200ms;
    for (const auto& connection : live_) {
      short events = POLLIN;
      if (!connection->out.empty()) events |= POLLOUT;
      waiters.push_back({connection->fd, events, 0});
      if (!connection->pending.empty()) {
        next_wake = std::min(next_wake, connection->pending.front().due);
      }
      if (connection->state == Connection::State::awaiting_proxy_header) {
        next_wake = std::min(next_wake, connection->header_deadline);
      }
    }
    const auto wait_ms = std::max<long long>(
        0, std::chrono::duration_cast<Millis>(next_wake - Clock::now()).count() + 1);
    ::poll(waiters.data(), waiters.size(), static_cast<int>(wait_ms));
    if (stopping_) break;
    if (waiters[0].revents & POLLIN) accept_connections();

    // live_ may grow in accept_connections; only the first (waiters.size() - 2) were polled.
    const size_t polled = waiters.size() - 2;
    for (size_t i = 0; i < polled && i < live_.size(); ++i) {
      Connection& connection = *live_[i];
      if (connection.state != Connection::State::closed &&
          (waiters[i + 2].revents & (POLLIN | POLLHUP | POLLERR))) {
        on_readable(connection);
      }
    }
    for (auto& connection : live_) {
      if (connection->state == Connection::State::awaiting_proxy_header &&
          Clock::now() >= connection->header_deadline) {
        // No header in time: a connection that does not speak PROXY (the probe).
        connection->state = Connection::State::command;
        send_greeting(*connection);
        process_input(*connection);
      }
      if (connection->state != Connection::State::closed) flush_due(*connection);
    }
    std::erase_if(live_, [](const auto& c) { return c->state == Connection::State::closed; });
  }
  for (auto& connection : live_) {
    if (connection->state != Connection::State::closed) close_connection(*connection, false);
  }
  live_.clear();
  ::close(listen_fd_);
  listen_fd_ = -1;
}

void RecordingUpstream::accept_connections() {
  while (true) {
    sockaddr_in peer{};
    socklen_t length = sizeof peer;
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &length,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    auto connection = std::make_unique<Connection>();
    connection->fd = fd;
    bool expect_header = false;
    {
      std::lock_guard lock(mutex_);
      connection->id = accepted_++;
      RecordedConnection record;
      record.index = connection->id;
      char text[INET_ADDRSTRLEN] = {};
      inet_ntop(AF_INET, &peer.sin_addr, text, sizeof text);
      record.peer_address = text;
      record.peer_port = ntohs(peer.sin_port);
      records_.push_back(std::move(record));
      expect_header = behaviour_.expect_proxy_v2;
      connection->header_deadline = Clock::now() + behaviour_.proxy_header_wait;
    }
    if (expect_header) {
      connection->state = Connection::State::awaiting_proxy_header;
    } else {
      send_greeting(*connection);
    }
    live_.push_back(std::move(connection));
  }
}

void RecordingUpstream::on_readable(Connection& connection) {
  char chunk[65536];
  ssize_t got = ::recv(connection.fd, chunk, sizeof chunk, 0);
  if (got < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    close_connection(connection, true);
    return;
  }
  if (got == 0) {
    close_connection(connection, true);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    record(connection).received.append(chunk, static_cast<size_t>(got));
  }
  connection.input.append(chunk, static_cast<size_t>(got));
  process_input(connection);
}

void RecordingUpstream::process_input(Connection& connection) {
  while (connection.state != Connection::State::closed) {
    if (connection.state == Connection::State::awaiting_proxy_header) {
      const size_t compared = std::min(connection.input.size(), signature_bytes.size());
      if (compared == 0) return;
      if (connection.input.compare(0, compared, signature_bytes.substr(0, compared)) != 0) {
        connection.state = Connection::State::command;  // not a PROXY header
        send_greeting(connection);
        continue;
      }
      if (connection.input.size() < 16) return;
      const size_t length = 16 + (static_cast<unsigned char>(connection.input[14]) << 8) +
                            static_cast<unsigned char>(connection.input[15]);
      if (connection.input.size() < length) return;
      {
        std::lock_guard lock(mutex_);
        record(connection).proxy_header = connection.input.substr(0, length);
      }
      connection.input.erase(0, length);
      connection.state = Connection::State::command;
      send_greeting(connection);
      continue;
    }
    if (connection.state == Connection::State::data) {
      handle_data(connection);
      if (connection.state == Connection::State::data) return;
      continue;
    }
    const size_t line_end = connection.input.find('\n');
    if (line_end == std::string::npos) {
      if (connection.input.size() > max_command_line) {
        connection.input.clear();
        queue_reply(connection, "", "500 5.5.2 Error: line too long", false);
      }
      return;
    }
    std::string line = connection.input.substr(0, line_end);
    connection.input.erase(0, line_end + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    handle_command(connection, line);
  }
}

void RecordingUpstream::handle_command(Connection& connection, const std::string& line) {
  UpstreamBehaviour behaviour;
  {
    std::lock_guard lock(mutex_);
    record(connection).commands.push_back(line);
    behaviour = behaviour_;
  }
  const std::string verb = first_word_upper(line);
  std::string reply;
  bool close_after = false;
  bool enter_data = false;
  if (verb == "EHLO") {
    if (behaviour.ehlo_keywords.empty()) {
      reply = "250 upstream.test";
    } else {
      reply = "250-upstream.test";
      for (size_t i = 0; i < behaviour.ehlo_keywords.size(); ++i) {
        reply += (i + 1 == behaviour.ehlo_keywords.size() ? "\r\n250 " : "\r\n250-");
        reply += behaviour.ehlo_keywords[i];
      }
    }
  } else if (verb == "HELO") {
    reply = "250 upstream.test";
  } else if (verb == "XCLIENT") {
    reply = "220 upstream.test ESMTP RecordingUpstream";
  } else if (verb == "MAIL") {
    if (behaviour.close_on_mail) {
      close_connection(connection, false);
      return;
    }
    reply = "250 2.1.0 Ok";
  } else if (verb == "RCPT") {
    reply = "250 2.1.5 Ok";
    close_after = behaviour.close_after_rcpt_reply;
  } else if (verb == "DATA") {
    reply = "354 End data with <CR><LF>.<CR><LF>";
    enter_data = true;
  } else if (verb == "RSET" || verb == "NOOP") {
    reply = "250 2.0.0 Ok";
  } else if (verb == "QUIT") {
    reply = "221 2.0.0 Bye";
    close_after = true;
  } else {
    reply = "502 5.5.2 Error: command not recognized";
  }
  for (const auto& rule : behaviour.replies) {
    if (rule.prefix != "." && starts_with_nocase(line, rule.prefix)) {
      reply = rule.reply;
      enter_data = enter_data && reply_code(reply) == 354;
      break;
    }
  }
  if (reply_code(reply) == 421) close_after = true;
  queue_reply(connection, line, reply, close_after);
  if (enter_data) {
    connection.state = Connection::State::data;
    connection.data.clear();
    connection.data_scan_from = 0;
  }
}

void RecordingUpstream::handle_data(Connection& connection) {
  connection.data += connection.input;
  connection.input.clear();
  std::optional<size_t> close_after_bytes;
  {
    std::lock_guard lock(mutex_);
    close_after_bytes = behaviour_.close_after_data_bytes;
  }
  size_t end = std::string::npos;
  if (connection.data.compare(0, 3, ".\r\n") == 0) {
    end = 3;  // an empty message: the terminator's CRLF is the one after DATA
  } else {
    const size_t found = connection.data.find("\r\n.\r\n", connection.data_scan_from);
    if (found != std::string::npos) end = found + 5;
  }
  if (close_after_bytes && connection.data.size() >= *close_after_bytes &&
      (end == std::string::npos || end > *close_after_bytes)) {
    close_connection(connection, false);
    return;
  }
  if (end == std::string::npos) {
    connection.data_scan_from = connection.data.size() >= 4 ? connection.data.size() - 4 : 0;
    return;
  }
  connection.input = connection.data.substr(end);
  connection.data.resize(end);
  connection.state = Connection::State::command;

  std::string reply;
  std::optional<size_t> message_index;
  {
    std::lock_guard lock(mutex_);
    RecordedConnection& recorded = record(connection);
    RecordedMessage message;
    message.raw = std::move(connection.data);
    std::string default_id = fmt::format("QID{}", next_queue_id_);
    reply = "250 2.0.0 Ok: queued as " + default_id;
    bool replaced = false;
    for (const auto& rule : behaviour_.replies) {
      if (rule.prefix == ".") {
        reply = rule.reply;
        replaced = true;
        break;
      }
    }
    if (!replaced) {
      message.queue_id = default_id;
      ++next_queue_id_;
    }
    recorded.messages.push_back(std::move(message));
    message_index = recorded.messages.size() - 1;
  }
  connection.data.clear();
  queue_reply(connection, ".", reply, reply_code(reply) == 421, message_index);
}

void RecordingUpstream::send_greeting(Connection& connection) {
  std::string greeting;
  {
    std::lock_guard lock(mutex_);
    greeting = behaviour_.greeting;
  }
  Connection::Pending pending;
  pending.due = Clock::now();
  pending.bytes = greeting + "\r\n";
  pending.close_after = reply_code(greeting) == 421 || reply_code(greeting) == 554;
  connection.pending.push_back(std::move(pending));
  flush_due(connection);
}

void RecordingUpstream::queue_reply(Connection& connection, const std::string& trigger,
                                    std::string reply, bool close_after,
                                    std::optional<size_t> message_index) {
  Millis delay{0};
  {
    std::lock_guard lock(mutex_);
    for (const auto& rule : behaviour_.delays) {
      const bool matches = rule.prefix == "."
                               ? trigger == "."
                               : trigger != "." && starts_with_nocase(trigger, rule.prefix);
      if (matches) {
        delay = rule.delay;
        break;
      }
    }
  }
  Connection::Pending pending;
  pending.due = Clock::now() + delay;
  // Replies leave in command order, so one delayed reply holds back those after it.
  if (!connection.pending.empty()) {
    pending.due = std::max(pending.due, connection.pending.back().due);
  }
  pending.bytes = std::move(reply) + "\r\n";
  pending.close_after = close_after;
  if (message_index && reply_code(pending.bytes) / 100 == 2) pending.acknowledges = message_index;
  connection.pending.push_back(std::move(pending));
  flush_due(connection);
}

void RecordingUpstream::flush_due(Connection& connection) {
  const auto now = Clock::now();
  while (!connection.pending.empty() && connection.pending.front().due <= now &&
         !connection.close_when_flushed) {
    auto& front = connection.pending.front();
    connection.out += front.bytes;
    if (front.acknowledges) connection.acknowledge_when_flushed.push_back(*front.acknowledges);
    connection.close_when_flushed = front.close_after;
    connection.pending.pop_front();
  }
  while (!connection.out.empty()) {
    ssize_t sent =
        ::send(connection.fd, connection.out.data(), connection.out.size(), MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      close_connection(connection, true);
      return;
    }
    connection.out.erase(0, static_cast<size_t>(sent));
  }
  if (!connection.acknowledge_when_flushed.empty()) {
    std::lock_guard lock(mutex_);
    RecordedConnection& recorded = record(connection);
    for (size_t index : connection.acknowledge_when_flushed) {
      // clear_including_open() may have forgotten the message; the total still counts it.
      if (index < recorded.messages.size()) recorded.messages[index].acknowledged = true;
      ++total_acknowledged_;
    }
    connection.acknowledge_when_flushed.clear();
  }
  if (connection.close_when_flushed) close_connection(connection, false);
}

void RecordingUpstream::close_connection(Connection& connection, bool by_peer) {
  if (connection.state == Connection::State::closed) return;
  connection.state = Connection::State::closed;
  {
    // Recorded before the close, so a peer that sees the close also sees the record.
    std::lock_guard lock(mutex_);
    RecordedConnection& recorded = record(connection);
    recorded.open = false;
    recorded.closed_by_peer = by_peer;
    recorded.closed_by_us = !by_peer;
  }
  ::close(connection.fd);
  connection.fd = -1;
  connection.pending.clear();
  connection.out.clear();
}

ProxyV2Header parse_proxy_v2(std::string_view bytes) {
  ProxyV2Header header;
  if (bytes.size() < 16 || bytes.substr(0, 12) != signature_bytes) {
    header.error = "no PROXY v2 signature";
    return header;
  }
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(bytes[i]); };
  header.version = byte(12) >> 4;
  header.command = byte(12) & 0x0F;
  header.family = byte(13) >> 4;
  header.transport = byte(13) & 0x0F;
  const size_t length = (static_cast<size_t>(byte(14)) << 8) | byte(15);
  header.length = 16 + length;
  if (bytes.size() < header.length) {
    header.error = "truncated";
    return header;
  }
  const auto port_at = [&](size_t i) {
    return static_cast<uint16_t>((static_cast<unsigned>(byte(i)) << 8) | byte(i + 1));
  };
  char text[INET6_ADDRSTRLEN] = {};
  if (header.family == 1 && length >= 12) {
    inet_ntop(AF_INET, bytes.data() + 16, text, sizeof text);
    header.source_address = text;
    inet_ntop(AF_INET, bytes.data() + 20, text, sizeof text);
    header.destination_address = text;
    header.source_port = port_at(24);
    header.destination_port = port_at(26);
  } else if (header.family == 2 && length >= 36) {
    inet_ntop(AF_INET6, bytes.data() + 16, text, sizeof text);
    header.source_address = text;
    inet_ntop(AF_INET6, bytes.data() + 32, text, sizeof text);
    header.destination_address = text;
    header.source_port = port_at(48);
    header.destination_port = port_at(50);
  } else if (header.command != 0) {
    header.error = "address block too short for its family";
    return header;
  }
  header.valid = true;
  return header;
}

}  // namespace portcullis::test
