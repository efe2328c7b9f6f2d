#include "acceptor.h"

#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstring>
#include <utility>

#include "callback_guard.h"
#include "log_sink.h"
#include "worker.h"

namespace portcullis {

Acceptor::Acceptor(event_base* base, const ServerContext& context, std::vector<Worker*> workers)
    : base_(base), context_(context), workers_(std::move(workers)) {}

ListenerPtr Acceptor::bind_listener(event_base* base, const NetAddress& address,
                                    evconnlistener_cb callback, void* argument) {
  const unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC |
                         LEV_OPT_DISABLED | (address.is_ipv6() ? LEV_OPT_BIND_IPV6ONLY : 0);
  return ListenerPtr(evconnlistener_new_bind(base, callback, argument, flags, 1024, address.sa(),
                                             static_cast<int>(address.length)));
}

bool Acceptor::bind_all(std::string* error) {
  const auto config = context_.config->current();
  for (const ListenConfig& listen : config->listeners) {
    auto slot = std::make_unique<ListenerSlot>(
        ListenerSlot{this, std::make_shared<const ListenConfig>(listen)});
    ListenerPtr listener = bind_listener(base_, listen.address, &Acceptor::accept_cb, slot.get());
    if (!listener) {
      *error = fmt::format("cannot listen on {}: {}", listen.address_text, std::strerror(errno));
      return false;
    }
    evconnlistener_set_error_cb(listener.get(), &Acceptor::error_cb);
    listeners_.push_back(std::move(listener));
    slots_.push_back(std::move(slot));
    log_info("listening", {{"address", listen.address.host_port()}});
  }
  return true;
}

void Acceptor::enable_all() {
  for (auto& listener : listeners_)
    evconnlistener_enable(listener.get());
}

std::vector<std::shared_ptr<const ListenConfig>> Acceptor::bound() const {
  std::vector<std::shared_ptr<const ListenConfig>> out;
  for (const auto& slot : slots_)
    out.push_back(slot->listener);
  return out;
}

void Acceptor::close_all() {
  closed_ = true;
  listeners_.clear();
}

void Acceptor::on_accept(const std::shared_ptr<const ListenConfig>& listener, evutil_socket_t fd,
                         const sockaddr* address, int length, bool* handed_over) {
  auto peer = NetAddress::from_sockaddr(address, static_cast<socklen_t>(length));
  NetAddress local_address;
  sockaddr_storage local{};
  socklen_t local_length = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length) == 0) {
    if (auto parsed =
            NetAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&local), local_length)) {
      local_address = *parsed;
    }
  }
  if (!peer) {
    evutil_closesocket(fd);
    return;
  }
  evutil_make_socket_nonblocking(fd);
  const std::string key = peer->client_key();
  const auto outcome = context_.session_limits->try_admit(key);
  if (outcome != SessionLimits::Outcome::admitted) {
    // Refused before the banner: one best-effort write, then close.
    const std::string text = fmt::format(
        "421 4.7.0 {} Error: too many connections{}\r\n",
        context_.config->current()->server.hostname,
        outcome == SessionLimits::Outcome::too_many_from_client ? " from your address" : "");
    [[maybe_unused]] ssize_t written = send(fd, text.data(), text.size(), MSG_NOSIGNAL);
    log_warning("session_limit", {{"client", peer->host_port()},
                                  {"limit", outcome == SessionLimits::Outcome::too_many_from_client
                                                ? "max_sessions_per_ip"
                                                : "max_sessions"}});
    evutil_closesocket(fd);
    return;
  }
  Worker* worker = workers_[next_worker_++ % workers_.size()];
  worker->hand_over(AcceptedConnection{fd, *peer, local_address, listener, key});
  *handed_over = true;  // from here the connection (and its fd) is the worker's
}

void Acceptor::accept_cb(evconnlistener*, evutil_socket_t fd, sockaddr* address, int length,
                         void* slot) {
  auto* listener_slot = static_cast<ListenerSlot*>(slot);
  bool handed_over = false;
  guard_callback(
      "accept",
      [&] {
        listener_slot->acceptor->on_accept(listener_slot->listener, fd, address, length,
                                           &handed_over);
      },
      [&] {
        // Not yet a session's: the socket is still ours to close.
        if (!handed_over) evutil_closesocket(fd);
      });
}

void Acceptor::error_cb(evconnlistener* listener, void* slot) {
  guard_callback("accept_error",
                 [&] { static_cast<ListenerSlot*>(slot)->acceptor->on_error(listener); });
}

void Acceptor::on_error(evconnlistener* listener) {
  // EMFILE and friends: the pending connection stays in the backlog, so accepting again at once
  // would spin. Pause this listener for a second.
  log_error("accept_failed", {{"error", std::strerror(errno)}, {"retry_seconds", "1"}});
  evconnlistener_disable(listener);
  timeval pause{1, 0};
  event_base_once(
      base_, -1, EV_TIMEOUT,
      [](evutil_socket_t, short, void* self) {
        guard_callback("accept_resume", [self] {
          auto* owner = static_cast<Acceptor*>(self);
          if (!owner->closed_) owner->enable_all();
        });
      },
      this, &pause);
}

}  // namespace portcullis
