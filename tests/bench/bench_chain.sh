#!/usr/bin/env bash
# What a filter chain costs: smtp-source → smtp-sink (direct), smtp-source → Portcullis →
# smtp-sink without filters (plain) and with the profile's chain (chain), alternating in one
# run, with a new connection per message and with connection reuse (-d). The filters ask a
# local unbound (its zones below) and their caches are warm when the measured runs start.
#
#   bash tests/bench/bench_chain.sh dns    chain = ["fcrdns", "dnsbl", "spf"] on smtp-source's
#                                          1000-byte message; target chain ≥ 0.80× plain (#13)
#   bash tests/bench/bench_chain.sh auth   chain = ["fcrdns", "spf", "dkim", "dmarc"] on a
#                                          DKIM-signed 2 kB and 100 kB message (a key made for
#                                          the run, signed by dkimpy's dkimsign); target chain
#                                          ≥ 0.70× plain at 2 kB (#14)
#   bash tests/bench/bench_chain.sh state  chain = ["ratelimit", "greylist"] with limits that
#                                          never trip and a triplet that has passed (the
#                                          warm-up passes it: delay 1 s, retried), once on the
#                                          LMDB store (path lmdb) and once on a Redis store
#                                          (path redis: a redis-server of the run's own);
#                                          targets lmdb ≥ 0.80× and redis ≥ 0.70× plain (#15)
#   bash tests/bench/bench_chain.sh full   chain = fcrdns, dnsbl, spf, ratelimit, greylist,
#                                          dkim, dmarc on the DKIM-signed 2 kB message, LMDB;
#                                          target chain ≥ 0.60× direct (#15)
#
# Prints msgs/s (each run with the load average when it ended), the chain/plain,
# chain/direct and plain/direct ratios (per round and their median), Portcullis's CPU time per
# message, and whether the target is met. Fails when the chain did not really run: in the
# measured runs every filter must have answered `ok` every time, with no DNS failure and no
# store error, and the facts must be those the zones and the store give (observe-mode rules
# count every transaction where they are not: e.g. greylist not 'passed', a limit exceeded).
# Run on demand; not part of meson test.
#
#   BENCH_ROUNDS=5 BENCH_MESSAGES=10000 BENCH_SESSIONS=20 bash tests/bench/bench_chain.sh dns
#
# BENCH_SIZES="2kB" (auth only) measures only those message sizes (NkB each).
# BENCH_STORES="lmdb" (state only) measures only those stores (lmdb, redis).
# BENCH_PERF=FILE also records a call-graph profile of the (first) chain instance during the
# measured runs (perf record -g; read it with `perf report -i FILE`); BENCH_PERF_PATH=redis
# profiles the state profile's Redis instance instead.
#
# Everything listens on 127.0.0.1 (ports found free at run time), every run and wait is
# bounded, and what the script starts is stopped by pid on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

profile=${1:-dns}
rounds=${BENCH_ROUNDS:-5}
messages=${BENCH_MESSAGES:-10000}
sessions=${BENCH_SESSIONS:-20}

source tests/bench/bench_lib.sh

# smtp-source connects from 127.0.0.1 and sends MAIL FROM:<alice@example.test>. The zones make
# every filter do its full work and pass: the PTR of 127.0.0.1 names a host whose A is
# 127.0.0.1 (fcrdns = pass), the block list does not list 127.0.0.1 (NXDOMAIN, dnsbl.score =
# 0), example.test's SPF record allows 127.0.0.0/8 (spf = pass); for auth, the message is
# signed by example.test (dkim = pass) and example.test publishes DMARC (dmarc = pass).
zone_data=(
  "local-data: 'example.test. TXT \"v=spf1 ip4:127.0.0.0/8 -all\"'"
  'local-data: "mail.example.test. A 127.0.0.1"'
  'local-data: "1.0.0.127.in-addr.arpa. PTR mail.example.test."'
)
# The state filters' facts: every limit admitted (they allow 10^9 per minute), the triplet
# passed. A comparison with an absent fact is unknown, not true: present() catches absence.
state_facts="not present(greylist) or greylist != 'passed'"
for limit in conn msgs rcpts; do
  state_facts+=" or not present(rate.$limit.exceeded) or rate.$limit.exceeded"
done
# Per profile: the chain instances (paths), the targets ("OVER/UNDER=RATIO", for the groups
# target_groups matches), the observe rules ("PHASE|CONDITION": true = unexpected facts), the
# DNS query types the chain must have asked, and whether a DKIM-signed message is made.
chains=(chain)
dns_kinds=(PTR A TXT)
signed=no
case $profile in
  dns)
    targets=(chain/plain=0.80)
    target_groups="*"
    chain='"fcrdns", "dnsbl", "spf"'
    filters=(fcrdns dnsbl spf)
    facts_rules=("mail|fcrdns != 'pass' or dnsbl.score != 0 or spf != 'pass'")
    sizes=("")
    title="DNS chain (fcrdns, dnsbl, spf)"
    ;;
  auth)
    targets=(chain/plain=0.70)
    target_groups="*@2kB"
    chain='"fcrdns", "spf", "dkim", "dmarc"'
    filters=(fcrdns spf dkim dmarc)
    facts_rules=("data|fcrdns != 'pass' or spf != 'pass' or dkim != 'pass' or dmarc != 'pass'")
    read -r -a sizes <<<"${BENCH_SIZES:-2kB 100kB}"
    signed=yes
    title="authentication chain (fcrdns, spf, dkim, dmarc)"
    ;;
  state)
    read -r -a chains <<<"${BENCH_STORES:-lmdb redis}"
    targets=(lmdb/plain=0.80 redis/plain=0.70)
    target_groups="*"
    chain='"ratelimit", "greylist"'
    filters=(ratelimit greylist)
    facts_rules=("rcpt|$state_facts")
    dns_kinds=()
    sizes=("")
    title="state chain (ratelimit, greylist) on LMDB and on Redis"
    ;;
  full)
    targets=(chain/direct=0.60)
    target_groups="*@2kB"
    chain='"fcrdns", "dnsbl", "spf", "ratelimit", "greylist", "dkim", "dmarc"'
    filters=(fcrdns dnsbl spf ratelimit greylist dkim dmarc)
    facts_rules=("rcpt|fcrdns != 'pass' or dnsbl.score != 0 or spf != 'pass' or $state_facts"
      "data|dkim != 'pass' or dmarc != 'pass'")
    sizes=("2kB")
    signed=yes
    title="full chain (fcrdns, dnsbl, spf, ratelimit, greylist, dkim, dmarc), LMDB"
    ;;
  *)
    echo "usage: ${0##*/} dns|auth|state|full" >&2
    exit 2
    ;;
esac

build_portcullis
ulimit -n "$(ulimit -Hn)"

if [[ $signed == yes ]]; then
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work_dir/dkim.key" 2>/dev/null
  public_key=$(openssl pkey -in "$work_dir/dkim.key" -pubout -outform DER | openssl base64 -A)
  # TXT strings hold at most 255 bytes (RFC 1035 3.3.14).
  record="v=DKIM1; k=rsa; p=$public_key" strings=""
  while [[ -n $record ]]; do
    strings+=" \"${record:0:255}\""
    record=${record:255}
  done
  zone_data+=("local-data: 'sel._domainkey.example.test. TXT$strings'")
  zone_data+=("local-data: '_dmarc.example.test. TXT \"v=DMARC1; p=reject\"'")
  for size in "${sizes[@]}"; do
    bytes=$((${size%kB} * 1000))
    {
      printf 'From: Alice <alice@example.test>\nTo: bob@example.test\n'
      printf 'Subject: bench %s\nDate: Mon, 07 Dec 2026 10:00:00 +0000\n' "$size"
      printf 'Message-ID: <bench-%s@example.test>\n\n' "$size"
      line="The quick brown fox jumps over the lazy dog; the body of a benchmark message."
      while ((bytes > 0)); do
        printf '%s\n' "$line"
        bytes=$((bytes - ${#line} - 1))
      done
    } >"$work_dir/unsigned-$size.eml"
    dkimsign --hcanon relaxed --bcanon relaxed sel example.test "$work_dir/dkim.key" \
      <"$work_dir/unsigned-$size.eml" >"$work_dir/message-$size.eml"
  done
fi

read -r -a ports < <(free_ports $((4 + 2 * ${#chains[@]})))
sink_port=${ports[0]} plain_port=${ports[1]} dns_port=${ports[2]} redis_port=${ports[3]}
declare -A chain_port=() metrics_port=()
for i in "${!chains[@]}"; do
  chain_port[${chains[i]}]=${ports[4 + 2 * i]}
  metrics_port[${chains[i]}]=${ports[5 + 2 * i]}
done
start_sink "$sink_port"

dnsbl_zone=bl.test
printf '%s\n' "${zone_data[@]}" |
  bash scripts/unbound-config.sh "$dns_port" "$work_dir" >"$work_dir/unbound.conf"
unbound -d -c "$work_dir/unbound.conf" >"$work_dir/unbound.log" 2>&1 &
unbound_pid=$!
track_pid "$unbound_pid"
wait_for_listen "$dns_port" "$unbound_pid" || {
  log "unbound did not start:"
  cat "$work_dir/unbound.log" >&2
  exit 1
}

if [[ " ${chains[*]} " == *" redis "* ]]; then
  mkdir -p "$work_dir/redis"
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$work_dir/redis" --daemonize no >"$work_dir/redis.log" 2>&1 &
  redis_pid=$!
  track_pid "$redis_pid"
  wait_for_listen "$redis_port" "$redis_pid" || {
    log "redis-server did not start:"
    cat "$work_dir/redis.log" >&2
    exit 1
  }
fi

{
  echo '# Observe mode: never changes a session; counted in portcullis_decisions_total{mode="observe"}.'
  for rule in "${facts_rules[@]}"; do
    cat <<EOF

[[rule]]
name  = "chain facts differ from the zones and the store (${rule%%|*})"
phase = "${rule%%|*}"
mode  = "observe"
when  = "${rule#*|}"
then  = "reject 554 5.7.1 bench: unexpected facts"
EOF
  done
} >"$work_dir/facts.toml"

# The filters' settings, the same for every chain instance (each takes what its chain uses): a
# list that does not list 127.0.0.1, limits that never trip (10^9 per minute), a greylist
# delay of 1 s (the shortest) that the warm-up waits out.
filter_toml="
[dns]
resolvers = [\"127.0.0.1:$dns_port\"]

[filters]
chain = [$chain]

[[filter.dnsbl.list]]
zone = \"$dnsbl_zone\"
"
if [[ " ${filters[*]} " == *" greylist "* ]]; then
  filter_toml+="
[filter.greylist]
delay = 1
"
fi
if [[ " ${filters[*]} " == *" ratelimit "* ]]; then
  for limit in conn:client.ip:connections msgs:sender:messages rcpts:rcpt:recipients; do
    IFS=: read -r name key counter <<<"$limit"
    filter_toml+="
[[filter.ratelimit.limit]]
name    = \"$name\"
key     = \"$key\"
counter = \"$counter\"
limit   = 1000000000
per     = 60
"
  done
fi

start_portcullis plain "$plain_port" "$sink_port" ""
plain_pid=$started_pid
path_port=([direct]=$sink_port [plain]=$plain_port)
path_pid=([plain]=$plain_pid)
for name in "${chains[@]}"; do
  store_toml="" # LMDB, the default: store.mdb in state_dir
  if [[ $name == redis ]]; then
    store_toml="
[store]
backend = \"redis\"

[store.redis]
address = \"127.0.0.1:$redis_port\"
"
  fi
  start_portcullis "$name" "${chain_port[$name]}" "$sink_port" "" "
[metrics]
address = \"127.0.0.1:${metrics_port[$name]}\"
$store_toml$filter_toml
[policy]
files = [\"$work_dir/facts.toml\"]
"
  path_port[$name]=${chain_port[$name]}
  path_pid[$name]=$started_pid
done

read_metrics() { # read_metrics SUFFIX: each chain instance's /metrics to $work_dir/metrics.NAME.SUFFIX
  local name
  for name in "${chains[@]}"; do
    timeout 10 curl -sf "http://127.0.0.1:${metrics_port[$name]}/metrics" \
      >"$work_dir/metrics.$name.$1" || {
      log "could not read the $name instance's /metrics"
      exit 1
    }
  done
}

clock_ticks=$(getconf CLK_TCK)
results=$work_dir/results

# The first sessions fill each worker's libunbound cache; the measured ones then find their
# answers there, as a busy server does. The greylist's first attempt is new (the next ones
# early); after its 1 s delay a second warm-up passes the triplet, so that the measured runs
# renew a passed triplet, as a known sender's mail does.
log "warm-up"
chain_ports=()
for name in "${chains[@]}"; do chain_ports+=("${chain_port[$name]}"); done
for size in "${sizes[@]}"; do
  source_message=${size:+$work_dir/message-$size.eml}
  warm_up "$plain_port" "${chain_ports[@]}"
  if [[ " ${filters[*]} " == *" greylist "* ]]; then
    sleep 2
    warm_up "${chain_ports[@]}"
  fi
done
# What the warm-up counted (a new triplet, early ones) is not the measured runs': the checks
# below look only at what changed after it.
read_metrics before

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "$title: $rounds rounds of $messages messages, $sessions parallel sessions;"
echo "       smtp-source → smtp-sink (direct) vs smtp-source → Portcullis → smtp-sink"
echo "       (plain: no filters; ${chains[*]}: the filters against a local unbound)"
paths=(direct plain "${chains[@]}")
if [[ -n ${BENCH_PERF:-} ]]; then
  perf record -q -g -p "${path_pid[${BENCH_PERF_PATH:-${chains[0]}}]}" -o "$BENCH_PERF" \
    2>"$work_dir/perf.err" &
  perf_pid=$!
  track_pid "$perf_pid"
fi
for round in $(seq "$rounds"); do
  for size in "${sizes[@]}"; do
    source_message=${size:+$work_dir/message-$size.eml}
    for mode in new reuse; do
      # Rotate which path goes first, so none always runs on a warmer machine.
      for i in "${!paths[@]}"; do
        run_source "$mode" "${paths[(round + i) % ${#paths[@]}]}" "$round" "$mode${size:+@$size}"
      done
    done
  done
done

echo "machine: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
if [[ -n ${perf_pid:-} ]]; then
  kill -INT "$perf_pid" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
fi

read_metrics after
if [[ -n ${redis_pid:-} ]]; then
  # Where the Redis path's time goes: an update is a GET (none when the update of the key before
  # on the same worker left its value) and an EVALSHA (the compare-and-set script, none when
  # nothing changes); EVALSHAs above the updates written are rounds lost to another worker.
  echo "redis-server: $(redis-cli -p "$redis_port" INFO commandstats |
    sed -n 's/^cmdstat_\(evalsha\|eval\|get\|set\|del\):calls=\([0-9]*\),usec=[0-9]*,usec_per_call=\([0-9.]*\).*/\1 \2 calls (\3 µs each)/p' |
    paste -sd, -)"
fi

python3 - "$results" "$messages" "$clock_ticks" "$target_groups" "$work_dir" \
  "${chains[*]}" "${targets[*]}" "${dns_kinds[*]}" "${filters[@]}" <<'PY'
import fnmatch, re, statistics, sys
from collections import defaultdict

results, messages, clock_ticks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
target_groups, work_dir = sys.argv[4], sys.argv[5]
chains, dns_kinds, filters = sys.argv[6].split(), sys.argv[8].split(), sys.argv[9:]
targets = {}  # (over, under) -> ratio
for target in sys.argv[7].split():
    pair, _, ratio = target.partition("=")
    if pair.split("/")[0] in chains:
        targets[tuple(pair.split("/"))] = float(ratio)

def read_samples(path):
    samples = defaultdict(float)  # (name, frozenset(labels)) -> value
    for line in open(path):
        m = re.match(r'^(\w+)(?:\{(.*)\})? (\S+)$', line.strip())
        if m:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            samples[(m.group(1), labels)] += float(m.group(3))
    return samples

# The chain must have run: before any figure is believed. Each instance's counts over the
# measured runs (after the warm-up) only.
failed = False
for chain in chains:
    before = read_samples(f"{work_dir}/metrics.{chain}.before")
    after = read_samples(f"{work_dir}/metrics.{chain}.after")

    def total(name, **want):
        return sum(v - before.get(key, 0.0) for key, v in after.items()
                   if key[0] == name and all((k, w) in key[1] for k, w in want.items()))

    sessions = total("portcullis_sessions_total")
    problems = []
    for name in filters:
        ok = total("portcullis_filter_results_total", filter=name, result="ok")
        other = total("portcullis_filter_results_total", filter=name) - ok
        if ok < sessions or other:
            problems.append(f"filter {name}: {ok:.0f} ok, {other:.0f} other results for {sessions:.0f} sessions")
        if total("portcullis_filter_warnings_total", filter=name):
            problems.append(f"filter {name}: warnings")
    for kind in dns_kinds:
        if not total("portcullis_dns_queries_total", type=kind):
            problems.append(f"no {kind} queries")
    for outcome in ("temporary_failure", "failure"):
        if total("portcullis_dns_queries_total", outcome=outcome):
            problems.append(f"DNS queries ended as {outcome}")
    if total("portcullis_store_errors_total"):
        problems.append(f"{total('portcullis_store_errors_total'):.0f} store errors")
    unexpected = total("portcullis_decisions_total", mode="observe")
    if unexpected:
        problems.append(f"{unexpected:.0f} transactions where the facts were not those expected")
    queries = total("portcullis_dns_queries_total")
    if not sessions or problems:
        for p in problems or ["no sessions counted"]:
            print(f"bench: the {chain} chain did not run as measured: {p}", file=sys.stderr)
        failed = True
        continue
    dns = (f"{queries:.0f} DNS queries, {total('portcullis_dns_cache_hits_total'):.0f} from the cache; "
           if dns_kinds else "")
    print(f"{chain} check: {sessions:.0f} sessions, each filter ok each time; {dns}"
          f"facts as expected")
if failed:
    sys.exit(1)

rates = defaultdict(dict)   # group -> {(path, round): msgs/s}
ticks = defaultdict(int)    # (group, path) -> Portcullis CPU ticks during its runs
runs = defaultdict(int)
groups = []
for line in open(results):
    group, path, round_, rate, cpu = line.split()
    if group not in groups:
        groups.append(group)
    rates[group][(path, int(round_))] = int(rate)
    ticks[(group, path)] += int(cpu)
    runs[(group, path)] += 1

def title(group):
    mode, _, size = group.partition("@")
    text = {"new": "new connection per message", "reuse": "connections reused (-d)"}[mode]
    return f"{text}, {size} message" if size else text

print("summary (ratios: median of the per-round ratios):")
for group in groups:
    by_round = sorted({r for _, r in rates[group]})
    median = {p: statistics.median(rates[group][(p, r)] for r in by_round)
              for p in ["direct", "plain"] + chains}
    cpu_ms = {p: ticks[(group, p)] * 1000 / clock_ticks / (messages * runs[(group, p)])
              for p in ["plain"] + chains}
    print(f"  {title(group)}: " + ", ".join(f"{p} {median[p]:.0f}" for p in median)
          + " msg/s (medians); Portcullis CPU "
          + ", ".join(f"{p} {cpu_ms[p]:.3f}" for p in cpu_ms) + " ms/message")
    pairs = [(c, u) for c in chains for u in ("plain", "direct")] + [("plain", "direct")]
    for over, under in pairs:
        per_round = [rates[group][(over, r)] / rates[group][(under, r)] for r in by_round]
        ratio = statistics.median(per_round)
        verdict = ""
        if (over, under) in targets and fnmatch.fnmatch(group, target_groups):
            target = targets[(over, under)]
            verdict = f"target >= {target:.2f}x: {'met' if ratio >= target else 'NOT met'}; "
        rounds_text = " ".join(f"{r:.2f}" for r in per_round)
        print(f"    {over}/{under}: {ratio:.2f}x ({verdict}by round {rounds_text})")
PY
