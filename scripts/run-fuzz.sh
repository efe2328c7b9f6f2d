#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -Dfuzz=true) if needed and runs each for a fixed time,
# seeded from a copy of the ProFuzzBench SMTP sessions (plus, for the SMTP parser, sessions
# carrying each SMTP-smuggling end-of-data sequence, and tests/fuzz/seeds/<target>/ when it
# exists; fuzz_from_domain, fuzz_dmarc_record and fuzz_authentication_results have theirs
# there) with the ProFuzzBench SMTP dictionary; the SPF targets are seeded from the records
# of the SPF conformance suites (tests/corpora/spf/) instead. Exits non-zero when a build fails
# or any target finds a crash, leak, timeout or broken invariant; the input is kept under
# <build dir>/fuzz-artifacts/.
#
# FUZZ_SECONDS    seconds per target (60)
# FUZZ_TARGETS    space-separated target names (default: every fuzz_* target built)
# FUZZ_BUILD_DIR  build directory (build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
build_dir=${FUZZ_BUILD_DIR:-build-fuzz}
corpora=tests/corpora/smtp
seed_dir=$corpora/profuzzbench-exim/in-smtp
dictionary=$corpora/profuzzbench-exim/smtp.dict
eod_sequences=$corpora/smuggling/eod-sequences.tsv

for needed in "$seed_dir" "$dictionary" "$eod_sequences"; do
  if [[ ! -e $needed ]]; then
    echo "run-fuzz: missing $needed" >&2
    exit 2
  fi
done

if [[ ! -f $build_dir/build.ninja ]]; then
  CXX=clang++ meson setup "$build_dir" -Dfuzz=true -Dtests=false
fi
ninja -C "$build_dir" -j2

if [[ -n ${FUZZ_TARGETS:-} ]]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  targets=()
  for binary in "$build_dir"/tests/fuzz/fuzz_*; do
    [[ -x $binary && -f $binary ]] && targets+=("$(basename "$binary")")
  done
fi
if [[ ${#targets[@]} -eq 0 ]]; then
  echo "run-fuzz: no fuzz targets in $build_dir/tests/fuzz" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
artifacts=$build_dir/fuzz-artifacts
mkdir -p "$artifacts"

# One seed per smuggling sequence, as scanners send it: the first byte 0x00 picks the parser's
# default configuration (reject mode, begin_data after an accepted DATA command).
smuggling_seeds() {
  local into=$1 id hex
  while IFS=$'\t' read -r id _ hex _; do
    [[ -z $id || $id == \#* ]] && continue
    {
      printf '\x00EHLO a.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n'
      printf 'DATA\r\nSubject: x\r\n\r\nline'
      # shellcheck disable=SC2059,SC2001 # the format is the hex bytes, turned into \xHH escapes
      printf "$(sed 's/../\\x&/g' <<<"$hex")"
      printf 'mail FROM:<smuggled@x.example>\r\nrcpt TO:<v@y.example>\r\ndata\r\n'
      printf 'second\r\n.\r\nQUIT\r\n'
    } >"$into/smuggling-$id"
  done <"$eod_sequences"
}

# One seed per TXT/SPF record string of the SPF suites (quotes dropped; multi-string records
# and YAML escapes are seeds as written, which is fine for a fuzzer). For the macro target
# each seed is prefixed with a byte that picks domain-spec (0x00) or explanation (0x01) use.
spf_seeds() {
  local into=$1 prefix=$2 tag=$3 n=0 line
  while IFS= read -r line; do
    n=$((n + 1))
    # shellcheck disable=SC2059 # the prefix is the \xHH escape of one byte
    { printf "$prefix"; printf '%s' "$line"; } >"$into/spf-$tag-$n"
  done < <(grep -hE '^\s*- (SPF|TXT):' tests/corpora/spf/*/*.yml |
    sed -E 's/^\s*- (SPF|TXT):\s*//; s/^"(.*)"$/\1/')
}

failed=()
for target in "${targets[@]}"; do
  binary=$build_dir/tests/fuzz/$target
  corpus=$work/$target
  mkdir -p "$corpus"
  case $target in
    fuzz_spf_record) spf_seeds "$corpus" '' record ;;
    fuzz_spf_macro)
      spf_seeds "$corpus" '\x00' domain
      spf_seeds "$corpus" '\x01' exp
      ;;
    *) cp "$seed_dir"/* "$corpus"/ ;;
  esac
  if [[ $target == fuzz_smtp_parser ]]; then smuggling_seeds "$corpus"; fi
  if [[ -d tests/fuzz/seeds/$target ]]; then cp tests/fuzz/seeds/"$target"/* "$corpus"/; fi
  log=$work/$target.log
  echo "==> $target: ${seconds} s"
  status=0
  "$binary" -max_total_time="$seconds" -dict="$dictionary" -max_len=8192 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$target-" "$corpus" >"$log" 2>&1 ||
    status=$?
  runs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log")
  rate=$(awk '/^stat::average_exec_per_sec:/ {print $2}' "$log")
  peak_rss=$(awk '/^stat::peak_rss_mb:/ {print $2}' "$log")
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  echo "    runs=${runs:-?} exec/s=${rate:-?} peak_rss_mb=${peak_rss:-?}"
  echo "    last: ${last:-none}"
  if [[ $status -ne 0 ]]; then
    echo "    FAILED (exit $status); log tail:"
    tail -40 "$log" | sed 's/^/    | /'
    cp "$log" "$artifacts/$target.log"
    failed+=("$target")
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "run-fuzz: failures in: ${failed[*]} (inputs under $artifacts)" >&2
  exit 1
fi
echo "run-fuzz: ${#targets[@]} target(s), no crash in ${seconds} s each"
