#pragma once

#include <cstdint>
#include <string>

#include "config.h"

namespace portcullis {

// The file descriptors `run` may hold at once under a configuration, at its busiest: every
// session open, every one of them spilling a message, every upstream slot used. An estimate
// (docs/configuration.md, "[limits]": "File descriptors"), compared with RLIMIT_NOFILE at
// start-up and by `check`: a limit below it is a warning, since a proxy that runs out of
// descriptors fails accept() and open() for everyone, not only for the sessions beyond it.
struct DescriptorBudget {
  // One socket per client session: limits.max_sessions.
  std::uint64_t client_sockets = 0;
  // A message beyond limits.spill_threshold is an unnamed file until its session ends it; a
  // session whose upstream went away mid-DATA keeps reading into its file, so every session
  // may hold one.
  std::uint64_t spill_files = 0;
  // upstream.max_connections (connections kept for reuse hold a slot too), plus the probe's.
  std::uint64_t upstream_connections = 0;
  // Each worker's libunbound context: its outgoing-range UDP sockets and outgoing-num-tcp
  // TCP connections (the library's defaults, which Portcullis keeps).
  std::uint64_t dns_sockets = 0;
  // The [[listen]] sockets, the metrics listener and the scrapes it may be answering.
  std::uint64_t listeners = 0;
  // Log files (or the syslog socket) and the store: LMDB's data, lock and meta-write
  // descriptors, or one Redis connection per worker.
  std::uint64_t files = 0;
  // Standard input/output/error, every event loop's epoll and wake-up descriptors, the signal
  // pipe, and a margin for what is open for a moment (a refused session's socket while its
  // 421 is written, a reload reading its files, /proc for the metrics).
  std::uint64_t process = 0;

  std::uint64_t total() const;
  // "client sockets 10000, spill files 10000, upstream 101, …" for messages.
  std::string breakdown() const;
};

// What `config` needs (a pure function of the loaded configuration: workers resolved).
DescriptorBudget descriptor_budget(const Config& config);

// libunbound's defaults for a library context (config_create_forlib), per worker; the unit
// test reads them back from the installed library.
inline constexpr std::uint64_t unbound_outgoing_range = 16;
inline constexpr std::uint64_t unbound_outgoing_num_tcp = 2;

}  // namespace portcullis
