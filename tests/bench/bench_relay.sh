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
build_dir=${PORTCULLIS_BUILD_DIR:-build}
portcullis=$build_dir/proxy/portcullis
target_ratio=0.60

log() { printf 'bench: %s\n' "$*" >&2; }

[[ -f $build_dir/meson-private/coredata.dat ]] || meson setup "$build_dir" >&2
ninja -C "$build_dir" -j 2 proxy/portcullis >&2

# 2000 idle sessions, and smtp-sink's connections: more descriptors than the usual 1024.
ulimit -n "$(ulimit -Hn)"

work_dir=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-bench.XXXX")
chmod 755 "$work_dir"
sink_pid=
portcullis_pid=
pinned_pid=

stop_pid() { # stop_pid PID: SIGTERM, then SIGKILL after 5 s
  local pid=$1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_pid "$portcullis_pid"
  stop_pid "$pinned_pid"
  stop_pid "$sink_pid"
  rm -rf "$work_dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_ports() { # free_ports N: N distinct free loopback ports
  python3 - "$1" <<'PY'
import socket, sys
sockets = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    sockets.append(s)
print(" ".join(str(s.getsockname()[1]) for s in sockets))
PY
}

wait_for_listen() { # wait_for_listen PORT PID (bounded: 20 s)
  local port_hex
  port_hex=$(printf '%04X' "$1")
  for _ in $(seq 200); do
    kill -0 "$2" 2>/dev/null || return 1
    grep -qE "^ *[0-9]+: 0100007F:$port_hex 00000000:0000 0A " /proc/net/tcp && return 0
    sleep 0.1
  done
  return 1
}

cpu_ticks() { # utime + stime of PID, in clock ticks (/proc/PID/stat fields 14 and 15)
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) } # the command name may hold spaces; the fields after it do not
  local -a fields
  read -r -a fields <<<"$stat"
  # After the name, field 3 (state) is at index 0, so field N is at index N - 3.
  echo $((fields[11] + fields[12]))
}

read -r sink_port proxy_port pinned_port < <(free_ports 3)

sink_user=()
run_user_line=
state_dir=$work_dir/state
mkdir -p "$state_dir"
if ((EUID == 0)); then
  sink_user=(-u nobody)
  run_user_line='user = "nobody"'
  chown nobody "$state_dir"
fi

/usr/sbin/smtp-sink "${sink_user[@]}" "127.0.0.1:$sink_port" 1000 &
sink_pid=$!
wait_for_listen "$sink_port" "$sink_pid" || {
  log "smtp-sink did not start"
  exit 1
}

# start_portcullis NAME PORT EXTRA_SERVER_LINE: one instance in front of the same smtp-sink;
# sets started_pid.
start_portcullis() {
  local name=$1 port=$2 extra=$3
  cat >"$work_dir/$name.toml" <<EOF
[server]
state_dir = "$state_dir"
workers   = 2
$run_user_line
$extra

[[listen]]
address = "127.0.0.1:$port"

[upstream]
address     = "127.0.0.1:$sink_port"
pass_client = "none"   # smtp-sink takes no client identity
# idle_timeout stays at its default (5 s): kept connections serve the next sessions

[limits]
max_sessions        = 5000
max_sessions_per_ip = 5000

[log]
main = "$work_dir/$name.log"
EOF
  "$portcullis" run --config "$work_dir/$name.toml" 2>"$work_dir/$name.stderr" &
  started_pid=$!
  wait_for_listen "$port" "$started_pid" || {
    log "portcullis ($name) did not start:"
    cat "$work_dir/$name.stderr" >&2
    exit 1
  }
}

# "via": the default settings (cpu_scheduling = "batch", workers free to move between CPUs);
# "pinned": the same with pin_workers = true (docs/configuration.md), the setting for a machine
# that serves mostly mail. Both wait side by side; only the one under test gets messages.
start_portcullis via "$proxy_port" ""
portcullis_pid=$started_pid
start_portcullis pinned "$pinned_port" "pin_workers = true"
pinned_pid=$started_pid

clock_ticks=$(getconf CLK_TCK)
results=$work_dir/results

# One smtp-source run; appends "MODE PATH ROUND MSGS_PER_S CPU_TICKS" to $results.
run_source() { # run_source MODE(new|reuse) PATH(direct|via|pinned) ROUND
  local mode=$1 path=$2 round=$3
  local port=$sink_port pid=
  case $path in
    via) port=$proxy_port pid=$portcullis_pid ;;
    pinned) port=$pinned_port pid=$pinned_pid ;;
  esac
  local reuse=()
  [[ $mode == reuse ]] && reuse=(-d)
  local ticks_before=0 ticks_after=0 start_ns end_ns
  [[ -n $pid ]] && ticks_before=$(cpu_ticks "$pid")
  start_ns=$(date +%s%N)
  if ! timeout 300 /usr/sbin/smtp-source "${reuse[@]}" -s "$sessions" -m "$messages" -l 1000 \
    -f alice@example.test -t bob@example.test "127.0.0.1:$port" 2>"$work_dir/source.err"; then
    log "smtp-source failed ($mode, $path, round $round):"
    head -5 "$work_dir/source.err" >&2
    exit 1
  fi
  end_ns=$(date +%s%N)
  [[ -n $pid ]] && ticks_after=$(cpu_ticks "$pid")
  local rate
  rate=$(((messages * 1000000000) / (end_ns - start_ns)))
  echo "$mode $path $round $rate $((ticks_after - ticks_before))" >>"$results"
  printf '  round %d %-5s %-6s %6d msg/s\n' "$round" "$mode" "$path" "$rate"
}

log "warm-up"
for port in "$proxy_port" "$pinned_port"; do
  timeout 60 /usr/sbin/smtp-source -s 5 -m 100 -l 1000 -f alice@example.test \
    -t bob@example.test "127.0.0.1:$port"
done

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

python3 - "$results" "$messages" "$clock_ticks" "$target_ratio" <<'PY'
import statistics, sys
from collections import defaultdict

results, messages, clock_ticks, target = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rates = defaultdict(dict)   # mode -> {(path, round): msgs/s}
ticks = defaultdict(int)    # (mode, path) -> Portcullis CPU ticks during its runs
runs = defaultdict(int)
for line in open(results):
    mode, path, round_, rate, cpu = line.split()
    rates[mode][(path, int(round_))] = int(rate)
    ticks[(mode, path)] += int(cpu)
    runs[(mode, path)] += 1

titles = {"new": "new connection per message", "reuse": "connections reused (-d)"}
labels = {"via": "via Portcullis, defaults", "pinned": "via Portcullis, pin_workers"}
print("summary (ratio: median of the per-round via/direct ratios):")
for mode in ("new", "reuse"):
    by_round = sorted({r for _, r in rates[mode]})
    direct = statistics.median(rates[mode][("direct", r)] for r in by_round)
    print(f"  {titles[mode]}: direct {direct:.0f} msg/s (median)")
    for path in ("via", "pinned"):
        via = statistics.median(rates[mode][(path, r)] for r in by_round)
        per_round = [rates[mode][(path, r)] / rates[mode][("direct", r)] for r in by_round]
        ratio = statistics.median(per_round)
        cpu_ms = ticks[(mode, path)] * 1000 / clock_ticks / (messages * runs[(mode, path)])
        verdict = "met" if ratio >= target else "NOT met"
        rounds_text = " ".join(f"{r:.2f}" for r in per_round)
        print(f"    {labels[path]}: {via:.0f} msg/s, ratio {ratio:.2f}x "
              f"(target >= {target:.2f}x: {verdict}; by round {rounds_text}); "
              f"Portcullis CPU {cpu_ms:.3f} ms/message")
PY

echo "machine: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"

if ((idle_sessions > 0)); then
  python3 tests/bench/bench_idle_rss.py --pid "$portcullis_pid" --port "$proxy_port" \
    --sessions "$idle_sessions"
fi
