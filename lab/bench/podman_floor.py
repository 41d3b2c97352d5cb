"""The floor figure: how fast podman alone starts N containers in parallel.

Owns the reference measurement that service convergence is compared with:
create+start N busybox containers (`httpd -f -p 8080`, each in its own
loopback-only netns) all at once through podman's REST API (`PodmanRuntime`)
and through its CLI (`podman run -d`), then remove them. `floor_rest` and
`floor_cli` are reusable so the convergence benchmark can print the floor
next to its own figure in the same run.

Run `python -m lab.bench.podman_floor --count 20`; one figure per line.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Sequence

from lab.images import ensure_demo_image
from lab.podstore import NodeStorage
from worker.podman import PodmanOptions, PodmanRuntime
from worker.runtime import ContainerConfig

BENCH_LABEL = "com.shoal.bench.run"
DEFAULT_STATE_DIR = "/var/lib/shoal-lab/bench-podman"
DEFAULT_COMMAND = ("httpd", "-f", "-p", "8080")


async def _create_and_start(runtime: PodmanRuntime, config: ContainerConfig) -> None:
    container_id = await runtime.create(config)
    await runtime.start(container_id)


async def floor_rest(runtime: PodmanRuntime, image: str, count: int,
                     command: Sequence[str] = DEFAULT_COMMAND) -> float:
    """Seconds for the REST API to create+start `count` containers concurrently.

    The image is made present first (not timed); the containers are removed
    afterwards (not timed), even when a start fails.
    """
    run = uuid.uuid4().hex[:10]
    await runtime.ensure_image(image)
    await runtime.list({BENCH_LABEL: run})           # service up and connected
    configs = [ContainerConfig(name=f"floor-{run}-{i}", image=image, command=list(command),
                               labels={BENCH_LABEL: run}, stop_grace_period=0)
               for i in range(count)]
    try:
        started = time.monotonic()
        await asyncio.gather(*(_create_and_start(runtime, c) for c in configs))
        elapsed = time.monotonic() - started
        running = [s for s in await runtime.list({BENCH_LABEL: run}) if s.running]
        if len(running) != count:
            raise RuntimeError(f"only {len(running)} of {count} containers are running")
        return elapsed
    finally:
        await remove_labelled(runtime, run)


async def floor_rest_once(image: str, count: int, state_dir: str) -> float:
    """floor_rest with a podman service of its own, stopped afterwards (no leftovers)."""
    runtime = PodmanRuntime(state_dir, node_id="bench-floor")
    try:
        return await floor_rest(runtime, image, count)
    finally:
        pid = runtime.service_pid
        await runtime.close()
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)


async def floor_rest_per_node(image: str, count: int, services: int, state_dir: str) -> float:
    """The lab-shaped floor: `services` podman services on one host (one per lab node,
    each with container storage of its own, as lab nodes have) each start
    count/services containers, all at once. Returns the slowest service's time;
    every service and its storage is removed afterwards."""
    storages = [NodeStorage(Path(state_dir) / f"storage{i}") for i in range(services)]
    runtimes = [PodmanRuntime(f"{state_dir}/node{i}", node_id=f"bench-floor{i}",
                              options=PodmanOptions(root=s.options.root,
                                                    run_root=s.options.run_root))
                for i, s in enumerate(storages)]
    try:
        for runtime in runtimes:                       # services up, image present: not timed
            await runtime.ensure_image(image)
        shares = [count // services + (1 if i < count % services else 0)
                  for i in range(services)]
        times = await asyncio.gather(*(floor_rest(rt, image, n)
                                       for rt, n in zip(runtimes, shares)))
        return max(times)
    finally:
        for runtime in runtimes:
            pid = runtime.service_pid
            await runtime.close()
            if pid:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
        problems = [p for storage in storages for p in storage.remove()]
        if problems:
            raise RuntimeError("floor storage left behind: " + "; ".join(problems))


async def remove_labelled(runtime: PodmanRuntime, run: str) -> None:
    """Removes every container of one benchmark run, in parallel."""
    states = await runtime.list({BENCH_LABEL: run})
    await asyncio.gather(*(runtime.remove(s.id) for s in states))


async def _podman_cli(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "podman", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode(errors="replace").strip()


async def floor_cli(image: str, count: int,
                    command: Sequence[str] = DEFAULT_COMMAND) -> float:
    """Seconds for `count` concurrent `podman run -d` processes; cleans up afterwards."""
    run = uuid.uuid4().hex[:10]
    code, out = await _podman_cli("image", "exists", image)
    if code != 0:
        code, out = await _podman_cli("pull", "--tls-verify=false", image)
        if code != 0:
            raise RuntimeError(f"podman pull {image}: {out}")
    try:
        started = time.monotonic()
        results = await asyncio.gather(*(
            _podman_cli("run", "-d", "--name", f"floorcli-{run}-{i}", "--network", "none",
                        "--label", f"{BENCH_LABEL}={run}", image, *command)
            for i in range(count)))
        elapsed = time.monotonic() - started
        failures = [out for code, out in results if code != 0]
        if failures:
            raise RuntimeError(f"{len(failures)} podman run failed: {failures[0]}")
        return elapsed
    finally:
        ids = subprocess.run(["podman", "ps", "-aq", "--filter", f"label={BENCH_LABEL}={run}"],
                             capture_output=True, text=True, timeout=60).stdout.split()
        if ids:
            subprocess.run(["podman", "rm", "-f", "-t", "0", *ids], capture_output=True,
                           timeout=120)


async def measure(counts: Sequence[int], modes: Sequence[str], state_dir: str,
                  repeat: int) -> list[str]:
    """Runs the requested floors and returns the printed lines (best of `repeat`)."""
    image = ensure_demo_image()
    lines: list[str] = []
    pooled = PodmanRuntime(state_dir, node_id="bench")
    single = PodmanRuntime(state_dir, node_id="bench", max_idle=0)
    try:
        for count in counts:
            for mode in modes:
                samples = []
                for _ in range(repeat):
                    if mode == "rest":
                        samples.append(await floor_rest(pooled, image, count))
                    elif mode == "rest-no-pool":
                        samples.append(await floor_rest(single, image, count))
                    else:
                        samples.append(await floor_cli(image, count))
                line = (f"podman floor {mode:<12} {count:>4} containers: "
                        f"{min(samples):6.2f} s" +
                        (f"  (runs: {', '.join(f'{s:.2f}' for s in samples)})"
                         if repeat > 1 else ""))
                print(line, flush=True)
                lines.append(line)
    finally:
        await pooled.close()
        await single.close()
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.podman_floor",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, action="append",
                        help="containers to start at once (repeatable; default 20)")
    parser.add_argument("--mode", action="append",
                        choices=["rest", "cli", "rest-no-pool"],
                        help="which path to time (repeatable; default rest and cli)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure (best is shown)")
    parser.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                        help="podman service socket directory")
    args = parser.parse_args(argv)
    try:
        asyncio.run(measure(args.count or [20], args.mode or ["rest", "cli"],
                            args.state_dir, args.repeat))
    except Exception as err:                      # a benchmark reports, it does not trace
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
