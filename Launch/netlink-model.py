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
LatencyModel.swift) plus the bandwidth term. The calibrated column takes the link at half its
tbf rate and the collectives' time on unlimited links as a floor (Docs/performance.md says why).
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
    print("| hosts | link Gbit/s | α µs | options | collectives alone ms, median (runs) | model ms "
          "| calibrated model ms | calibrated / measured | step ms, median (runs) | step model ms | step model / measured |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for key, times in runs.items():
        hosts, gbit, latency, extra = key
        lat, transfer = communication(results[key]["collectives_per_step"], hosts,
                                      None if gbit == "none" else float(gbit), latency * 1e-6)
        alone = statistics.median(replays[key])
        # Calibrated: the emulated link carries these two-way transfers at about half its tbf
        # rate, and the machine's own cost of moving the bytes (the collectives alone on
        # unlimited links) is a floor the transfer overlaps.
        floor = statistics.median(replays.get((hosts, "none", 0, ""), [0.0]))
        calibrated = max(floor, 2 * transfer) + lat
        ratio = f"{calibrated / alone:.2f}" if calibrated > 0 and alone > 0 else "—"
        # The step: its computation (the unlimited-link step less its collectives alone)
        # plus the calibrated communication, none of it overlapped.
        step = statistics.median(times)
        unlimited = statistics.median(runs.get((hosts, "none", 0, ""), [float("nan")]))
        step_model = unlimited - floor + calibrated
        step_runs = " / ".join(f"{t * 1e3:.0f}" for t in times)
        alone_runs = " / ".join(f"{t * 1e3:.0f}" for t in replays[key])
        print(f"| {hosts} | {gbit} | {latency} | {extra or '—'} | {alone * 1e3:.1f} ({alone_runs}) | "
              f"{(lat + transfer) * 1e3:.1f} | {calibrated * 1e3:.1f} | {ratio} | {step * 1e3:.0f} ({step_runs}) | "
              f"{step_model * 1e3:.0f} | {step_model / step:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1])
