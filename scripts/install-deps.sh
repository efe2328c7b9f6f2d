#!/usr/bin/env bash
# Installs every Debian 12 package Portcullis needs to build, test and run its quick start
# (the install line of STACK-NOTES §1). Does nothing (and needs no root) when all of them are
# installed already, so the quick start and the test script can call it every time.
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config cmake openssl ca-certificates
  libevent-dev libssl-dev libopendkim-dev libspf2-dev libboost-test-dev
  libunbound-dev liblmdb-dev libhiredis-dev libtoml11-dev libcli11-dev libfmt-dev
  publicsuffix clang libclang-rt-14-dev libyaml-cpp-dev
  swaks libnet-ssleay-perl postfix redis-server unbound opendkim-tools python3-dkim python3-yaml
  curl
  # The scripts (free ports, summaries, benchmarks) use python3; named so it never depends
  # on python3-dkim pulling it in.
  python3
)

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
  echo "install-deps: all ${#packages[@]} packages are installed"
  exit 0
fi
echo "install-deps: missing: ${missing[*]}"

as_root=()
if ((EUID != 0)); then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "install-deps: not root and no sudo; install as root: ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive

apt_install() {
  # Lock::Timeout covers the dpkg lock; the debconf database lock has no such option, hence
  # the one retry below.
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 update &&
    echo "postfix postfix/main_mailer_type select No configuration" |
    "${as_root[@]}" debconf-set-selections &&
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 \
      install -y --no-install-recommends "${packages[@]}"
}

if ! apt_install </dev/null; then
  echo "install-deps: apt failed (another apt or debconf may hold its lock); retrying in 15 s" >&2
  sleep 15
  apt_install </dev/null
fi
echo "install-deps: done"
