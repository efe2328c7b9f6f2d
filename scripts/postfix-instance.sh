#!/usr/bin/env bash
# A private Postfix instance on a loopback port, for the integration tests and the quick start.
#
#   postfix-instance.sh start  DIR SMTPD_PORT RELAY_HOST:PORT [MYNETWORKS]
#   postfix-instance.sh stop   DIR
#   postfix-instance.sh status DIR
#
# start writes DIR/etc/main.cf and master.cf (STACK-NOTES §5), runs `postfix check` and
# `postfix start`, and waits until SMTPD_PORT listens. Everything lives under DIR: queue,
# data directory and the log (DIR/postfix.log). The instance relays mail for example.test to
# RELAY_HOST:PORT (an smtp-sink, say) and relays for MYNETWORKS only (default 127.0.0.1/32).
# XCLIENT is allowed from 127.0.0.1 only: that is the proxy's address, and it must not be in
# a wider mynetworks than that, or the real client would inherit the proxy's relay right.
#
# Idempotent: start on a running instance only checks the port; stop on a stopped one is a
# no-op. Needs root (Postfix's master starts as root and switches to mail_owner).
set -euo pipefail

readonly program=${0##*/}
readonly wait_seconds=15

say() { echo "$program: $*"; }
die() {
  echo "$program: $*" >&2
  exit 1
}

usage() {
  cat >&2 <<EOF
usage: $program start DIR SMTPD_PORT RELAY_HOST:PORT [MYNETWORKS]
       $program stop DIR
       $program status DIR
EOF
  exit 2
}

postfix_bin() {
  local candidate
  for candidate in /usr/sbin/postfix "$(command -v postfix 2>/dev/null || true)"; do
    [[ -n $candidate && -x $candidate ]] && {
      echo "$candidate"
      return
    }
  done
  die "postfix is not installed (apt-get install postfix)"
}

# The master's pid when it is alive, else nothing.
master_pid() {
  local dir=$1 pid
  [[ -r $dir/spool/pid/master.pid ]] || return 0
  pid=$(tr -dc '0-9' <"$dir/spool/pid/master.pid")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
  return 0
}

# True when something listens on 127.0.0.1:PORT. Reads /proc instead of connecting, so the
# check leaves no "connect from" lines in Postfix's log and needs no extra tools.
port_listens() {
  local port_hex
  port_hex=$(printf '%04X' "$1")
  grep -qE "^ *[0-9]+: 0100007F:${port_hex} 00000000:0000 0A " /proc/net/tcp 2>/dev/null
}

check_port() {
  [[ $1 =~ ^[0-9]+$ ]] && (($1 > 0 && $1 < 65536)) || die "not a port number: $1"
}

write_config() {
  local dir=$1 smtpd_port=$2 relay=$3 mynetworks=$4
  local relay_host=${relay%:*} relay_port=${relay##*:}
  [[ $relay == *:* && -n $relay_host ]] || die "relay must be HOST:PORT, got: $relay"
  check_port "$relay_port"

  cat >"$dir/etc/main.cf" <<EOF
# Written by $program; rewritten on every start.
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.test
mydomain = test
myorigin = \$myhostname
inet_interfaces = loopback-only
inet_protocols = all
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
# Only these clients may relay. With XCLIENT, Postfix judges the real client, so the proxy's
# address must not be given relay rights through mynetworks beyond what is listed here.
mynetworks = $mynetworks
smtpd_authorized_xclient_hosts = 127.0.0.1/32
relay_domains = example.test
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [$relay_host]:$relay_port
smtp_dns_support_level = disabled
smtp_connect_timeout = 5s
message_size_limit = 52428800
maillog_file = $dir/postfix.log
maillog_file_prefixes = $dir
smtputf8_enable = no
biff = no
EOF

  cat >"$dir/etc/master.cf" <<EOF
# Written by $program. chroot is n everywhere: the queue is not under /var/spool/postfix.
127.0.0.1:$smtpd_port inet n   -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

do_start() {
  (($# == 3 || $# == 4)) || usage
  local dir=$1 smtpd_port=$2 relay=$3 mynetworks=${4:-127.0.0.1/32}
  check_port "$smtpd_port"
  ((EUID == 0)) || die "must run as root (Postfix's master starts as root)"
  id postfix >/dev/null 2>&1 || die "user postfix is missing (is the postfix package installed?)"
  getent group postdrop >/dev/null || die "group postdrop is missing (postfix package?)"
  local postfix
  postfix=$(postfix_bin)

  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  local pid
  pid=$(master_pid "$dir")
  if [[ -n $pid ]]; then
    say "already running in $dir (master pid $pid); config left as it is"
  else
    mkdir -p "$dir/etc" "$dir/spool" "$dir/data"
    # Postfix daemons run as the postfix user and must traverse DIR to reach the queue.
    chmod 755 "$dir" "$dir/etc"
    chown postfix "$dir/data"
    write_config "$dir" "$smtpd_port" "$relay" "$mynetworks"
    say "wrote $dir/etc/main.cf and master.cf (smtpd 127.0.0.1:$smtpd_port, relayhost [${relay%:*}]:${relay##*:}," \
      "mynetworks $mynetworks)"
    # check creates the queue directories with the right owners.
    "$postfix" -c "$dir/etc" check
    "$postfix" -c "$dir/etc" start
    say "started; log $dir/postfix.log"
  fi

  local deadline=$((SECONDS + wait_seconds))
  until port_listens "$smtpd_port"; do
    ((SECONDS < deadline)) || die "port $smtpd_port does not listen after ${wait_seconds}s"
    sleep 0.1
  done
  say "listening on 127.0.0.1:$smtpd_port (master pid $(master_pid "$dir"))"
}

do_stop() {
  (($# == 1)) || usage
  local dir=$1
  [[ -d $dir ]] || {
    say "no directory $dir; nothing to stop"
    return 0
  }
  local pid
  pid=$(master_pid "$dir")
  if [[ -z $pid ]]; then
    say "not running in $dir"
    return 0
  fi
  "$(postfix_bin)" -c "$dir/etc" stop || true
  local deadline=$((SECONDS + wait_seconds))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      say "master pid $pid still alive after ${wait_seconds}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  say "stopped (master pid $pid)"
}

do_status() {
  (($# == 1)) || usage
  local dir=$1 pid
  pid=$(master_pid "$dir")
  if [[ -n $pid ]]; then
    say "running in $dir (master pid $pid)"
  else
    say "not running in $dir"
    return 1
  fi
}

(($# >= 1)) || usage
command=$1
shift
case $command in
start) do_start "$@" ;;
stop) do_stop "$@" ;;
status) do_status "$@" ;;
*) usage ;;
esac
