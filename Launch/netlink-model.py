#!/usr/bin/env python3
"""The communication cost model of Docs/performance.md against Launch/netlink's measurements.

    python3 Launch/netlink-model.py SWEEP.jsonl

Each line of SWEEP.jsonl is one `bench step` run on emulated hosts (hosts, gbit, latency_us,
extra, result). For every configuration the model's communication time of one step is, for
each collective of the step (sizes from the run's own `collectives_per_step`), α per message
round plus the bytes each rank sends over its link at the link's rate; it is compared with
`communication_seconds`, the step's collectives replayed alone on the same links:

    allreduce  recursive doubling  k + e rounds,      (k + e) · n bytes     (k = ⌊log₂ p⌋; e = 0 for a
               ring                2(p − 1) rounds,   2(p − 1)/p · n bytes   power of 2, else 2)
               Rabenseifner        2k + e rounds,     2(p − 1)/p · n bytes
    allgather  recursive doubling  ⌈log₂ p⌉ rounds,   (p − 1) · n bytes      (n = one rank's block)

with the algorithm Open MPI 4.1 picks for n and p: `LatencyModel` (Sources/Collectives/
LatencyModel.swift) plus the bandwidth term.
"""
import json
import math
import statistics
import sys

def allreduce_algorithm(n, p):
    """Open MPI 4.1's fixed decision for a commutative allreduce (LatencyModel.allreduceAlgorithm)."""
    if p < 4:
        for limit, algorithm in ((8, "ring"), (4096, "recursive doubling"), (8192, "ring"),
                                 (16384, "recursive doubling"), (262144, "ring")):
            if n < limit:
                return algorithm
        return "rabenseifner"
    if p < 8 and n < 16:
        return "ring"
    return "recursive doubling" if n < (8192 if p < 16 else 4096) else "rabenseifner"


def rounds_and_bytes(operation, n, p):
    """Message rounds and the bytes each rank sends for one collective of n bytes per rank."""
    if p < 2:
        return 0, 0
    k = p.bit_length() - 1
    extra = 0 if p == 1 << k else 2
    if operation == "allreduce":
        algorithm = allreduce_algorithm(n, p)
        if algorithm == "recursive doubling":
            return k + extra, (k + extra) * n
        if algorithm == "ring":
            return 2 * (p - 1), 2 * (p - 1) / p * n
        return 2 * k + extra, 2 * (p - 1) / p * n
    if operation == "allgather":
        return math.ceil(math.log2(p)), (p - 1) * n
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
    runs, replays, results = {}, {}, {}
    for line in open(path):
        row = json.loads(line)
        key = (row["hosts"], row["gbit"], row["latency_us"], row["extra"])
        runs.setdefault(key, []).append(row["result"]["median_step_seconds"])
        replays.setdefault(key, []).append(row["result"].get("communication_seconds", float("nan")))
        results[key] = row["result"]
    print("| hosts | link Gbit/s | α µs | options | step ms, median (runs) | step − unlimited step ms | collectives alone ms, median | model ms | model / measured |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key, times in runs.items():
        hosts, gbit, latency, extra = key
        lat, transfer = communication(results[key]["collectives_per_step"], hosts,
                                      None if gbit == "none" else float(gbit), latency * 1e-6)
        model = lat + transfer
        alone = statistics.median(replays[key])
        ratio = f"{model / alone:.2f}" if model > 0 and alone > 0 else "—"
        runs_text = " / ".join(f"{t * 1e3:.0f}" for t in times)
        step = statistics.median(times)
        unlimited = runs.get((hosts, "none", 0, ""))
        added = f"{(step - statistics.median(unlimited)) * 1e3:+.0f}" if unlimited else "—"
        print(f"| {hosts} | {gbit} | {latency} | {extra or '—'} | {step * 1e3:.0f} ({runs_text}) | {added} | "
              f"{alone * 1e3:.1f} | {model * 1e3:.1f} | {ratio} |")


if __name__ == "__main__":
    main(sys.argv[1])
