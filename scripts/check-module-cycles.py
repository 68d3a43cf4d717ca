#!/usr/bin/env python3
"""Fails when two files of one crate import each other, directly or round a loop.

Usage: scripts/check-module-cycles.py CRATE_DIR...   (part of `make lint`)

For each crate it reads every file under src/, takes the paths the code names
(`use` trees and paths written inline, comments and string literals left out)
that start with `crate::`, `super::`, `self::` or a child module, and follows
each to the file that defines the item: a re-export (`pub use`, a `mod.rs`
facade, the crate root's list) is followed, not counted, so a file that only
re-exports its children depends on nothing. Edges make a graph of files; a
loop in it is printed and the script exits 1. Standard library only, no
cargo: it reads the source, it does not compile it. `mod` declarations and
`#[path]` attributes are not followed; modules are found from file names.
"""

import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
ITEM = re.compile(
    r"\b(?:fn|struct|enum|trait|const|static|type|union|macro_rules!)\s+(" + IDENT + ")"
)
PATH = re.compile(r"\b(crate|super|self)((?:\s*::\s*" + IDENT + r")+)")
# A path written from a child module's name (`heartbeat::spawn(..)`): the
# first name must not itself follow `::`; kept only where it names a child.
CHILD_PATH = re.compile(r"(?<![\w:])(" + IDENT + r")((?:\s*::\s*" + IDENT + r")+)")
RAW_STRING = re.compile(r'b?r(#*)"')
CHAR = re.compile(r"'(?:\\[^']+|[^\\'])'")


def strip(text):
    """The source with comments, strings and char literals blanked (newlines kept)."""
    out, i, n = [], 0, len(text)

    def blank(start, end):
        out.append("".join(c if c == "\n" else " " for c in text[start:end]))

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif (m := RAW_STRING.match(text, i)) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            close = '"' + m.group(1)
            end = text.find(close, m.end())
            end = n if end < 0 else end + len(close)
            blank(i, end)
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'" and (m := CHAR.match(text, i)):
            blank(i, m.end())
            i = m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_tree(s):
    """A `use` tree as (segments, bound name or None, glob?) triples."""
    s = s.strip()
    if s.startswith("::"):
        s = s[2:]
    results = []

    def split_top(body):
        parts, depth, cur = [], 0, []
        for ch in body:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append("".join(cur))
                cur = []
            else:
                cur.append(ch)
        parts.append("".join(cur))
        return [p.strip() for p in parts if p.strip()]

    def walk(prefix, tree):
        tree = re.sub(r"\s+", " ", tree).strip()
        if tree.startswith("{"):
            for part in split_top(tree[1:tree.rindex("}")]):
                walk(prefix, part)
            return
        head, sep, rest = tree.partition("::")
        head = head.strip()
        if sep:
            walk(prefix + [head], rest)
        elif head == "*":
            results.append((prefix, None, True))
        else:
            m = re.fullmatch(r"(" + IDENT + r")(?:\s+as\s+(" + IDENT + "))?", head)
            if not m:
                return
            name, alias = m.group(1), m.group(2)
            if name == "self":
                results.append((prefix, alias or (prefix[-1] if prefix else None), False))
            else:
                results.append((prefix + [name], alias or name, False))

    walk([], s)
    return results


class Module:
    def __init__(self, path, file):
        self.path = path  # tuple of segments from the crate root
        self.file = file
        self.children = set()
        self.bindings = {}  # name -> absolute segments (None: outside the crate)
        self.globs = []  # absolute module paths glob-imported
        self.items = set()
        self.refs = []  # absolute segments named by this module's code


def module_path(src, file):
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod" or (len(parts) == 1 and parts[0] in ("lib", "main")):
        parts = parts[:-1]
    return tuple(parts)


def absolute(modules, here, segs):
    """`segs` as written in module `here`, from the crate root; None when outside the crate."""
    here = list(here)
    if not segs:
        return None
    if segs[0] == "crate":
        return list(segs[1:])
    if segs[0] in ("self", "super"):
        while segs and segs[0] in ("self", "super"):
            if segs[0] == "super":
                here = here[:-1]
            segs = segs[1:]
        return here + list(segs)
    if segs[0] in modules[tuple(here)].children:
        return here + list(segs)
    return None


def resolve(modules, segs, seen=None):
    """The file defining what absolute path `segs` names (None: outside the crate)."""
    seen = seen or set()
    key = tuple(segs)
    if key in seen:
        return None
    seen.add(key)
    mod = modules[()]
    for i, seg in enumerate(segs):
        if seg in mod.children:
            mod = modules[mod.path + (seg,)]
            continue
        if seg in mod.items:
            return mod.file
        if seg in mod.bindings:
            target = mod.bindings[seg]
            return None if target is None else resolve(modules, target + list(segs[i + 1:]), seen)
        for glob in mod.globs:
            found = resolve(modules, list(glob) + list(segs[i:]), seen)
            if found is not None:
                return found
        return mod.file
    return mod.file


def scan(modules, src, file):
    text = strip(file.read_text())
    top = module_path(src, file)
    # Inline modules (`mod tests { ... }`) are modules of their own in the same file.
    stack, depth, spans = [], 0, []
    for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*\{|\{|\}", text):
        if m.group(1):
            depth += 1
            stack.append((m.group(1), depth))
            spans.append((m.start(), top + tuple(n for n, _ in stack)))
        elif m.group(0) == "{":
            depth += 1
        else:
            if stack and stack[-1][1] == depth:
                stack.pop()
                spans.append((m.end(), top + tuple(n for n, _ in stack)))
            depth -= 1

    def module_at(pos):
        current = top
        for start, path in spans:
            if start > pos:
                break
            current = path
        return current

    for _, path in spans:
        if path not in modules:
            modules[path] = Module(path, file)
            modules[path[:-1]].children.add(path[-1])
    uses = [
        (m.start(), m.group(2), bool(m.group(1)))
        for m in re.finditer(r"(\bpub\b(?:\s*\([^)]*\))?\s+)?\buse\s+([^;]+);", text)
    ]
    items = [(m.start(), m.group(1)) for m in ITEM.finditer(text)]
    # `use` statements are read as trees above; inline paths are the rest.
    use_spans = [(m.start(), m.end()) for m in re.finditer(r"\buse\s+[^;]+;", text)]

    def in_use(pos):
        return any(start <= pos < end for start, end in use_spans)

    paths = [
        (m.start(), [m.group(1)] + re.findall(IDENT, m.group(2)))
        for pattern in (PATH, CHILD_PATH)
        for m in pattern.finditer(text)
        if not in_use(m.start())
        and (pattern is PATH or m.group(1) in modules[module_at(m.start())].children)
    ]
    return uses, items, paths, module_at


def crate_graph(crate):
    src = crate / "src"
    files = sorted(src.rglob("*.rs"))
    modules = {}
    for f in files:
        p = module_path(src, f)
        modules[p] = Module(p, f)
    for p in list(modules):
        if p:
            modules[p[:-1]].children.add(p[-1])
    scanned = [scan(modules, src, f) for f in files]
    for uses, items, paths, module_at in scanned:
        for pos, name in items:
            modules[module_at(pos)].items.add(name)
        for pos, tree, reexport in uses:
            here = module_at(pos)
            for segs, name, glob in parse_tree(tree):
                target = absolute(modules, here, segs)
                if glob and target is not None:
                    modules[here].globs.append(tuple(target))
                elif name:
                    modules[here].bindings[name] = target
                # A re-export passes names on; only what the file itself uses counts.
                if target is not None and not reexport:
                    modules[here].refs.append(target)
        for pos, segs in paths:
            here = module_at(pos)
            target = absolute(modules, here, segs)
            if target is not None:
                modules[here].refs.append(target)
    edges = {f: set() for f in files}
    for mod in modules.values():
        for ref in mod.refs:
            to = resolve(modules, ref)
            if to is not None and to != mod.file:
                edges[mod.file].add(to)
    return src, edges


def cycles(edges):
    """Each strongly connected group of more than one file, with one loop through it."""
    index, low, stack, on, groups, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
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
                groups.append(group)

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    loops = []
    for group in groups:
        members, start = set(group), min(group)
        # Breadth-first from `start` back to itself inside the group.
        prev, frontier, end = {start: None}, [start], None
        while frontier and end is None:
            nxt = []
            for v in frontier:
                for w in sorted(edges[v] & members):
                    if w == start:
                        end = v
                        break
                    if w not in prev:
                        prev[w] = v
                        nxt.append(w)
                if end is not None:
                    break
            frontier = nxt
        loop, v = [], end
        while v is not None:
            loop.append(v)
            v = prev[v]
        loops.append((sorted(group), list(reversed(loop)) + [start]))
    return loops


def main(args):
    if not args:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    failed = False
    for crate in map(Path, args):
        src, edges = crate_graph(crate)
        found = cycles(edges)
        for group, loop in found:
            failed = True
            names = lambda fs: [str(f.relative_to(src)) for f in fs]
            print(f"{crate}: files import each other: {' -> '.join(names(loop))}")
            if len(group) > len(loop) - 1:
                print(f"  (the whole group: {', '.join(names(group))})")
        if not found:
            print(f"{crate}: no import cycle between its {len(edges)} files")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
