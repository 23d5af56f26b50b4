#!/usr/bin/env python3
"""Label pairs with scikit-learn's NMI and AMI, the fixture of MutualInformationTests
(Docs/evaluation.md, "Clustering"). Written once and checked in, so the tests need neither
Python nor scikit-learn:

    python3 -m venv /tmp/sklearn && /tmp/sklearn/bin/pip install scikit-learn
    /tmp/sklearn/bin/python Launch/clustering-fixtures.py Tests/XBMTests/Fixtures/clustering/mutual-information.json

Each case holds the true classes, the cluster assignment, and what scikit-learn computes for
them: normalized_mutual_info_score and adjusted_mutual_info_score (average_method
"arithmetic", the default), mutual_info_score and expected_mutual_information (nats). The
labellings cover the special cases scikit-learn treats apart (one class, one cluster, both),
label values that are not 0…k−1, chance-level and worse-than-chance agreement, classes of
unequal sizes and more clusters than classes. The arrays are NumPy's, seeded: the output is
the same on every run with the same scikit-learn.
"""
import json
import sys

import numpy as np
import sklearn
from sklearn.metrics import adjusted_mutual_info_score, mutual_info_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix
from sklearn.metrics.cluster._expected_mutual_info_fast import expected_mutual_information


def noisy_copy(rng, classes, share, clusters):
    """`classes` with a `share` of the items moved to a random one of `clusters` ids."""
    out = classes.copy()
    moved = rng.random(len(out)) < share
    out[moved] = rng.integers(0, clusters, size=moved.sum())
    return out


def cases():
    rng = np.random.default_rng(29)
    four = np.repeat(np.arange(4), 5)
    yield "identical", four, four
    yield "identical, cluster ids permuted", four, (four + 1) % 4
    yield "ids neither contiguous nor from zero, same partition", np.repeat([-5, 100, 7], 4), np.repeat([3, 9, 2], 4)
    yield "ids neither contiguous nor from zero", np.repeat([-5, 100, 7], 4), np.array([3, 3, 9, 9, 9, 2, 2, 2, 2, 3, 3, 3])
    yield "worse than chance: every class spread evenly", np.repeat(np.arange(3), 3), np.tile(np.arange(3), 3)
    yield "both a single label", np.zeros(6, dtype=int), np.full(6, 4)
    yield "one class, four clusters", np.zeros(4, dtype=int), np.arange(4)
    yield "four classes, one cluster", np.arange(4), np.zeros(4, dtype=int)
    yield "two items", np.array([0, 1]), np.array([1, 0])
    yield "independent, 200 items, 5 classes, 7 clusters", rng.integers(0, 5, 200), rng.integers(0, 7, 200)
    yield "independent, 60 items, 3 classes, 3 clusters", rng.integers(0, 3, 60), rng.integers(0, 3, 60)
    classes = np.repeat(np.arange(30), 10)
    yield "30 classes of 10, a fifth reassigned", classes, noisy_copy(rng, classes, 0.2, 30)
    yield "30 classes of 10, half reassigned to 45 clusters", classes, noisy_copy(rng, classes, 0.5, 45)
    sizes = np.maximum(1, (40 * 0.9 ** np.arange(60)).astype(int))
    classes = np.repeat(np.arange(60), sizes)
    rng.shuffle(classes)
    yield f"60 classes of 1 to 40 ({len(classes)} items), a third reassigned to 80 clusters", \
        classes, noisy_copy(rng, classes, 1 / 3, 80)
    classes = np.repeat(np.arange(100), 20)
    yield "100 classes of 20, a tenth reassigned", classes, noisy_copy(rng, classes, 0.1, 100)


def main(out):
    fixtures = []
    for name, classes, clusters in cases():
        contingency = contingency_matrix(classes, clusters, sparse=True)
        fixtures.append({
            "name": name,
            "classes": [int(v) for v in classes],
            "clusters": [int(v) for v in clusters],
            "nmi": float(normalized_mutual_info_score(classes, clusters)),
            "ami": float(adjusted_mutual_info_score(classes, clusters)),
            "mi": float(mutual_info_score(classes, clusters)),
            "emi": float(expected_mutual_information(contingency, len(classes))),
        })
    # One case per line.
    with open(out, "w") as f:
        f.write(f'{{"generator": "Launch/clustering-fixtures.py", "scikit-learn": "{sklearn.__version__}", "cases": [\n')
        f.write(",\n".join(json.dumps(case) for case in fixtures))
        f.write("\n]}\n")


if __name__ == "__main__":
    main(sys.argv[1])
