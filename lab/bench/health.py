"""Healthcheck benchmark: from an unhealthy result to a healthy replacement.

Starts a one-node cluster and, for each check interval asked for, a service
whose check is `test -f /tmp/ok` (retries 1, restart delay 0, so the figure is
the mechanism's own cost, not a policy's wait). Each round removes the file in
the running task's container and reads two timestamps the agent reported: the
task turning FAILED "unhealthy container" (the failing result that made it
unhealthy) and its replacement turning RUNNING (its first passing check).
Prints one figure per line, and each as a multiple of the check interval: a
replacement needs its container started and then one interval until the first
check, so ≈ 1 interval plus the start-up is the floor.

Run: `python -m lab.bench.health --intervals 1 2 --rounds 3`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from lab.images import ensure_demo_image
from lab.localnode import SingleNode, podman, wait_for
from proto import objects_pb2 as pb


def _seconds(ts: object) -> float:
    return ts.seconds + ts.nanos / 1e9  # type: ignore[attr-defined]


def one_round(node: SingleNode, name: str, interval: float) -> float:
    """Breaks the running task's check; seconds from FAILED to the replacement RUNNING."""
    first = wait_for(lambda: node.running(name), 60, f"{name} running", interval=0.05)[0]
    podman("exec", first.status.container_status.container_id, "rm", "/tmp/ok")

    def replaced() -> tuple[pb.Task, pb.Task] | None:
        tasks = node.tasks(name)
        failed = [t for t in tasks if t.id == first.id and t.status.state == pb.FAILED]
        newer = [t for t in tasks if t.id != first.id and t.slot == first.slot
                 and t.status.state == pb.RUNNING]
        return (failed[0], newer[0]) if failed and newer else None

    failed, replacement = wait_for(replaced, 30 + 10 * interval, f"{name} replaced",
                                   interval=0.05)
    if failed.status.err != "unhealthy container":
        raise RuntimeError(f"the task failed for another reason: {failed.status.err!r}")
    return _seconds(replacement.status.timestamp) - _seconds(failed.status.timestamp)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.health",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--intervals", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args(argv)
    image = ensure_demo_image()
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        node = SingleNode(Path(tmp))
        try:
            node.init()
            for i, interval in enumerate(opts.intervals):
                name = f"hc{i}"
                node.swarm("service", "create", "-d", "--name", name,
                           "--stop-grace-period", "0s", "--restart-delay", "0s",
                           "--health-cmd", "test -f /tmp/ok",
                           "--health-interval", f"{interval}s", "--health-timeout", "2s",
                           "--health-retries", "1", image,
                           "sh", "-c", "touch /tmp/ok; exec sleep 3600")
                samples = [one_round(node, name, interval) for _ in range(opts.rounds)]
                med = statistics.median(samples)
                print(f"interval {interval:g} s: unhealthy -> replacement healthy, median "
                      f"{med:.2f} s (min {min(samples):.2f}, max {max(samples):.2f}, "
                      f"{opts.rounds} rounds) = {med / interval:.2f} x interval")
                node.swarm("service", "rm", name)
        finally:
            node.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
