// How a worker thread asks the kernel to schedule it, and where.
//
// A worker wakes for one socket event at a time. Under the default policy (SCHED_OTHER) a
// woken worker preempts whatever runs on its CPU — often the upstream or a client it has just
// written to — handles that one event and sleeps again: a context switch or two per relayed
// command. SCHED_BATCH (sched(7)) takes away that wake-up preemption and nothing else: same
// nice level, same share of the CPU, no privilege needed; a woken worker waits for the running
// task's slice (milliseconds at most, nothing next to SMTP's timeouts) and then finds several
// sockets ready at once. Measured with tests/bench/bench_relay.sh on a busy 2-CPU machine: a
// fifth to a quarter less CPU per relayed message, a tenth to a fifth more messages per second.
#pragma once

#include <string>

#include "config.h"

namespace portcullis {

// Applies `policy` to the calling thread. "batch" moves it from SCHED_OTHER to SCHED_BATCH
// and leaves any other policy alone (one an administrator chose, e.g. with systemd's
// CPUSchedulingPolicy=); "normal" changes nothing. False, with `error` set, when the kernel
// refuses.
bool apply_cpu_scheduling(CpuScheduling policy, std::string* error);

// Pins the calling thread to one CPU: the `index`-th (from 0, wrapping around) of the CPUs
// the process may run on (its affinity mask: taskset, cgroup cpusets). Worker N gets index
// N - 1, so with one worker per CPU each has a CPU of its own and the scheduler cannot stack
// two busy workers on one CPU for a while (steadier, not faster on average, in the benchmark).
// False, with `error` set, when the kernel refuses.
bool pin_to_cpu(unsigned index, std::string* error);

// Names the calling thread ("worker N" for worker threads; the main thread keeps the program's
// name): what `top -H` and /proc/PID/task/TID/comm show. Cut to 15 bytes (the kernel's limit).
void name_this_thread(const std::string& name);

}  // namespace portcullis
