#!/usr/bin/env bash
# What one node holds and moves (#16): throughput and Portcullis's CPU time per message with 1,
# 2 and all workers against direct smtp-source → smtp-sink in the same run (new connection per
# message and reused connections); then 10,000 concurrent idle sessions on a fresh instance,
# plain and after STARTTLS, with the memory each costs (VmRSS, bench_idle_rss.py and
# bench_idle_tls_rss.py); then, unless BENCH_FULL_CHAIN=0, the full filter chain's CPU time per
# message and its ratio to direct (bench_chain.sh full, which sets up the DNS zones and keys
# that chain needs). Run on demand; not part of meson test.
#
#   BENCH_ROUNDS=3 BENCH_MESSAGES=10000 BENCH_SESSIONS=20 BENCH_IDLE_SESSIONS=10000 \
#     bash tests/bench/bench_node.sh
#
# The idle part needs about BENCH_IDLE_SESSIONS + 100 descriptors in each of the two processes
# (the script raises the soft limit to the hard one; it stops if the hard one is lower).
# Everything listens on 127.0.0.1 (ports found free at run time), every run is bounded by a
# timeout, and what the script starts is stopped by pid on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

rounds=${BENCH_ROUNDS:-3}
messages=${BENCH_MESSAGES:-10000}
sessions=${BENCH_SESSIONS:-20}
idle_sessions=${BENCH_IDLE_SESSIONS:-10000}
full_chain=${BENCH_FULL_CHAIN:-1}
cores=$(nproc)

source tests/bench/bench_lib.sh
build_portcullis

ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < idle_sessions + 100)); then
  log "the hard descriptor limit ($(ulimit -Hn)) is below $((idle_sessions + 100)): raise it"
  exit 1
fi

# Worker counts to compare: 1, 2 and "all" (workers = 0, one per core) when that is a third
# figure; on a 2-core machine "all" is the 2-worker instance.
worker_paths=(w1 w2)
((cores > 2)) && worker_paths+=(wall)
declare -A path_workers=([w1]=1 [w2]=2 [wall]=0)

read -r sink_port w1_port w2_port wall_port idle_port idle_tls_port < <(free_ports 6)
declare -A worker_port=([w1]=$w1_port [w2]=$w2_port [wall]=$wall_port)
start_sink "$sink_port"

path_port=([direct]=$sink_port)
for path in "${worker_paths[@]}"; do
  portcullis_workers=${path_workers[$path]} start_portcullis "$path" "${worker_port[$path]}" \
    "$sink_port" ""
  path_port[$path]=${worker_port[$path]}
  path_pid[$path]=$started_pid
done

clock_ticks=$(getconf CLK_TCK)
results=$work_dir/results
log "warm-up"
for path in "${worker_paths[@]}"; do warm_up "${path_port[$path]}"; done

echo "machine: $cores cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "throughput: $rounds rounds of $messages messages of 1000 bytes, $sessions parallel sessions;"
echo "            direct smtp-source → smtp-sink vs via Portcullis with 1, 2$(
  ((cores > 2)) && echo " and all ($cores)") workers"
paths=(direct "${worker_paths[@]}")
for round in $(seq "$rounds"); do
  for mode in new reuse; do
    for i in $(seq 0 $((${#paths[@]} - 1))); do # rotate who goes first
      run_source "$mode" "${paths[(round + i) % ${#paths[@]}]}" "$round"
    done
  done
done
echo "machine: load average $(cut -d' ' -f1-3 /proc/loadavg) after the throughput runs"

python3 tests/bench/relay_summary.py "$results" "$messages" "$clock_ticks" "w1=1 worker" \
  "w2=2 workers" "wall=all workers (one per core)"

for path in "${worker_paths[@]}"; do stop_pid "${path_pid[$path]}"; done

# Idle sessions: a fresh process each time (a process that already served and closed that many
# sessions reuses the freed memory, and the figure comes out too low). max_sessions leaves room
# above the count, so stress mode (from 80 % of it) does not start and shorten their wait.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=bench.example.test" -keyout "$work_dir/bench.key" -out "$work_dir/bench.crt" \
  2>/dev/null
chmod 644 "$work_dir/bench.key" # the bench's own throw-away key, read after the privilege drop
tls_block="[[listen]]
address = \"127.0.0.1:$idle_tls_port\"
tls     = \"bench\"

[tls.bench]
certificate = \"$work_dir/bench.crt\"
key         = \"$work_dir/bench.key\""
idle_status=0
for kind in plain tls; do
  portcullis_max_sessions=$((idle_sessions * 13 / 10 + 100)) portcullis_workers=0 \
    start_portcullis "idle-$kind" "$idle_port" "$sink_port" "" "$tls_block"
  idle_pid=$started_pid
  wait_for_listen "$idle_tls_port" "$idle_pid"
  echo "idle sessions ($kind, workers = 0), load average $(cut -d' ' -f1-3 /proc/loadavg):"
  if [[ $kind == plain ]]; then
    python3 tests/bench/bench_idle_rss.py --pid "$idle_pid" --port "$idle_port" \
      --sessions "$idle_sessions" --timeout 300 || idle_status=1
  else
    python3 tests/bench/bench_idle_tls_rss.py --pid "$idle_pid" --port "$idle_tls_port" \
      --sessions "$idle_sessions" --timeout 600 || idle_status=1
  fi
  stop_pid "$idle_pid"
done

if ((full_chain)); then
  echo "full chain (bench_chain.sh full, 2 kB DKIM-signed message):"
  BENCH_ROUNDS=$rounds BENCH_MESSAGES=$messages BENCH_SESSIONS=$sessions \
    bash tests/bench/bench_chain.sh full
fi
exit "$idle_status"
