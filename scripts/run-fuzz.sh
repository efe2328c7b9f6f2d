#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -Dfuzz=true) if needed and runs each for a fixed time,
# seeded from the committed corpora (scripts/fuzz-lib.sh: fuzz_seed_corpus says which) with
# the ProFuzzBench SMTP dictionary. CI's short run (scripts/test.sh); tests/fuzz/run-long runs
# them for hours on every core and keeps what they find. Exits non-zero when a build fails or
# any target finds a crash, leak, timeout or broken invariant; the input is kept under
# <build dir>/fuzz-artifacts/.
#
# FUZZ_SECONDS    seconds per target (60)
# FUZZ_TARGETS    space-separated target names (default: every fuzz_* target built)
# FUZZ_BUILD_DIR  build directory (build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC2034 # read by scripts/fuzz-lib.sh
fuzz_script_name=run-fuzz
# shellcheck source-path=SCRIPTDIR/..
source scripts/fuzz-lib.sh

seconds=${FUZZ_SECONDS:-60}
build_dir=$fuzz_build_dir

fuzz_require_inputs
fuzz_build
fuzz_list_targets
targets=("${fuzz_targets[@]}")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
artifacts=$build_dir/fuzz-artifacts
mkdir -p "$artifacts"

failed=()
for target in "${targets[@]}"; do
  binary=$(fuzz_binary "$target")
  corpus=$work/$target
  fuzz_seed_corpus "$target" "$corpus"
  log=$work/$target.log
  echo "==> $target: ${seconds} s"
  status=0
  "$binary" -max_total_time="$seconds" "${fuzz_options[@]}" \
    -print_final_stats=1 -artifact_prefix="$artifacts/$target-" "$corpus" >"$log" 2>&1 ||
    status=$?
  runs=$(fuzz_stat "$log" number_of_executed_units)
  rate=$(fuzz_stat "$log" average_exec_per_sec)
  peak_rss=$(fuzz_stat "$log" peak_rss_mb)
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
