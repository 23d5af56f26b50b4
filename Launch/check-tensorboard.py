#!/usr/bin/env python3
"""Checks that TensorBoard reads a run directory's event files as its metrics.jsonl says.

Usage: Launch/check-tensorboard.py RUN_DIR

Loads RUN_DIR with TensorBoard's own EventAccumulator and compares its scalars with the numbers
of metrics.jsonl (Docs/evaluation.md): the same tags, for each tag the same steps in the same
order, and every value equal to the logged number rounded to float32 (TensorBoard's
simple_value). Prints each mismatch and exits 1 if there is any. Needs the tensorboard package;
Launch/test runs it in a venv it makes on first use.
"""
import json
import os
import sys

import numpy
from tensorboard.backend.event_processing import event_accumulator


def logged_scalars(metrics_log):
    """tag -> [(step, value)] of every number in metrics.jsonl but "iter", in file order."""
    series = {}
    with open(metrics_log) as lines:
        for line in lines:
            record = json.loads(line)
            for key, value in record.items():
                if key != "iter" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    series.setdefault(key, []).append((record["iter"], value))
    return series


def tensorboard_scalars(run_dir):
    """tag -> [(step, value)] as TensorBoard loads them, keeping every point."""
    accumulator = event_accumulator.EventAccumulator(run_dir, size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    if accumulator.file_version != 2:
        sys.exit(f"{run_dir}: file_version {accumulator.file_version}, expected 2 (\"brain.Event:2\")")
    return {tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()[event_accumulator.SCALARS]}


def mismatches(logged, loaded):
    for tag in sorted(logged.keys() - loaded.keys()):
        yield f"{tag}: in metrics.jsonl, not in the event files"
    for tag in sorted(loaded.keys() - logged.keys()):
        yield f"{tag}: in the event files, not in metrics.jsonl"
    for tag in sorted(logged.keys() & loaded.keys()):
        steps, loaded_steps = [step for step, _ in logged[tag]], [step for step, _ in loaded[tag]]
        if steps != loaded_steps:
            yield f"{tag}: steps {loaded_steps} in the event files, {steps} in metrics.jsonl"
            continue
        for (step, value), (_, loaded_value) in zip(logged[tag], loaded[tag]):
            if loaded_value != float(numpy.float32(value)):
                yield f"{tag} at step {step}: {loaded_value!r} in the event files, {value!r} in metrics.jsonl"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    run_dir = sys.argv[1]
    files = sorted(name for name in os.listdir(run_dir) if "tfevents" in name)
    if not files:
        sys.exit(f"{run_dir}: no event file (events.out.tfevents.*); was it written by this xbm-dist?")
    logged = logged_scalars(os.path.join(run_dir, "metrics.jsonl"))
    problems = list(mismatches(logged, tensorboard_scalars(run_dir)))
    for problem in problems:
        print(f"mismatch: {problem}")
    if problems:
        sys.exit(f"{run_dir}: {', '.join(files)} and metrics.jsonl disagree (the mismatches above)")
    points = sum(len(series) for series in logged.values())
    print(f"{run_dir}: TensorBoard reads {points} points of {len(logged)} tags from {', '.join(files)}, "
          f"as metrics.jsonl logs them")


if __name__ == "__main__":
    main()
