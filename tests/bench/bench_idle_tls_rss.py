#!/usr/bin/env python3
"""Memory per idle TLS session: opens N sessions to a running Portcullis, takes each through
STARTTLS (python ssl) and one EHLO over TLS, leaves them idle, and compares the process's VmRSS
before and after (from /proc). Loopback only; bounded in count and time; closes every socket it
opened.

    bench_idle_tls_rss.py --pid PID --port PORT [--sessions 2000] [--target-kib 48]

The listener must offer STARTTLS (mode = "smtp" or "submission" with a [tls.NAME] block), and
the proxy must accept that many sessions from 127.0.0.1 and have the descriptors for them:
[limits] max_sessions_per_ip above --sessions, and `ulimit -n` above it for the proxy too.
A first round of --warmup sessions is opened and closed before the baseline is read, so that
one-time costs (per-thread allocator arenas, OpenSSL's first-use tables) do not count per
session. Run it against a freshly started process: in a process that already served and
closed that many TLS sessions, the allocator hands the freed memory out again and the figure
comes out far lower than the real cost.

Exit status: 0 when every session reached the idle state over TLS (whatever the figure), 1
otherwise.
"""

import argparse
import selectors
import socket
import ssl
import sys
import time

from bench_idle_rss import raise_fd_limit, vm_rss_kib  # the same /proc and rlimit helpers

REPLY_LIMIT = 8192  # bytes read per reply before giving up on finding its end
EHLO = b"EHLO bench.example.test\r\n"


def final_reply(data):
    """The code of the reply's last line once the data holds one ("NNN " or "NNN"), else None."""
    for line in data.split(b"\r\n")[:-1]:
        if len(line) >= 3 and line[:3].isdigit() and (len(line) == 3 or line[3:4] == b" "):
            return line[:3]
    return None


class Session:
    """One client: banner → EHLO → STARTTLS → handshake → EHLO over TLS → idle."""

    def __init__(self, host, port, context):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.sock.connect_ex((host, port))
        self.context = context
        self.tls = None
        self.state = "banner"
        self.data = b""
        self.failure = None

    def fileobj(self):
        return self.tls or self.sock

    def close(self):
        (self.tls or self.sock).close()

    def _reply(self, expected, next_state, send):
        """Reads until a final reply line; on `expected` sends `send` and moves on."""
        reader = self.tls or self.sock
        chunk = reader.recv(REPLY_LIMIT)
        if not chunk:
            self.failure = f"closed in state {self.state}"
            return
        self.data += chunk
        code = final_reply(self.data)
        if code is None:
            if len(self.data) >= REPLY_LIMIT:
                self.failure = f"no reply line in {REPLY_LIMIT} bytes ({self.state})"
            return
        if code != expected:
            first = self.data.split(b"\r\n")[0].decode(errors="replace")
            self.failure = f"{self.state}: {first}"
            return
        self.data = b""
        self.state = next_state
        if send:
            reader.send(send)  # a short line: a fresh loopback socket takes it whole

    def step(self):
        """Advances on readiness; returns the selector events it waits for next (0 = done)."""
        try:
            if self.state == "banner":
                self._reply(b"220", "ehlo", EHLO)
            elif self.state == "ehlo":
                self._reply(b"250", "starttls", b"STARTTLS\r\n")
            elif self.state == "starttls":
                self._reply(b"220", "handshake", None)
                if self.state == "handshake":
                    self.tls = self.context.wrap_socket(self.sock, do_handshake_on_connect=False)
                    return self._handshake()
            elif self.state == "handshake":
                return self._handshake()
            elif self.state == "tls-ehlo":
                self._reply(b"250", "idle", None)
        except ssl.SSLWantReadError:
            return selectors.EVENT_READ
        except ssl.SSLWantWriteError:
            return selectors.EVENT_WRITE
        except (OSError, ssl.SSLError) as error:
            self.failure = f"{self.state}: {error}"
        if self.failure or self.state == "idle":
            return 0
        return selectors.EVENT_READ

    def _handshake(self):
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            return selectors.EVENT_READ
        except ssl.SSLWantWriteError:
            return selectors.EVENT_WRITE
        self.state = "tls-ehlo"
        self.tls.send(EHLO)
        return selectors.EVENT_READ


def open_idle_tls_sessions(host, port, count, batch, deadline):
    """Takes `count` sessions to the idle state over TLS, `batch` in progress at a time.
    Returns (idle sessions, list of failure texts)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the bench measures memory, not trust
    selector = selectors.DefaultSelector()
    idle, failures = [], []
    pending = started = 0
    while (started < count or pending) and time.monotonic() < deadline:
        while started < count and pending < batch:
            session = Session(host, port, context)
            selector.register(session.fileobj(), selectors.EVENT_READ, session)
            started += 1
            pending += 1
        for key, _ in selector.select(timeout=0.5):
            session = key.data
            selector.unregister(key.fileobj)
            wanted = session.step()
            if wanted:
                selector.register(session.fileobj(), wanted, session)
                continue
            pending -= 1
            if session.failure is None:
                idle.append(session)
            else:
                failures.append(session.failure)
                session.close()
    for key in list(selector.get_map().values()):
        failures.append(f"not idle before the deadline ({key.data.state})")
        key.data.close()
    selector.close()
    failures += ["not started before the deadline"] * (count - started)
    return idle, failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, required=True, help="the portcullis process")
    parser.add_argument("--port", type=int, required=True, help="its STARTTLS listener")
    parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1"],
                        help="loopback only")
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100, help="sessions in progress at once")
    parser.add_argument("--warmup", type=int, default=50,
                        help="sessions opened and closed before the baseline")
    parser.add_argument("--timeout", type=float, default=300, help="seconds, whole run")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds to wait before reading VmRSS")
    parser.add_argument("--target-kib", type=float, default=48)
    args = parser.parse_args()
    if not 1 <= args.sessions <= 20000:
        sys.exit("--sessions must be 1..20000")
    if not 0 <= args.warmup <= 1000:
        sys.exit("--warmup must be 0..1000")

    raise_fd_limit(args.sessions + args.warmup + 64)
    deadline = time.monotonic() + args.timeout

    if args.warmup:
        warm, warm_failures = open_idle_tls_sessions(args.host, args.port, args.warmup,
                                                     args.batch, deadline)
        for session in warm:
            session.close()
        if warm_failures:
            print(f"warm-up: {len(warm_failures)} of {args.warmup} failed, e.g.: "
                  f"{sorted(set(warm_failures))[0]}")
    time.sleep(args.settle)
    before = vm_rss_kib(args.pid)
    started = time.monotonic()
    idle, failures = open_idle_tls_sessions(args.host, args.port, args.sessions, args.batch,
                                            deadline)
    took = time.monotonic() - started
    time.sleep(args.settle)
    during = vm_rss_kib(args.pid)
    for session in idle:
        session.close()
    time.sleep(args.settle)
    after_close = vm_rss_kib(args.pid)

    print(f"idle TLS sessions: {len(idle)} of {args.sessions} through STARTTLS and EHLO "
          f"in {took:.1f} s")
    if failures:
        shown = sorted(set(failures))[:5]
        print(f"  {len(failures)} failed, e.g.: {'; '.join(shown)}")
    print(f"  portcullis VmRSS: {before} KiB before, {during} KiB with them open, "
          f"{after_close} KiB after closing them")
    if idle:
        per_session = (during - before) / len(idle)
        verdict = "met" if per_session <= args.target_kib else "NOT met"
        print(f"  {per_session:.2f} KiB per idle TLS session "
              f"(target <= {args.target_kib:g} KiB: {verdict})")
    return 0 if len(idle) == args.sessions else 1


if __name__ == "__main__":
    sys.exit(main())
