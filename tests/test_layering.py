"""lib/vhost's layering: no file includes a file that, directly or through
others, includes it back.

A module is a file's stem: ``x.c`` and ``x.h`` are one module, so that a
``.c`` calling up into a module whose header includes it back counts as a
circle too. Only the library's own quoted includes are edges.

Run: /usr/bin/python3 -m pytest -v tests/test_layering.py
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Set

LIB = Path(__file__).resolve().parent.parent / "lib" / "vhost"
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)\.h"', re.MULTILINE)


def include_graph(folder: Path) -> Dict[str, Set[str]]:
    """Module -> modules of the folder it includes (itself left out)."""
    files = sorted(list(folder.glob("*.c")) + list(folder.glob("*.h")))
    modules = {f.stem for f in files}
    graph: Dict[str, Set[str]] = {m: set() for m in modules}
    for f in files:
        for target in INCLUDE_RE.findall(f.read_text()):
            if target in modules and target != f.stem:
                graph[f.stem].add(target)
    return graph


def find_circle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """A circle of modules (first == last), or None."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(m: str) -> Optional[List[str]]:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_finder_sees_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_circle(graph) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_graph_reads_the_library():
    graph = include_graph(LIB)
    # the transport hands messages to the session, which drives the rings
    assert "session" in graph["socket"], graph["socket"]
    assert "vring_ctl" in graph["session"], graph["session"]
    assert "zerocopy" in graph["vring_ctl"], graph["vring_ctl"]


def test_no_include_circle_in_lib_vhost():
    circle = find_circle(include_graph(LIB))
    assert circle is None, "include circle: " + " -> ".join(circle)
