#!/usr/bin/env bash
# Relay throughput: smtp-source → smtp-sink (direct) against smtp-source → Portcullis →
# smtp-sink, alternating in one run so all paths see the same machine load; with a new
# connection per message and with connection reuse (-d); Portcullis with its default settings
# and with pin_workers = true. Prints msgs/s, the via/direct ratios (per round and their
# median) and Portcullis's CPU time per message; then the memory per idle session
# (bench_idle_rss.py, default settings). Run on demand; not part of meson test.
#
#   BENCH_ROUNDS=5 BENCH_MESSAGES=10000 BENCH_SESSIONS=20 BENCH_IDLE_SESSIONS=2000 \
#     bash tests/bench/bench_relay.sh
#
# Everything listens on 127.0.0.1 (ports found free at run time), every run is bounded by a
# timeout, and what the script starts is stopped by pid on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Runs of 10,000 messages last a second or more each: 2,000 (under 0.2 s direct) let start-up
# and the machine's noise decide the ratio.
rounds=${BENCH_ROUNDS:-5}
messages=${BENCH_MESSAGES:-10000}
sessions=${BENCH_SESSIONS:-20}
idle_sessions=${BENCH_IDLE_SESSIONS:-2000}
target_ratio=0.60

source tests/bench/bench_lib.sh
build_portcullis

# 2000 idle sessions, and smtp-sink's connections: more descriptors than the usual 1024.
ulimit -n "$(ulimit -Hn)"

read -r sink_port proxy_port pinned_port < <(free_ports 3)
start_sink "$sink_port"

# "via": the default settings (cpu_scheduling = "batch", workers free to move between CPUs);
# "pinned": the same with pin_workers = true (docs/configuration.md), the setting for a machine
# that serves mostly mail. Both wait side by side; only the one under test gets messages.
start_portcullis via "$proxy_port" "$sink_port" ""
portcullis_pid=$started_pid
start_portcullis pinned "$pinned_port" "$sink_port" "pin_workers = true"
pinned_pid=$started_pid

clock_ticks=$(getconf CLK_TCK)
results=$work_dir/results

path_port=([direct]=$sink_port [via]=$proxy_port [pinned]=$pinned_port)
path_pid=([via]=$portcullis_pid [pinned]=$pinned_pid)

log "warm-up"
warm_up "$proxy_port" "$pinned_port"

# Other load skews every path (the proxy adds a process competing for the same cores).
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "relay: $rounds rounds of $messages messages of 1000 bytes, $sessions parallel sessions;"
echo "       smtp-source → smtp-sink (direct) vs smtp-source → Portcullis → smtp-sink"
echo "       (via: default settings; pinned: pin_workers = true)"
paths=(direct via pinned)
for round in $(seq "$rounds"); do
  for mode in new reuse; do
    # Rotate which path goes first, so none always runs on a warmer machine.
    for i in 0 1 2; do
      run_source "$mode" "${paths[(round + i) % 3]}" "$round"
    done
  done
done

python3 tests/bench/relay_summary.py "$results" "$messages" "$clock_ticks" \
  --target "$target_ratio" "via=via Portcullis, defaults" "pinned=via Portcullis, pin_workers"

echo "machine: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"

if ((idle_sessions > 0)); then
  python3 tests/bench/bench_idle_rss.py --pid "$portcullis_pid" --port "$proxy_port" \
    --sessions "$idle_sessions"
fi
