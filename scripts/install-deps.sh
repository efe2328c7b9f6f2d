#!/usr/bin/env bash
# Installs the Debian 12 packages one use of Portcullis needs:
#
#   install-deps.sh run     build Portcullis and run it: the quick start, a deployment
#   install-deps.sh test    run + the test peers and tools of scripts/test.sh (the default, so
#                           a bare `install-deps.sh` installs what it always did)
#   install-deps.sh bench   test + what tests/bench/ needs
#
# Does nothing (and needs no root) when every package of the set is installed already, so the
# quick start and the test script call it every time. As root it runs apt-get itself (a fresh
# machine may have no sudo); as another user it runs apt-get through sudo.
set -euo pipefail

usage() {
  echo "usage: ${0##*/} [run|test|bench]   (default: test)"
}

set_name=${1:-test}
case $set_name in
  run | test | bench) ;;
  -h | --help)
    usage
    exit 0
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac

# Building (meson.build: fmt, OpenSSL, libevent, toml11, CLI11, libunbound for proxy/dns) and
# running the quick start (scripts/quickstart.sh: Postfix and its smtp-sink, swaks, python3 for
# free ports).
run_packages=(
  build-essential meson ninja-build pkg-config
  libevent-dev libssl-dev libtoml11-dev libcli11-dev libfmt-dev libunbound-dev
  # A default `meson setup` (the quick start's) configures the test suites too, and meson
  # refuses a build directory whose dependencies are missing.
  libboost-test-dev
  openssl ca-certificates
  postfix swaks
  python3
  # The quick start's private DNS server for its test. zone; on a real MX, the local
  # recursive resolver DNS blocklists want (they refuse the public ones).
  unbound
)

# scripts/test.sh and the suites: clang and its libFuzzer runtime (scripts/run-fuzz.sh),
# swaks --tls (Net::SSLeay), and the peers and libraries of the DNS, DKIM, SPF and state
# suites that come next (unbound, redis-server, opendkim-tools, python3-dkim, python3-yaml;
# the -dev libraries and the public suffix list they link and read).
test_packages=(
  clang libclang-rt-14-dev
  libnet-ssleay-perl
  libopendkim-dev libspf2-dev liblmdb-dev libhiredis-dev libyaml-cpp-dev
  publicsuffix
  redis-server opendkim-tools python3-dkim python3-yaml
  # integration/docs_examples runs the monitoring how-to's commands as shown (curl, jq).
  curl jq
  # integration/multi_node checks contrib/multi-node/haproxy.cfg and runs it in front of
  # two nodes.
  haproxy
)

# tests/bench/: smtp-source and smtp-sink come with postfix, the rest is python3 and
# coreutils, so nothing beyond `test` today.
bench_packages=()

packages=("${run_packages[@]}")
[[ $set_name == run ]] || packages+=("${test_packages[@]}")
[[ $set_name != bench ]] || packages+=("${bench_packages[@]}")

# One dpkg-query for all: it prints a line per known package (and fails for unknown ones).
declare -A installed=()
while read -r name status; do
  [[ $status == installed ]] && installed[${name%%:*}]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${packages[@]}" 2>/dev/null || true)
missing=()
for package in "${packages[@]}"; do
  [[ -n ${installed[$package]:-} ]] || missing+=("$package")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages of '$set_name' are installed"
  exit 0
fi
echo "install-deps ($set_name): missing: ${missing[*]}"

as_root=()
if ((EUID != 0)); then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "install-deps: not root and no sudo; install as root: ${missing[*]}" >&2
    exit 1
  fi
fi

apt_install() {
  # Lock::Timeout covers the dpkg lock; the debconf database lock has no such option, hence
  # the one retry below.
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 update &&
    echo "postfix postfix/main_mailer_type select No configuration" |
    "${as_root[@]}" debconf-set-selections &&
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 \
      install -y --no-install-recommends "${missing[@]}"
}

if ! apt_install </dev/null; then
  echo "install-deps: apt failed (another apt or debconf may hold its lock); retrying in 15 s" >&2
  sleep 15
  apt_install </dev/null
fi
echo "install-deps: done"
