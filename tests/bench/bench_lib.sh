# Shell functions the relay benchmarks share (bench_relay.sh, bench_chain.sh, bench_node.sh):
# sourced, not run. The script sourcing it sets `set -euo pipefail` and is in the source root.
# Their summaries of msgs/s, ratios to direct and CPU per message: relay_summary.py.
#
# What it sets up when sourced: build_dir and portcullis (PORTCULLIS_BUILD_DIR, default
# build), work_dir (removed on exit), state_dir, sink_user and run_user_line (nobody when
# root), and an EXIT trap that stops every process given to track_pid, newest first.

build_dir=${PORTCULLIS_BUILD_DIR:-build}
portcullis=$build_dir/proxy/portcullis

log() { printf 'bench: %s\n' "$*" >&2; }

build_portcullis() {
  [[ -f $build_dir/meson-private/coredata.dat ]] || meson setup "$build_dir" >&2
  ninja -C "$build_dir" -j 2 proxy/portcullis >&2
}

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

tracked_pids=()
track_pid() { tracked_pids+=("$1"); }

bench_cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local i
  for ((i = ${#tracked_pids[@]} - 1; i >= 0; i--)); do
    stop_pid "${tracked_pids[i]}"
  done
  rm -rf "$work_dir"
  exit "$status"
}

work_dir=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-bench.XXXX")
chmod 755 "$work_dir"
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_ports() { # free_ports N: N distinct loopback ports free for both TCP and UDP
  python3 - "$1" <<'PY'
import socket, sys
held, ports = [], []
while len(ports) < int(sys.argv[1]):
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    port = tcp.getsockname()[1]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        udp.bind(("127.0.0.1", port))
    except OSError:
        held.append(tcp)  # keep it bound so it is not offered again
        continue
    held += [tcp, udp]
    ports.append(port)
print(" ".join(map(str, ports)))
PY
}

wait_for_listen() { # wait_for_listen PORT PID (bounded: 20 s): a TCP listener on 127.0.0.1:PORT
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

state_dir=$work_dir/state
mkdir -p "$state_dir"
sink_user=()
run_user_line=
if ((EUID == 0)); then
  sink_user=(-u nobody)
  run_user_line='user = "nobody"'
  chown nobody "$state_dir"
fi

start_sink() { # start_sink PORT: smtp-sink on 127.0.0.1:PORT; sets sink_pid
  /usr/sbin/smtp-sink "${sink_user[@]}" "127.0.0.1:$1" 1000 &
  sink_pid=$!
  track_pid "$sink_pid"
  wait_for_listen "$1" "$sink_pid" || {
    log "smtp-sink did not start"
    exit 1
  }
}

# start_portcullis NAME PORT SINK_PORT EXTRA_SERVER_LINE [MORE_TOML]: one instance in front of
# the smtp-sink on SINK_PORT, its config $work_dir/NAME.toml; sets started_pid. The caller may
# set portcullis_workers (default 2) and portcullis_max_sessions (default 5000; also the
# per-address limit, since every bench client is 127.0.0.1).
start_portcullis() {
  local name=$1 port=$2 sink_port=$3 extra=$4 more=${5:-}
  cat >"$work_dir/$name.toml" <<EOF
[server]
state_dir = "$state_dir"
workers   = ${portcullis_workers:-2}
$run_user_line
$extra

[[listen]]
address = "127.0.0.1:$port"

[upstream]
address     = "127.0.0.1:$sink_port"
pass_client = "none"   # smtp-sink takes no client identity
# idle_timeout stays at its default (5 s): kept connections serve the next sessions

[limits]
max_sessions        = ${portcullis_max_sessions:-5000}
max_sessions_per_ip = ${portcullis_max_sessions:-5000}

[log]
main = "$work_dir/$name.log"
$more
EOF
  "$portcullis" run --config "$work_dir/$name.toml" 2>"$work_dir/$name.stderr" &
  started_pid=$!
  track_pid "$started_pid"
  wait_for_listen "$port" "$started_pid" || {
    log "portcullis ($name) did not start:"
    cat "$work_dir/$name.stderr" >&2
    exit 1
  }
}

# timed_source MODE(new|reuse) PORT PID MESSAGES SESSIONS: one bounded smtp-source run against
# 127.0.0.1:PORT; sets source_rate (msgs/s) and source_ticks (CPU ticks PID used during it;
# 0 without PID). The message is smtp-source's own 1000 bytes, or the file source_message
# names (smtp-source -F: header and body, LF line ends).
source_message=
timed_source() {
  local mode=$1 port=$2 pid=$3 messages=$4 sessions=$5
  local reuse=() content=(-l 1000)
  [[ $mode == reuse ]] && reuse=(-d)
  [[ -n $source_message ]] && content=(-F "$source_message")
  local ticks_before=0 ticks_after=0 start_ns end_ns
  [[ -n $pid ]] && ticks_before=$(cpu_ticks "$pid")
  start_ns=$(date +%s%N)
  if ! timeout 300 /usr/sbin/smtp-source "${reuse[@]}" -s "$sessions" -m "$messages" "${content[@]}" \
    -f alice@example.test -t bob@example.test "127.0.0.1:$port" 2>"$work_dir/source.err"; then
    log "smtp-source failed ($mode, port $port):"
    head -5 "$work_dir/source.err" >&2
    # A refusal from a filter that failed: the instances' main logs say which and why.
    grep -h 'filter_problem\|store_' "$work_dir"/*.log 2>/dev/null | tail -5 >&2 || true
    exit 1
  fi
  end_ns=$(date +%s%N)
  [[ -n $pid ]] && ticks_after=$(cpu_ticks "$pid")
  source_rate=$(((messages * 1000000000) / (end_ns - start_ns)))
  source_ticks=$((ticks_after - ticks_before))
}

# run_source MODE(new|reuse) PATH ROUND [GROUP]: one measured run of PATH, which names a port
# in path_port (and, for a Portcullis instance, its pid in path_pid: associative arrays the
# script fills); appends "GROUP PATH ROUND MSGS_PER_S CPU_TICKS" to $results (GROUP defaults
# to MODE) and prints the rate, with the load average (1, 5, 15 min) when the run ended: the
# machine may be shared, and a figure is read with the load it was measured under.
declare -A path_port=() path_pid=()
run_source() {
  local mode=$1 path=$2 round=$3 group=${4:-$1}
  timed_source "$mode" "${path_port[$path]}" "${path_pid[$path]:-}" "$messages" "$sessions"
  echo "$group $path $round $source_rate $source_ticks" >>"$results"
  printf '  round %d %-12s %-6s %6d msg/s  (load %s)\n' "$round" "$group" "$path" "$source_rate" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
}

warm_up() { # warm_up PORT...: 100 messages (source_message's, if set) through each
  local port content=(-l 1000)
  [[ -n $source_message ]] && content=(-F "$source_message")
  for port in "$@"; do
    timeout 60 /usr/sbin/smtp-source -s 5 -m 100 "${content[@]}" -f alice@example.test \
      -t bob@example.test "127.0.0.1:$port"
  done
}
