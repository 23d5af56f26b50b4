#!/usr/bin/env python3
"""Unit tests of Launch/experiments (standard library only):
    python3 Launch/experiments_test.py        (or: python3 -m unittest discover -s Launch -p 'experiments_test.py')
Expected values are worked by hand in the comments. The recipe tests ask the release binary
what options resolve to (`xbm-dist train --print-config`), as the runner does; they are
skipped when .build/release/xbm-dist is missing (Launch/test builds it first). The backbone
tests run the runner for real against FAKE_XBM_DIST below, a stand-in for the binary that
resolves options, "trains" in milliseconds and logs every command it is given."""
import contextlib
import importlib.machinery
import importlib.util
import io
import json
import os
import shutil
import stat
import sys
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

    def test_the_finetune_studies(self):
        # the study file's fine-tuning studies as xbm-dist resolves them: every cell starts from
        # the backbone (the runner's --init-from wins over configs/finetune.yaml's runs/pretrain),
        # which trains on hanzi level 1 without a memory whatever configs/pretrain.yaml names
        data = ex.load_file()
        names = [n for n in ex.public(data["studies"]) if ex.study(data, n)["backbone"]]
        self.assertEqual(sorted(names), ["finetune-batch", "finetune-drift", "finetune-gain", "finetune-gain-f5",
                                         "finetune-size", "finetune-start"])
        configs = {}
        for name in names:
            s = ex.study(data, name)
            for c in s["cells"]:
                r = ex.recipe(ex.Settings(), s, c, 2)
                self.assertEqual(r["config"]["init-from"], s["backbone"]["dir"])
                self.assertEqual((r["config"]["seed"], r["config"]["lr"]), (2, 0.001))
                self.assertEqual((r["backbone"]["data"], r["backbone"]["xbm-size"], r["backbone"]["run-dir"]),
                                 ("data/hanzi", 0, "runs/backbones/hanzi-l1"))
                configs[name, c["label"]] = r["config"]
        # finetune-batch: the same number of images seen, batch 64 without the memory, batch 16 with it
        b64, b16 = configs["finetune-batch", "b64-without"], configs["finetune-batch", "b16-with"]
        self.assertEqual(b64["batch"] * b64["iters"], b16["batch"] * b16["iters"])
        self.assertEqual((b64["batch"], b64["xbm-size"], b16["batch"], b16["xbm-size"]), (64, 0, 16, 16384))
        self.assertEqual(b16["milestones"], ["75%"])
        # finetune-drift: each compensation against plain XBM at its batch, the same images seen,
        # a refresh of one global batch of rows per step
        drift = {label: configs["finetune-drift", label] for label in
                 ("b64-plain", "b64-moments", "b64-refresh", "b16-plain", "b16-moments", "b16-refresh")}
        self.assertEqual({label: (c["batch"] * c["iters"], c["xbm-compensate"], c["xbm-refresh"])
                          for label, c in drift.items()},
                         {"b64-plain": (153600, "none", 0), "b64-moments": (153600, "moments", 0),
                          "b64-refresh": (153600, "none", 64), "b16-plain": (153600, "none", 0),
                          "b16-moments": (153600, "moments", 0), "b16-refresh": (153600, "none", 16)})
        # finetune-size: the largest memory is the whole training split of hanzi-l2 (1,504 × 27)
        self.assertEqual(configs["finetune-size", "m40608"]["xbm-size"], 1504 * 27)
        meta = ex.read_json(os.path.join(ex.ROOT, "data", "hanzi-l2", "meta.json"))
        if meta:
            self.assertEqual(meta["train_count"], 1504 * 27)
        # the cells of finetune-start differ in the start only
        starts = {label: configs["finetune-start", label] for label in ("start0", "start200", "start600")}
        self.assertEqual({label: c["xbm-start"] for label, c in starts.items()},
                         {"start0": 0, "start200": 200, "start600": 600})
        strip = lambda c: {k: v for k, v in c.items() if k not in ("xbm-start", "run-dir")}
        self.assertEqual(strip(starts["start0"]), strip(starts["start600"]))

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


# A stand-in for xbm-dist: `train --print-config` prints the options it was given over a few
# defaults (a --config JSON file first, the command line over it, the last value winning,
# --threads left out as by xbm-dist); `train` logs its arguments to $FAKE_XBM_LOG and writes
# config.json, checkpoint.xbm and metrics.json, R@1 = 50 + seed + 10 with a memory + 20 with
# --init-from (refused, exit 3, unless that directory has metrics.json, and not read on
# --resume; config.json records init-from-checksum, and as xbm-dist, --resume keeps the recorded
# checksum when the request names the same source without one, and refuses, exit 2, another); `data ... --out DIR`
# writes DIR/meta.json.
FAKE_XBM_DIST = r"""#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
def log(entry):
    with open(os.environ["FAKE_XBM_LOG"], "a") as f:
        f.write(json.dumps(entry) + "\n")
if args[0] == "data":
    out = args[args.index("--out") + 1]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump({"built by": args}, f)
    log(args)
    sys.exit(0)
config = {"iters": 100, "seed": 0, "lr": 0.001, "xbm-size": 16384, "data": "", "run-dir": "runs/hanzi"}
given, flags, i = [], set(), 1
while i < len(args):
    if args[i] in ("--print-config", "--resume"):
        flags.add(args[i]); i += 1
    else:
        given.append((args[i][2:], args[i + 1])); i += 2
for name, value in given:
    if name == "config":
        with open(value) as f:
            config.update(json.load(f))
for name, value in given:
    if name not in ("config", "threads"):
        config[name] = int(value) if value.lstrip("-").isdigit() else value
if "--print-config" in flags:
    print(json.dumps(config)); sys.exit(0)
log(args)
d = config["run-dir"]
source = config.get("init-from")
if source and "--resume" not in flags:
    if not os.path.exists(os.path.join(source, "metrics.json")):
        print(f"--init-from {source}: no trained network there", file=sys.stderr); sys.exit(3)
    config["init-from-checksum"] = "0123456789abcdef"
if "--resume" in flags:
    saved = {}
    if os.path.exists(os.path.join(d, "config.json")):
        with open(os.path.join(d, "config.json")) as f:
            saved = json.load(f)
    if "init-from-checksum" not in config and config.get("init-from") == saved.get("init-from"):
        config["init-from-checksum"] = saved.get("init-from-checksum")
    if saved.get("init-from-checksum") != config.get("init-from-checksum"):
        print("error: --resume would change what the checkpointed run computes: --init-from-checksum", file=sys.stderr)
        sys.exit(2)
os.makedirs(d, exist_ok=True)
for name, content in (("config.json", config), ("checkpoint.xbm", "weights"),
                      ("metrics.json", {"R@1": 50.0 + config["seed"] + (10 if config["xbm-size"] else 0)
                                        + (20 if source else 0), "MAP@R": 40.0, "iter": config["iters"]})):
    with open(os.path.join(d, name), "w") as f:
        json.dump(content, f)
"""


def finetune_file(tmp, backbone_config, reference=False):
    """A study file like Launch/experiments.json's fine-tuning part, every path in tmp."""
    cells = [{"label": "without", "options": "--xbm-size 0"}, {"label": "with", "options": "", "pair": "without"}]
    if reference:
        cells.append({"label": "torch", "kind": "reference", "options": "--iters 20"})
    return {
        "datasets": {"l1": {"dir": os.path.join(tmp, "data-l1"), "build": ["data", "hanzi"]},
                     "l2": {"dir": os.path.join(tmp, "data-l2"), "build": ["data", "hanzi", "--charset", "level2"]}},
        "backbones": {"bb": {"dataset": "l1", "options": ["--config", backbone_config, "--threads", "2"],
                             "dir": os.path.join(tmp, "backbones", "bb")}},
        "studies": {
            "finetune-gain": {"dataset": "l2", "backbone": "bb", "seeds": [0, 1, 2],
                              "base": "--iters 40 --lr 0.0001 --init-from runs/pretrain", "cells": cells},
            "plain": {"dataset": "l2", "cells": [{"label": "without", "options": "--xbm-size 0"}]},
        },
    }


class Backbones(unittest.TestCase):
    """A backbone is built (or resumed) once before a study's runs, every xbm-dist cell starts
    from it, and its recipe is part of theirs. Run for real against FAKE_XBM_DIST."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        fake = os.path.join(self.tmp, "xbm-dist")
        with open(fake, "w") as f:
            # this interpreter, not a python3 found on PATH (a version manager's shim is slow)
            f.write(FAKE_XBM_DIST.replace("/usr/bin/env python3", sys.executable + " -S", 1))
        os.chmod(fake, os.stat(fake).st_mode | stat.S_IXUSR)
        self.log = os.path.join(self.tmp, "commands.jsonl")
        self.saved = ex.BIN, ex.RUNS, ex.DOCS, ex.POLL_SECONDS, os.environ.get("FAKE_XBM_LOG")
        ex.BIN, ex.RUNS, ex.DOCS = fake, os.path.join(self.tmp, "runs"), os.path.join(self.tmp, "docs")
        ex.POLL_SECONDS = 0.01  # the fake's runs end in milliseconds
        os.environ["FAKE_XBM_LOG"] = self.log
        ex._resolved.clear()
        self.pretrain = os.path.join(self.tmp, "pretrain.json")
        self.write_pretrain({"iters": 30, "xbm-size": 0})
        self.data = finetune_file(self.tmp, self.pretrain)
        self.bdir = os.path.join(self.tmp, "backbones", "bb")

    def tearDown(self):
        ex.BIN, ex.RUNS, ex.DOCS, ex.POLL_SECONDS, log = self.saved
        if log is None:
            os.environ.pop("FAKE_XBM_LOG", None)
        else:
            os.environ["FAKE_XBM_LOG"] = log
        ex._resolved.clear()
        shutil.rmtree(self.tmp)

    @contextlib.contextmanager
    def stderr(self):
        """The runner's progress (and its subprocesses', which need a real file) kept from the
        test's output, in a file the test may read."""
        with tempfile.TemporaryFile("w+") as f, contextlib.redirect_stderr(f):
            yield f

    def write_pretrain(self, config):
        with open(self.pretrain, "w") as f:
            json.dump(config, f)
        ex._resolved.clear()  # xbm-dist would read the file anew

    def commands(self):
        """The arguments of every train/data command the fake ran, in order."""
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(line) for line in f]

    def trains(self):
        return [c for c in self.commands() if c[0] == "train"]

    def run_study(self, name="finetune-gain", seeds=(0,), stale_aside=False):
        with self.stderr():
            return ex.run_study(ex.Settings(), ex.study(self.data, name), list(seeds), 1, False, stale_aside)

    def value(self, args, name):
        return args[len(args) - 1 - args[::-1].index(name) + 1]

    def test_validation(self):
        s = ex.study(self.data, "finetune-gain")
        self.assertEqual((s["backbone"]["name"], s["backbone"]["dir"], s["backbone"]["seed"]), ("bb", self.bdir, 0))
        self.assertIsNone(ex.study(self.data, "plain")["backbone"])
        # the default directory is runs/backbones/NAME
        data = json.loads(json.dumps(self.data))
        del data["backbones"]["bb"]["dir"]
        self.assertEqual(ex.study(data, "finetune-gain")["backbone"]["dir"], os.path.join("runs", "backbones", "bb"))
        # reference cells cannot start from a backbone: refused, naming them
        with self.assertRaises(ex.Failure) as caught:
            ex.study(finetune_file(self.tmp, self.pretrain, reference=True), "finetune-gain")
        self.assertIn("reference cells (torch)", str(caught.exception))
        self.assertIn("'bb'", str(caught.exception))
        for change in (lambda d: d["studies"]["finetune-gain"].update(backbone="nothing"),   # no such backbone
                       lambda d: d["backbones"]["bb"].update(seeds=[0]),                     # unknown key
                       lambda d: d["backbones"]["bb"].pop("dataset"),                        # required
                       lambda d: d.update(backbones=["bb"])):                                # not an object
            bad = json.loads(json.dumps(self.data))
            change(bad)
            with self.assertRaises(ex.Failure):
                ex.study(bad, "finetune-gain")

    def test_init_from_on_every_xbm_dist_cell(self):
        s = ex.study(self.data, "finetune-gain")
        for cell in s["cells"]:
            _, options = ex.run_options(ex.Settings(), s, cell, 1)
            # after the base (whose --init-from it overrides) and the cell, before the runner's --data
            self.assertEqual(options[-8:], ["--init-from", self.bdir, "--data", os.path.join(self.tmp, "data-l2"),
                                            "--seed", "1", "--run-dir",
                                            os.path.join(ex.RUNS, "finetune-gain", f"{cell['label']}-s1")])
            self.assertEqual(options.count("--init-from"), 2)
            self.assertEqual(ex.resolve_config(options)["init-from"], self.bdir)
        # a smoke run starts from a smoke backbone, under the override directory
        smoke = ex.Settings(["--iters", "5"])
        line = ex.command_line(smoke, s, s["cells"][1], 0)
        self.assertIn("--init-from " + os.path.join(ex.OVERRIDE_RUNS, "iters-5", "backbones", "bb") + " --data", line)
        # the backbone's own run does not start from anything, nor does a study without one
        bs = ex.backbone_study(ex.Settings(), s["backbone"])
        _, options = ex.run_options(ex.Settings(), bs, bs["cells"][0], 0)
        self.assertEqual(options, ["--config", self.pretrain, "--threads", "2", "--data",
                                   os.path.join(self.tmp, "data-l1"), "--seed", "0", "--run-dir", self.bdir])
        plain = ex.study(self.data, "plain")
        self.assertNotIn("--init-from", ex.run_options(ex.Settings(), plain, plain["cells"][0], 0)[1])
        self.assertNotIn("backbone", ex.recipe(ex.Settings(), plain, plain["cells"][0], 0))

    def test_built_once_then_reused(self):
        self.run_study()
        trains = self.trains()
        # the datasets were built, the backbone trained first (fresh: no --resume), on its own
        # dataset; then both cells, each from the backbone (the fake refuses an unbuilt one)
        self.assertEqual([c[:2] for c in self.commands() if c[0] == "data"], [["data", "hanzi"], ["data", "hanzi"]])
        self.assertEqual(len(trains), 3)
        self.assertEqual(self.value(trains[0], "--run-dir"), self.bdir)
        self.assertNotIn("--resume", trains[0])
        self.assertEqual(self.value(trains[0], "--data"), os.path.join(self.tmp, "data-l1"))
        for args in trains[1:]:
            self.assertEqual(self.value(args, "--init-from"), self.bdir)
        s = ex.study(self.data, "finetune-gain")
        self.assertEqual(ex.backbone_plan(ex.Settings(), s)[3], "done")
        # the next study run (another seed) reuses it: only the new runs train
        self.run_study(seeds=(0, 1))
        self.assertEqual([self.value(a, "--run-dir") for a in self.trains()[3:]],
                         [os.path.join(ex.RUNS, "finetune-gain", f"{label}-s1") for label in ("without", "with")])

    def test_resumed_when_interrupted(self):
        s = ex.study(self.data, "finetune-gain")
        bs, cell, seed, state = ex.backbone_plan(ex.Settings(), s)
        self.assertEqual(state, "fresh")
        os.makedirs(self.bdir)
        with open(os.path.join(self.bdir, "checkpoint.xbm"), "w") as f:
            f.write("weights")
        with open(os.path.join(self.bdir, "recipe.json"), "w") as f:
            json.dump(ex.recipe(ex.Settings(), bs, cell, seed), f)
        self.assertEqual(ex.backbone_plan(ex.Settings(), s)[3], "resume")
        with contextlib.redirect_stdout(io.StringIO()) as out:
            ex.run_study(ex.Settings(), s, [0], 1, True)   # --dry-run: the backbone's state and command
        self.assertIn("resume  " + self.bdir, out.getvalue())
        self.assertIn("--run-dir " + self.bdir + " --resume", out.getvalue())
        self.assertEqual(self.trains(), [])
        self.run_study()
        trains = self.trains()
        self.assertEqual(self.value(trains[0], "--run-dir"), self.bdir)
        self.assertEqual(trains[0][-1], "--resume")
        self.assertEqual(len(trains), 3)
        self.assertEqual(ex.backbone_plan(ex.Settings(), s)[3], "done")
        # a backbone with metrics.json is used as it is
        shutil.rmtree(ex.RUNS)
        self.run_study()
        self.assertEqual([self.value(a, "--run-dir") for a in self.trains()[3:]],
                         [os.path.join(ex.RUNS, "finetune-gain", f"{label}-s0") for label in ("without", "with")])

    def test_a_changed_backbone_recipe_makes_the_runs_stale(self):
        self.run_study()
        s = ex.study(self.data, "finetune-gain")
        state = lambda label: ex.run_state(ex.Settings(), s, [c for c in s["cells"] if c["label"] == label][0], 0)
        with open(os.path.join(ex.RUNS, "finetune-gain", "with-s0", "recipe.json")) as f:
            stored = json.load(f)
        with open(os.path.join(self.bdir, "config.json")) as f:
            self.assertEqual(stored["backbone"], json.load(f))   # the backbone's configuration, as it ran
        self.assertEqual((state("without"), state("with")), ("done", "done"))
        # the backbone's --config file changes: the backbone and every run started from it are stale
        self.write_pretrain({"iters": 50, "xbm-size": 0})
        self.assertEqual(ex.backbone_plan(ex.Settings(), s)[3], "stale")
        self.assertEqual((state("without"), state("with")), ("stale", "stale"))
        with self.assertRaises(ex.Failure) as caught:
            self.run_study()
        self.assertIn(self.bdir + ",", str(caught.exception))
        self.assertIn(os.path.join("finetune-gain", "with-s0"), str(caught.exception))
        self.assertEqual(len(self.trains()), 3)  # nothing ran
        # --move-stale: both moved aside, the backbone rebuilt by its new recipe, the runs redone
        self.run_study(stale_aside=True)
        trains = self.trains()[3:]
        self.assertEqual(len(trains), 3)
        self.assertEqual(self.value(trains[0], "--run-dir"), self.bdir)
        with open(os.path.join(self.bdir, "config.json")) as f:
            self.assertEqual(json.load(f)["iters"], 50)
        self.assertEqual((state("without"), state("with")), ("done", "done"))
        self.assertEqual(len([e for e in os.listdir(os.path.dirname(self.bdir)) if e.startswith("bb.stale-")]), 1)
        # any change of the backbone's configuration counts, not only its length
        self.write_pretrain({"iters": 50, "xbm-size": 0, "lr": 0.01})
        self.assertEqual(state("with"), "stale")
        # an option added to xbm-dist since (a key the stored backbone lacks) counts at its default
        self.write_pretrain({"iters": 50, "xbm-size": 0})
        path = os.path.join(ex.RUNS, "finetune-gain", "with-s0", "recipe.json")
        with open(path) as f:
            r = json.load(f)
        r["backbone"].pop("lr")                     # the fake's default lr 0.001: as if added since
        with open(path, "w") as f:
            json.dump(r, f)
        self.assertEqual(state("with"), "done")
        r["backbone"]["lr"] = 0.5                   # away from the default: another backbone
        with open(path, "w") as f:
            json.dump(r, f)
        self.assertEqual(state("with"), "stale")

    def test_an_interrupted_finetune_run_resumes(self):
        # a fine-tune run killed after its checkpoint: resumed with --resume, xbm-dist keeping the
        # checksum its config.json records for the same source
        self.run_study()
        s = ex.study(self.data, "finetune-gain")
        cell = s["cells"][1]
        d = os.path.join(ex.RUNS, "finetune-gain", "with-s0")
        os.remove(os.path.join(d, "metrics.json"))
        self.assertEqual(ex.run_state(ex.Settings(), s, cell, 0), "resume")
        line = ex.command_line(ex.Settings(), s, cell, 0, resume=True)
        self.assertTrue(line.endswith(f"--run-dir {d} --resume"), line)
        self.run_study()
        trains = self.trains()
        self.assertEqual(len(trains), 4)
        self.assertEqual(trains[3][-1], "--resume")
        self.assertEqual(ex.run_state(ex.Settings(), s, cell, 0), "done")
        # a run that started from nothing resumes with --resume alone
        plain = ex.study(self.data, "plain")
        self.run_study("plain")
        os.remove(os.path.join(ex.RUNS, "plain", "without-s0", "metrics.json"))
        self.assertTrue(ex.command_line(ex.Settings(), plain, plain["cells"][0], 0, resume=True)
                        .endswith("without-s0 --resume"))

    def test_finetune_gain_prints_one_json_line(self):
        path = os.path.join(self.tmp, "studies.json")
        with open(path, "w") as f:
            json.dump(self.data, f)
        with contextlib.redirect_stdout(io.StringIO()) as out, self.stderr():
            code = ex.main(["--file", path, "finetune-gain"])
        self.assertEqual(code, 0)
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 1)
        result = json.loads(lines[0])
        self.assertEqual(list(result), ["without", "with", "runs"])
        # R@1 = 50 + seed + 20 (from the backbone) + 10 with the memory, seeds 0, 1, 2 in order
        self.assertEqual(result["without"], [70.0, 71.0, 72.0])
        self.assertEqual(result["with"], [80.0, 81.0, 82.0])
        self.assertEqual(result["runs"], [os.path.join(ex.ROOT, ex.RUNS, "finetune-gain", f"{label}-s{seed}")
                                          for label in ("without", "with") for seed in (0, 1, 2)])
        for d in result["runs"]:
            self.assertTrue(os.path.exists(os.path.join(d, "metrics.json")))
        self.assertEqual(len(self.trains()), 7)     # the backbone once, then 2 cells × 3 seeds
        # the report names the backbone
        with open(os.path.join(ex.DOCS, "finetune-gain.md")) as f:
            self.assertIn(f"- backbone: `bb` in `{self.bdir}`", f.read())
        # again: everything is done, nothing trains, the same line
        with contextlib.redirect_stdout(io.StringIO()) as again, self.stderr():
            self.assertEqual(ex.main(["--file", path, "finetune-gain"]), 0)
        self.assertEqual(json.loads(again.getvalue()), result)
        self.assertEqual(len(self.trains()), 7)
        # a study without the two cells is refused
        data = json.loads(json.dumps(self.data))
        data["studies"]["finetune-gain"]["cells"][1]["label"] = "memory"
        data["studies"]["finetune-gain"]["cells"][1].pop("pair")
        with open(path, "w") as f:
            json.dump(data, f)
        with contextlib.redirect_stdout(io.StringIO()) as out, self.stderr() as err:
            self.assertEqual(ex.main(["--file", path, "finetune-gain"]), 1)
            err.seek(0)
            self.assertIn('needs cells "without" and "with"', err.read())
        self.assertEqual(out.getvalue(), "")

    def test_list_shows_backbones(self):
        path = os.path.join(self.tmp, "studies.json")
        with open(path, "w") as f:
            json.dump(self.data, f)

        def listing():
            with contextlib.redirect_stdout(io.StringIO()) as out:
                self.assertEqual(ex.main(["--file", path, "list"]), 0)
            return out.getvalue()

        self.assertIn(f"  - bb: not built (built when a study needs it), in {self.bdir}", listing())
        self.assertIn(f"backbone bb ({self.bdir})", listing())
        self.run_study()
        self.assertIn(f"  - bb: built, in {self.bdir}", listing())


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
