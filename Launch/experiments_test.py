#!/usr/bin/env python3
"""Unit tests of the pure parts of Launch/experiments (standard library only):
    python3 Launch/experiments_test.py        (or: python3 -m unittest discover -s Launch -p 'experiments_test.py')
Expected values are worked by hand in the comments."""
import importlib.machinery
import importlib.util
import json
import os
import shutil
import tempfile
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
_loader = importlib.machinery.SourceFileLoader("experiments", os.path.join(HERE, "experiments"))
_spec = importlib.util.spec_from_loader("experiments", _loader)
ex = importlib.util.module_from_spec(_spec)
_loader.exec_module(ex)

STUDIES = {
    "datasets": {"toy": {"build": ["data", "synthetic", "--classes", "30"]}},
    "studies": {
        "gain": {
            "description": "toy",
            "dataset": "toy",
            "base": "--batch 16 --milestones 800 --milestones 1600 --iters 2400",
            "cells": [
                {"label": "without", "options": "--xbm-size 0"},
                {"label": "with", "options": ["--xbm-size", "1024", "--milestones", "3200"], "pair": "without"},
                {"label": "mpi", "ranks": 4, "options": "--xbm-size 0"},
                {"label": "torch", "kind": "reference", "options": "--iters 2400"},
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
    def test_later_sources_replace_every_occurrence(self):
        merged = ex.merge_options(["--batch", "16", "--milestones", "800", "--milestones", "1600", "--xbm-start", "800"],
                                  ["--milestones", "3200"], ["--iters", "20"])
        self.assertEqual(merged, ["--batch", "16", "--milestones", "3200", "--xbm-start", "800", "--iters", "20"])

    def test_flags_and_equals(self):
        self.assertEqual(ex.merge_options(["--check-replicas", "--iters", "5"], ["--iters=7"]),
                         ["--check-replicas", "--iters", "7"])
        self.assertEqual(ex.parse_options(["--lr", "-0.5", "--xbm-start", "auto"]),
                         [("--lr", ["-0.5"]), ("--xbm-start", ["auto"])])
        with self.assertRaises(ex.Failure):
            ex.parse_options(["16", "--batch"])

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
        line = ex.command_line(ex.Settings(), self.s, self.cells["with"], 1)
        self.assertEqual(line, ".build/release/xbm-dist train --threads 2 --batch 16 --milestones 3200 --iters 2400 "
                               "--xbm-size 1024 --data data/toy --seed 1 --run-dir runs/experiments/gain/with-s1")
        resumed = ex.command_line(ex.Settings(), self.s, self.cells["with"], 1, resume=True)
        self.assertEqual(resumed, line + " --resume")

    def test_mpirun_and_override(self):
        settings = ex.Settings(["--iters", "20", "--eval-every", "0"])
        line = ex.command_line(settings, self.s, self.cells["mpi"], 0)
        self.assertEqual(line, "source Launch/common.sh && mpirun_xbm -np 4 .build/release/xbm-dist train --batch 16 "
                               "--milestones 800 --milestones 1600 --iters 20 --xbm-size 0 --eval-every 0 --data data/toy "
                               "--seed 0 --run-dir runs/experiments-override/iters-20_eval-every-0/gain/mpi-s0")

    def test_reference(self):
        settings = ex.Settings(["--iters", "20", "--eval-every", "0"], python="/venv/bin/python")
        # the reference keeps only the overrides it understands (--iters, not --eval-every)
        self.assertEqual(ex.command_line(settings, self.s, self.cells["torch"], 0),
                         "/venv/bin/python Launch/reference/torch_glyphnet.py --threads 2 --iters 20 --data data/toy "
                         "--seed 0 --out runs/experiments-override/iters-20_eval-every-0/gain/torch-s0/metrics.json")
        self.assertEqual(ex.display_command(settings, self.s, self.cells["torch"]),
                         '"$(Launch/reference/setup)" Launch/reference/torch_glyphnet.py --threads 2 --iters 20 '
                         "--data data/toy --seed {seed} --out runs/experiments-override/iters-20_eval-every-0/gain/"
                         "torch-s{seed}/metrics.json")

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


class Resumability(unittest.TestCase):
    R = {"options": ["--iters", "20"]}

    def test_decide(self):
        R, other = self.R, {"options": ["--iters", "30"]}
        self.assertEqual(ex.decide("xbm-dist", True, True, R, R), "done")
        self.assertEqual(ex.decide("xbm-dist", True, False, None, R), "done")      # no recipe.json: trusted
        self.assertEqual(ex.decide("xbm-dist", False, True, R, R), "resume")
        self.assertEqual(ex.decide("xbm-dist", False, False, R, R), "fresh")
        self.assertEqual(ex.decide("reference", False, True, R, R), "fresh")      # the reference never resumes
        self.assertEqual(ex.decide("reference", True, False, R, R), "done")
        self.assertEqual(ex.decide("xbm-dist", True, True, other, R), "stale")    # made by another recipe
        self.assertEqual(ex.decide("xbm-dist", False, False, other, R), "stale")

    def test_run_directories(self):
        root = tempfile.mkdtemp()
        saved = ex.ROOT
        ex.ROOT = root
        try:
            settings, s = ex.Settings(), ex.study(STUDIES, "gain")
            cells = {c["label"]: c for c in s["cells"]}

            def make(label, seed, files, recipe=True):
                d = os.path.join(root, ex.run_dir(settings, s, cells[label], seed))
                os.makedirs(d)
                for name, content in files.items():
                    with open(os.path.join(d, name), "w") as f:
                        f.write(json.dumps(content))
                if recipe:
                    with open(os.path.join(d, "recipe.json"), "w") as f:
                        json.dump(ex.recipe(settings, s, cells[label], seed), f)

            make("without", 0, {"metrics.json": metrics(90.0)})
            make("without", 1, {"checkpoint.xbm": "x"})
            make("with", 0, {"metrics.json": metrics(91.0)}, recipe=False)
            make("with", 1, {"metrics.json": metrics(92.0)})
            with open(os.path.join(root, ex.run_dir(settings, s, cells["with"], 1), "recipe.json"), "w") as f:
                json.dump({"options": ["--other"]}, f)
            make("torch", 0, {"train.log": "killed"})
            make("without", 2, {"metrics.json": metrics(89.0)})     # an extra seed, found on disk
            state = lambda label, seed: ex.run_state(settings, s, cells[label], seed)
            self.assertEqual(state("without", 0), "done")
            self.assertEqual(state("without", 1), "resume")
            self.assertEqual(state("with", 0), "done")
            self.assertEqual(state("with", 1), "stale")
            self.assertEqual(state("torch", 0), "fresh")
            self.assertEqual(state("mpi", 0), "fresh")                 # no directory at all
            results = ex.collect(settings, s)
            self.assertEqual({k: sorted(v) for k, v in results.items()}, {"without": [0, 2], "with": [0]})
        finally:
            ex.ROOT = saved
            shutil.rmtree(root)


class Chart(unittest.TestCase):
    def test_svg_is_well_formed_and_has_a_dot_per_run(self):
        svg = ex.svg_chart("gain: R@1 per cell", [("without", "xbm-dist", {0: 90.0, 1: 91.0}),
                                                  ("with <memory>", "xbm-dist", {0: 90.5}),
                                                  ("torch", "reference", {}),])
        root = ET.fromstring(svg)
        ns = "{http://www.w3.org/2000/svg}"
        self.assertEqual(len(root.findall(f"{ns}circle")), 3)
        texts = "".join("".join(t.itertext()) for t in root.iter(f"{ns}text"))
        for expected in ("R@1 (%)", "cell", "without", "with <memory>", "torch", "90.50"):
            self.assertIn(expected, texts)

    def test_empty_chart(self):
        root = ET.fromstring(ex.svg_chart("nothing", [("a", "xbm-dist", {})]))
        self.assertIn("no finished runs yet", "".join(root.itertext()))

    def test_nice_step(self):
        self.assertEqual(ex.nice_step(2.0), 0.5)     # 2.0 / 8 = 0.25 → 0.5 gives 4 intervals
        self.assertEqual(ex.nice_step(30.0), 5)      # 30 / 8 = 3.75 → 5 gives 6 intervals


if __name__ == "__main__":
    unittest.main()
