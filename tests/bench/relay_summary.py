#!/usr/bin/env python3
"""The summary of a relay benchmark's runs (bench_relay.sh, bench_node.sh): per mode (new
connection per message, reused connections), direct's median msgs/s, then for each path
through Portcullis its median msgs/s, the median of its per-round ratios to direct (and, with
--target, whether that meets it), the ratio of each round, and Portcullis's CPU time per
message.

    relay_summary.py RESULTS MESSAGES CLOCK_TICKS [--target RATIO] PATH=LABEL...

RESULTS holds the lines run_source (bench_lib.sh) appends: "MODE PATH ROUND MSGS_PER_S
CPU_TICKS". A path without runs in the results is left out.
"""

import argparse
import statistics
from collections import defaultdict

TITLES = {"new": "new connection per message", "reuse": "connections reused (-d)"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("messages", type=int, help="messages per run")
    parser.add_argument("clock_ticks", type=int, help="getconf CLK_TCK")
    parser.add_argument("--target", type=float, help="the via/direct ratio to meet")
    parser.add_argument("paths", nargs="+", metavar="PATH=LABEL")
    args = parser.parse_args()
    labels = dict(path.split("=", 1) for path in args.paths)

    rates = defaultdict(dict)  # mode -> {(path, round): msgs/s}
    ticks = defaultdict(int)  # (mode, path) -> Portcullis CPU ticks during its runs
    runs = defaultdict(int)
    for line in open(args.results):
        mode, path, round_, rate, cpu = line.split()
        rates[mode][(path, int(round_))] = int(rate)
        ticks[(mode, path)] += int(cpu)
        runs[(mode, path)] += 1

    print("summary (ratio: median of the per-round via/direct ratios):")
    for mode in ("new", "reuse"):
        by_round = sorted({r for _, r in rates[mode]})
        direct = statistics.median(rates[mode][("direct", r)] for r in by_round)
        print(f"  {TITLES[mode]}: direct {direct:.0f} msg/s (median)")
        for path, label in labels.items():
            if (path, by_round[0]) not in rates[mode]:
                continue
            via = statistics.median(rates[mode][(path, r)] for r in by_round)
            per_round = [rates[mode][(path, r)] / rates[mode][("direct", r)] for r in by_round]
            ratio = statistics.median(per_round)
            cpu_ms = ticks[(mode, path)] * 1000 / args.clock_ticks / (
                args.messages * runs[(mode, path)])
            rounds_text = " ".join(f"{r:.2f}" for r in per_round)
            if args.target is None:
                judged = f"by round {rounds_text}"
            else:
                verdict = "met" if ratio >= args.target else "NOT met"
                judged = f"target >= {args.target:.2f}x: {verdict}; by round {rounds_text}"
            print(f"    {label}: {via:.0f} msg/s, ratio {ratio:.2f}x ({judged}); "
                  f"Portcullis CPU {cpu_ms:.3f} ms/message")


if __name__ == "__main__":
    main()
