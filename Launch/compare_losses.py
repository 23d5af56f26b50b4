#!/usr/bin/env python3
"""Compares the per-iteration losses of xbm-dist runs (their metrics.jsonl files).

Usage: compare_losses.py TOLERANCE REFERENCE_RUN_DIR RUN_DIR...
Exits non-zero, naming the iteration, when a run's loss differs from the reference's by more
than TOLERANCE relative, or when the runs logged different iterations.
"""
import json
import sys


def losses(run_dir):
    out = {}
    with open(f"{run_dir}/metrics.jsonl") as f:
        for line in f:
            record = json.loads(line)
            if "loss" in record:
                out[record["iter"]] = record["loss"]
    return out


def main():
    tolerance, reference, runs = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
    expected = losses(reference)
    if not expected:
        sys.exit(f"{reference}: no losses logged")
    worst = 0.0
    for run in runs:
        got = losses(run)
        if sorted(got) != sorted(expected):
            sys.exit(f"{run}: logged iterations {sorted(got)} differ from {reference}'s {sorted(expected)}")
        for it, value in sorted(expected.items()):
            gap = abs(got[it] - value) / max(abs(value), 1e-3)
            worst = max(worst, gap)
            if gap > tolerance:
                sys.exit(f"{run}: loss at iteration {it} is {got[it]!r}, reference {value!r} (relative gap {gap:.2e} > {tolerance})")
    print(f"{len(runs)} run(s) match {reference} over {len(expected)} iterations (largest relative gap {worst:.2e})")


if __name__ == "__main__":
    main()
