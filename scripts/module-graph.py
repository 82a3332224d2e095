#!/usr/bin/env python3
"""Prints the crate's module graph: each top-level module of src/ and the
top-level modules its non-test code imports (`crate::x` paths), then any
circle among them. The rules themselves are held by the `layers` unit test
(src/layers.rs); this is for reading.

    scripts/module-graph.py [SRC_DIR]     (default: src)
"""
import collections
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
deps = collections.defaultdict(set)
for folder, _, files in os.walk(src):
    for name in files:
        if not name.endswith(".rs"):
            continue
        path = os.path.join(folder, name)
        top = os.path.relpath(path, src).split(os.sep)[0].removesuffix(".rs")
        if top in ("lib", "main", "layers"):
            continue
        deps.setdefault(top, set())
        code = open(path, encoding="utf-8").read().split("#[cfg(test)]")[0]
        for line in code.splitlines():
            if line.lstrip().startswith("//"):
                continue
            for group in re.findall(r"crate::\{([^}]*)\}", line):
                for part in group.split(","):
                    first = re.match(r"\s*(\w+)", part)
                    if first:
                        deps[top].add(first.group(1))
            for target in re.findall(r"crate::(\w+)", line):
                deps[top].add(target)
for top in deps:
    deps[top] = {d if d != "Error" else "error" for d in deps[top] if d != top and d[0].islower()}
for top in sorted(deps):
    print(f"{top:10} -> {' '.join(sorted(deps[top])) or '(nothing)'}")
# Circles: strongly connected components of more than one module.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1; stack.append(v); on.add(v)
    for w in deps.get(v, ()):
        if w not in deps:
            continue
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        component = []
        while True:
            w = stack.pop(); on.discard(w); component.append(w)
            if w == v:
                break
        if len(component) > 1:
            sccs.append(sorted(component))
sys.setrecursionlimit(10000)
for v in sorted(deps):
    if v not in index:
        visit(v)
print(f"{len(deps)} top-level modules; " + ("no circle" if not sccs else
      "circles: " + "; ".join(" <-> ".join(c) for c in sccs)))
sys.exit(1 if sccs else 0)
