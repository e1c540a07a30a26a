"""Run programs under callgrind; read its output files: self cost per
function and call edges.

``count_below()`` runs a program counting one function and what it calls
(the library benchmarks, bench/regions.py and bench/queues.py); WINDOWED and
control() count a window of a running program (bench/run.py's testpmd,
bench/ovs.py's ovs-vswitchd). The rest reads what they need: the ``Ir`` event,
functions qualified by their object (ELF file), and for every call edge its
count and inclusive cost.
Callgrind measures an edge's inclusive cost exactly (everything between call
and return), so the cost of a PMD's burst function is known even when the
functions below it also serve other callers.

The benchmark runs callgrind with ``--separate-callers``: a function is then
named with its callers, ``f'caller'caller2...``, so the functions below the
receive and the transmit burst function are distinct nodes and each
direction's breakdown adds up.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

# (object path, function name as callgrind writes it, with caller context)
Func = Tuple[str, str]

_COMPRESSED = re.compile(r"\((\d+)\)(?: (.*))?$")


class RunFailed(Exception):
    pass


# callgrind counting nothing until control(pid, "-i", "on"): a window of a
# running program, dumped with control(pid, "-d"); positions written whole,
# as parse() reads them
WINDOWED = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--compress-pos=no",
            # valgrind runs one thread at a time; its default lock lets a
            # polling thread that never blocks take it back again and again:
            # the program's main thread, woken by a command (testpmd's,
            # ovs-appctl's), then waited tens of seconds for its turn on a
            # loaded machine. Round robin between ready threads:
            "--fair-sched=yes"]


def control(pid: int, *args: str) -> None:
    """callgrind_control ``args`` (``-i on``, ``-d``...) to process ``pid``."""
    subprocess.run(["callgrind_control", *args, str(pid)], check=True,
                   capture_output=True, timeout=120)


def bench_program(build: Path, name: str) -> Path:
    """The benchmark program ``bench/bench_<name>`` of meson build
    ``build``; exits with what is missing when it or valgrind is."""
    exe = build / "bench" / f"bench_{name}"
    if not exe.is_file():
        sys.exit(f"{exe} missing: ninja -C {build}")
    if shutil.which("valgrind") is None:
        sys.exit("valgrind missing")
    return exe


def count_below(cmd: Sequence[str], function: str, out: Path,
                options: Sequence[str] = ()) -> Tuple[Dict[str, int], str]:
    """Runs ``cmd`` under callgrind counting ``function`` and everything it
    calls, nothing else (``--toggle-collect``), with callgrind ``options``
    added (``--cache-sim=yes`` ...), its output file ``out``. Returns the
    totals per event (``Ir``, and the cache simulation's events when it is
    on) and the program's standard output. ``LD_BIND_NOW=1``: otherwise the
    first call of each shared-library function from ``function`` would count
    the dynamic linker's lookup. Raises RunFailed when the program fails."""
    full = ["valgrind", "--tool=callgrind", f"--toggle-collect={function}",
            f"--callgrind-out-file={out}", *options, *cmd]
    res = subprocess.run(full, capture_output=True, text=True,
                         env=dict(os.environ, LD_BIND_NOW="1"))
    if res.returncode != 0:
        raise RunFailed(f"{' '.join(full)} failed (exit {res.returncode}):\n{res.stdout}"
                        f"{res.stderr[-2000:]}")
    events = summary = None
    with open(out, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("summary:"):
                summary = [int(v) for v in line.split()[1:]]
    if events is None or summary is None:
        raise RunFailed(f"{out}: no events or summary line")
    # trailing events with no count are left out of the summary line
    return dict(zip(events, summary + [0] * (len(events) - len(summary)))), res.stdout


def base_name(func: Func) -> str:
    """The function's own name, without callgrind's caller context."""
    return func[1].split("'", 1)[0]


class Profile:
    def __init__(self):
        self.self_cost: Dict[Func, int] = defaultdict(int)
        # func -> (source file, line) -> self cost; inlined code has its own file
        self.lines: Dict[Func, Dict[Tuple[str, int], int]] = defaultdict(lambda: defaultdict(int))
        # caller -> callee -> [calls, inclusive cost]
        self.edges: Dict[Func, Dict[Func, List[int]]] = defaultdict(
            lambda: defaultdict(lambda: [0, 0]))

    def entries(self, in_obj: Callable[[str], bool],
                from_obj: Callable[[str], bool]) -> Dict[Func, List[int]]:
        """Functions of an object matching ``in_obj`` called directly from an
        object matching ``from_obj``, with [calls, inclusive cost] of those
        edges."""
        out: Dict[Func, List[int]] = defaultdict(lambda: [0, 0])
        for caller, callees in self.edges.items():
            if not from_obj(caller[0]):
                continue
            for callee, (n, cost) in callees.items():
                if in_obj(callee[0]):
                    out[callee][0] += n
                    out[callee][1] += cost
        return dict(out)

    def subtree(self, roots: Iterable[Func]) -> Dict[Func, int]:
        """Self cost of ``roots`` and of every function reachable from them."""
        seen = set(roots)
        todo = list(seen)
        while todo:
            for callee in self.edges.get(todo.pop(), ()):
                if callee not in seen:
                    seen.add(callee)
                    todo.append(callee)
        return {f: self.self_cost.get(f, 0) for f in seen}


def _resolve(table: Dict[str, str], value: str) -> str:
    """Name compression: ``(id) name`` defines an id, ``(id)`` refers to it."""
    m = _COMPRESSED.match(value)
    if not m:
        return value
    if m.group(2) is not None:
        table[m.group(1)] = m.group(2)
    return table.get(m.group(1), value)


def parse(path: Path) -> Profile:
    """Parse one output file, written with ``--compress-pos=no`` (absolute line
    numbers)."""
    prof = Profile()
    objs: Dict[str, str] = {}
    fns: Dict[str, str] = {}
    files: Dict[str, str] = {}
    ob = fn = cob = cfn = fl = src = None
    pending_calls = None  # a "calls=" line: the next cost line is that call's inclusive cost
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            c = line[:1]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                if pending_calls is None:
                    prof.self_cost[(ob, fn)] += cost
                    prof.lines[(ob, fn)][(src, int(parts[0]))] += cost
                else:
                    edge = prof.edges[(ob, fn)][(cob or ob, cfn)]
                    edge[0] += pending_calls
                    edge[1] += cost
                    pending_calls = cob = None  # cob= holds for one call only
                continue
            key, sep, value = line.rstrip("\n").partition("=")
            if not sep:
                continue
            if key == "ob":
                ob = _resolve(objs, value)
            elif key == "fn":
                fn, src = _resolve(fns, value), fl
            elif key == "fl":
                fl = src = _resolve(files, value)
            elif key in ("fi", "fe"):
                src = _resolve(files, value)
            elif key in ("cfi", "cfl"):
                _resolve(files, value)  # may define a name used later
            elif key == "cob":
                cob = _resolve(objs, value)
            elif key == "cfn":
                cfn = _resolve(fns, value)
            elif key == "calls":
                pending_calls = int(value.split()[0])
    return prof


def breakdown(prof: Profile, roots: Iterable[Func], top: int = 15) -> List[dict]:
    """Self cost of the functions below ``roots``, contexts merged per function,
    largest first. Inlined code counts for the function it was inlined into;
    ``sources`` splits that cost by the source file the instructions come
    from (what callgrind_annotate shows as file:function)."""
    merged: Dict[Tuple[str, str], int] = defaultdict(int)
    sources: Dict[Tuple[str, str], Dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for func, cost in prof.subtree(roots).items():
        key = (os.path.basename(func[0]), base_name(func))
        merged[key] += cost
        for (src, _), c in prof.lines.get(func, {}).items():
            sources[key][os.path.basename(src or "?")] += c
    rows = sorted(merged.items(), key=lambda kv: -kv[1])
    return [{"object": obj, "function": name, "instr": cost,
             "sources": sorted(sources[(obj, name)].items(), key=lambda kv: -kv[1])}
            for (obj, name), cost in rows[:top] if cost]


def hot_lines(prof: Profile, roots: Iterable[Func], top: int = 15) -> List[dict]:
    """Self cost per source line below ``roots`` (contexts merged), largest first."""
    merged: Dict[Tuple[str, str, int], int] = defaultdict(int)
    for func in prof.subtree(roots):
        for (src, line), cost in prof.lines.get(func, {}).items():
            merged[(base_name(func), src, line)] += cost
    rows = sorted(merged.items(), key=lambda kv: -kv[1])
    return [{"function": fn, "file": src, "line": line, "instr": cost}
            for (fn, src, line), cost in rows[:top] if cost]
