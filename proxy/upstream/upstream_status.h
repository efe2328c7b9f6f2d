#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>

#include "capabilities.h"

namespace portcullis {

// What the start-up probe learnt of the upstream, shared by every worker. A null snapshot means
// the upstream could not be reached: new sessions are then refused with 421 4.4.1.
class UpstreamStatus {
 public:
  std::shared_ptr<const UpstreamCapabilities> capabilities() const;
  void set_reachable(UpstreamCapabilities capabilities);
  void set_unreachable();

  // Any thread: ask for a new probe (a session's upstream connection failed).
  void request_probe();
  void set_probe_requester(std::function<void()> requester);

  // Upstream connections in use, across all workers ([upstream] max_connections).
  bool try_acquire_connection(unsigned max_connections);
  void release_connection();
  unsigned connections_in_use() const { return connections_.load(); }

  // A kept connection's XCLIENT for the next client was refused with a 5xx: the upstream judges
  // a second XCLIENT by the client the first one named (Postfix checks
  // smtpd_authorized_xclient_hosts against it), so keeping connections cannot work with it.
  // From then on no connection is kept. True for the call that noted it first.
  bool note_reuse_refused() { return !reuse_refused_.exchange(true); }
  bool reuse_refused() const { return reuse_refused_.load(); }

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const UpstreamCapabilities> capabilities_;
  std::function<void()> probe_requester_;
  std::atomic<unsigned> connections_{0};
  std::atomic<bool> reuse_refused_{false};
};

}  // namespace portcullis
