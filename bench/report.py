"""Tables (Markdown) and charts (PNG) from the benchmark's results.json."""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

DIR_ORDER = {"dequeue": 0, "enqueue": 1, "pvp": 2, "v2v": 3}
V2V = "v2v"
# The competitors: the distribution's PMD and ours, with variants of ours
# (ours-zc: dequeue zero-copy on) compared with the distribution's the same way.
BASELINE = "distro"
VARIANT_ORDER = {"ours": 0, "ours-zc": 1}
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


def _label(key: Tuple, variant: str = "ours") -> str:
    direction, size, ring, mrg, queues = key
    return f"{direction} {size}B {ring} mrg{mrg} q{queues}" + (
        "" if variant == "ours" else f" [{variant}]")


def _variant_key(v: str) -> Tuple:
    return (VARIANT_ORDER.get(v, 9), v)


def v2v_instr(row: dict) -> Optional[float]:
    """A v2v profile's figure: both vhost ports' receive and transmit burst
    functions per frame the vhost side received."""
    pkts = row["packets"]["dequeue"]
    return (row["dequeue"]["instr"] + row["enqueue"]["instr"]) / pkts if pkts else None


def spread(values: List[float]) -> Optional[dict]:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def summarise(results: dict) -> List[dict]:
    """One row per case and variant of ours: pps of it and of the
    distribution's PMD and their ratio per repetition (median, min..max),
    instructions per packet of each. Only ours and distro: one row per case,
    as before variants existed."""
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
        if row.get("direction") == V2V:
            value = v2v_instr(row)
            if value:
                instr[(V2V, row["size"], row["ring"], row["mrg"], row["queues"])][row["pmd"]] = value
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
        seen = {p for r in reps.get(key, {}).values() for p in r} | set(instr.get(key, {}))
        variants = sorted(seen - {BASELINE}, key=_variant_key) or ["ours"]
        for v in variants:
            pairs = [r for r in reps.get(key, {}).values() if v in r and BASELINE in r]
            rows.append({"key": key, "variant": v, "label": _label(key, v),
                         "error": errors.get(key),
                         "pps_ours": spread([r[v] for r in pairs]),
                         "pps_distro": spread([r[BASELINE] for r in pairs]),
                         "pps_ratio": spread([r[v] / r[BASELINE] for r in pairs if r[BASELINE]]),
                         "instr_ours": instr.get(key, {}).get(v),
                         "instr_distro": instr.get(key, {}).get(BASELINE),
                         "cpu": {pmd: tuple(statistics.median(x[i] for x in shares)
                                            for i in (0, 1))
                                 for pmd, shares in cpu.get(key, {}).items()
                                 if pmd in (v, BASELINE)}})
    for row in rows:
        o, d = row["instr_ours"], row["instr_distro"]
        row["instr_ratio"] = o / d if o and d else None
        row["verdict"] = _verdict(row)
    return rows


def _verdict(row: dict) -> str:
    direction, size = row["key"][0], row["key"][1]
    if size not in TARGETS or direction not in ("dequeue", "enqueue"):
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


def fmt_spread(s: Optional[dict], scale: float = 1.0, digits: int = 2) -> str:
    if not s:
        return "-"
    return (f"{s['median'] / scale:.{digits}f} "
            f"({s['min'] / scale:.{digits}f}..{s['max'] / scale:.{digits}f})")


def _fmt_cpu(cpu: Dict[str, Tuple[float, float]]) -> str:
    """Median CPU share of the vhost side's and the peer's polling threads."""
    order = sorted((p for p in cpu if p != BASELINE), key=_variant_key) + [BASELINE]
    return "; ".join(f"{cpu[p][0]:.0%}/{cpu[p][1]:.0%}" for p in order if p in cpu) or "-"


def table_md(rows: List[dict]) -> str:
    out = ["| case | Mpps ours | Mpps distro | pps ratio | instr/pkt ours | "
           "instr/pkt distro | instr ratio | target | CPU ours; distro |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        io, idd, ir = r["instr_ours"], r["instr_distro"], r["instr_ratio"]
        out.append(
            f"| {r['label']} | {fmt_spread(r['pps_ours'], 1e6)} | "
            f"{fmt_spread(r['pps_distro'], 1e6)} | "
            f"{fmt_spread(r['pps_ratio']) if not r['error'] else 'failed'} | "
            f"{f'{io:.0f}' if io else '-'} | {f'{idd:.0f}' if idd else '-'} | "
            f"{f'{ir:.2f}' if ir else '-'} | {r['verdict']} | {_fmt_cpu(r['cpu'])} |")
    return "\n".join(out) + "\n"


def breakdown_md(results: dict, top: int = 12) -> str:
    """Our burst functions' costs, per function, for the 64-byte 1-queue profiles."""
    out = []
    # the same configuration from several runs counts the same: keep the last
    rows = {(r["ring"], r["mrg"]): r for r in results["callgrind"]
            if r.get("pmd") == "ours" and "error" not in r and r["size"] == 64 and r["queues"] == 1
            and r.get("direction") != V2V}
    for _, r in sorted(rows.items(), key=lambda kv: (RING_ORDER.get(kv[0][0], 9), kv[0][1])):
        for direction in ("dequeue", "enqueue"):
            d, pkts = r[direction], r["packets"][direction]
            if not pkts:
                continue
            csum = f", guests' checksums: {r['guest_csum']}" if r.get("guest_csum") else ""
            out.append(f"#### {direction}, 64 bytes, {r['ring']}, mrg_rxbuf={r['mrg']}, "
                       f"1 queue pair{csum}\n")
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
    out += _v2v_breakdown(results, top)
    return "\n".join(out)


def _v2v_breakdown(results: dict, top: int) -> List[str]:
    """Our variants' v2v profiles, per size: both ports' receive and transmit
    burst functions, per frame the vhost side received."""
    out = []
    rows = {(r["pmd"], r["ring"], r["mrg"], r["queues"], r["size"]): r for r in results["callgrind"]
            if r.get("direction") == V2V and "error" not in r and r.get("pmd") != BASELINE}
    for (pmd, ring, mrg, q, size), r in sorted(
            rows.items(), key=lambda kv: (kv[0][4], RING_ORDER.get(kv[0][1], 9), kv[0][2],
                                          kv[0][3], _variant_key(kv[0][0]))):
        pkts = r["packets"]["dequeue"]
        if not pkts:
            continue
        out.append(f"#### v2v, {size} bytes, {ring}, mrg_rxbuf={mrg}, {q} queue pair(s), {pmd}\n")
        out.append(f"{v2v_instr(r):.1f} instructions per frame received by the vhost side "
                   f"({pkts} frames, {r.get('zero_copy', 0) / pkts:.0%} zero-copy): receive "
                   f"{r['dequeue']['instr'] / pkts:.1f}, transmit "
                   f"{r['enqueue']['instr'] / pkts:.1f}.\n")
        for direction in ("dequeue", "enqueue"):
            d = r[direction]
            out.append(f"| {direction}: function | object | instr/frame | share |")
            out.append("|---|---|---|---|")
            for b in d["breakdown"][:top]:
                out.append(f"| {b['function']} | {b['object']} | {b['instr'] / pkts:.1f} | "
                           f"{b['instr'] / d['instr']:.1%} |")
            out.append("")
    return out


def v2v_table_md(results: dict, rows: List[dict]) -> str:
    """VM to VM, every competitor side by side: Mpps, pps ratio to the
    distribution's, instructions per frame (receive + transmit), share of the
    frames dequeued zero-copy (pps windows; callgrind window)."""
    v2v = [r for r in rows if r["key"][0] == V2V]
    if not v2v:
        return ""
    variants = sorted({r["variant"] for r in v2v}, key=_variant_key)
    zc_pps: Dict[Tuple, Dict[str, List[float]]] = defaultdict(lambda: defaultdict(list))
    for p in results["pps"]:
        if p.get("direction") == V2V and p.get("vhost_rx"):
            zc_pps[(p["size"], p["ring"], p["mrg"], p["queues"])][p["pmd"]].append(
                p["zero_copy"] / p["vhost_rx"])
    cg: Dict[Tuple, Dict[str, dict]] = defaultdict(dict)
    for c in results["callgrind"]:
        if c.get("direction") == V2V and "error" not in c and c["packets"]["dequeue"]:
            cg[(c["size"], c["ring"], c["mrg"], c["queues"])][c["pmd"]] = c
    by_key: Dict[Tuple, Dict[str, dict]] = defaultdict(dict)
    for r in v2v:
        by_key[r["key"]][r["variant"]] = r
    names = variants + [BASELINE]
    head = (["case"] + [f"Mpps {v}" for v in names] + [f"pps ratio {v}" for v in variants]
            + [f"instr/pkt {v} (rx+tx)" for v in names] + [f"instr ratio {v}" for v in variants]
            + [f"zero-copy {v}" for v in variants if v != "ours"])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in sorted(by_key, key=_sort_key):
        vr = by_key[key]
        any_row = next(iter(vr.values()))
        ck = key[1:]
        cells = [_label(key)]
        cells += [fmt_spread(vr[v]["pps_ours"], 1e6) if v in vr else "-" for v in variants]
        cells.append(fmt_spread(any_row["pps_distro"], 1e6))
        cells += [(fmt_spread(vr[v]["pps_ratio"]) if not vr[v]["error"] else "failed")
                  if v in vr else "-" for v in variants]
        for v in names:
            c = cg.get(ck, {}).get(v)
            if c:
                n = c["packets"]["dequeue"]
                cells.append(f"{v2v_instr(c):.0f} ({c['dequeue']['instr'] / n:.0f}+"
                             f"{c['enqueue']['instr'] / n:.0f})")
            else:
                cells.append("-")
        cells += [f"{vr[v]['instr_ratio']:.2f}" if v in vr and vr[v]["instr_ratio"] else "-"
                  for v in variants]
        for v in variants:
            if v == "ours":
                continue
            shares = zc_pps.get(ck, {}).get(v)
            c = cg.get(ck, {}).get(v)
            parts = []
            if shares:
                parts.append(f"{statistics.median(shares):.0%}")
            if c:
                parts.append(f"cg {c.get('zero_copy', 0) / c['packets']['dequeue']:.0%}")
            cells.append("; ".join(parts) or "-")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


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
    v2v = [r for r in rows if r["key"][0] == V2V]
    # the charts of before: ours (copy) against the distribution's
    rows = [r for r in rows if r.get("variant", "ours") == "ours" and r["key"][0] != V2V]
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
    if v2v:
        written.append(_v2v_chart(v2v, img_dir, plt))
    return written


def _v2v_chart(v2v: List[dict], img_dir: Path, plt) -> Path:
    """Two panels per VM-to-VM case: instructions per frame of every
    competitor, and the pps ratio of each variant of ours to the distribution's."""
    keys = sorted({r["key"] for r in v2v}, key=_sort_key)
    variants = sorted({r["variant"] for r in v2v}, key=_variant_key)
    by = {(r["key"], r["variant"]): r for r in v2v}
    colors = {"ours": "tab:orange", "ours-zc": "tab:green", BASELINE: "tab:gray"}
    with_pps = any(r["pps_ratio"] for r in v2v)
    fig, axes = plt.subplots(1, 2 if with_pps else 1,
                             figsize=(10 if with_pps else 6, 1.4 + 0.55 * len(keys)),
                             squeeze=False)
    ax1 = axes[0][0]
    names = variants + [BASELINE]
    h = 0.8 / len(names)
    for j, name in enumerate(names):
        vals = []
        for key in keys:
            r = by.get((key, variants[0] if name == BASELINE else name))
            vals.append((r["instr_distro"] if name == BASELINE else r["instr_ours"]) if r else None)
        ys = [i - 0.4 + h * (j + 0.5) for i in range(len(keys))]
        ax1.barh([y for y, v in zip(ys, vals) if v], [v for v in vals if v], height=h,
                 color=colors.get(name, None), label=name)
        for y, v in zip(ys, vals):
            if v:
                ax1.text(v * 1.01, y, f"{v:.0f}", va="center", fontsize=6)
    ax1.set_yticks(range(len(keys)))
    ax1.set_yticklabels([_label(k) for k in keys], fontsize=7)
    ax1.invert_yaxis()
    ax1.set_xlabel("instructions per frame, both vhost ports' rx + tx (callgrind)", fontsize=8)
    ax1.legend(fontsize=7, frameon=False)
    if with_pps:
        _v2v_pps_panel(axes[0][1], ax1, keys, variants, by, colors)
    fig.suptitle("VM to VM: two vhost ports forwarding to each other (io)", fontsize=9)
    fig.tight_layout()
    path = img_dir / "v2v.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _v2v_pps_panel(ax2, ax1, keys, variants, by, colors) -> None:
    """The pps ratio of each variant of ours to the distribution's, per case."""
    h = 0.8 / len(variants)
    for j, v in enumerate(variants):
        ys, med, lo, hi = [], [], [], []
        for i, key in enumerate(keys):
            r = by.get((key, v))
            if r and r["pps_ratio"]:
                s = r["pps_ratio"]
                ys.append(i - 0.4 + h * (j + 0.5))
                med.append(s["median"])
                lo.append(s["median"] - s["min"])
                hi.append(s["max"] - s["median"])
        if ys:
            ax2.barh(ys, med, xerr=[lo, hi], height=h, color=colors.get(v), alpha=0.8,
                     capsize=2, label=f"{v} / {BASELINE}")
    ax2.axvline(1.0, color="black", lw=1)
    ax2.set_yticks(range(len(keys)))
    ax2.set_yticklabels([])
    ax2.set_ylim(ax1.get_ylim())
    ax2.set_xlabel("packets per second / distribution's (median, bar: min..max)", fontsize=8)
    ax2.legend(fontsize=7, frameon=False)


def write_all(results: dict, out_dir: Path, img_dir: Path) -> None:
    rows = summarise(results)
    v2v = v2v_table_md(results, rows)
    # run.py --guest-csum: the instructions are of frames asking for their checksum
    modes = sorted({r["guest_csum"] for r in results["callgrind"] if r.get("guest_csum")})
    note = (f"Guests' checksums (--guest-csum): {', '.join(modes)}; receive side only.\n\n"
            if modes else "")
    for row in rows if modes else ():
        row["verdict"] = ""  # the targets are for frames without checksum requests
    (out_dir / "table.md").write_text(note + table_md(rows) + ("\n" + v2v if v2v else ""))
    (out_dir / "breakdown.md").write_text(breakdown_md(results))
    charts(rows, img_dir)
