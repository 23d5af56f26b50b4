#!/usr/bin/env python3
"""The drift columns of Docs/results.md ("How stale the memory is"): for each cell of a study,
the distance of the rows the memory term reads from the current model's embeddings of their
samples (`memory_drift_compensated`, or `memory_drift` without compensation, in metrics.jsonl),
its mean over the run and its last value with the rows' mean age then, averaged over the
cell's finished seeds.

  python3 Launch/memory-drift-summary.py [STUDY]      (default finetune-drift)
"""
import glob
import json
import os
import statistics
import sys


def drift_series(run_dir):
    """[(iteration, drift, age)] of the run's drift measurements with a memory."""
    series = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            value = record.get("memory_drift_compensated", record.get("memory_drift"))
            if value is not None:
                series.append((record["iter"], value, record.get("memory_drift_age")))
    return series


def main():
    study = sys.argv[1] if len(sys.argv) > 1 else "finetune-drift"
    runs = sorted(glob.glob(os.path.join("runs", "experiments", study, "*-s*")))
    cells = sorted({os.path.basename(r).rsplit("-s", 1)[0] for r in runs})
    if not cells:
        sys.exit(f"no runs in runs/experiments/{study}: run `Launch/experiments run {study}` first")
    print("| cell | seeds | mean over the run | last | at iteration | mean age then |")
    print("|---|---|---|---|---|---|")
    for cell in cells:
        means, lasts, ages, last_iteration = [], [], [], None
        for run in runs:
            if os.path.basename(run).rsplit("-s", 1)[0] != cell or not os.path.exists(os.path.join(run, "metrics.json")):
                continue
            series = drift_series(run)
            if not series:
                continue
            means.append(statistics.mean(v for _, v, _ in series))
            last_iteration, last, age = series[-1]
            lasts.append(last)
            if age is not None:
                ages.append(age)
        if means:
            age = f"{statistics.mean(ages):.0f}" if ages else "—"
            print(f"| {cell} | {len(means)} | {statistics.mean(means):.3f} | {statistics.mean(lasts):.3f} | {last_iteration} | {age} |")


if __name__ == "__main__":
    main()
