#!/usr/bin/env python3
"""The fault soak (Docs/reliability.md, "The fault soak"): one run trained through at least 20
faults, each followed by a resume on a random rank count, must end as the run trained without
them. Run by `Launch/drills soak`; standard library only.

  Launch/soak.py --bin .build/release/xbm-dist [--faults 20] [--iters 1500] [--seed 0]

A supervisor starts the run under `mpirun -np 4`. Once the job has trained a random number of
iterations past where it started, one of its ranks, chosen at random, is either killed
(SIGKILL: mpirun ends the others) or, in a job of 2 or 4 ranks, stopped (SIGSTOP: the others'
watchdog ends the job after --step-timeout). The run is then resumed with --resume on 1, 2 or 4 ranks, chosen at random,
and so on until the faults are done; the last job trains to the end. The run's logged losses
are then compared with an uninterrupted 1-rank run's (Launch/compare_losses.py), to 1e-4
relative: the tolerance of N ranks against one (Docs/distributed.md). The configuration is
chosen so that this holds without faults over the whole run (contrastive, a small learning
rate: the largest gap of 4 ranks against 1 is about 4e-7 over 1,200 iterations).

Reported: faults survived, the iterations each one cost (those trained after the checkpoint the
resume started from), and checkpoints that failed to load (a resume that had to fall back, or
could not resume at all); the soak fails unless that is 0.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STEP_TIMEOUT = 5          # seconds: how long a stopped rank holds the others (a slow disk must not trip it)
CHECKPOINT_EVERY = 10
RANK_COUNTS = (1, 2, 4)


def log(message):
    print(f"[soak] {message}", file=sys.stderr, flush=True)


def mpirun(np, args):
    """The mpirun command line for this kind of machine (Launch/common.sh, mpirun_xbm)."""
    command = ["mpirun", "--oversubscribe", "--bind-to", "none", "-np", str(np)]
    if os.geteuid() == 0:
        command.append("--allow-run-as-root")
    return command + args


def environment():
    env = dict(os.environ)
    env["OMPI_MCA_rmaps_base_oversubscribe"] = "1"
    return env


def children(pid):
    """Process ids whose parent is pid."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
    return found


def ranks_of(job_pid, binary_name):
    """The xbm-dist ranks under an mpirun (its children, or theirs)."""
    ranks, frontier = [], [job_pid]
    while frontier:
        pid = frontier.pop()
        for child in children(pid):
            try:
                with open(f"/proc/{child}/comm") as f:
                    name = f.read().strip()
            except OSError:
                continue
            if name == binary_name[:15]:
                ranks.append(child)
            else:
                frontier.append(child)
    return ranks


def last_logged_iteration(run_dir):
    """The highest iteration with a loss in metrics.jsonl (0 when none)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    last = 0
    try:
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line being written
                if "loss" in record:
                    last = max(last, record["iter"])
    except OSError:
        pass
    return last


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="the xbm-dist binary")
    parser.add_argument("--faults", type=int, default=20, help="faults to survive (default 20)")
    parser.add_argument("--iters", type=int, default=1500, help="the run's length (default 1500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault schedule (default 0)")
    parser.add_argument("--keep", help="keep the run directories here instead of a temporary directory")
    options = parser.parse_args()
    binary = os.path.abspath(options.bin)
    chooser = random.Random(options.seed)

    work = options.keep or tempfile.mkdtemp(prefix="xbm-soak-")
    os.makedirs(work, exist_ok=True)
    data = os.path.join(work, "data")
    if not os.path.exists(os.path.join(data, "meta.json")):
        subprocess.run([binary, "data", "synthetic", "--out", data, "--classes", "24", "--per-class", "6", "--dim", "16"],
                       check=True, stdout=subprocess.DEVNULL)
    train = ["train", "--data", data, "--batch", "16", "--instances", "4", "--dim", "8", "--hidden", "32",
             "--xbm-size", "40", "--xbm-start", "3", "--loss", "contrastive", "--lr", "0.0003", "--seed", "3",
             "--log-every", "1", "--eval-every", "0", "--iters", str(options.iters), "--threads", "1",
             "--checkpoint-every", str(CHECKPOINT_EVERY), "--step-timeout", str(STEP_TIMEOUT)]

    reference = os.path.join(work, "uninterrupted")
    shutil.rmtree(reference, ignore_errors=True)
    log(f"the uninterrupted run: {options.iters} iterations on 1 rank")
    subprocess.run([binary] + train + ["--run-dir", reference], check=True, stdout=subprocess.DEVNULL)

    run_dir = os.path.join(work, "soak")
    shutil.rmtree(run_dir, ignore_errors=True)
    faults, lost, failed_loads, ranks_used = [], [], 0, []
    np, resume, started = 4, False, time.time()
    while True:
        out_path = os.path.join(work, f"job{len(faults)}.log")
        args = train + ["--run-dir", run_dir] + (["--resume"] if resume else [])
        with open(out_path, "w") as out:
            job = subprocess.Popen(mpirun(np, [binary] + args), stdout=out, stderr=subprocess.STDOUT,
                                   env=environment(), start_new_session=True)
        ranks_used.append(np)
        fault = None
        if len(faults) < options.faults:
            # Wait until the job has trained a random number of iterations past the last one
            # logged before it started (a resumed job first trims the log back to its
            # checkpoint, then trains through the lost iterations again).
            target = last_logged_iteration(run_dir) + chooser.randint(3, 25)
            while job.poll() is None and last_logged_iteration(run_dir) < target:
                time.sleep(0.005)
            victims = ranks_of(job.pid, os.path.basename(binary))
            if job.poll() is None and victims:
                victim = chooser.choice(victims)
                # A stopped rank is noticed by the others' watchdog: with no other rank, a
                # stop is a pause nobody ends, so a 1-rank job is killed instead.
                kind = chooser.choice(["SIGKILL", "SIGSTOP"]) if np > 1 else "SIGKILL"
                os.kill(victim, signal.SIGKILL if kind == "SIGKILL" else signal.SIGSTOP)
                fault = {"kind": kind, "ranks": np}
        try:
            code = job.wait(timeout=STEP_TIMEOUT + 60)
        except subprocess.TimeoutExpired:
            os.killpg(job.pid, signal.SIGKILL)
            code = job.wait()
            log(f"job {len(faults)} hung after its fault: killed")
        # Ranks of this job that outlived it (a stopped one): gone for good.
        for pid in ranks_of(job.pid, os.path.basename(binary)):
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        with open(out_path) as f:
            text = f.read()
        if resume:
            failed_loads += len(re.findall(r"did not load", text))
            if "no checkpoint" in text and "loads" in text:
                failed_loads += 1
        if fault is None:
            if code != 0:
                sys.exit(f"soak: job {len(faults)} on {np} rank(s) failed without a fault (exit {code}); see {out_path}")
            break
        if code == 0:
            log(f"job {len(faults)} ended before its {fault['kind']} landed; resuming anyway")
        # The other ranks may finish a step or two (and checkpoint) before they notice.
        fault["reached"] = last_logged_iteration(run_dir)
        faults.append(fault)
        # The next job: resumed from the newest checkpoint, on a random rank count.
        np, resume = chooser.choice(RANK_COUNTS), True
        if not os.path.exists(os.path.join(run_dir, "checkpoint.xbm")):
            resume = False      # the fault came before the first checkpoint: start again
        log(f"fault {len(faults)}: {fault['kind']} to a rank of {fault['ranks']} at iteration {fault['reached']}; "
            f"resuming on {np}")

    # Iterations lost per fault: trained past the checkpoint the next job resumed from.
    for i, fault in enumerate(faults):
        with open(os.path.join(work, f"job{i + 1}.log")) as f:
            match = re.search(r"resumed at iteration (\d+)", f.read())
        resumed_at = int(match.group(1)) if match else 0
        lost.append(max(fault["reached"] - resumed_at, 0))

    comparison = subprocess.run([sys.executable, os.path.join(HERE, "compare_losses.py"), "1e-4", reference, run_dir],
                                capture_output=True, text=True)
    summary = {"faults": len(faults), "sigkill": sum(f["kind"] == "SIGKILL" for f in faults),
               "sigstop": sum(f["kind"] == "SIGSTOP" for f in faults), "rank_counts": ranks_used,
               "iterations_lost": lost, "iterations_lost_max": max(lost, default=0),
               "checkpoints_failed_to_load": failed_loads, "seconds": round(time.time() - started, 1),
               "matches_uninterrupted": comparison.returncode == 0,
               "comparison": (comparison.stdout or comparison.stderr).strip()}
    print(json.dumps(summary))
    if not options.keep:
        shutil.rmtree(work, ignore_errors=True)
    ok = len(faults) >= options.faults and failed_loads == 0 and comparison.returncode == 0
    if not ok:
        log("FAILED: " + "; ".join(p for p, bad in [
            (f"{len(faults)} faults < {options.faults}", len(faults) < options.faults),
            (f"{failed_loads} checkpoint(s) failed to load", failed_loads > 0),
            (summary["comparison"], comparison.returncode != 0)] if bad))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
