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
#
# Prints msgs/s, the chain/plain, chain/direct and plain/direct ratios (per round and their
# median), Portcullis's CPU time per message, and whether the target is met. Fails when the
# chain did not really run: every filter must have answered `ok` every time, with no DNS
# failure, and the facts must be those the zones give (an observe-mode rule counts every
# transaction where they are not). Run on demand; not part of meson test.
#
#   BENCH_ROUNDS=5 BENCH_MESSAGES=10000 BENCH_SESSIONS=20 bash tests/bench/bench_chain.sh dns
#
# BENCH_SIZES="2kB" (auth only) measures only those message sizes (NkB each).
# BENCH_PERF=FILE also records a call-graph profile of the chain instance during the measured
# runs (perf record -g; read it with `perf report -i FILE`).
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
case $profile in
  dns)
    target_ratio=0.80
    target_groups="*"
    chain='"fcrdns", "dnsbl", "spf"'
    filters=(fcrdns dnsbl spf)
    facts_phase=mail
    facts_expected="fcrdns != 'pass' or dnsbl.score != 0 or spf != 'pass'"
    sizes=("")
    title="DNS chain (fcrdns, dnsbl, spf)"
    ;;
  auth)
    target_ratio=0.70
    target_groups="*@2kB"
    chain='"fcrdns", "spf", "dkim", "dmarc"'
    filters=(fcrdns spf dkim dmarc)
    facts_phase=data
    facts_expected="fcrdns != 'pass' or spf != 'pass' or dkim != 'pass' or dmarc != 'pass'"
    read -r -a sizes <<<"${BENCH_SIZES:-2kB 100kB}"
    title="authentication chain (fcrdns, spf, dkim, dmarc)"
    ;;
  *)
    echo "usage: ${0##*/} dns|auth" >&2
    exit 2
    ;;
esac

build_portcullis
ulimit -n "$(ulimit -Hn)"

if [[ $profile == auth ]]; then
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

read -r sink_port plain_port chain_port metrics_port dns_port < <(free_ports 5)
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

cat >"$work_dir/facts.toml" <<EOF
# Observe mode: never changes a session; counted in portcullis_decisions_total{mode="observe"}.
[[rule]]
name  = "chain facts differ from the zones"
phase = "$facts_phase"
mode  = "observe"
when  = "$facts_expected"
then  = "reject 554 5.7.1 bench: unexpected facts"
EOF

start_portcullis plain "$plain_port" "$sink_port" ""
plain_pid=$started_pid
start_portcullis chain "$chain_port" "$sink_port" "" "
[metrics]
address = \"127.0.0.1:$metrics_port\"

[dns]
resolvers = [\"127.0.0.1:$dns_port\"]

[filters]
chain = [$chain]

[[filter.dnsbl.list]]
zone = \"$dnsbl_zone\"

[policy]
files = [\"$work_dir/facts.toml\"]
"
chain_pid=$started_pid

clock_ticks=$(getconf CLK_TCK)
results=$work_dir/results

path_port=([direct]=$sink_port [plain]=$plain_port [chain]=$chain_port)
path_pid=([plain]=$plain_pid [chain]=$chain_pid)

# The first sessions fill each worker's libunbound cache; the measured ones then find their
# answers there, as a busy server does.
log "warm-up"
for size in "${sizes[@]}"; do
  source_message=${size:+$work_dir/message-$size.eml}
  warm_up "$plain_port" "$chain_port"
done

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "$title: $rounds rounds of $messages messages, $sessions parallel sessions;"
echo "       smtp-source → smtp-sink (direct) vs smtp-source → Portcullis → smtp-sink"
echo "       (plain: no filters; chain: the filters against a local unbound)"
paths=(direct plain chain)
if [[ -n ${BENCH_PERF:-} ]]; then
  perf record -q -g -p "$chain_pid" -o "$BENCH_PERF" 2>"$work_dir/perf.err" &
  perf_pid=$!
  track_pid "$perf_pid"
fi
for round in $(seq "$rounds"); do
  for size in "${sizes[@]}"; do
    source_message=${size:+$work_dir/message-$size.eml}
    for mode in new reuse; do
      # Rotate which path goes first, so none always runs on a warmer machine.
      for i in 0 1 2; do
        run_source "$mode" "${paths[(round + i) % 3]}" "$round" "$mode${size:+@$size}"
      done
    done
  done
done

echo "machine: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
if [[ -n ${perf_pid:-} ]]; then
  kill -INT "$perf_pid" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
fi

timeout 10 curl -sf "http://127.0.0.1:$metrics_port/metrics" >"$work_dir/metrics" || {
  log "could not read the chain instance's /metrics"
  exit 1
}

python3 - "$results" "$messages" "$clock_ticks" "$target_ratio" "$target_groups" \
  "$work_dir/metrics" "${filters[@]}" <<'PY'
import fnmatch, re, statistics, sys
from collections import defaultdict

results, messages, clock_ticks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
target, target_groups, metrics_file, filters = float(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7:]

# The chain must have run: before any figure is believed.
samples = defaultdict(float)  # (name, frozenset(labels)) -> value
for line in open(metrics_file):
    m = re.match(r'^(\w+)(?:\{(.*)\})? (\S+)$', line.strip())
    if m:
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        samples[(m.group(1), labels)] += float(m.group(3))

def total(name, **want):
    return sum(v for (n, labels), v in samples.items()
               if n == name and all((k, w) in labels for k, w in want.items()))

sessions = total("portcullis_sessions_total")
problems = []
for name in filters:
    ok = total("portcullis_filter_results_total", filter=name, result="ok")
    other = total("portcullis_filter_results_total", filter=name) - ok
    if ok < sessions or other:
        problems.append(f"filter {name}: {ok:.0f} ok, {other:.0f} other results for {sessions:.0f} sessions")
    if total("portcullis_filter_warnings_total", filter=name):
        problems.append(f"filter {name}: warnings")
for kind in ("PTR", "A", "TXT"):
    if not total("portcullis_dns_queries_total", type=kind):
        problems.append(f"no {kind} queries")
for outcome in ("temporary_failure", "failure"):
    if total("portcullis_dns_queries_total", outcome=outcome):
        problems.append(f"DNS queries ended as {outcome}")
unexpected = total("portcullis_decisions_total", mode="observe")
if unexpected:
    problems.append(f"{unexpected:.0f} transactions where the facts were not those of the zones")
queries = total("portcullis_dns_queries_total")
if not sessions or problems:
    for p in problems or ["no sessions counted"]:
        print(f"bench: the chain did not run as measured: {p}", file=sys.stderr)
    sys.exit(1)
print(f"chain check: {sessions:.0f} sessions, each filter ok each time; {queries:.0f} DNS queries, "
      f"{total('portcullis_dns_cache_hits_total'):.0f} from the cache; facts as the zones say")

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
              for p in ("direct", "plain", "chain")}
    cpu_ms = {p: ticks[(group, p)] * 1000 / clock_ticks / (messages * runs[(group, p)])
              for p in ("plain", "chain")}
    print(f"  {title(group)}: direct {median['direct']:.0f}, plain {median['plain']:.0f}, "
          f"chain {median['chain']:.0f} msg/s (medians); Portcullis CPU plain "
          f"{cpu_ms['plain']:.3f}, chain {cpu_ms['chain']:.3f} ms/message")
    for over, under in (("chain", "plain"), ("chain", "direct"), ("plain", "direct")):
        per_round = [rates[group][(over, r)] / rates[group][(under, r)] for r in by_round]
        ratio = statistics.median(per_round)
        verdict = ""
        if (over, under) == ("chain", "plain") and fnmatch.fnmatch(group, target_groups):
            verdict = f"target >= {target:.2f}x: {'met' if ratio >= target else 'NOT met'}; "
        rounds_text = " ".join(f"{r:.2f}" for r in per_round)
        print(f"    {over}/{under}: {ratio:.2f}x ({verdict}by round {rounds_text})")
PY
