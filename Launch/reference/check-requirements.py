#!/usr/bin/env python3
"""Whether the running Python environment satisfies a requirements file of `NAME==VERSION`
lines (# comments and blank lines allowed): exit 0 when every package is installed at its
pinned version, non-zero otherwise (a package that is missing raises). A local build such as
2.13.0+cpu satisfies ==2.13.0, as it does for pip. Launch/reference/setup runs it with the
environment's own python:

    VENV/bin/python Launch/reference/check-requirements.py Launch/reference/requirements.txt

Standard library only.
"""
import sys
from importlib import metadata

for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, _, version = line.partition("==")
    installed = metadata.version(name.strip())
    # A local build such as 2.13.0+cpu satisfies ==2.13.0, as it does for pip.
    if version and installed.split("+")[0] != version.strip():
        sys.exit(1)
