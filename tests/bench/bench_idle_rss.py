#!/usr/bin/env python3
"""Memory per idle session: opens N sessions to a running Portcullis, reads each banner, and
compares the process's VmRSS before and after (from /proc). Loopback only; bounded in count
and time; closes every socket it opened.

    bench_idle_rss.py --pid PID --port PORT [--sessions 2000] [--target-kib 12]

Exit status: 0 when every session got its 220 banner (whatever the figure), 1 otherwise.
"""

import argparse
import resource
import selectors
import socket
import sys
import time

BANNER_LIMIT = 4096  # bytes read per session before giving up on finding the banner's end


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def raise_fd_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        sys.exit(f"need {needed} open files, the hard limit is {hard}: raise it (ulimit -Hn)")
    if soft == resource.RLIM_INFINITY or soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def banner_complete(data):
    """True once the data holds a final reply line ("220 ..." or any "NNN " line)."""
    for line in data.split(b"\r\n")[:-1]:
        if len(line) >= 4 and line[:3].isdigit() and line[3:4] == b" ":
            return True
    return False


def open_idle_sessions(host, port, count, batch, deadline):
    """Connects `count` sessions, `batch` connection attempts in flight at a time, and waits
    for each banner. Returns (open sockets that got a 220 banner, list of failure texts)."""
    selector = selectors.DefaultSelector()
    ready = []
    failures = []
    pending = 0
    started = 0
    while (started < count or pending) and time.monotonic() < deadline:
        while started < count and pending < batch:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex((host, port))
            selector.register(sock, selectors.EVENT_READ, bytearray())
            started += 1
            pending += 1
        for key, _ in selector.select(timeout=0.5):
            sock, data = key.fileobj, key.data
            try:
                chunk = sock.recv(BANNER_LIMIT)
            except OSError as error:
                chunk, failure = b"", f"recv: {error}"
            else:
                failure = "closed before the banner" if not chunk else None
            data += chunk
            if failure is None and not banner_complete(data):
                if len(data) < BANNER_LIMIT:
                    continue
                failure = "no banner line in 4 KiB"
            selector.unregister(sock)
            pending -= 1
            if failure is None and data.startswith(b"220"):
                ready.append(sock)
            else:
                failures.append(failure or data.split(b"\r\n")[0].decode(errors="replace"))
                sock.close()
    for key in list(selector.get_map().values()):
        failures.append("no banner before the deadline")
        key.fileobj.close()
    selector.close()
    failures += ["not started before the deadline"] * (count - started)
    return ready, failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, required=True, help="the portcullis process")
    parser.add_argument("--port", type=int, required=True, help="its listener on 127.0.0.1")
    parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1"],
                        help="loopback only")
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=200, help="connection attempts in flight")
    parser.add_argument("--timeout", type=float, default=120, help="seconds, whole run")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds to wait before reading VmRSS")
    parser.add_argument("--target-kib", type=float, default=12)
    args = parser.parse_args()
    if not 1 <= args.sessions <= 20000:
        sys.exit("--sessions must be 1..20000")

    raise_fd_limit(args.sessions + 64)
    deadline = time.monotonic() + args.timeout

    time.sleep(args.settle)
    before = vm_rss_kib(args.pid)
    opened, failures = open_idle_sessions(args.host, args.port, args.sessions, args.batch,
                                          deadline)
    time.sleep(args.settle)
    during = vm_rss_kib(args.pid)
    for sock in opened:
        sock.close()
    time.sleep(args.settle)
    after_close = vm_rss_kib(args.pid)

    print(f"idle sessions: {len(opened)} of {args.sessions} open with a 220 banner")
    if failures:
        shown = sorted(set(failures))[:5]
        print(f"  {len(failures)} failed, e.g.: {'; '.join(shown)}")
    print(f"  portcullis VmRSS: {before} KiB before, {during} KiB with them open, "
          f"{after_close} KiB after closing them")
    if opened:
        per_session = (during - before) / len(opened)
        verdict = "met" if per_session <= args.target_kib else "NOT met"
        print(f"  {per_session:.2f} KiB per idle session "
              f"(target <= {args.target_kib:g} KiB: {verdict})")
    return 0 if len(opened) == args.sessions else 1


if __name__ == "__main__":
    sys.exit(main())
