#!/usr/bin/env bash
# The configuration of a private unbound on loopback that answers only from local data, for the
# quick start and the benchmarks: writes it to stdout.
#
#   unbound-config.sh PORT DIR <local-data-lines >unbound.conf
#
# stdin holds unbound `local-data:` lines (one record each, as in unbound.conf(5)); the zones
# test. and 127.in-addr.arpa. are static, so every other name under them does not exist. It
# runs in the foreground as the calling user (`unbound -d -c FILE`), logs to stderr, and asks
# nobody else (no root hints are needed: nothing is recursed).
set -euo pipefail
if [[ $# -ne 2 ]]; then
  echo "usage: ${0##*/} PORT DIR <local-data-lines" >&2
  exit 2
fi
port=$1 directory=$2
cat <<CONF
server:
  interface: 127.0.0.1
  port: $port
  do-ip6: no
  username: ""
  chroot: ""
  pidfile: ""
  directory: "$directory"
  use-syslog: no
  logfile: ""
  verbosity: 0
  num-threads: 1
  module-config: "iterator"
  access-control: 127.0.0.0/8 allow
  local-zone: "test." static
  local-zone: "127.in-addr.arpa." static
CONF
while IFS= read -r line; do
  [[ -n $line ]] && printf '  %s\n' "$line"
done
