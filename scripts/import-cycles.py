#!/usr/bin/env python3
"""List module-level import cycles in src/ from `crate::` paths; exit 1 if there is any.

Usage: scripts/import-cycles.py [SRC_DIR]

A module is a file under src/ (`src/exec/run.rs` is `exec::run`, `src/exec/mod.rs` is
`exec`). An edge A -> B is any `crate::B...` path written in A (in `use` items or inline),
resolved to the longest existing module prefix. Edges from a module to its own ancestors or
descendants are ignored (a parent re-exporting its children is not a cycle); `#[cfg(test)]`
modules at the end of a file are ignored. Cycles are the strongly connected components of
the remaining graph with more than one module.

It also checks the layering of top-level modules (LAYERS below, lowest first): a module
may use its own layer and the ones below it, never one above. That is what makes the data
flow one way (plan -> load -> lint -> ... -> cli); docs/ARCHITECTURE.md explains each layer.
"""
import os
import re
import sys

# The tree to check: the first argument, else the crate's src/ beside this script.
ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "src"
)


def modules():
    mods = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), ROOT)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            mods["::".join(parts)] = os.path.join(dirpath, f)
    return mods


def strip_tests(text):
    # Drop a trailing `#[cfg(test)] mod tests { ... }` (tests may use anything).
    m = re.search(r"^#\[cfg\(test\)\]\s*\n\s*mod \w+\s*\{", text, re.M)
    return text[: m.start()] if m else text


def uses(text, here, is_mod):
    """Yield every crate path written in the file as an absolute path, expanding
    `use crate::a::{b, c::d}` and resolving `super::` / `self::` against the file's module."""
    text = re.sub(r"//[^\n]*", "", text)
    # The module that `super` names: the parent of a file module; for a `mod.rs` the
    # parent of its directory module.
    parent = here.split("::")[:-1] if here else []
    base = {"crate": [], "super": parent, "self": here.split("::") if here else []}
    for m in re.finditer(r"\buse\s+(crate|super|self)::([^;]+);", text, re.S):
        for p in expand(m.group(2).replace("\n", " ")):
            yield "::".join(base[m.group(1)] + [p])
    for m in re.finditer(r"(?<![\w:])(crate|super)::((?:\w+::)*\w+)", text):
        yield "::".join(base[m.group(1)] + [m.group(2)])


def expand(tree, prefix=""):
    tree = tree.strip()
    i = tree.find("{")
    if i < 0:
        for part in split_top(tree):
            p = part.split(" as ")[0].strip()
            if p:
                yield prefix + p
        return
    head = tree[:i]
    body = tree[i + 1 : tree.rfind("}")]
    for part in split_top(body):
        yield from expand(part, prefix + head)


def split_top(s):
    depth, cur, out = 0, "", []
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [o.strip() for o in out if o.strip()]


def resolve(path, mods):
    parts = [p for p in path.split("::") if p and p != "self"]
    for n in range(len(parts), 0, -1):
        cand = "::".join(parts[:n])
        if cand in mods:
            return cand
    return None


def related(a, b):
    return a == b or a.startswith(b + "::") or b.startswith(a + "::") or a == "" or b == ""


def sccs(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# Top-level modules, lowest first. A module may import from its own entry and earlier ones.
LAYERS = [
    ["util", "error"],
    ["model"],
    ["source"],
    ["load"],
    ["lint"],
    ["sign"],
    ["sandbox"],
    ["bundle"],
    ["report"],
    ["exec"],
    ["promote"],
    ["govern"],
    ["template"],
    ["serve"],
    ["cli"],
]


def main():
    mods = modules()
    graph = {m: set() for m in mods}
    why = {}
    for m, path in mods.items():
        with open(path, encoding="utf-8") as fh:
            text = strip_tests(fh.read())
        for u in uses(text, m, path.endswith("mod.rs")):
            t = resolve(u, mods)
            if t is None or related(m, t):
                continue
            graph[m].add(t)
            why.setdefault((m, t), u)
    bad = [c for c in sccs(graph) if len(c) > 1]
    for comp in bad:
        print("cycle: " + " <-> ".join(comp))
        for a in comp:
            for b in comp:
                if b in graph[a]:
                    print(f"  {a} -> {b}   (crate::{why[(a, b)]})")
    # The same at the level of top-level modules (`bundle`, `sandbox`, ...): a cycle
    # between two files in different top modules is already above; this also catches
    # `bundle::a -> sandbox::b -> bundle::c`.
    top = {}
    for a, outs in graph.items():
        for b in outs:
            ta, tb = a.split("::")[0], b.split("::")[0]
            if ta != tb and ta and tb:
                top.setdefault(ta, set()).add(tb)
                why.setdefault((ta, tb), why[(a, b)] + f"  [in {a}]")
    bad_top = [c for c in sccs(top) if len(c) > 1]
    for comp in bad_top:
        print("top-level cycle: " + " <-> ".join(comp))
        for a in comp:
            for b in comp:
                if b in top.get(a, ()):
                    print(f"  {a} -> {b}   (crate::{why[(a, b)]})")
    bad += bad_top
    rank = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    for ta in sorted(top):
        if ta not in rank:
            print(f"layering: top-level module `{ta}` is not in LAYERS (scripts/import-cycles.py)")
            bad.append([ta])
            continue
        for tb in sorted(top[ta]):
            if tb not in rank:
                print(f"layering: top-level module `{tb}` is not in LAYERS (scripts/import-cycles.py)")
                bad.append([tb])
            elif rank[tb] > rank[ta]:
                print(f"layering: {ta} -> {tb} goes up   (crate::{why[(ta, tb)]})")
                bad.append([ta, tb])
    if bad:
        print(f"{len(bad)} import cycle(s) or upward import(s) between modules")
        return 1
    print(f"no import cycles among {len(mods)} modules; layering holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
