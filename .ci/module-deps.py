#!/usr/bin/env python3
"""Module dependency listing and cycle check for the workspace's crates.

For every crate (a `src/` directory) it reads each module file's `crate::…`, `super::…`
and `self::…` paths (in `use` items and inline) and resolves them to module files. Then:

1. the top-level modules (`cli`, `controller`, …) must form a DAG: printed in dependency
   order, lowest first;
2. within each directory, sibling files must not depend on each other in a cycle (the
   directory's `mod.rs` / `lib.rs` is its facade: edges to and from it are not counted);
3. the product crate's queue runtime (`runtime`) uses nothing but `ops`: it knows nothing of
   Fly, the store's tables or previews (ALLOWED below).

Exit status 1 and the cycle on any violation. Usage: python3 .ci/module-deps.py [--edges]
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = ["src", "crates/fly-sim/src", "crates/bench/src"]
# Top-level modules whose dependencies are restricted: crate -> module -> allowed targets.
ALLOWED = {"src": {"runtime": {"ops"}}}
PATH_RE = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP_RE = re.compile(r"\buse\s+(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\};", re.S)


def module_of(rel):
    """src-relative file path -> module path tuple ('' crate root = ())."""
    parts = rel[:-3].split("/")
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def refs(text):
    """Yield (anchor, [segments]) for every path in the file."""
    for m in USE_GROUP_RE.finditer(text):
        base = [s for s in m.group(2).split("::") if s]
        for item in re.split(r",", m.group(3)):
            item = item.strip().split(" as ")[0].strip()
            if not item or item.startswith("{"):
                continue
            yield m.group(1), base + [s for s in item.split("::") if s and s != "*"]
    for m in PATH_RE.finditer(text):
        yield m.group(1), [s for s in m.group(2).split("::") if s]


def resolve(mods, here, is_dir_module, anchor, segs):
    if anchor == "crate":
        base = ()
    else:
        # `super` is relative to the module; a file `a/b.rs` is module a::b.
        base = here if is_dir_module or anchor == "self" else here
        if anchor == "super":
            base = here[:-1]
    target = base
    best = base if base in mods else None
    for s in segs:
        target = target + (s,)
        if target in mods:
            best = target
        else:
            break
    return best


def crate_graph(src):
    mods, files = {}, {}
    for dirpath, _, names in os.walk(src):
        for n in names:
            if n.endswith(".rs"):
                rel = os.path.relpath(os.path.join(dirpath, n), src)
                mod = module_of(rel)
                mods[mod] = rel
                files[rel] = mod
    edges = {m: set() for m in mods}
    for rel, mod in files.items():
        with open(os.path.join(src, rel), encoding="utf-8") as f:
            text = strip_comments(f.read())
        is_dir = os.path.basename(rel) in ("mod.rs", "lib.rs", "main.rs")
        for anchor, segs in refs(text):
            t = resolve(mods, mod, is_dir, anchor, segs)
            if t is not None and t != mod:
                edges[mod].add(t)
    return mods, edges


def find_cycle(nodes, edges):
    color, stack = {n: 0 for n in nodes}, []

    def visit(n):
        color[n] = 1
        stack.append(n)
        for t in sorted(edges.get(n, ())):
            if t not in color:
                continue
            if color[t] == 1:
                return stack[stack.index(t):] + [t]
            if color[t] == 0:
                c = visit(t)
                if c:
                    return c
        stack.pop()
        color[n] = 2
        return None

    for n in sorted(nodes):
        if color[n] == 0:
            c = visit(n)
            if c:
                return c
    return None


def topo(nodes, edges):
    order, done = [], set()

    def visit(n):
        if n in done:
            return
        done.add(n)
        for t in sorted(edges.get(n, ())):
            if t in nodes:
                visit(t)
        order.append(n)

    for n in sorted(nodes):
        visit(n)
    return order


def main():
    show_edges = "--edges" in sys.argv
    failed = False
    for crate in CRATES:
        src = os.path.join(ROOT, crate)
        mods, edges = crate_graph(src)
        name = "::".join
        # 1. top-level groups
        groups = {m[0] for m in mods if m}
        gedges = {g: set() for g in groups}
        for a, ts in edges.items():
            for b in ts:
                if a and b and a[0] != b[0]:
                    gedges[a[0]].add(b[0])
        cycle = find_cycle(groups, gedges)
        if cycle:
            failed = True
            print(f"{crate}: CYCLE between top-level modules: {' -> '.join(cycle)}")
        else:
            print(f"{crate}: top-level modules, lowest first: {', '.join(topo(groups, gedges))}")
        for g, allowed in ALLOWED.get(crate, {}).items():
            extra = gedges.get(g, set()) - allowed
            if extra:
                failed = True
                print(f"{crate}: {g} may use only {', '.join(sorted(allowed))}, uses {', '.join(sorted(extra))}")
        if show_edges:
            for g in sorted(groups):
                print(f"  {g} -> {', '.join(sorted(gedges[g])) or '(nothing)'}")
        # 2. siblings within each directory (facade excluded)
        parents = {m[:-1] for m in mods if m}
        for p in sorted(parents):
            sibs = {m for m in mods if len(m) == len(p) + 1 and m[:-1] == p}
            sedges = {m: {t for t in edges[m] if t in sibs or t[: len(p) + 1] in sibs} for m in sibs}
            sedges = {m: {t[: len(p) + 1] for t in ts} - {m} for m, ts in sedges.items()}
            cycle = find_cycle(sibs, sedges)
            if cycle:
                failed = True
                print(f"{crate}: CYCLE among siblings: {' -> '.join(name(c) for c in cycle)}")
    print("module-deps: " + ("violations found" if failed else "no cycles; runtime uses only ops"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
