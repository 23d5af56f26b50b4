#!/usr/bin/env python3
"""Unit tests of Launch/experiments (standard library only):
    python3 Launch/experiments_test.py        (or: python3 -m unittest discover -s Launch -p 'experiments_test.py')
Expected values are worked by hand in the comments. The recipe tests ask the release binary
what options resolve to (`xbm-dist train --print-config`), as the runner does; they are
skipped when .build/release/xbm-dist is missing (Launch/test builds it first)."""
import importlib.machinery
import importlib.util
import json
import os
import shutil
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
_loader = importlib.machinery.SourceFileLoader("experiments", os.path.join(HERE, "experiments"))
_spec = importlib.util.spec_from_loader("experiments", _loader)
ex = importlib.util.module_from_spec(_spec)
_loader.exec_module(ex)
HAVE_BINARY = os.access(os.path.join(ex.ROOT, ex.BIN), os.X_OK)

STUDIES = {
    "datasets": {"toy": {"build": ["data", "synthetic", "--classes", "30"]}},
    "studies": {
        "gain": {
            "description": "toy",
            "dataset": "toy",
            "base": "--batch 16 --milestones 800 --milestones 1600 --iters 2400",
            "cells": [
                {"label": "without", "options": "--xbm-size 0"},
                {"label": "with", "options": ["--xbm-size", "1024", "--iters", "3200"], "pair": "without"},
                {"label": "mpi", "ranks": 4, "options": "--xbm-size 0"},
                {"label": "torch", "kind": "reference", "options": "--iters 2400"},
                {"label": "one-thread", "options": "--threads 1 --lr 0.0004"},
            ],
        }
    },
}


def metrics(r1, r10=97.0, r100=99.0, r1000=99.5, mapr=50.0):
    return {"R@1": r1, "R@10": r10, "R@100": r100, "R@1000": r1000, "MAP@R": mapr}


class Aggregation(unittest.TestCase):
    def test_mean_half_range(self):
        # (91.0 + 91.4) / 2 = 91.2; (91.4 − 91.0) / 2 = 0.2
        mean, half = ex.mean_half_range([91.0, 91.4])
        self.assertAlmostEqual(mean, 91.2)
        self.assertAlmostEqual(half, 0.2)
        # (1 + 2 + 6) / 3 = 3; (6 − 1) / 2 = 2.5: the half range, not a standard deviation
        self.assertEqual(ex.mean_half_range([1, 2, 6]), (3.0, 2.5))
        self.assertEqual(ex.mean_half_range([5.0]), (5.0, 0.0))
        self.assertEqual(ex.mean_half_range([None, 5.0]), (5.0, 0.0))
        self.assertIsNone(ex.mean_half_range([]))

    def test_gains_are_paired_by_seed(self):
        # seed 0: 91.5 − 91.2 = +0.3; seed 1: 91.0 − 91.1 = −0.1; seed 2 has no partner.
        gains = ex.paired_gains({0: 91.5, 1: 91.0}, {0: 91.2, 1: 91.1, 2: 90.0})
        self.assertEqual(sorted(gains), [0, 1])
        self.assertAlmostEqual(gains[0], 0.3)
        self.assertAlmostEqual(gains[1], -0.1)
        # mean (0.3 − 0.1) / 2 = 0.1, half range (0.3 + 0.1) / 2 = 0.2
        mean, half = ex.mean_half_range(list(gains.values()))
        self.assertAlmostEqual(mean, 0.1)
        self.assertAlmostEqual(half, 0.2)
        # Pairing by seed, not by position: means would give (1 + 3)/2 − (0.5 + 9)/2 = −2.75,
        # the only common seed gives 1.0 − 0.5 = 0.5.
        self.assertEqual(ex.paired_gains({0: 1.0, 2: 3.0}, {0: 0.5, 1: 9.0}), {0: 0.5})
        self.assertEqual(ex.paired_gains({0: 1.0}, {1: 2.0}), {})

    def test_format(self):
        self.assertEqual(ex.format_pm((91.2, 0.2)), "91.20 ± 0.20")
        self.assertEqual(ex.format_pm((0.1, 0.2), signed=True), "+0.10 ± 0.20")
        self.assertEqual(ex.format_pm((-0.05, 0.15), signed=True), "-0.05 ± 0.15")
        self.assertEqual(ex.format_pm(None), "—")

    def test_table_rows(self):
        s = ex.study(STUDIES, "gain")
        results = {
            "without": {0: metrics(90.0, mapr=50.0), 1: metrics(91.0, mapr=51.0)},
            "with": {0: metrics(90.5, r10=98.0), 1: metrics(91.7, r10=98.4)},
            "torch": {1: metrics(89.0)},
        }
        commands = {"without": "A", "with": "B | C", "mpi": "D", "torch": "E"}
        commands["one-thread"] = "F"
        rows = ex.table_rows(s, results, commands)
        self.assertEqual(rows[0].count("|"), 11)
        self.assertEqual(rows[1], "|---|---|---|---|---|---|---|---|---|---|")
        # without: R@1 (90 + 91)/2 = 90.5 ± 0.5; MAP@R 50.5 ± 0.5
        self.assertEqual(rows[2], "| **without** | 0, 1 | 90.50 ± 0.50 | 90.00, 91.00 | 97.00 ± 0.00 | 99.00 ± 0.00 "
                                  "| 99.50 ± 0.00 | 50.50 ± 0.50 |  | `A` |")
        # with: R@1 (90.5 + 91.7)/2 = 91.1 ± 0.6; R@10 98.2 ± 0.2;
        # gains +0.5 (seed 0), +0.7 (seed 1): +0.60 ± 0.10; a | in the command is escaped.
        self.assertEqual(rows[3], "| **with** | 0, 1 | 91.10 ± 0.60 | 90.50, 91.70 | 98.20 ± 0.20 | 99.00 ± 0.00 "
                                  "| 99.50 ± 0.00 | 50.00 ± 0.00 | +0.60 ± 0.10 vs without (+0.50, +0.70) | `B \\| C` |")
        self.assertEqual(rows[4], "| **mpi** | none yet | — | — | — | — | — | — |  | `D` |")
        self.assertEqual(rows[5], "| **torch** (PyTorch) | 1 | 89.00 ± 0.00 | 89.00 | 97.00 ± 0.00 | 99.00 ± 0.00 "
                                  "| 99.50 ± 0.00 | 50.00 ± 0.00 |  | `E` |")


class Options(unittest.TestCase):
    def test_groups(self):
        self.assertEqual(ex.option_groups(["--check-replicas", "--iters=7", "--lr", "-0.5", "--xbm-start", "auto"]),
                         [("--check-replicas", []), ("--iters", ["7"]), ("--lr", ["-0.5"]), ("--xbm-start", ["auto"])])
        with self.assertRaises(ex.Failure):
            ex.option_groups(["16", "--batch"])

    def test_reference_config(self):
        # argparse's view: one value each, the last occurrence wins
        self.assertEqual(ex.reference_config(["--threads", "2", "--iters", "2400", "--threads", "1", "--iters=20"]),
                         {"--threads": ["1"], "--iters": ["20"]})

    def test_slug(self):
        self.assertEqual(ex.override_slug(["--iters", "20", "--eval-every", "0"], [], None), "iters-20_eval-every-0")
        self.assertEqual(ex.override_slug([], [], "/tmp/hz-small/"), "data-hz-small")
        long = ex.override_slug(["--iters", "20"] * 20, [], None)
        self.assertEqual(len(long), 60)


class Commands(unittest.TestCase):
    def setUp(self):
        self.s = ex.study(STUDIES, "gain")
        self.cells = {c["label"]: c for c in self.s["cells"]}

    def test_single_process(self):
        # every source's options in order (base, cell, the runner's own): xbm-dist resolves them
        line = ex.command_line(ex.Settings(), self.s, self.cells["with"], 1)
        self.assertEqual(line, ".build/release/xbm-dist train --threads 2 --batch 16 --milestones 800 --milestones 1600 "
                               "--iters 2400 --xbm-size 1024 --iters 3200 --data data/toy --seed 1 "
                               "--run-dir runs/experiments/gain/with-s1")
        resumed = ex.command_line(ex.Settings(), self.s, self.cells["with"], 1, resume=True)
        self.assertEqual(resumed, line + " --resume")

    def test_threads_default_only_when_not_given(self):
        line = ex.command_line(ex.Settings(), self.s, self.cells["one-thread"], 0)
        self.assertEqual(line, ".build/release/xbm-dist train --batch 16 --milestones 800 --milestones 1600 --iters 2400 "
                               "--threads 1 --lr 0.0004 --data data/toy --seed 0 --run-dir runs/experiments/gain/one-thread-s0")
        line = ex.command_line(ex.Settings(["--threads=3"]), self.s, self.cells["without"], 0)
        self.assertNotIn("--threads 2", line)
        self.assertIn(" --threads=3 ", line)

    def test_mpirun_and_override(self):
        settings = ex.Settings(["--iters", "20", "--eval-every", "0"])
        line = ex.command_line(settings, self.s, self.cells["mpi"], 0)
        # no --threads under mpirun (each rank picks its own); the override comes after the cell's options
        self.assertEqual(line, "source Launch/common.sh && mpirun_xbm -np 4 .build/release/xbm-dist train --batch 16 "
                               "--milestones 800 --milestones 1600 --iters 2400 --xbm-size 0 --iters 20 --eval-every 0 "
                               "--data data/toy --seed 0 --run-dir runs/experiments-override/iters-20_eval-every-0/gain/mpi-s0")

    def test_reference(self):
        settings = ex.Settings(["--iters", "20", "--eval-every", "0"], python="/venv/bin/python")
        # the reference keeps only the overrides it understands (--iters, not --eval-every)
        self.assertEqual(ex.command_line(settings, self.s, self.cells["torch"], 0),
                         "/venv/bin/python Launch/reference/torch_glyphnet.py --threads 2 --iters 2400 --iters 20 "
                         "--data data/toy --seed 0 --out runs/experiments-override/iters-20_eval-every-0/gain/torch-s0/"
                         "metrics.json")
        self.assertEqual(ex.display_command(settings, self.s, self.cells["torch"]),
                         '"$(Launch/reference/setup)" Launch/reference/torch_glyphnet.py --threads 2 --iters 2400 '
                         "--iters 20 --data data/toy --seed {seed} --out runs/experiments-override/iters-20_eval-every-0/"
                         "gain/torch-s{seed}/metrics.json")
        # its recipe needs no xbm-dist: the reference's options by name, the last value of each
        recipe = ex.recipe(settings, self.s, self.cells["torch"], 0)
        self.assertEqual(recipe["config"]["--iters"], ["20"])
        self.assertEqual(recipe["config"]["--threads"], ["2"])
        self.assertEqual(recipe["ranks"], 1)

    def test_study_validation(self):
        bad = json.loads(json.dumps(STUDIES))
        bad["studies"]["gain"]["cells"][1]["pair"] = "nothing"
        with self.assertRaises(ex.Failure):
            ex.study(bad, "gain")
        bad = json.loads(json.dumps(STUDIES))
        bad["studies"]["gain"]["cels"] = []
        with self.assertRaises(ex.Failure):
            ex.study(bad, "gain")
        self.assertEqual(self.s["dataset"], {"name": "toy", "dir": "data/toy",
                                             "build": ["data", "synthetic", "--classes", "30"]})


def xbm_recipe(config, seed=0, options=("--iters", "20")):
    return {"study": "gain", "cell": "with", "seed": seed, "kind": "xbm-dist", "ranks": 1,
            "options": list(options), "config": dict(config)}


class Resumability(unittest.TestCase):
    R = xbm_recipe({"iters": 20, "lr": 0.001, "milestones": [15]})

    def test_decide(self):
        R, other = self.R, xbm_recipe({"iters": 30, "lr": 0.001, "milestones": [15]})
        self.assertEqual(ex.decide("xbm-dist", True, True, R, R), "done")
        self.assertEqual(ex.decide("xbm-dist", True, False, None, R), "done")      # no recipe.json: trusted
        self.assertEqual(ex.decide("xbm-dist", False, True, R, R), "resume")
        self.assertEqual(ex.decide("xbm-dist", False, False, R, R), "fresh")
        self.assertEqual(ex.decide("reference", False, True, R, R), "fresh")      # the reference never resumes
        self.assertEqual(ex.decide("reference", True, False, R, R), "done")
        self.assertEqual(ex.decide("xbm-dist", True, True, other, R), "stale")    # made by another recipe
        self.assertEqual(ex.decide("xbm-dist", False, False, other, R), "stale")

    def test_same_recipe_compares_configurations(self):
        R = self.R
        # the same configuration spelled otherwise: the same run
        self.assertTrue(ex.same_recipe(xbm_recipe(R["config"], options=["--iters=20", "--threads", "1"]), R))
        # any value that differs, a list included, makes another run
        self.assertFalse(ex.same_recipe(R, xbm_recipe(dict(R["config"], lr=0.01))))
        self.assertFalse(ex.same_recipe(R, xbm_recipe(dict(R["config"], milestones=[15, 18]))))
        self.assertFalse(ex.same_recipe(xbm_recipe(R["config"], seed=1), R))
        self.assertFalse(ex.same_recipe(dict(R, ranks=2), R))
        self.assertFalse(ex.same_recipe({"options": ["--iters", "20"]}, R))
        # a key the stored configuration lacks (an option added to xbm-dist since) counts at its
        # default: the same run at the default, another one away from it
        defaults = {"iters": 2400, "lr": 0.001, "milestones": ["75%"], "new-option": 3}
        newer = xbm_recipe(dict(R["config"], **{"new-option": 3}))
        self.assertTrue(ex.same_recipe(R, newer, defaults))
        self.assertFalse(ex.same_recipe(R, newer))                              # no defaults to fill in
        self.assertFalse(ex.same_recipe(R, xbm_recipe(dict(R["config"], **{"new-option": 4})), defaults))
        # a key without a default (given, or not at all: --margin) is never filled in
        self.assertFalse(ex.same_recipe(R, xbm_recipe(dict(R["config"], margin=0.7)), defaults))
        self.assertFalse(ex.same_recipe(xbm_recipe(dict(R["config"], margin=0.7)), R, defaults))
        self.assertEqual(ex.decide("xbm-dist", True, False, R, newer, defaults), "done")
        self.assertEqual(ex.decide("xbm-dist", True, False, R, newer), "stale")
        # the reference's options are compared whole: an option added to a cell is another run
        ref = dict(R, kind="reference", config={"--iters": ["20"]})
        self.assertTrue(ex.same_recipe(ref, dict(ref)))
        self.assertFalse(ex.same_recipe(ref, dict(ref, config={"--iters": ["20"], "--lr": ["0.01"]}), defaults))

    def test_recipes_of_the_earlier_runner(self):
        # recipe.json before "config": the runner's merged options and hashes of --config files
        root = tempfile.mkdtemp()
        try:
            ref = {"study": "gain", "cell": "torch", "seed": 0, "kind": "reference", "ranks": 1,
                   "options": ["--threads", "1", "--iters", "2400", "--data", "data/toy"], "config_sha256": {}}
            current = dict(ref, options=["--iters", "2400", "--threads", "1", "--data", "data/toy"],
                           config=ex.reference_config(["--iters", "2400", "--threads", "1", "--data", "data/toy"]))
            del current["config_sha256"]
            self.assertTrue(ex.same_recipe(ex.upgrade_recipe(ref, root), current))
            # an xbm-dist run compares as the configuration its own config.json holds
            old = dict(ref, cell="with", kind="xbm-dist", options=["--iters", "20", "--run-dir", "x"])
            with open(os.path.join(root, "config.json"), "w") as f:
                json.dump({"iters": 20, "lr": 0.001, "milestones": [15]}, f)
            upgraded = ex.upgrade_recipe(old, root)
            self.assertEqual(upgraded["config"], {"iters": 20, "lr": 0.001, "milestones": [15]})
            self.assertNotIn("config_sha256", upgraded)
            self.assertTrue(ex.same_recipe(upgraded, xbm_recipe(upgraded["config"], options=["--whatever"])))
            # today's recipes pass through
            self.assertIs(ex.upgrade_recipe(self.R, root), self.R)
        finally:
            shutil.rmtree(root)


@unittest.skipUnless(HAVE_BINARY, f"{ex.BIN} is missing: build it (Launch/setup) to test the recipes it resolves")
class Recipes(unittest.TestCase):
    """The recipe is what xbm-dist itself resolves a run's options to (train --print-config)."""

    def setUp(self):
        ex._resolved.clear()
        self.s = ex.study(STUDIES, "gain")
        self.cells = {c["label"]: c for c in self.s["cells"]}
        self.tmp = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_resolved_by_xbm_dist(self):
        config = ex.resolve_config(["--iters", "5"])
        self.assertEqual(config["iters"], 5)
        self.assertEqual(config["data"], "")                # not given
        self.assertIn("xbm-size", config)                   # defaults filled in
        recipe = ex.recipe(ex.Settings(), self.s, self.cells["with"], 1)
        c = recipe["config"]
        # the cell's --iters 3200 comes after the base's 2400: xbm-dist takes the later one
        self.assertEqual((c["iters"], c["batch"], c["xbm-size"], c["seed"]), (3200, 16, 1024, 1))
        self.assertEqual((c["data"], c["run-dir"]), ("data/toy", "runs/experiments/gain/with-s1"))
        self.assertEqual(recipe["options"], ex.run_options(ex.Settings(), self.s, self.cells["with"], 1)[1])
        # --threads is how the run is computed, not what: the same configuration
        one = ex.recipe(ex.Settings(["--threads", "1"]), self.s, self.cells["with"], 1)["config"]
        self.assertEqual(dict(one, **{"run-dir": c["run-dir"]}), c)

    def test_config_file_is_part_of_the_configuration(self):
        path = os.path.join(self.tmp, "recipe.json")
        with open(path, "w") as f:
            json.dump({"lr": 0.0004, "xbm-weight": 2}, f)
        options = ["--config", path, "--iters", "20"]
        before = ex.resolve_config(options)
        self.assertEqual((before["lr"], before["xbm-weight"], before["iters"]), (0.0004, 2, 20))
        self.assertEqual(ex.resolve_config(options + ["--lr", "0.001"])["lr"], 0.001)   # the command line wins
        with open(path, "w") as f:
            json.dump({"lr": 0.0004, "xbm-weight": 1}, f)
        ex._resolved.clear()
        after = ex.resolve_config(options)
        self.assertFalse(ex.same_recipe(xbm_recipe(before, options=options), xbm_recipe(after, options=options)))

    def test_an_optional_key_given_later_is_another_run(self):
        # --margin has no default value (the loss' own): absent from a configuration without it
        plain, margin = ex.resolve_config(["--iters", "20"]), ex.resolve_config(["--iters", "20", "--margin", "0.7"])
        self.assertNotIn("margin", plain)
        self.assertEqual(margin["margin"], 0.7)
        defaults = ex.resolve_config([])
        self.assertFalse(ex.same_recipe(xbm_recipe(plain), xbm_recipe(margin), defaults))
        self.assertFalse(ex.same_recipe(xbm_recipe(margin), xbm_recipe(plain), defaults))
        self.assertTrue(ex.same_recipe(xbm_recipe(margin), xbm_recipe(margin), defaults))

    def test_refused_options_are_a_failure(self):
        with self.assertRaises(ex.Failure) as caught:
            ex.resolve_config(["--no-such-option", "3"])
        self.assertIn("--no-such-option", str(caught.exception))

    def test_run_directories(self):
        saved = ex.RUNS
        ex.RUNS = os.path.join(self.tmp, "runs")
        try:
            settings, s, cells = ex.Settings(), self.s, self.cells

            def make(label, seed, files, recipe=True):
                d = os.path.join(ex.ROOT, ex.run_dir(settings, s, cells[label], seed))
                os.makedirs(d)
                for name, content in files.items():
                    with open(os.path.join(d, name), "w") as f:
                        f.write(json.dumps(content))
                if recipe:
                    with open(os.path.join(d, "recipe.json"), "w") as f:
                        json.dump(ex.recipe(settings, s, cells[label], seed), f)
                return d

            def edit_recipe(label, seed, change):
                path = os.path.join(ex.ROOT, ex.run_dir(settings, s, cells[label], seed), "recipe.json")
                with open(path) as f:
                    r = json.load(f)
                change(r)
                with open(path, "w") as f:
                    json.dump(r, f)

            make("without", 0, {"metrics.json": metrics(90.0)})
            make("without", 1, {"checkpoint.xbm": "x"})
            make("with", 0, {"metrics.json": metrics(91.0)}, recipe=False)
            make("with", 1, {"metrics.json": metrics(92.0)})
            edit_recipe("with", 1, lambda r: r["config"].update(lr=0.01))            # made with another --lr
            make("one-thread", 0, {"metrics.json": metrics(88.0)})
            edit_recipe("one-thread", 0, lambda r: r.update(options=["--lr=0.0004"]))  # spelled otherwise
            make("one-thread", 1, {"metrics.json": metrics(88.5)})
            edit_recipe("one-thread", 1, lambda r: r["config"].pop("xbm-weight"))   # before --xbm-weight existed
            make("one-thread", 2, {"metrics.json": metrics(88.7)})
            edit_recipe("one-thread", 2, lambda r: r["config"].pop("lr"))           # ... --lr: the cell's is not the default
            make("torch", 0, {"train.log": "killed"})
            make("torch", 1, {"metrics.json": metrics(89.0)})
            edit_recipe("torch", 1, lambda r: r["config"].update({"--iters": ["20"]}))
            make("without", 2, {"metrics.json": metrics(89.0)})     # an extra seed, found on disk
            # recipe.json of the earlier runner: options merged by it, hashes of --config files
            config = ex.recipe(settings, s, cells["mpi"], 1)["config"]
            config.pop("xbm-weight")                                # written before --xbm-weight existed
            d = make("mpi", 1, {"metrics.json": metrics(87.0), "config.json": config}, recipe=False)
            with open(os.path.join(d, "recipe.json"), "w") as f:
                json.dump({"study": "gain", "cell": "mpi", "seed": 1, "kind": "xbm-dist", "ranks": 4,
                           "options": ["--batch", "16", "--milestones", "800", "--milestones", "1600"],
                           "config_sha256": {}}, f)
            d = make("torch", 2, {"metrics.json": metrics(86.0)}, recipe=False)
            with open(os.path.join(d, "recipe.json"), "w") as f:
                json.dump({"study": "gain", "cell": "torch", "seed": 2, "kind": "reference", "ranks": 1,
                           "options": ["--iters", "2400", "--threads", "2", "--seed", "2", "--data", "data/toy",
                                       "--out", os.path.join(ex.run_dir(settings, s, cells["torch"], 2), "metrics.json")],
                           "config_sha256": {}}, f)
            state = lambda label, seed: ex.run_state(settings, s, cells[label], seed)
            self.assertEqual(state("without", 0), "done")
            self.assertEqual(state("without", 1), "resume")
            self.assertEqual(state("with", 0), "done")
            self.assertEqual(state("with", 1), "stale")
            self.assertEqual(state("one-thread", 0), "done")
            self.assertEqual(state("one-thread", 1), "done")
            self.assertEqual(state("one-thread", 2), "stale")
            self.assertEqual(state("torch", 0), "fresh")
            self.assertEqual(state("torch", 1), "stale")
            self.assertEqual(state("mpi", 0), "fresh")                 # no directory at all
            self.assertEqual(state("mpi", 1), "done")                  # compared as its config.json
            self.assertEqual(state("torch", 2), "done")                # the same options, in another order
            results = ex.collect(settings, s)
            self.assertEqual({k: sorted(v) for k, v in results.items()},
                             {"without": [0, 2], "with": [0], "one-thread": [0, 1], "mpi": [1], "torch": [2]})
        finally:
            ex.RUNS = saved


class Report(unittest.TestCase):
    def test_markdown_only(self):
        tmp = tempfile.mkdtemp()
        saved = ex.RUNS, ex.DOCS
        ex.RUNS, ex.DOCS = os.path.join(tmp, "runs"), os.path.join(tmp, "docs")
        try:
            ex.write_report(ex.Settings(), ex.study(STUDIES, "gain"))
            self.assertEqual(os.listdir(ex.DOCS), ["gain.md"])
            with open(os.path.join(ex.DOCS, "gain.md")) as f:
                text = f.read()
            self.assertIn("| **mpi** | none yet |", text)
            self.assertNotIn("![", text)
            self.assertIn("No finished run yet.", text)
        finally:
            ex.RUNS, ex.DOCS = saved
            shutil.rmtree(tmp)


if __name__ == "__main__":
    unittest.main()
