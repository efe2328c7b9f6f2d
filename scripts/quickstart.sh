#!/usr/bin/env bash
# Quick start: installs the packages, builds, and runs Portcullis in front of a real, private
# Postfix on loopback, which relays to an smtp-sink that writes each message to a file:
#
#   swaks ──▶ Portcullis ──XCLIENT──▶ Postfix (private instance) ──▶ smtp-sink ──▶ files
#
# Portcullis runs with the pregreet, helo, fcrdns, dnsbl, spf and greylist filters (greylisting
# with a 5 s delay instead of 300 s), policies/default.toml, the rejection log and the metrics
# listener on, as a port-25 installation would. Its DNS
# filters ask a private unbound on loopback that serves the quick start's own zone (test.):
# the machine's resolver cannot be assumed to reach the Internet, and the SPF and DNSBL
# results the hints below show must not depend on what real domains publish.
#
# Everything lives in one private directory under ${TMPDIR:-/tmp}, listens on 127.0.0.1 on
# ports found free at run time, and is stopped (by pid) and removed on Ctrl-C.
#
#   QUICKSTART_SELFTEST=1  send one message with swaks (greylisted: 451, then delivered on the
#                          retry after the delay) and check it reached the sink, send the
#                          refused one and check the rejection log and the report name it, exit
#   QUICKSTART_KEEP=1      keep the private directory on exit (logs, delivered messages)
#   PORTCULLIS_BUILD_DIR   build directory (default: build)
set -euo pipefail

if ((EUID != 0)); then
  # Postfix's master and the privilege drop of smtp-sink and Portcullis need root. Before the
  # cd below, so that "$0" still names this script. TMPDIR goes as an argument of env: glibc
  # drops it from a setuid program's environment before sudo could keep it.
  if command -v sudo >/dev/null 2>&1; then
    exec sudo --preserve-env=QUICKSTART_SELFTEST,QUICKSTART_KEEP,PORTCULLIS_BUILD_DIR \
      env ${TMPDIR:+TMPDIR="$TMPDIR"} bash "$0" "$@"
  fi
  echo "quickstart: run as root (Postfix needs it)" >&2
  exit 1
fi
cd "$(dirname "$0")/.."

build_dir=${PORTCULLIS_BUILD_DIR:-build}
portcullis=$build_dir/proxy/portcullis
run_user=nobody

log() { printf 'quickstart: %s\n' "$*" >&2; }

bash scripts/install-deps.sh run
[[ -f $build_dir/meson-private/coredata.dat ]] || meson setup "$build_dir"
ninja -C "$build_dir" -j 2 proxy/portcullis

work_dir=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-quickstart.XXXX")
# Postfix's daemons and the unprivileged smtp-sink and Portcullis must traverse it.
chmod 755 "$work_dir"
postfix_dir=$work_dir/postfix
mail_dir=$work_dir/mail
state_dir=$work_dir/state
log_dir=$work_dir/log
rejection_log=$log_dir/rejections.jsonl
policy_file=$work_dir/policy/default.toml
config=$work_dir/portcullis.toml

sink_pid=
unbound_pid=
portcullis_pid=
postfix_started=

stop_pid() { # stop_pid PID NAME: SIGTERM, then SIGKILL after 5 s
  local pid=$1 name=$2
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) did not stop on SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  log "stopping"
  stop_pid "$portcullis_pid" portcullis
  if [[ -n $postfix_started ]]; then
    bash scripts/postfix-instance.sh stop "$postfix_dir" >&2 || true
  fi
  stop_pid "$sink_pid" smtp-sink
  stop_pid "$unbound_pid" unbound
  if [[ ${QUICKSTART_KEEP:-} == 1 ]]; then
    log "kept $work_dir"
  else
    rm -rf "$work_dir"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Binds N loopback ports at once (so they differ), prints them, and lets them go.
free_ports() {
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

wait_for_udp_port() { # wait_for_udp_port PORT NAME PID: until 127.0.0.1:PORT is bound (20 s)
  local port=$1 name=$2 pid=$3
  for _ in $(seq 200); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited before listening on port $port"
      return 1
    fi
    if grep -qE "^ *[0-9]+: 0100007F:$(printf '%04X' "$port") 00000000:0000 07 " /proc/net/udp; then
      return 0
    fi
    sleep 0.1
  done
  log "$name is not listening on UDP port $port after 20 s"
  return 1
}

wait_for_port() { # wait_for_port PORT NAME PID: until 127.0.0.1:PORT accepts (bounded: 20 s)
  local port=$1 name=$2 pid=$3
  for _ in $(seq 200); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited before listening on port $port"
      return 1
    fi
    # Read from /proc rather than connect: a probe connection would show up in the logs.
    if grep -qE "^ *[0-9]+: 0100007F:$(printf '%04X' "$port") 00000000:0000 0A " /proc/net/tcp
    then
      return 0
    fi
    sleep 0.1
  done
  log "$name is not listening on port $port after 20 s"
  return 1
}

read -r sink_port postfix_port proxy_port metrics_port dns_port < <(free_ports 5)
greylist_delay=5

install -d -o "$run_user" -m 755 "$mail_dir"
install -d -o "$run_user" -m 700 "$state_dir"
install -d -o "$run_user" -m 750 "$log_dir"

# policies/default.toml trusts all of 127.0.0.0/8, and every client here is on loopback: its
# copy trusts only 127.0.0.1, so that clients from 127.0.0.2 are judged as a stranger from the
# internet would be. Every rule stays as shipped.
install -d -m 755 "$(dirname "$policy_file")"
sed 's|^trusted_networks = .*|trusted_networks = ["127.0.0.1/32", "::1"]   # quickstart.sh: 127.0.0.2 is a stranger|' \
  policies/default.toml >"$policy_file"
if ! grep -q '^trusted_networks = \["127.0.0.1/32", "::1"\]' "$policy_file"; then
  log "policies/default.toml has no trusted_networks line any more; update quickstart.sh"
  exit 1
fi

# The quick start's DNS: example.test publishes SPF for loopback, forged.test only for
# 192.0.2.0/24; 127.0.0.2 has a confirmed name (PTR and A agree); dnsbl.example.test lists
# 127.0.0.3. Every other name under test. and 127.in-addr.arpa. does not exist.
bash scripts/unbound-config.sh "$dns_port" "$work_dir" >"$work_dir/unbound.conf" <<'EOF'
local-data: 'example.test. TXT "v=spf1 ip4:127.0.0.0/8 -all"'
local-data: 'forged.test. TXT "v=spf1 ip4:192.0.2.0/24 -all"'
local-data: 'client.example.test. A 127.0.0.2'
local-data: '2.0.0.127.in-addr.arpa. PTR client.example.test.'
local-data: '1.0.0.127.in-addr.arpa. PTR localhost.'
local-data: '3.0.0.127.dnsbl.example.test. A 127.0.0.2'
EOF
log "unbound on 127.0.0.1:$dns_port, serving the quick start's test. zone"
/usr/sbin/unbound -d -c "$work_dir/unbound.conf" &
unbound_pid=$!
wait_for_udp_port "$dns_port" unbound "$unbound_pid"

log "smtp-sink on 127.0.0.1:$sink_port, writing messages to $mail_dir"
/usr/sbin/smtp-sink -u "$run_user" -d "$mail_dir/%H%M%S." "127.0.0.1:$sink_port" 100 &
sink_pid=$!
wait_for_port "$sink_port" smtp-sink "$sink_pid"

log "Postfix on 127.0.0.1:$postfix_port in $postfix_dir, relaying to the sink"
postfix_started=yes
bash scripts/postfix-instance.sh start "$postfix_dir" "$postfix_port" "127.0.0.1:$sink_port" >&2

cat >"$config" <<EOF
# Written by scripts/quickstart.sh; see docs/configuration.md for every key.
[server]
hostname  = "portcullis.quickstart.test"
state_dir = "$state_dir"
workers   = 1
user      = "$run_user"

[[listen]]
address = "127.0.0.1:$proxy_port"
mode    = "smtp"

[upstream]
address     = "127.0.0.1:$postfix_port"
pass_client = "xclient"   # Postfix trusts XCLIENT from 127.0.0.1 only (smtpd_authorized_xclient_hosts)

[log]
main             = "stderr"
format           = "text"
rejections       = "$rejection_log"
all_transactions = true   # also a record per delivered message (with Postfix's queue id)

[metrics]
address = "127.0.0.1:$metrics_port"   # /metrics, /healthz, /readyz

[dns]
resolvers = ["127.0.0.1:$dns_port"]   # the private unbound above
timeout   = 2

[filters]
chain = ["pregreet", "helo", "fcrdns", "dnsbl", "spf", "greylist", "dkim", "dmarc"]

[filter.pregreet]
wait_ms = 1000   # the banner waits 1 s (6 s by default), so swaks's wait for it stays short

[filter.greylist]
delay = $greylist_delay   # a new sender waits $greylist_delay s (300 s by default), so you can watch its retry

[filter.helo]

[[filter.dnsbl.list]]
zone    = "dnsbl.example.test"
weight  = 3
answers = ["127.0.0.2-127.0.0.11"]

[policy]
files = ["$policy_file"]
EOF

log "checking $config"
"$portcullis" check --config "$config"

log "Portcullis on 127.0.0.1:$proxy_port (its log follows on stderr)"
"$portcullis" run --config "$config" &
portcullis_pid=$!
wait_for_port "$proxy_port" portcullis "$portcullis_pid"

swaks_args=(swaks --server 127.0.0.1 --port "$proxy_port" --from alice@example.test
  --to bob@example.test)
# To carol, not bob: the greylist filter records the triplets of trusted sessions too (only the
# policy's rules are skipped for them), and 127.0.0.1 and 127.0.0.2 share a /24, so after a
# message from 127.0.0.1 to bob the same triplet from 127.0.0.2 would not be new.
stranger_args=(swaks --server 127.0.0.1 --port "$proxy_port" --from alice@example.test
  --to carol@example.test --local-interface 127.0.0.2 --helo client.example.test)
refused_args=("${swaks_args[@]}" --local-interface 127.0.0.2 --helo 192.0.2.1)
spf_refused_args=(swaks --server 127.0.0.1 --port "$proxy_port" --from mallory@forged.test
  --to bob@example.test --local-interface 127.0.0.2 --helo client.example.test)
portcullis_path=$(realpath "$portcullis")
cat <<EOF

Portcullis is running in front of Postfix, with the pregreet, helo, fcrdns, dnsbl, spf,
greylist, dkim and dmarc filters (asking a private unbound for the test. zone) and
policies/default.toml (a copy that trusts only 127.0.0.1). Send a message from 127.0.0.1,
which is trusted (the banner waits 1 s: the pregreet check):

    ${swaks_args[*]}

From 127.0.0.2, a stranger, the first attempt of a sender and recipient is greylisted:
"451 4.7.1 Greylisted, please retry in ${greylist_delay}s" (rule "greylist unknown triplets"). The
same command again after $greylist_delay s is delivered, and Postfix's Received header names
client.example.test [127.0.0.2] (XCLIENT: the name fcrdns confirmed), not the proxy; the
message carries "Authentication-Results: portcullis.quickstart.test; iprev=pass ...;
spf=pass ...":

    ${stranger_args[*]}

Delivered messages appear as files in
    $mail_dir/

A client that greets with a bare address is refused at RCPT with
"554 5.5.2 HELO/EHLO: write an address as a literal" (rule "helo is a bare address"):

    ${refused_args[*]}

A sender whose domain's SPF does not allow 127.0.0.2 is refused at MAIL with
"550 5.7.23 SPF validation failed for forged.test" (rule "spf fail"), and a client the
blocklist lists (--local-interface 127.0.0.3) at RCPT with "554 5.7.1" (rule "dnsbl listed"):

    ${spf_refused_args[*]}

The refusal in the rejection log (one JSON line per refusal), watched as it happens (jq and
curl are optional: apt-get install jq curl), and the summary of the log:

    grep '"rule":"helo is a bare address"' $rejection_log
    tail -f $rejection_log | jq .
    $portcullis_path report $rejection_log

Metrics: curl -s http://127.0.0.1:$metrics_port/metrics | grep ^portcullis_decisions_total
Postfix logs to $postfix_dir/postfix.log. Ctrl-C stops everything and removes $work_dir.

EOF

if [[ ${QUICKSTART_SELFTEST:-} != 1 ]]; then
  wait "$portcullis_pid" || true
  portcullis_pid=
  log "portcullis exited"
  exit 1
fi

# Self-test: one message from 127.0.0.2, greylisted at its first attempt and delivered on the
# retry after the delay; it must reach the sink with Postfix naming client.example.test[127.0.0.2]
# (not the proxy's 127.0.0.1) as the client: proof that XCLIENT worked and carried the name
# fcrdns confirmed; SPF passed.
token=quickstart-$RANDOM$RANDOM
send_token() {
  "${stranger_args[@]}" --header "Subject: $token" --body "Portcullis quick start self-test" \
    </dev/null 2>&1
}
log "self-test: sending one message (Subject: $token), greylisted at first"
if first_output=$(send_token); then
  log "SELF-TEST FAILED: the first attempt from 127.0.0.2 was not greylisted:"
  printf '%s\n' "$first_output" >&2
  exit 1
fi
if ! grep -q "<\*\* 451 4\.7\.1 Greylisted, please retry in ${greylist_delay}s" <<<"$first_output"; then
  log "SELF-TEST FAILED: swaks did not see the 451 4.7.1 greylisting:"
  printf '%s\n' "$first_output" >&2
  exit 1
fi
log "self-test: greylisted (451 4.7.1); retrying after $((greylist_delay + 1)) s"
sleep $((greylist_delay + 1))
if ! retry_output=$(send_token); then
  log "SELF-TEST FAILED: the retry after the greylist delay was not accepted:"
  printf '%s\n' "$retry_output" >&2
  exit 1
fi
for _ in $(seq 300); do
  delivered=$(grep -l -- "$token" "$mail_dir"/* 2>/dev/null | head -n 1 || true)
  [[ -n $delivered ]] && break
  sleep 0.1
done
if [[ -z $delivered ]]; then
  log "SELF-TEST FAILED: the message did not reach the sink within 30 s"
  exit 1
fi
if ! grep -q -- "client\.example\.test \[127\.0\.0\.2\]" "$delivered"; then
  log "SELF-TEST FAILED: Postfix did not see the real client client.example.test[127.0.0.2] (XCLIENT):"
  grep -i "^Received:" -A1 "$delivered" >&2 || true
  exit 1
fi
if ! grep -q -- "spf=pass smtp\.mailfrom=example\.test" "$delivered"; then
  log "SELF-TEST FAILED: no spf=pass in the message's Authentication-Results:"
  grep -i "^Authentication-Results:" -A2 "$delivered" >&2 || true
  exit 1
fi
log "self-test: delivered to $delivered on the retry, Postfix saw client client.example.test[127.0.0.2], spf=pass"

# The refused line exactly as printed above: swaks must fail on the RCPT's 554, the rejection
# log must hold the refusal and the report must count it under its rule.
log "self-test: sending the refused line"
if refused_output=$("${refused_args[@]}" </dev/null 2>&1); then
  log "SELF-TEST FAILED: the bare-address HELO was not refused:"
  printf '%s\n' "$refused_output" >&2
  exit 1
fi
if ! grep -q '<\*\* 554 5\.5\.2 HELO/EHLO: write an address as a literal' <<<"$refused_output"; then
  log "SELF-TEST FAILED: swaks did not see the 554 5.5.2 refusal:"
  printf '%s\n' "$refused_output" >&2
  exit 1
fi
refusal='"client_ip":"127.0.0.2".*"helo":"192.0.2.1".*"rule":"helo is a bare address","mode":"enforce","action":"reject"'
for _ in $(seq 100); do
  grep -q -- "$refusal" "$rejection_log" 2>/dev/null && break
  sleep 0.1
done
if ! grep -q -- "$refusal" "$rejection_log" 2>/dev/null; then
  log "SELF-TEST FAILED: the refusal is not in $rejection_log within 10 s:"
  cat "$rejection_log" >&2 2>/dev/null || true
  exit 1
fi
report=$("$portcullis_path" report "$rejection_log")
if ! grep -qE '^ +1  helo is a bare address$' <<<"$report"; then
  log "SELF-TEST FAILED: portcullis report does not count the refusal under its rule:"
  printf '%s\n' "$report" >&2
  exit 1
fi
log "self-test: sending the SPF-refused line"
if spf_output=$("${spf_refused_args[@]}" </dev/null 2>&1); then
  log "SELF-TEST FAILED: the forged.test sender was not refused:"
  printf '%s\n' "$spf_output" >&2
  exit 1
fi
if ! grep -q '<\*\* 550 5\.7\.23 SPF validation failed for forged\.test' <<<"$spf_output"; then
  log "SELF-TEST FAILED: swaks did not see the 550 5.7.23 refusal:"
  printf '%s\n' "$spf_output" >&2
  exit 1
fi
log "self-test: sending from the listed client 127.0.0.3"
if listed_output=$("${swaks_args[@]}" --local-interface 127.0.0.3 --helo client.example.test \
  </dev/null 2>&1); then
  log "SELF-TEST FAILED: the listed client 127.0.0.3 was not refused:"
  printf '%s\n' "$listed_output" >&2
  exit 1
fi
if ! grep -q '<\*\* 554 5\.7\.1 Service unavailable; client \[127\.0\.0\.3\] blocked using DNS blocklists' \
  <<<"$listed_output"; then
  log "SELF-TEST FAILED: swaks did not see the 554 5.7.1 DNSBL refusal:"
  printf '%s\n' "$listed_output" >&2
  exit 1
fi
log "self-test passed: greylisted once, then delivered to $delivered, Postfix saw client client.example.test[127.0.0.2] with spf=pass; the bare-address HELO, the forged.test sender (SPF) and the listed 127.0.0.3 (DNSBL) were refused; the HELO refusal is in the rejection log and the report"
