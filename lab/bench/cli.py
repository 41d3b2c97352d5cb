"""CLI start-up benchmark: `swarm node ls` and `swarm service ls` against a local manager.

Starts a one-node cluster with a few services (one replica each, running), then
times whole `swarm` invocations as users run them: the venv's `swarm` console
script as a subprocess, each one a fresh interpreter that parses its arguments,
imports what the command needs, makes its Control API calls over the node's
unix socket, prints the table and exits. In the same run, interleaved with the
commands so that load on the machine affects all alike, it times floors:
`python -c pass` (interpreter start-up); `python -c "import proto.control_pb2"`
(start-up plus protobuf and the Control API's messages: what `swarm node ls`
and `swarm service ls` load besides the CLI's own code, since their reads go
through the CLI's small HTTP/2 client, cli.fastcall, without grpc);
`python -c "import grpc"` (the gRPC runtime the CLI's writes and streams
load); and grpc with the Control API's generated messages and stub, what any
grpcio client of Shoal loads. Every timed interpreter
may write and read bytecode caches (in a directory of its own under the run's
temporary directory), as an installed `swarm` has them, even where the
environment sets PYTHONDONTWRITEBYTECODE; the warm-up run fills them. Prints one
figure per line: median and p90 per command, each command's median over the
grpc floor's, and its median minus the protobuf floor's (the CLI's own share:
its modules, the calls, the output).

Run: `python -m lab.bench.cli --runs 20`.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from lab.images import ensure_demo_image
from lab.localnode import SingleNode, wait_for
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb

TARGET = 0.12  # seconds, the bound for one `swarm node ls` / `swarm service ls`


def swarm_command() -> list[str]:
    """What users run: the console script next to this interpreter (else `-m cli.main`)."""
    script = Path(sys.executable).parent / "swarm"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "cli.main"]


def _spec(name: str, image: str) -> pb.ServiceSpec:
    spec = pb.ServiceSpec()
    spec.annotations.name = name
    spec.replicated.replicas = 1
    spec.task.container.image = image
    spec.task.container.args.extend(["httpd", "-f", "-p", "8080"])
    spec.task.container.stop_grace_period.nanos = 0
    return spec


def populate(node: SingleNode, image: str, services: int) -> None:
    """Creates `services` one-replica services and waits until each task runs."""
    names = [f"web{i}" for i in range(services)]
    for name in names:
        node.api().CreateService(cpb.CreateServiceRequest(spec=_spec(name, image)), timeout=10)
    wait_for(lambda: all(node.running(name) for name in names), 120,
             f"{services} services running")


def timing_env(node: SingleNode, tmp: Path) -> dict[str, str]:
    """The node's environment (SWARM_HOST, PYTHONPATH) with bytecode caches allowed."""
    env = dict(node.env, PYTHONPYCACHEPREFIX=str(tmp / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Seconds one invocation takes from spawn to exit, and what it printed."""
    started = time.monotonic()
    res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    elapsed = time.monotonic() - started
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return elapsed, res.stdout


def p90(samples: Sequence[float]) -> float:
    return statistics.quantiles(samples, n=10, method="inclusive")[8]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.cli",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="invocations per command")
    parser.add_argument("--services", type=int, default=5, help="services present meanwhile")
    opts = parser.parse_args(argv)
    image = ensure_demo_image()
    swarm = swarm_command()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import proto.control_pb2'": [sys.executable, "-c", "import proto.control_pb2"],
        "python -c 'import grpc'": [sys.executable, "-c", "import grpc"],
        "python -c 'import grpc, proto.control_pb2_grpc'":
            [sys.executable, "-c", "import grpc, proto.control_pb2_grpc"],
        "swarm node ls": [*swarm, "node", "ls"],
        "swarm service ls": [*swarm, "service", "ls"],
    }
    samples: dict[str, list[float]] = {label: [] for label in commands}
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        node = SingleNode(Path(tmp))
        try:
            node.init()
            populate(node, image, opts.services)
            node.close_channel()
            env = timing_env(node, Path(tmp))
            for label, cmd in commands.items():   # warm-up: page cache, .pyc files
                _, out = run_once(cmd, env)
                if label == "swarm service ls" and out.count("1/1") != opts.services:
                    raise RuntimeError(f"unexpected `swarm service ls` output:\n{out}")
                if label == "swarm node ls" and node.node_id[:12] not in out:
                    raise RuntimeError(f"unexpected `swarm node ls` output:\n{out}")
            for _ in range(opts.runs):
                for label, cmd in commands.items():
                    samples[label].append(run_once(cmd, env)[0])
        finally:
            node.destroy()
    floor = statistics.median(samples["python -c 'import grpc'"])
    messages = statistics.median(samples["python -c 'import proto.control_pb2'"])
    print(f"{opts.runs} runs each, one node with {opts.services} services, "
          f"command: {' '.join(swarm)}")
    for label, values in samples.items():
        print(f"{label}: median {statistics.median(values):.3f} s, p90 {p90(values):.3f} s")
    for label in ("swarm node ls", "swarm service ls"):
        median = statistics.median(samples[label])
        print(f"ratio {label} / import grpc (medians): {median / floor:.2f} "
              f"(target median <= {TARGET:.2f} s)")
    for label in ("swarm node ls", "swarm service ls"):
        median = statistics.median(samples[label])
        print(f"{label} minus import proto.control_pb2 (medians): {median - messages:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
