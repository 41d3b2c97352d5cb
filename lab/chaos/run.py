"""`python -m lab.chaos`: the chaos soak, start to verdict.

Brings a lab up (3 or 5 managers, 3 workers by default; its own directory and
underlay, removed at the end), starts the writers and the operator, injects
faults for --duration seconds, stops everything, heals the lab, checks the
invariants, and prints the timeline, the figures and the verdicts. On a
violation it copies the nodes' logs to --out, prints the seed and the command
that repeats the run, and exits 1. Run as root, alone (one lab at a time);
tests/test_e2e_chaos.py runs it for 2 minutes with a fixed seed.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from lab.chaos.access import Access
from lab.chaos.faults import NOT_INJECTED, Injector
from lab.chaos.invariants import (Result, check_agreement, check_convergence, check_leftovers,
                                  check_orphans, check_writes)
from lab.chaos.repair import Repair
from lab.chaos.timeline import Entry, Timeline
from lab.chaos.workload import SECRET_MARK, Operator
from lab.chaos.writers import Writers
from lab.cluster import Lab
from lab.images import ensure_demo_image, ensure_stand_in
from node.state import podman_log_path
from tests.labfixtures import lab_cluster

UPDATE_IMAGE = "nginx:alpine"      # the second image updates switch to (a lab stand-in)


def _arguments(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m lab.chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=600.0,
                   help="seconds of faults and workload (default 600)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of every random choice (default: drawn and printed)")
    p.add_argument("--managers", type=int, choices=(3, 5), default=3)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--writers", type=int, default=2, help="writer threads (default 2)")
    p.add_argument("--converge-bound", type=float, default=120.0,
                   help="seconds the cluster gets to converge after a fault and at the end")
    p.add_argument("--hold", type=float, nargs=2, default=(3.0, 10.0), metavar=("MIN", "MAX"),
                   help="seconds a fault lasts before it is repaired")
    p.add_argument("--gap", type=float, nargs=2, default=(1.0, 5.0), metavar=("MIN", "MAX"),
                   help="seconds between a convergence and the next fault")
    p.add_argument("--json", type=Path, default=None, help="write the whole report there")
    p.add_argument("--out", type=Path, default=None,
                   help="where the nodes' logs go on a violation (default /tmp/shoal-chaos-SEED)")
    p.add_argument("--quiet-timeline", action="store_true",
                   help="at the end, do not print the timeline again with every operation "
                        "(faults and heals are printed as they happen)")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.workers < 1 or args.writers < 1:
        p.error("--duration must be > 0, --workers and --writers at least 1")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 10**6)
    return args


def _progress(entry: Entry) -> None:
    """Prints faults, heals and the run's steps as they happen (not every operation)."""
    if entry.source != "op":
        print(entry.line(), flush=True)


def _copy_logs(lab: Lab, out: Path) -> Path:
    """Copies every node's daemon log and podman service log to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for name in lab.names():
        for src in (lab.log_path(name), podman_log_path(lab.data_dir(name))):
            if src.exists():
                shutil.copy(src, out / f"{name}-{src.name}")
    return out


def soak(args: argparse.Namespace) -> dict[str, Any]:
    """One whole run; returns the report (printed and saved by `main`)."""
    images = (ensure_demo_image(), ensure_stand_in(UPDATE_IMAGE))
    report: dict[str, Any] = {
        "seed": args.seed, "duration_s": args.duration, "managers": args.managers,
        "workers": args.workers,
        "command": (f"--seed {args.seed} --duration {args.duration:g} --managers {args.managers} "
                    f"--workers {args.workers} --writers {args.writers} --converge-bound "
                    f"{args.converge_bound:g} --hold {args.hold[0]:g} {args.hold[1]:g} "
                    f"--gap {args.gap[0]:g} {args.gap[1]:g}")}
    with lab_cluster(managers=args.managers, workers=args.workers) as lab:
        try:
            _run(lab, args, images, report)
        except Exception:  # noqa: BLE001 - the soak itself broke: reported, logs kept
            report.update(ok=False, error=traceback.format_exc())
        finally:
            if not report.get("ok"):      # a violation, or the run itself failed
                out = args.out or Path(f"/tmp/shoal-chaos-{args.seed}")
                report["logs"] = str(_copy_logs(lab, out))
    return report


def _run(lab: Lab, args: argparse.Namespace, images: tuple[str, str],
         report: dict[str, Any]) -> None:
    """The run on a lab that is up; fills `report`."""
    timeline = Timeline(echo=_progress)
    access = Access(lab)
    repair = Repair(access, timeline)
    operator = Operator(access, timeline, args.seed, images)
    writers = Writers(access, args.writers, args.seed)
    injector = Injector(access, timeline, operator, repair, seed=args.seed + 1,
                        hold=tuple(args.hold), gap=tuple(args.gap),
                        converge_bound=args.converge_bound)
    timeline.add("run", f"lab up: {', '.join(lab.names())}; seed {args.seed}")
    writers.start()
    operator.start()
    injector.start()
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
    stuck = []
    if not injector.stop():
        stuck.append("injector")
    timeline.add("run", "faults stopped")
    if not operator.stop():
        stuck.append("operator")
    stuck += writers.stop()
    timeline.add("run", f"workload stopped; {writers.acknowledged()} writes acknowledged")
    healed_at = time.monotonic()
    extra = []
    try:
        repair.restore()
        timeline.add("heal", "final", f"every node up, one leader after "
                                      f"{time.monotonic() - healed_at:.1f}s")
    except Exception as err:  # noqa: BLE001 - the invariants still say what they see
        extra.append(f"the final heal failed: {err}")
        timeline.add("heal", "final", f"failed: {err}", ok=False)
    # convergence first: agreement and the writes are read once the store is still
    results: list[Result] = [
        _guarded(3, "convergence", lambda: check_convergence(access, args.converge_bound)),
        _guarded(2, "one leader, one store", lambda: check_agreement(access)),
        _guarded(1, "acknowledged writes", lambda: check_writes(access, writers.writers)),
        _guarded(4, "no orphans", lambda: check_orphans(access)),
        _guarded(5, "no plaintext, no leftovers", lambda: check_leftovers(
            access, operator.plaintexts, SECRET_MARK.encode())),
    ]
    results.sort(key=lambda r: r.number)
    if operator.bugs:
        extra.append(f"{len(operator.bugs)} API answers INTERNAL/UNKNOWN or CLI tracebacks: "
                     f"{operator.bugs[:5]}")
    if stuck:
        extra.append(f"did not stop: {stuck}")
    if injector.errors:
        extra.append(f"faults that could not be injected or repaired: {injector.errors[:5]}")
    if injector.unconverged:
        extra.append(f"no convergence within {args.converge_bound:g}s after: "
                     f"{injector.unconverged[:5]}")
    longest = max(injector.converge_times, key=lambda p: p[1], default=("", 0.0))
    longest_total = max(injector.since_fault, key=lambda p: p[1], default=("", 0.0))
    report.update({
        "timeline": timeline.as_json(),
        "timeline_lines": timeline.lines(),
        "faults": dict(sorted(injector.injected.items())),
        "faults_total": sum(injector.injected.values()),
        "not_injected": NOT_INJECTED,
        "operations": operator.count,
        "operations_acknowledged": operator.done,
        "faults_skipped": dict(sorted(injector.skipped.items())),
        "operations_by_kind": dict(sorted(timeline.counts("op").items())),
        "writes_acknowledged": writers.acknowledged(),
        "writes_retried": sum(w.failures for w in writers.writers),
        "converge_s": [round(t, 2) for _, t in injector.converge_times],
        "longest_converge": {"after": longest[0], "s": round(longest[1], 2)},
        "since_fault_s": [round(t, 2) for _, t in injector.since_fault],
        "longest_since_fault": {"after": longest_total[0], "s": round(longest_total[1], 2)},
        "invariants": [{"number": r.number, "name": r.name, "ok": r.ok, "detail": r.detail,
                        "problems": r.problems} for r in results],
        "other_problems": extra,
        "ok": all(r.ok for r in results) and not extra,
    })
    access.close()


def _guarded(number: int, name: str, check: Callable[[], Result]) -> Result:
    """A check that raises is a failed check (its report and the logs are kept)."""
    try:
        return check()
    except Exception as err:  # noqa: BLE001 - reported as the check's failure
        return Result(number, name, False, f"the check itself failed: {err!r}",
                      [traceback.format_exc(limit=3)])


def _print(report: dict[str, Any], quiet: bool) -> None:
    if "error" in report:
        print(f"chaos soak: the run itself failed (seed {report['seed']}); nodes' logs in "
              f"{report.get('logs')}\n{report['error']}")
        print(f"repeat with: python -m lab.chaos {report['command']}")
        return
    if not quiet:       # faults and heals were printed as they happened
        print("== timeline, operations included")
        for line in report["timeline_lines"]:
            print(line)
    print("== figures")
    print(f"seed {report['seed']}, {report['duration_s']:g}s of faults, "
          f"{report['managers']} managers + {report['workers']} workers")
    print(f"faults injected: {report['faults_total']} {report['faults']}")
    for kind, why in report["not_injected"].items():
        print(f"not injected: {kind} ({why})")
    print(f"faults skipped (nothing to inject them on): {report['faults_skipped']}")
    print(f"operations: {report['operations']} attempted, {report['operations_acknowledged']} "
          f"acknowledged; by kind {report['operations_by_kind']}")
    print(f"writes acknowledged: {report['writes_acknowledged']} "
          f"(attempts retried: {report['writes_retried']})")
    times = report["converge_s"]
    if times:
        total = report["since_fault_s"]
        print(f"convergence after a fault's repair: {len(times)} measured, median "
              f"{sorted(times)[len(times) // 2]:.1f}s, longest {report['longest_converge']['s']:.1f}s "
              f"(after {report['longest_converge']['after']}); from the fault's start "
              f"(its hold and repair included): median {sorted(total)[len(total) // 2]:.1f}s, "
              f"longest {report['longest_since_fault']['s']:.1f}s "
              f"(after {report['longest_since_fault']['after']})")
    print("== invariants")
    for inv in report["invariants"]:
        verdict = "ok" if inv["ok"] else "VIOLATED"
        print(f"{inv['number']}. {inv['name']}: {verdict} ({inv['detail']})")
        for p in inv["problems"][:20]:
            print(f"    - {p}")
    for p in report["other_problems"]:
        print(f"problem: {p}")
    if report["ok"]:
        print("chaos soak: no violation")
    else:
        print(f"chaos soak: VIOLATION (seed {report['seed']}); nodes' logs in {report.get('logs')}")
        print(f"repeat with: python -m lab.chaos {report['command']}")
        first = next((e for e in report["timeline"] if not e["ok"]), None)
        if first is not None:
            before = [e for e in report["timeline"]
                      if e["source"] == "fault" and e["at"] <= first["at"]]
            print(f"first failure at {first['at']:.1f}s: {first['source']} {first['what']} -> "
                  f"{first['outcome']}" + (f"; the fault before it: {before[-1]['what']} at "
                                           f"{before[-1]['at']:.1f}s" if before else ""))


def _terminated(signum: int, frame: Any) -> None:
    """SIGTERM ends the run like Ctrl-C: the lab is taken down on the way out."""
    raise SystemExit(128 + signum)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _arguments(argv)
    signal.signal(signal.SIGTERM, _terminated)
    print(f"chaos soak: seed {args.seed}, {args.duration:g}s", flush=True)
    report = soak(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    _print(report, args.quiet_timeline)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
