#!/usr/bin/env python3
"""Files that import each other, per crate: dependencies inside a crate must point one way.

Usage: scripts/import_loops.py [REPO_ROOT]. Prints each loop and `N import loop(s)`; exits 1 when N > 0.

A file's imports are the `crate::…` and `super::…` paths it names outside `#[cfg(test)]` (test modules may
reach anywhere). Each path resolves to the longest module file that exists; naming one's own ancestor (a
child using its parent module's items) is not an import of another file. `.ci/run` uses this when the
workplace's own checker (`../shared/tools/import_loops.py`) is not beside the repository.
"""
import os
import re
import sys

PATH = re.compile(r"\b(crate|super)((?:::\w+)+)")
GROUP = re.compile(r"\b(crate|super)((?:::\w+)*)::\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}")


def flatten_groups(text):
    """`crate::a::{b, c::d}` → `crate::a::b crate::a::c::d`, repeatedly, so nested groups flatten too."""
    def one(m):
        items = [i.strip() for i in re.split(r",(?![^{]*\})", m.group(3)) if i.strip()]
        return " ".join(f"{m.group(1)}{m.group(2)}::{i}" for i in items)
    while True:
        new = GROUP.sub(one, text)
        if new == text:
            return text
        text = new


def modules(src):
    """Module path (tuple) → file, for every .rs file under a crate's src/."""
    out = {}
    for d, _, files in os.walk(src):
        for f in files:
            if f.endswith(".rs"):
                rel = os.path.relpath(os.path.join(d, f), src)[:-3].split(os.sep)
                if rel[-1] in ("lib", "main", "mod"):
                    rel = rel[:-1]
                out[tuple(rel)] = os.path.join(d, f)
    return out


def imports(mod, path, files):
    text = re.sub(r"//[^\n]*", "", open(path, encoding="utf-8", errors="replace").read())
    text = flatten_groups(text.split("#[cfg(test)]")[0])
    own_dir = os.path.basename(path) in ("lib.rs", "main.rs", "mod.rs")
    found = set()
    for kind, rest in PATH.findall(text):
        parts = [p for p in rest.split("::") if p]
        if kind == "crate":
            base = ()
        else:
            base = mod if own_dir else mod[:-1]
            base = base[:-1]
            while parts and parts[0] == "super":
                parts.pop(0)
                base = base[:-1]
        for n in range(len(parts), 0, -1):
            target = base + tuple(parts[:n])
            if target in files:
                is_ancestor = len(target) < len(mod) and mod[: len(target)] == target
                if target != mod and not is_ancestor:
                    found.add(target)
                break
    return found


def loops(edges):
    """Strongly connected groups of two or more modules (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
    crates = os.path.join(root, "crates")
    total = 0
    for crate in sorted(os.listdir(crates)):
        src = os.path.join(crates, crate, "src")
        if not os.path.isdir(src):
            continue
        files = modules(src)
        edges = {m: imports(m, p, files) for m, p in files.items()}
        for group in loops(edges):
            total += 1
            names = [os.path.relpath(files[m], root) for m in group]
            print("import loop: " + " <-> ".join(names))
    print(f"{total} import loop(s)")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
