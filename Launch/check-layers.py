#!/usr/bin/env python3
"""Fails when a library layer imports a layer above it (Docs/architecture.md, "Layers").

The layers are the list `xbmLayers` in Package.swift, lowest first. For every target of the
package (from `swift package describe --type json`), each module a source file imports must be
one of the target's declared dependencies (SwiftPM alone lets a file import any module that
happens to be built before it), and each library layer may depend only on layers before it in
the list. XBMKernels, at the bottom, may not import Collectives (the thread budget is passed in).

    Launch/check-layers.py            # check this package; exit 1 naming every violation
    Launch/check-layers.py --self-test
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMPORT = re.compile(r"^\s*(?:@\w+(?:\([^)]*\))?\s+)*import\s+(?:(?:struct|class|enum|protocol|func|var|let|typealias)\s+)?(\w+)", re.M)


def layer_order(manifest_text):
    """The names in `let xbmLayers = [...]` of Package.swift, lowest first."""
    match = re.search(r"let xbmLayers = \[([^\]]*)\]", manifest_text)
    if not match:
        raise SystemExit("check-layers: Package.swift has no `let xbmLayers = [...]` list")
    return re.findall(r'"(\w+)"', match.group(1))


def violations(targets, layers, imports_of):
    """Each violation as one line. `targets`: name -> declared dependency names (package
    targets only); `imports_of(name)`: the modules its sources import."""
    rank = {name: i for i, name in enumerate(layers)}
    found = []
    for name, dependencies in sorted(targets.items()):
        for module in sorted(imports_of(name)):
            if module in targets and module != name and module not in dependencies:
                found.append(f"{name} imports {module}, which is not among its dependencies in Package.swift")
        if name in rank:
            for dependency in sorted(dependencies):
                if dependency in rank and rank[dependency] >= rank[name]:
                    found.append(f"{name} depends on {dependency}, a layer at or above it (order: {' → '.join(layers)})")
        if name == layers[0] and "Collectives" in (set(dependencies) | imports_of(name)):
            found.append(f"{name} uses Collectives; the bottom layer takes its thread budget as a parameter")
    return found


def package_targets():
    output = subprocess.run(["swift", "package", "describe", "--type", "json"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    # SwiftPM may print a line about waiting for another instance before the JSON.
    description = json.loads(output[output.index("{"):])
    targets, paths = {}, {}
    for target in description["targets"]:
        targets[target["name"]] = set(target.get("target_dependencies", []))
        paths[target["name"]] = (target["path"], target.get("sources", []))
    return targets, paths


def source_imports(paths):
    def imports_of(name):
        directory, sources = paths[name]
        modules = set()
        for source in sources:
            if source.endswith(".swift"):
                with open(os.path.join(ROOT, directory, source), encoding="utf-8") as file:
                    modules.update(IMPORT.findall(file.read()))
        return modules
    return imports_of


def self_test():
    layers = ["XBMKernels", "XBMFormats", "XBMModel"]
    targets = {"XBMKernels": set(), "XBMFormats": {"XBMKernels"}, "XBMModel": {"XBMKernels"},
               "Collectives": set()}
    clean = {"XBMKernels": set(), "XBMFormats": {"XBMKernels", "Foundation"}, "XBMModel": {"XBMKernels"},
             "Collectives": set()}
    assert violations(targets, layers, lambda n: clean[n]) == [], "a clean graph was flagged"
    upward = dict(clean, XBMFormats={"XBMKernels", "XBMModel"})
    assert violations(targets, layers, lambda n: upward[n]) == [
        "XBMFormats imports XBMModel, which is not among its dependencies in Package.swift"]
    declared = dict(targets, XBMKernels={"XBMModel"})
    assert len(violations(declared, layers, lambda n: clean[n])) == 1, "an upward dependency was not flagged"
    bottom = dict(clean, XBMKernels={"Collectives"})
    assert any("thread budget" in line for line in violations(targets, layers, lambda n: bottom[n])), \
        "Collectives in the bottom layer was not flagged"
    assert IMPORT.findall("import A\n@testable import B\nimport struct C.D\n// import E\n") == ["A", "B", "C"]
    print("check-layers self-test: 5 passed, 0 failed")


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    with open(os.path.join(ROOT, "Package.swift"), encoding="utf-8") as file:
        layers = layer_order(file.read())
    targets, paths = package_targets()
    missing = [layer for layer in layers if layer not in targets]
    if missing:
        raise SystemExit(f"check-layers: xbmLayers names {missing}, which are not targets")
    found = violations(targets, layers, source_imports(paths))
    for line in found:
        print(f"check-layers: {line}", file=sys.stderr)
    if found:
        sys.exit(1)
    print(f"check-layers: {len(targets)} targets, layers {' → '.join(layers)}: no upward import")


if __name__ == "__main__":
    main()
