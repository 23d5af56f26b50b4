#!/usr/bin/env python3
"""The text Launch/fingerprint takes the md5 of, for one run: every line of the run's
metrics.jsonl without its speeds and timings (images_per_second, eval_seconds), keys sorted;
its final metrics.json; and the SHA-256 of RUN_DIR.npy, the run's test-split embeddings
(`xbm-dist embed --out RUN_DIR.npy`). Two builds that compute the same bits print the same text.

    python3 Launch/fingerprint-digest.py RUN_DIR > RUN_DIR.txt

Standard library only.
"""
import hashlib
import json
import sys

run = sys.argv[1]
for line in open(run + "/metrics.jsonl"):
    record = json.loads(line)
    print({k: v for k, v in sorted(record.items()) if k not in ("images_per_second", "eval_seconds")})
print(json.load(open(run + "/metrics.json")))
print("embeddings", hashlib.sha256(open(run + ".npy", "rb").read()).hexdigest())
