#!/usr/bin/env python3
"""The arithmetic of Launch/bench's report: medians, ratios and the fields of a benchmark's
JSON line, printed as the report shows them.

    python3 Launch/bench-stats.py median X...           the median, rounded to an integer
    python3 Launch/bench-stats.py median-value X...     the median, unrounded
    python3 Launch/bench-stats.py field NAME < OUTPUT   field NAME of OUTPUT's last line (a JSON
                                                        object): "-" when absent, a string as it is,
                                                        a number rounded above 10, else 4 decimals
    python3 Launch/bench-stats.py phase NAME < OUTPUT   milliseconds of phase NAME of the step (the
                                                        last line's phase_milliseconds), 3 decimals
    python3 Launch/bench-stats.py ratio A B             A / B, 2 decimals
    python3 Launch/bench-stats.py paired A... -- B...   the median of the per-round ratios A_i / B_i,
                                                        3 decimals
    python3 Launch/bench-stats.py change A B            (A / B - 1) in %, 1 decimal ("12.3%")
    python3 Launch/bench-stats.py from-to A B           "A → B", 2 decimals each
    python3 Launch/bench-stats.py share L0 L1 S         (L1 - L0) ms as a share of S seconds:
                                                        "4.2% of 80.1 ms"

Standard library only.
"""
import json
import statistics
import sys


def last_record():
    return json.loads(sys.stdin.read().strip().splitlines()[-1])


def median(*xs):
    print(round(statistics.median(float(x) for x in xs)))


def median_value(*xs):
    print(statistics.median(float(x) for x in xs))


def field(name):
    v = last_record().get(name)
    if isinstance(v, str):
        print(v)
    else:
        print("-" if v is None else (round(v) if v > 10 else f"{v:.4f}"))


def phase(name):
    print("%.3f" % last_record()["phase_milliseconds"][name])


def phases(*names):
    milliseconds = last_record()["phase_milliseconds"]
    print("%.3f" % sum(milliseconds.get(name, 0) for name in names))


def ratio(a, b):
    print(f"{float(a) / float(b):.2f}")


def paired(*args):
    i = args.index("--")
    a = [float(x) for x in args[:i]]
    b = [float(x) for x in args[i + 1:]]
    print(f"{statistics.median(x / y for x, y in zip(a, b)):.3f}")


def change(a, b):
    print(f"{(float(a) / float(b) - 1) * 100:.1f}%")


def from_to(a, b):
    print(f"{float(a):.2f} → {float(b):.2f}")


def share(l0, l1, s0):
    l0, l1, s0 = float(l0), float(l1), float(s0)
    print(f"{(l1 - l0) / (s0 * 1000) * 100:.1f}% of {s0 * 1000:.1f} ms")


COMMANDS = {"median": median, "median-value": median_value, "field": field, "phase": phase, "phases": phases, "ratio": ratio,
            "paired": paired, "change": change, "from-to": from_to, "share": share}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
