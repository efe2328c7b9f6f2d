#!/usr/bin/env bash
# The project's test command (README; .ci/run runs exactly this): installs the packages,
# builds and runs the unit suite, builds under ASan+UBSan and runs every meson suite there,
# then the fuzz targets for a short while. Prints one line per suite, a table of each stage's
# time and, last, "N passed, N failed" over all runs.
# Exits non-zero when anything failed, including a build. Runs as root (the integration
# suites start private Postfix instances): as another user it runs itself again under sudo.
#
# PORTCULLIS_BUILD_DIR (default "build") lets a developer keep these runs apart from their
# own build; the sanitizer build goes to "<that>-asan". FUZZ_SECONDS: per fuzz target (20; six targets).
set -euo pipefail

if ((EUID != 0)); then
  # The integration suites start private Postfix instances (their master runs as root) and
  # drop privileges; as another user, run this script again as root, as quickstart.sh does
  # (before the cd below, so that "$0" still names this script).
  if command -v sudo >/dev/null 2>&1; then
    exec sudo --preserve-env=CI,FUZZ_SECONDS,PORTCULLIS_BUILD_DIR bash "$0" "$@"
  fi
  echo "test: run as root (the integration tests start a private Postfix)" >&2
  exit 1
fi
cd "$(dirname "$0")/.."

build_dir=${PORTCULLIS_BUILD_DIR:-build}
asan_dir=${build_dir}-asan
jobs=2 # the machines have 2 cores, shared

export BOOST_TEST_COLOR_OUTPUT=no
if [[ ${CI:-} == true ]]; then
  export NO_COLOR=1 TERM=dumb
fi

total_passed=0
total_failed=0
started=$SECONDS

say() { printf '==> %s\n' "$*"; }

count() { # count PASSED FAILED
  total_passed=$((total_passed + $1))
  total_failed=$((total_failed + $2))
}

setup_and_build() { # setup_and_build DIR SUITE [meson options...]; SUITE "" builds everything
  local dir=$1 suite=$2
  shift 2
  if [[ -f $dir/meson-private/coredata.dat ]]; then
    meson setup --reconfigure "$dir" "$@" || return 1
  else
    meson setup "$dir" "$@" || return 1
  fi
  local targets=()
  if [[ -n $suite ]]; then
    # Only the executables of that suite (and what they link): the plain stage runs the unit
    # suite alone, and building the integration suites there too cost minutes for nothing.
    mapfile -t targets < <(suite_targets "$dir" "$suite") || return 1
    ((${#targets[@]})) || return 1
  fi
  ninja -C "$dir" -j "$jobs" "${targets[@]}"
}

suite_targets() { # suite_targets DIR SUITE: the build-relative paths of the suite's programs
  meson introspect --tests "$1" | python3 -c '
import json, os, sys
build_dir, suite = os.path.realpath(sys.argv[1]), sys.argv[2]
seen = set()
for test in json.load(sys.stdin):
    if not any(s.split(":", 1)[-1] == suite for s in test["suite"]):
        continue
    program = os.path.realpath(test["cmd"][0])
    if program.startswith(build_dir + os.sep) and program not in seen:
        seen.add(program)
        print(os.path.relpath(program, build_dir))
' "$1" "$2"
}

# Prints "suite NAME: P passed, F failed" per suite from DIR/meson-logs/testlog.json, then a
# last line "P F" with the totals. meson 1.0 writes no "suite" field into testlog.json: the
# suite is then the prefix of the test's name, or comes from `meson introspect --tests`.
# Results other than OK / EXPECTEDFAIL count as failed: SKIP too, as the project allows no
# skipped tests.
summarize() { # summarize DIR LABEL
  meson introspect --tests "$1" >"$1/meson-logs/tests-introspect.json" 2>/dev/null || true
  python3 - "$1" "$2" <<'PY'
import json, os, sys
from collections import OrderedDict

build_dir, label = sys.argv[1], sys.argv[2]
suites_by_test = {}
try:
    with open(os.path.join(build_dir, "meson-logs", "tests-introspect.json")) as f:
        for test in json.load(f):
            suites_by_test[(test["name"], tuple(test["cmd"]))] = test["suite"]
            suites_by_test.setdefault((test["name"], None), test["suite"])
except (OSError, ValueError):
    pass

def suite_name(record):
    suites = record.get("suite")
    if not suites and " / " in record["name"]:
        # With more than one suite, meson names a test "portcullis:unit / smtp_path".
        suites = [record["name"].split(" / ", 1)[0]]
    if not suites:
        suites = suites_by_test.get(
            (record["name"], tuple(record.get("command") or ())),
            suites_by_test.get((record["name"], None), ["unknown"]))
    # "portcullis:unit" → "unit"
    return ",".join(s.split(":", 1)[-1] for s in suites)

counts = OrderedDict()
try:
    with open(os.path.join(build_dir, "meson-logs", "testlog.json")) as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            suite_counts = counts.setdefault(suite_name(record), [0, 0])
            if record.get("result") in ("OK", "EXPECTEDFAIL"):
                suite_counts[0] += 1
            else:
                suite_counts[1] += 1
                print(f"  {label}: {record['name']}: {record.get('result')}")
except OSError:
    pass

shown_label = "" if label == "plain" else f" ({label})"
for suite, (passed, failed) in counts.items():
    print(f"suite {suite}{shown_label}: {passed} passed, {failed} failed")
print(sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values()))
PY
}

run_meson_tests() { # run_meson_tests DIR LABEL [meson test options...]
  local dir=$1 label=$2
  shift 2
  rm -f "$dir/meson-logs/testlog.json"
  local status=0
  env "${stage_env[@]}" meson test -C "$dir" --print-errorlogs --num-processes "$jobs" "$@" ||
    status=$?
  local lines totals="0 1"
  mapfile -t lines < <(summarize "$dir" "$label")
  if ((${#lines[@]})); then
    totals=${lines[-1]}
    unset 'lines[-1]'
    printf '%s\n' "${lines[@]}"
  fi
  local passed=${totals% *} failed=${totals#* }
  if ((status != 0 && failed == 0)); then
    # meson failed without a failing test on record (a rebuild error, an interrupted run).
    echo "$label: meson test exited with status $status"
    failed=1
  fi
  count "$passed" "$failed"
}

# Extra environment (NAME=VALUE) for the current stage's meson test.
stage_env=()

run_stage() { # run_stage LABEL DIR SUITE [meson setup options...] -- [meson test options...]
  local label=$1 dir=$2 suite=$3
  shift 3
  local setup_options=()
  while (($#)) && [[ $1 != -- ]]; do
    setup_options+=("$1")
    shift
  done
  (($#)) && shift
  say "$label: build in $dir"
  local stage_started=$SECONDS
  if ! setup_and_build "$dir" "$suite" "${setup_options[@]}"; then
    record_time "$label: build" "$stage_started"
    echo "suite build ($label): 0 passed, 1 failed (meson setup or ninja failed)"
    count 0 1
    return
  fi
  record_time "$label: build" "$stage_started"
  say "$label: meson test $*"
  stage_started=$SECONDS
  if [[ -n $suite ]]; then
    # Built above; a rebuild here would build every other suite too.
    run_meson_tests "$dir" "$label" --no-rebuild --suite "$suite" "$@"
  else
    run_meson_tests "$dir" "$label" "$@"
  fi
  record_time "$label: tests${suite:+ (suite $suite)}${*:+ ($*)}" "$stage_started"
}

# Each stage's wall time, printed as a table at the end.
stage_times=()
record_time() { # record_time NAME STARTED_AT
  stage_times+=("$(printf '%-58s %6d s' "$1" $((SECONDS - $2)))")
}

say "install packages"
stage_started=$SECONDS
bash scripts/install-deps.sh test
record_time "install packages" "$stage_started"

# Every test runs at least once, and the slow suites (real servers) only once: under the
# sanitizers, where a memory error in a path they reach is found. The unit suite, cheap,
# also runs on the plain (optimised, unsanitised) build.
run_stage plain "$build_dir" unit

stage_env=(ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
# Sanitized code runs a few times slower; give each test proportionally more time.
# -O1 and line tables only (-g1): what the sanitizers' own documentation recommends, and the
# build takes half the time of -O2 -g (config.cc: 44 s against 103 s); reports still name the
# file and line of every frame.
run_stage asan "$asan_dir" "" -Db_sanitize=address,undefined -Db_lundef=false \
  -Doptimization=1 -Ddebug=false -Dcpp_args=-g1 -Dc_args=-g1 -- \
  --timeout-multiplier 3
stage_env=()
# The SPF and DKIM conformance scores, as the conformance suites printed them
# ("spf rfc7208: 203/203", "dkim mail-dkim-perl: 26/32").
grep -hE '^(spf|dkim) [a-z0-9-]+: ' "$asan_dir/meson-logs/testlog.txt" 2>/dev/null | sort -u || true

if [[ -f scripts/run-fuzz.sh ]]; then
  say "fuzz: scripts/run-fuzz.sh, ${FUZZ_SECONDS:-20} s per target"
  stage_started=$SECONDS
  if FUZZ_SECONDS=${FUZZ_SECONDS:-20} bash scripts/run-fuzz.sh; then
    echo "suite fuzz: 1 passed, 0 failed"
    count 1 0
  else
    echo "suite fuzz: 0 passed, 1 failed"
    count 0 1
  fi
  record_time "fuzz: build and run" "$stage_started"
else
  echo "!!!!!!!! FUZZING SKIPPED: scripts/run-fuzz.sh does not exist yet !!!!!!!!"
fi

say "stage times"
printf '%s\n' "${stage_times[@]}"
say "finished in $((SECONDS - started)) s"
echo "$total_passed passed, $total_failed failed"
((total_failed == 0))
