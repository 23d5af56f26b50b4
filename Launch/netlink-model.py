#!/usr/bin/env python3
"""The communication cost model of Docs/performance.md against Launch/netlink's measurements.

    python3 Launch/netlink-model.py SWEEP.jsonl

Each line of SWEEP.jsonl is one `bench step` run on emulated hosts (hosts, gbit, latency_us,
extra, result). For every configuration the prediction is the measured median step on
unlimited links without latency (same hosts, same options) plus, for each collective of the
step (its sizes come from the run's own `collectives_per_step`), α per message round plus
the bytes each rank sends over its link at the link's rate:

    allreduce  n < 10 kB  recursive doubling  ⌊log₂ p⌋ rounds (+2 off powers of 2), log₂ p · n bytes
               otherwise  ring                2(p − 1) rounds, 2(p − 1)/p · n bytes
    allgather  ring                           p − 1 rounds, (p − 1) · n bytes (n = one rank's block)

which is `LatencyModel` (Sources/Collectives/LatencyModel.swift) plus the bandwidth term.
"""
import json
import math
import statistics
import sys

SMALL_ALLREDUCE = 10_000


def rounds_and_bytes(operation, n, p):
    if p < 2:
        return 0, 0
    if operation == "allreduce":
        if n < SMALL_ALLREDUCE:
            floor_log2 = p.bit_length() - 1
            extra = 0 if p == 1 << floor_log2 else 2
            return floor_log2 + extra, math.ceil(math.log2(p)) * n
        return 2 * (p - 1), 2 * (p - 1) / p * n
    if operation == "allgather":
        return p - 1, (p - 1) * n
    if operation in ("broadcast", "barrier"):
        return math.ceil(math.log2(p)), n
    raise ValueError(operation)


def communication(collectives, p, gbit, alpha):
    """Seconds of latency and transfer the model gives one step's collectives."""
    latency = transfer = 0.0
    for operation, entry in collectives.items():
        for n in entry["sizes"]:
            rounds, wire = rounds_and_bytes(operation, n, p)
            latency += alpha * rounds
            transfer += wire * 8 / (gbit * 1e9) if gbit else 0.0
    return latency, transfer


def main(path):
    runs = {}
    results = {}
    for line in open(path):
        row = json.loads(line)
        key = (row["hosts"], row["gbit"], row["latency_us"], row["extra"])
        runs.setdefault(key, []).append(row["result"]["median_step_seconds"])
        results[key] = row["result"]
    print("| hosts | link Gbit/s | α µs | options | measured step ms (median; runs) | model ms | model/measured | added by the link: measured / model ms |")
    print("|---|---|---|---|---|---|---|---|")
    for key, times in runs.items():
        hosts, gbit, latency, extra = key
        base_key = (hosts, "none", 0, "")
        if base_key not in runs:
            continue
        base = statistics.median(runs[base_key])
        measured = statistics.median(times)
        collectives = results[key]["collectives_per_step"]
        lat, transfer = communication(collectives, hosts, None if gbit == "none" else float(gbit), latency * 1e-6)
        model = base + lat + transfer
        added = measured - base
        runs_text = " / ".join(f"{t * 1e3:.0f}" for t in times)
        print(f"| {hosts} | {gbit} | {latency} | {extra or '—'} | {measured * 1e3:.1f} ({runs_text}) | {model * 1e3:.1f} | "
              f"{model / measured:.2f} | {added * 1e3:+.1f} / {(lat + transfer) * 1e3:+.1f} |")


if __name__ == "__main__":
    main(sys.argv[1])
