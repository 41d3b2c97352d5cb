"""The scale benchmark's pure parts: its matrix, its statistics and its JSON document.

Nothing here touches a lab; `lab.bench.scale` runs the cluster and hands its
measurements to this module, and `lab.bench.scaleplot` draws the document.

- `plan`: which (nodes, tasks) points a run measures. The i-th node count is
  paired with the i-th task count (the "main" points: the N sweep, tasks
  growing with nodes), and the largest node count also runs every other task
  count first (the T sweep at fixed N).
- `hollow_layout`: how the N hollow nodes of one point are split over hollow
  processes, the last group holding ~10% of the nodes (the one killed).
- `percentile` (linear interpolation between closest ranks), `rate_bins`
  (events per window), parsers for /proc/<pid>/stat and status and for the
  Prometheus text format.
- `FIGURES`: every figure's name, meaning, unit, axis and target (the issue's);
  `Results`: the document (saved after every figure, so a run that dies
  half-way keeps what it measured) and the one-line text of each figure;
  `markdown_table`: the README's table from a document.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from prometheus_client.parser import text_string_to_metric_families

SCHEMA = "shoal.scale/1"


# ------------------------------------------------------------------ matrix --

@dataclass(frozen=True)
class Point:
    """One measured point: N hollow nodes, a service of T replicas."""
    nodes: int
    tasks: int
    main: bool   # on the N sweep (its service stays for the failure and steady figures)


@dataclass(frozen=True)
class Step:
    """One lab of `nodes` hollow nodes; its services in order, the main one last."""
    nodes: int
    tasks: tuple[int, ...]

    @property
    def main(self) -> int:
        return self.tasks[-1]

    def points(self) -> list[Point]:
        return [Point(self.nodes, t, t == self.main) for t in self.tasks]


def _counts(values: Iterable[int], what: str) -> list[int]:
    found = sorted(set(values))
    if not found:
        raise ValueError(f"no {what} count given")
    if found[0] < 1:
        raise ValueError(f"{what} counts must be positive (got {found[0]})")
    return found


def plan(nodes: Sequence[int], tasks: Sequence[int]) -> list[Step]:
    """The steps of a run, smallest cluster first.

    The i-th smallest node count runs the i-th smallest task count (the last
    task count when there are fewer task counts than node counts); the largest
    node count runs the largest task count and, before it, every other one.
    `plan([100, 300, 1000], [3000, 10000, 30000])` gives 100/3000, 300/10000,
    then 1000 nodes with 3000, 10000 and 30000 tasks."""
    ns, ts = _counts(nodes, "node"), _counts(tasks, "task")
    steps = []
    for i, n in enumerate(ns):
        if n == ns[-1]:
            steps.append(Step(n, tuple(ts)))
        else:
            steps.append(Step(n, (ts[min(i, len(ts) - 1)],)))
    return steps


def points(steps: Sequence[Step]) -> list[Point]:
    return [p for s in steps for p in s.points()]


def hollow_layout(nodes: int, per_process: int, victim_fraction: float = 0.1) -> list[int]:
    """Nodes per hollow process for a cluster of `nodes`: groups of at most
    `per_process`, as even as can be, then the victim group of
    round(nodes * victim_fraction) nodes (at least one) that the benchmark kills."""
    if per_process < 1:
        raise ValueError(f"a hollow process holds at least one node (got {per_process})")
    if not 0 < victim_fraction < 1:
        raise ValueError(f"the killed share of the nodes must be between 0 and 1 "
                         f"(got {victim_fraction})")
    victim = max(1, round(nodes * victim_fraction))
    if nodes < 2 or victim >= nodes:
        raise ValueError(f"{nodes} hollow nodes cannot lose {victim} and keep running tasks: "
                         "use at least 2 nodes")
    fill = nodes - victim
    groups = math.ceil(fill / per_process)
    base, extra = divmod(fill, groups)
    return [base + 1] * extra + [base] * (groups - extra) + [victim]


# -------------------------------------------------------------- statistics --

def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks (numpy's default)."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not between 0 and 100")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rate_bins(times: Sequence[float], width: float = 1.0,
              origin: Optional[float] = None) -> list[tuple[float, int]]:
    """Events per window of `width` seconds (times relative to some start), every window
    from the one holding `origin` (default: the first event) to the last event's."""
    if width <= 0:
        raise ValueError("a window has a positive width")
    if not times:
        return []
    first = math.floor(min(times if origin is None else [origin, *times]) / width)
    last = math.floor(max(times) / width)
    counts = [0] * (last - first + 1)
    for t in times:
        counts[math.floor(t / width) - first] += 1
    return [((first + i) * width, c) for i, c in enumerate(counts)]


def peak_rate(times: Sequence[float], width: float = 1.0) -> float:
    """The most events in one window, per second."""
    bins = rate_bins(times, width)
    return max(c for _, c in bins) / width if bins else 0.0


def cpu_ticks(stat: str) -> int:
    """User plus system clock ticks of a process, from /proc/<pid>/stat (its threads
    included; the command name may hold spaces and parentheses)."""
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])   # utime, stime (fields 14 and 15)


def rss_bytes(status: str) -> int:
    """Resident memory of a process, from /proc/<pid>/status (VmRSS)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            value, unit = line.split()[1:3]
            if unit != "kB":
                raise ValueError(f"unexpected VmRSS unit {unit!r}")
            return int(value) * 1024
    raise ValueError("no VmRSS line (a kernel thread, or the process exited)")


def metric_samples(text: str) -> dict[str, float]:
    """Prometheus text: each sample name's value, summed over its label sets."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    return values


# ----------------------------------------------------------------- figures --

@dataclass(frozen=True)
class FigureSpec:
    """What a figure measures. `axis`: "nodes" (measured once per cluster, with its
    main service running) or "both" (once per service: plotted against T too)."""
    what: str
    unit: str
    axis: str
    target: Optional[float] = None


def _latency(call: str, q: str, target: Optional[float]) -> FigureSpec:
    return FigureSpec(f"{call}: latency {q} over the calls", "ms", "both", target)


FIGURES: dict[str, FigureSpec] = {
    "join_s": FigureSpec("join: every hollow node Ready (ListNodes) from the start of the "
                         "first hollow process", "s", "nodes", 60.0),
    "create_running_s": FigureSpec("CreateService of T replicas -> all T RUNNING (commit "
                                   "time of the last one)", "s", "both", 60.0),
    "sched_delay_p50_ms": FigureSpec("scheduling delay of one more task on the loaded cluster: "
                                     "CreateService of 1 replica -> its task assigned (commit "
                                     "time), p50 over the requests", "ms", "both"),
    "sched_delay_p99_ms": FigureSpec("scheduling delay of one more task on the loaded cluster: "
                                     "CreateService of 1 replica -> its task assigned (commit "
                                     "time), p99 over the requests", "ms", "both", 400.0),
    "assign_p50_s": FigureSpec("per task of the T-replica service, CreateService -> assigned "
                               "(commit times), p50", "s", "both"),
    "assign_p99_s": FigureSpec("per task of the T-replica service, CreateService -> assigned "
                               "(commit times), p99", "s", "both"),
    "task_running_p50_s": FigureSpec("per task of the T-replica service, CreateService -> "
                                     "RUNNING (commit times), p50", "s", "both"),
    "task_running_p99_s": FigureSpec("per task of the T-replica service, CreateService -> "
                                     "RUNNING (commit times), p99", "s", "both"),
    "api_node_ls_p50_ms": _latency("ListNodes (gRPC)", "p50", None),
    "api_node_ls_p99_ms": _latency("ListNodes (gRPC)", "p99", 500.0),
    "api_service_ls_p50_ms": _latency("ListServices (gRPC)", "p50", None),
    "api_service_ls_p99_ms": _latency("ListServices (gRPC)", "p99", 500.0),
    "api_service_ps_p50_ms": _latency("ListTasks of the service (gRPC)", "p50", None),
    "api_service_ps_p99_ms": _latency("ListTasks of the service (gRPC)", "p99", 3000.0),
    "cli_node_ls_p50_ms": _latency("`swarm node ls` (whole process)", "p50", None),
    "cli_node_ls_p99_ms": _latency("`swarm node ls` (whole process)", "p99", 500.0),
    "cli_service_ls_p50_ms": _latency("`swarm service ls` (whole process)", "p50", None),
    "cli_service_ls_p99_ms": _latency("`swarm service ls` (whole process)", "p99", 500.0),
    "cli_service_ps_p50_ms": _latency("`swarm service ps SERVICE` (whole process)", "p50", None),
    "cli_service_ps_p99_ms": _latency("`swarm service ps SERVICE` (whole process)", "p99",
                                      3000.0),
    "failover_write_s": FigureSpec("leader kill -9 -> a write accepted by a survivor", "s",
                                   "nodes", 3.0),
    "failover_sessions_s": FigureSpec("leader kill -9 -> the new leader's dispatcher holds a "
                                      "session for every node Ready before the kill "
                                      "(shoal_dispatcher_sessions)", "s", "nodes", 30.0),
    "failover_reconnect_peak_per_s": FigureSpec("peak node re-registrations per second on the "
                                                "new leader (hollow nodes' commit times, 1 s "
                                                "windows)", "1/s", "nodes"),
    "hollow_kill_reschedule_s": FigureSpec("kill -9 of a hollow process with ~10% of the "
                                           "nodes -> all T RUNNING again, none on its nodes",
                                           "s", "nodes"),
    "steady_leader_cpu_pct": FigureSpec("steady state: leader daemon CPU", "% of a core",
                                        "nodes", 50.0),
    "steady_follower_cpu_pct": FigureSpec("steady state: busiest follower daemon CPU",
                                          "% of a core", "nodes"),
    "steady_hollow_cpu_pct": FigureSpec("steady state: all hollow processes' CPU together",
                                        "% of a core", "nodes"),
    "steady_leader_rss_mib": FigureSpec("steady state: leader daemon RSS (peak)", "MiB",
                                        "nodes", 2048.0),
    "steady_follower_rss_mib": FigureSpec("steady state: largest follower daemon RSS (peak)",
                                          "MiB", "nodes"),
    "steady_heartbeats_per_s": FigureSpec("steady state: heartbeats the leader's dispatcher "
                                          "handled (shoal_dispatcher_heartbeats)", "1/s",
                                          "nodes"),
    "store_disk_mib": FigureSpec("raft directory of the leader on disk (journal + snapshot)",
                                 "MiB", "nodes"),
    "snapshot_mib": FigureSpec("store snapshot size (the leader's objects, dumped and "
                               "encrypted as a raft snapshot is)", "MiB", "nodes"),
    "snapshot_s": FigureSpec("store snapshot time: dump, encrypt, pickle, write and fsync of "
                             "the leader's objects (in the benchmark process)", "s", "nodes"),
}


def _fmt(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def figure_line(name: str, nodes: int, tasks: int, value: float) -> str:
    """One figure as printed: `name N=.. T=..: value unit (what; target)`."""
    spec = FIGURES[name]
    target = ""
    if spec.target is not None:
        verdict = "met" if value <= spec.target else "MISSED"
        target = f"; target <= {spec.target:g} {spec.unit}: {verdict}"
    return f"{name} N={nodes} T={tasks}: {_fmt(value)} {spec.unit} ({spec.what}{target})"


def host_info() -> dict[str, Any]:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {"cpus": os.cpu_count(), "mem_gib": round(pages / 2**30, 1)}


class Results:
    """The run's document; `add` records a figure, saves the file and returns its line."""

    def __init__(self, path: Optional[Path], options: dict[str, Any],
                 run_points: Sequence[Point]) -> None:
        self.path = path
        self.doc: dict[str, Any] = {
            "schema": SCHEMA,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": host_info(),
            "options": options,
            "points": [{"nodes": p.nodes, "tasks": p.tasks, "main": p.main}
                       for p in run_points],
            "figures": [],
            "series": {},
            "notes": [],
        }

    def add(self, name: str, nodes: int, tasks: int, value: float,
            extra: Optional[dict[str, Any]] = None) -> str:
        if name not in FIGURES:
            raise KeyError(f"unknown figure {name!r}")
        record = {"name": name, "nodes": nodes, "tasks": tasks, "value": float(value),
                  "unit": FIGURES[name].unit}
        if extra:
            record["extra"] = extra
        self.doc["figures"].append(record)
        self.save()
        return figure_line(name, nodes, tasks, value)

    def series(self, key: str, entry: dict[str, Any]) -> None:
        self.doc["series"].setdefault(key, []).append(entry)
        self.save()

    def note(self, text: str) -> None:
        self.doc["notes"].append(text)
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.doc, indent=1) + "\n")
        tmp.replace(self.path)


def check_document(doc: Any) -> dict[str, Any]:
    """The document if it is one this module wrote; ValueError saying what is wrong."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ValueError(f"not a scale benchmark document (schema {SCHEMA!r} expected)")
    for key in ("points", "figures", "series", "notes"):
        if key not in doc:
            raise ValueError(f"scale document without {key!r}")
    for record in doc["figures"]:
        missing = {"name", "nodes", "tasks", "value"} - set(record)
        if missing:
            raise ValueError(f"figure record {record!r} lacks {', '.join(sorted(missing))}")
    return doc


def load_document(path: Path) -> dict[str, Any]:
    return check_document(json.loads(path.read_text()))


def markdown_table(doc: dict[str, Any]) -> str:
    """The figures as a Markdown table: one row per figure, one column per point."""
    check_document(doc)
    cols = [(p["nodes"], p["tasks"]) for p in doc["points"]]
    values = {(r["name"], r["nodes"], r["tasks"]): r["value"] for r in doc["figures"]}
    head = ["figure", "unit", *(f"{n} / {t}" for n, t in cols), "target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, spec in FIGURES.items():
        cells = [_fmt(values[(name, n, t)]) if (name, n, t) in values else ""
                 for n, t in cols]
        if not any(cells):
            continue
        target = f"<= {spec.target:g}" if spec.target is not None else ""
        lines.append("| " + " | ".join([name, spec.unit, *cells, target]) + " |")
    return "\n".join(lines) + "\n"
