# shellcheck shell=bash
# What scripts/run-fuzz.sh (CI's short run) and tests/fuzz/run-long (hours, on every core)
# share: the build of the libFuzzer targets, the list of targets, each target's seed corpus
# from the committed corpora, and the libFuzzer options. Sourced from the repository root.
#
# FUZZ_TARGETS    space-separated target names (default: every fuzz_* target built)
# FUZZ_BUILD_DIR  build directory (build-fuzz)

fuzz_build_dir=${FUZZ_BUILD_DIR:-build-fuzz}
fuzz_corpora=tests/corpora/smtp
fuzz_seed_dir=$fuzz_corpora/profuzzbench-exim/in-smtp
fuzz_dictionary=$fuzz_corpora/profuzzbench-exim/smtp.dict
fuzz_eod_sequences=$fuzz_corpora/smuggling/eod-sequences.tsv
# The options of every run: the dictionary, inputs up to 8 KiB, 10 s per input at most.
# shellcheck disable=SC2034 # used by the scripts that source this file
fuzz_options=(-dict="$fuzz_dictionary" -max_len=8192 -timeout=10)

fuzz_require_inputs() { # exits 2 when a committed corpus the seeds come from is missing
  local needed
  for needed in "$fuzz_seed_dir" "$fuzz_dictionary" "$fuzz_eod_sequences"; do
    if [[ ! -e $needed ]]; then
      echo "${fuzz_script_name:-fuzz}: missing $needed" >&2
      exit 2
    fi
  done
}

fuzz_build() { # builds the targets with clang (-Dfuzz=true) in $fuzz_build_dir
  if [[ ! -f $fuzz_build_dir/build.ninja ]]; then
    CXX=clang++ meson setup "$fuzz_build_dir" -Dfuzz=true -Dtests=false
  fi
  ninja -C "$fuzz_build_dir" -j2
}

# Sets the array fuzz_targets: $FUZZ_TARGETS, or every fuzz_* executable built. Exits 2 when
# there is none.
fuzz_list_targets() {
  # shellcheck disable=SC2034 # used by the scripts that source this file
  fuzz_targets=()
  if [[ -n ${FUZZ_TARGETS:-} ]]; then
    read -r -a fuzz_targets <<<"$FUZZ_TARGETS"
  else
    local binary
    for binary in "$fuzz_build_dir"/tests/fuzz/fuzz_*; do
      [[ -x $binary && -f $binary ]] && fuzz_targets+=("$(basename "$binary")")
    done
  fi
  if [[ ${#fuzz_targets[@]} -eq 0 ]]; then
    echo "${fuzz_script_name:-fuzz}: no fuzz targets in $fuzz_build_dir/tests/fuzz" >&2
    exit 2
  fi
}

fuzz_binary() { # fuzz_binary TARGET: the path of its executable
  printf '%s\n' "$fuzz_build_dir/tests/fuzz/$1"
}

# One seed per smuggling sequence, as scanners send it: the first byte 0x00 picks the parser's
# default configuration (reject mode, begin_data after an accepted DATA command).
fuzz_smuggling_seeds() { # fuzz_smuggling_seeds DIR
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
  done <"$fuzz_eod_sequences"
}

# One seed per TXT/SPF record string of the SPF suites (quotes dropped; multi-string records
# and YAML escapes are seeds as written, which is fine for a fuzzer). For the macro target
# each seed is prefixed with a byte that picks domain-spec (0x00) or explanation (0x01) use.
fuzz_spf_seeds() { # fuzz_spf_seeds DIR PREFIX TAG
  local into=$1 prefix=$2 tag=$3 n=0 line
  while IFS= read -r line; do
    n=$((n + 1))
    # shellcheck disable=SC2059 # the prefix is the \xHH escape of one byte
    { printf "$prefix"; printf '%s' "$line"; } >"$into/spf-$tag-$n"
  done < <(grep -hE '^\s*- (SPF|TXT):' tests/corpora/spf/*/*.yml |
    sed -E 's/^\s*- (SPF|TXT):\s*//; s/^"(.*)"$/\1/')
}

# Fills DIR with TARGET's seeds: a copy of the ProFuzzBench SMTP sessions (plus, for the SMTP
# parser, sessions carrying each SMTP-smuggling end-of-data sequence), or for the SPF targets
# the records of the SPF conformance suites (tests/corpora/spf/); then tests/fuzz/seeds/TARGET/
# when it exists (fuzz_from_domain, fuzz_dmarc_record and fuzz_authentication_results have
# theirs there, and tests/fuzz/run-long adds what it finds there).
fuzz_seed_corpus() { # fuzz_seed_corpus TARGET DIR
  local target=$1 corpus=$2
  mkdir -p "$corpus"
  case $target in
    fuzz_spf_record) fuzz_spf_seeds "$corpus" '' record ;;
    fuzz_spf_macro)
      fuzz_spf_seeds "$corpus" '\x00' domain
      fuzz_spf_seeds "$corpus" '\x01' exp
      ;;
    *) cp "$fuzz_seed_dir"/* "$corpus"/ ;;
  esac
  if [[ $target == fuzz_smtp_parser ]]; then fuzz_smuggling_seeds "$corpus"; fi
  if [[ -d tests/fuzz/seeds/$target ]]; then cp tests/fuzz/seeds/"$target"/* "$corpus"/; fi
}

fuzz_stat() { # fuzz_stat LOG NAME: libFuzzer's -print_final_stats value NAME in LOG
  awk -v name="stat::$2:" '$1 == name {print $2}' "$1"
}
