"""Plots of a scale benchmark document (lab.bench.scalefigures): one PNG per figure.

Each PNG shows how one cost grows: against the number of nodes N (the main
points, tasks growing with nodes) and, for figures measured per service,
against the number of tasks T at the largest N. A dotted line continues the
first point proportionally (linear growth), so a curve under it grows slower
than linearly and one above it faster; a dashed red line is the issue's
target. A run that measured the leader failover adds `failover_reconnects.png`:
node re-registrations per second on the new leader after the kill, per N.

Uses matplotlib's object API (a `Figure` of its own per plot, no pyplot state).
Run on a saved document: `python -m lab.bench.scaleplot design/scale/scale.json
[--plots DIR] [--table]` (--table prints the README's Markdown table).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lab.bench.scalefigures import FIGURES, FigureSpec, check_document, load_document, \
    markdown_table

Series = list[tuple[float, float, str]]   # (x, value, point label)


def _series(doc: dict[str, Any], name: str) -> tuple[Series, Series]:
    """A figure's values against N (main points) and against T (points at the largest N)."""
    main = {(p["nodes"], p["tasks"]) for p in doc["points"] if p["main"]}
    records = [r for r in doc["figures"] if r["name"] == name]
    if not records:
        return [], []
    top = max(p["nodes"] for p in doc["points"])
    by_nodes = sorted((r["nodes"], r["value"], f"T={r['tasks']}") for r in records
                      if (r["nodes"], r["tasks"]) in main)
    by_tasks = sorted((r["tasks"], r["value"], f"N={r['nodes']}") for r in records
                      if r["nodes"] == top)
    if not by_nodes:   # no main point measured it: show what there is against N
        by_nodes = sorted((r["nodes"], r["value"], f"T={r['tasks']}") for r in records)
    return by_nodes, by_tasks


def _panel(ax: Axes, series: Series, xlabel: str, spec: FigureSpec) -> None:
    xs = [x for x, _, _ in series]
    ys = [y for _, y, _ in series]
    ax.plot(xs, ys, marker="o", color="tab:blue", label="measured")
    for x, y, label in series:
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 6), fontsize=7)
    if len(series) > 1 and xs[0] > 0 and ys[0] > 0:
        ax.plot(xs, [ys[0] * x / xs[0] for x in xs], linestyle=":", color="gray",
                label="linear from the first point")
    if spec.target is not None:
        ax.axhline(spec.target, linestyle="--", color="tab:red",
                   label=f"target {spec.target:g} {spec.unit}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(spec.unit)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def plot_figure(doc: dict[str, Any], name: str, path: Path) -> Optional[Path]:
    """The PNG of one figure (None when the document has no value of it)."""
    spec = FIGURES[name]
    by_nodes, by_tasks = _series(doc, name)
    if not by_nodes:
        return None
    with_tasks = spec.axis == "both" and len({x for x, _, _ in by_tasks}) > 1
    fig = Figure(figsize=(10 if with_tasks else 5.5, 4))
    fig.subplots_adjust(left=0.1 if with_tasks else 0.15, right=0.97, bottom=0.13, top=0.88,
                        wspace=0.25)   # fixed margins: a layout engine draws twice
    axes = fig.subplots(1, 2 if with_tasks else 1, squeeze=False)[0]
    _panel(axes[0], by_nodes, "nodes (N)", spec)
    if with_tasks:
        top = max(p["nodes"] for p in doc["points"])
        _panel(axes[1], by_tasks, f"tasks (T) at N={top}", spec)
    fig.suptitle(f"{name}: {spec.what}", fontsize=9)
    fig.savefig(path, format="png", dpi=110)
    return path


def plot_reconnects(doc: dict[str, Any], path: Path) -> Optional[Path]:
    """Re-registrations per second after the leader kill, one line per N."""
    runs = doc["series"].get("failover_reconnects", [])
    if not runs:
        return None
    fig = Figure(figsize=(6.5, 4))
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.13, top=0.9)
    ax = fig.subplots()
    for run in runs:
        bins = run["bins"]
        if not bins:
            continue
        width = bins[1][0] - bins[0][0] if len(bins) > 1 else 1.0
        xs = [b[0] for b in bins] + [bins[-1][0] + width]    # the last window's end
        ys = [b[1] / width for b in bins] + [bins[-1][1] / width]
        ax.step(xs, ys, where="post", label=f"N={run['nodes']}")
    ax.set_xlabel("seconds after the leader kill")
    ax.set_ylabel("nodes re-registered per second")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.suptitle("failover: node sessions re-opened on the new leader", fontsize=9)
    fig.savefig(path, format="png", dpi=110)
    return path


def plot_document(doc: dict[str, Any], directory: Path) -> list[Path]:
    """Writes every plot of the document under `directory`; returns their paths."""
    check_document(doc)
    directory.mkdir(parents=True, exist_ok=True)
    written = [plot_figure(doc, name, directory / f"{name}.png") for name in FIGURES]
    written.append(plot_reconnects(doc, directory / "failover_reconnects.png"))
    return [p for p in written if p is not None]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.scaleplot",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("document", type=Path, help="a JSON file of python -m lab.bench.scale")
    parser.add_argument("--plots", type=Path, default=None,
                        help="directory of the PNG files (default: beside the document)")
    parser.add_argument("--table", action="store_true", help="print the Markdown table")
    opts = parser.parse_args(argv)
    try:
        doc = load_document(opts.document)
    except (OSError, ValueError) as err:
        parser.error(f"cannot read {opts.document}: {err}")
    for path in plot_document(doc, opts.plots or opts.document.parent):
        print(path)
    if opts.table:
        print(markdown_table(doc), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
