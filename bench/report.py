"""Tables (Markdown) and charts (PNG) from the benchmark's results.json."""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

DIR_ORDER = {"dequeue": 0, "enqueue": 1, "pvp": 2}
RING_ORDER = {"split": 0, "packed": 1}

# Targets of issue 7, as (minimum pps ratio, maximum instructions ratio).
TARGETS = {64: (1.2, 0.70), 1518: (1.0, 1.0)}


def merge(results: List[dict]) -> dict:
    """Several runs (e.g. the quick subset and slices of the full matrix) as
    one; a case measured twice keeps every repetition."""
    return {"meta": [r["meta"] for r in results],
            "pps": [{**row, "run": i} for i, r in enumerate(results) for row in r["pps"]],
            "callgrind": [row for r in results for row in r["callgrind"]]}


def _sort_key(key: Tuple) -> Tuple:
    direction, size, ring, mrg, queues = key
    return (DIR_ORDER.get(direction, 9), size, RING_ORDER.get(ring, 9), mrg, queues)


def _label(key: Tuple) -> str:
    direction, size, ring, mrg, queues = key
    return f"{direction} {size}B {ring} mrg{mrg} q{queues}"


def _spread(values: List[float]) -> Optional[dict]:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def summarise(results: dict) -> List[dict]:
    """One row per case: pps of each PMD and their ratio per repetition
    (median, min..max), instructions per packet of each PMD."""
    reps: Dict[Tuple, Dict[Tuple, Dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    errors: Dict[Tuple, str] = {}
    cpu: Dict[Tuple, Dict[str, List[Tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for row in results["pps"]:
        key = (row["direction"], row["size"], row["ring"], row["mrg"], row["queues"])
        if "error" in row:
            errors[key] = row["error"]
            continue
        # a repetition of one run: the two windows measured back to back
        reps[key][(row.get("run", 0), row["rep"])][row["pmd"]] = row["pps"]
        if "cpu_vhost" in row:
            cpu[key][row["pmd"]].append((row["cpu_vhost"], row["cpu_peer"]))
    instr: Dict[Tuple, Dict[str, float]] = defaultdict(dict)
    for row in results["callgrind"]:
        if "error" in row:
            continue
        per = {d: row[d]["instr"] / row["packets"][d] for d in ("dequeue", "enqueue")
               if row["packets"][d]}
        if len(per) == 2:
            per["pvp"] = per["dequeue"] + per["enqueue"]
        for direction, value in per.items():
            instr[(direction, row["size"], row["ring"], row["mrg"], row["queues"])][row["pmd"]] = value
    # PVP's instructions are the two directions' sum: a row only with pps figures
    keys = sorted(set(reps) | set(errors) | {k for k in instr if k[0] != "pvp"}, key=_sort_key)
    rows = []
    for key in keys:
        pairs = [r for r in reps.get(key, {}).values() if "ours" in r and "distro" in r]
        rows.append({"key": key, "label": _label(key), "error": errors.get(key),
                     "pps_ours": _spread([r["ours"] for r in pairs]),
                     "pps_distro": _spread([r["distro"] for r in pairs]),
                     "pps_ratio": _spread([r["ours"] / r["distro"] for r in pairs if r["distro"]]),
                     "instr_ours": instr.get(key, {}).get("ours"),
                     "instr_distro": instr.get(key, {}).get("distro"),
                     "cpu": {pmd: tuple(statistics.median(v[i] for v in shares) for i in (0, 1))
                             for pmd, shares in cpu.get(key, {}).items()}})
    for row in rows:
        o, d = row["instr_ours"], row["instr_distro"]
        row["instr_ratio"] = o / d if o and d else None
        row["verdict"] = _verdict(row)
    return rows


def _verdict(row: dict) -> str:
    direction, size = row["key"][0], row["key"][1]
    if size not in TARGETS or direction == "pvp":
        return ""
    min_pps, max_instr = TARGETS[size]
    missed = []
    if row["pps_ratio"] and row["pps_ratio"]["median"] < min_pps:
        missed.append("pps")
    if row["instr_ratio"] and row["instr_ratio"] > max_instr:
        missed.append("instr")
    if not row["pps_ratio"] and not row["instr_ratio"]:
        return ""
    return "met" if not missed else "missed: " + ", ".join(missed)


def _fmt_spread(s: Optional[dict], scale: float = 1.0, digits: int = 2) -> str:
    if not s:
        return "-"
    return (f"{s['median'] / scale:.{digits}f} "
            f"({s['min'] / scale:.{digits}f}..{s['max'] / scale:.{digits}f})")


def _fmt_cpu(cpu: Dict[str, Tuple[float, float]]) -> str:
    """Median CPU share of the vhost side's and the peer's polling threads."""
    return "; ".join(f"{cpu[p][0]:.0%}/{cpu[p][1]:.0%}" for p in ("ours", "distro") if p in cpu) or "-"


def table_md(rows: List[dict]) -> str:
    out = ["| case | Mpps ours | Mpps distro | pps ratio | instr/pkt ours | "
           "instr/pkt distro | instr ratio | target | CPU ours; distro |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        io, idd, ir = r["instr_ours"], r["instr_distro"], r["instr_ratio"]
        out.append(
            f"| {r['label']} | {_fmt_spread(r['pps_ours'], 1e6)} | "
            f"{_fmt_spread(r['pps_distro'], 1e6)} | "
            f"{_fmt_spread(r['pps_ratio']) if not r['error'] else 'failed'} | "
            f"{f'{io:.0f}' if io else '-'} | {f'{idd:.0f}' if idd else '-'} | "
            f"{f'{ir:.2f}' if ir else '-'} | {r['verdict']} | {_fmt_cpu(r['cpu'])} |")
    return "\n".join(out) + "\n"


def breakdown_md(results: dict, top: int = 12) -> str:
    """Our burst functions' costs, per function, for the 64-byte 1-queue profiles."""
    out = []
    # the same configuration from several runs counts the same: keep the last
    rows = {(r["ring"], r["mrg"]): r for r in results["callgrind"]
            if r.get("pmd") == "ours" and "error" not in r and r["size"] == 64 and r["queues"] == 1}
    for _, r in sorted(rows.items(), key=lambda kv: (RING_ORDER.get(kv[0][0], 9), kv[0][1])):
        for direction in ("dequeue", "enqueue"):
            d, pkts = r[direction], r["packets"][direction]
            if not pkts:
                continue
            out.append(f"#### {direction}, 64 bytes, {r['ring']}, mrg_rxbuf={r['mrg']}, 1 queue pair\n")
            out.append(f"{', '.join(d['functions'])}: {d['instr'] / pkts:.1f} instructions per "
                       f"packet ({pkts} packets, {pkts / d['calls']:.1f} per burst).\n")
            if d["subtree_instr"] > d["instr"] * 1.001:
                out.append(f"(Functions shared with the other direction counted in both: the "
                           f"rows add up to {d['subtree_instr'] / d['instr']:.0%}.)\n")
            out.append("| function | object | instr/pkt | share | by source file (inlined code) |")
            out.append("|---|---|---|---|---|")
            for b in d["breakdown"][:top]:
                files = ", ".join(f"{f} {c / pkts:.1f}" for f, c in b.get("sources", [])[:4]
                                  if c / pkts >= 0.5)
                out.append(f"| {b['function']} | {b['object']} | {b['instr'] / pkts:.1f} | "
                           f"{b['instr'] / d['instr']:.1%} | {files} |")
            out.append("")
            out.append("| hottest source lines | function | instr/pkt | share | code |")
            out.append("|---|---|---|---|---|")
            for h in d["hot_lines"][:top]:
                where, code = _source(h["file"], h["line"])
                out.append(f"| {where}:{h['line']} | {h['function']} | {h['instr'] / pkts:.1f} | "
                           f"{h['instr'] / d['instr']:.1%} | `{code}` |")
            out.append("")
    return "\n".join(out)


REPO = Path(__file__).resolve().parents[1]


def _source(path: str, line: int) -> Tuple[str, str]:
    """A line's place (relative to the repository, or the header's name) and text."""
    path = os.path.normpath(path or "?")
    where = (os.path.relpath(path, REPO) if path.startswith(str(REPO) + os.sep)
             else os.path.basename(path))
    try:
        with open(path, errors="replace") as fh:
            code = next((l for i, l in enumerate(fh, 1) if i == line), "")
    except OSError:
        code = ""
    return where, code.strip().replace("|", "\\|")[:70]


def charts(rows: List[dict], img_dir: Path) -> List[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    written = []
    pps = [r for r in rows if r["pps_ratio"]]
    if pps:
        fig, ax = plt.subplots(figsize=(8, 1.2 + 0.28 * len(pps)))
        y = range(len(pps))
        med = [r["pps_ratio"]["median"] for r in pps]
        lo = [m - r["pps_ratio"]["min"] for m, r in zip(med, pps)]
        hi = [r["pps_ratio"]["max"] - m for m, r in zip(med, pps)]
        colors = ["tab:green" if m >= 1 else "tab:red" for m in med]
        ax.barh(list(y), med, xerr=[lo, hi], color=colors, alpha=0.7, capsize=2)
        ax.axvline(1.0, color="black", lw=1)
        ax.axvline(1.2, color="tab:blue", ls="--", lw=1, label="64-byte target (1.2)")
        ax.set_yticks(list(y))
        ax.set_yticklabels([r["label"] for r in pps], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("packets per second, ours / distribution (median, bar: min..max)")
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1), fontsize=7, frameon=False)
        fig.tight_layout()
        path = img_dir / "pps-ratio.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    ins = [r for r in rows if r["instr_ours"] and r["instr_distro"] and r["key"][0] != "pvp"]
    if ins:
        fig, ax = plt.subplots(figsize=(8, 1.2 + 0.36 * len(ins)))
        y = list(range(len(ins)))
        ax.barh([v - 0.2 for v in y], [r["instr_ours"] for r in ins], height=0.4,
                label="ours", color="tab:orange")
        ax.barh([v + 0.2 for v in y], [r["instr_distro"] for r in ins], height=0.4,
                label="distribution", color="tab:gray")
        for v, r in zip(y, ins):
            ax.text(max(r["instr_ours"], r["instr_distro"]) * 1.01, v,
                    f"{r['instr_ratio']:.2f}x", va="center", fontsize=7)
        target = [(v - 0.2, r["instr_distro"] * TARGETS[64][1])
                  for v, r in zip(y, ins) if r["key"][1] == 64]
        if target:
            ax.plot([t[1] for t in target], [t[0] for t in target], "k|", ms=9,
                    label=f"64-byte target ({TARGETS[64][1]:.2f}x distribution)")
        ax.set_xlim(0, max(max(r["instr_ours"], r["instr_distro"]) for r in ins) * 1.12)
        ax.set_yticks(y)
        ax.set_yticklabels([r["label"] for r in ins], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("instructions per packet in the PMD's burst function (callgrind)")
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1), ncol=3, fontsize=7, frameon=False)
        fig.tight_layout()
        path = img_dir / "instr-per-packet.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def write_all(results: dict, out_dir: Path, img_dir: Path) -> None:
    rows = summarise(results)
    (out_dir / "table.md").write_text(table_md(rows))
    (out_dir / "breakdown.md").write_text(breakdown_md(results))
    charts(rows, img_dir)
