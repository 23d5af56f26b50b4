#!/usr/bin/env python3
"""What Launch/netlink prints from its measurements (besides the cost model, netlink-model.py).

    python3 Launch/netlink-summary.py overlap OVERLAP.jsonl
        the Markdown table of `Launch/netlink overlap`: per host count and gradient-allreduce
        variant, the median step time over the repeats, each repeat's, and the change against
        the variant "off". Each line of OVERLAP.jsonl is {"hosts", "label", "result"}, result
        being the JSON line of one `xbm-dist bench step`.
    python3 Launch/netlink-summary.py smoke RESULT_JSON
        checks the JSON line of `Launch/netlink smoke`'s bench step (2 ranks, images/s > 0, one
        allgather per step; an AssertionError otherwise) and prints one line about it.

Standard library only.
"""
import json
import statistics
import sys


def overlap(path):
    runs = {}
    for line in open(path):
        row = json.loads(line)
        runs.setdefault((row["hosts"], row["label"]), []).append(row["result"]["median_step_seconds"] * 1e3)
    print("| hosts | gradient allreduce | step ms, median (runs) | vs off |")
    print("|---|---|---|---|")
    for (hosts, label), times in runs.items():
        off = statistics.median(runs[(hosts, "off")])
        print(f"| {hosts} | {label} | {statistics.median(times):.0f} ({' / '.join(f'{t:.0f}' for t in times)}) | "
              f"{statistics.median(times) / off - 1:+.0%} |")


def smoke(line):
    r = json.loads(line)
    assert r["ranks"] == 2 and r["images_per_second"] > 0 and r["collectives_per_step"]["allgather"]["calls"] == 1, r
    print("netlink smoke: 2 hosts at 1 Gbit/s, %.0f images/s, %d allreduces per step" % (r["images_per_second"], r["collectives_per_step"]["allreduce"]["calls"]))


if __name__ == "__main__":
    {"overlap": overlap, "smoke": smoke}[sys.argv[1]](*sys.argv[2:])
