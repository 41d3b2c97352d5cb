"""Stack deploy benchmark: a 10-service, 40-task Compose stack on a 5-node lab.

On a 3-manager + 2-worker lab: a Compose file of 10 services (replicas 8, 6,
4, 4, 4, 4, 3, 3, 2, 2 = 40 tasks) on 2 overlay networks, two of them
publishing a port on the routing mesh, every image a lab stand-in named as on
Docker Hub (`shoalbench/web`, `shoalbench/api`). Timed, per round:

- deploy: `swarm stack deploy --detach=false -c FILE bench`, the whole CLI
  process (start-up, parsing the file, the one DeployStack call, then its wait
  for every service to converge) from spawn to exit; afterwards every one of the
  40 tasks must be running. Meanwhile the store is polled every 0.1 s, giving
  also the time from spawn to all 40 tasks running. The two differ by the CLI's
  waiting: as `service create` without -d (and Docker's CLI) it waits for each
  service in turn, and each wait ends with the service's stability window
  (its update monitor period, Docker's 5 s by default), so 10 services add
  about 10 x 5 s after the tasks already run.
- redeploy: the same command again with the file unchanged, spawn to exit
  (the issue's target: under 1 s), and the number of restarted tasks: the
  running task IDs before and after must be the same set (asserted, printed).
- floor: the same 10 services and 2 networks, converted from the same file as
  a stack named `floor` (so with the very same specs), created object by object
  over the Control API from this process (2 CreateNetwork + 10 CreateService,
  what a client deploying object by object does, without any CLI start-up),
  then the store polled every 0.1 s until all 40 tasks run: the cluster's work
  for these 40 tasks when they are asked for the ordinary way, one service at a
  time. The ratio running / floor compares the stack's one transaction with it
  (below 1 means the stack's tasks run sooner); exit / floor adds what the CLI's
  waiting costs on top.

A warm-up round (not counted) first deploys and removes the stack so that every
node has pulled the stand-ins; then each round times the floor, removes it
(`stack rm floor`: the floor's objects carry the stack label), times the deploy
and the redeploy, and removes the stack. Prints one figure per line: each
round's figures, then best and median, and the ratios running / floor and
exit / floor. Docker is
not installed on these machines, so no `docker stack deploy` figure is measured.

Run as root: `python -m lab.bench.stack --runs 3` (under /tmp/shoal-e2e.lock on
shared machines).
"""
from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import grpc

from cli.commands_stack import load_stack
from cli.compose.convert import convert
from lab.cluster import REPO, Lab
from lab.images import ensure_stand_in
from lab.localnode import wait_for
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb
from tests.labfixtures import lab_cluster

STACK = "bench"
FLOOR = "floor"
REPLICAS = (8, 6, 4, 4, 4, 4, 3, 3, 2, 2)
TASKS = sum(REPLICAS)
WEB = "shoalbench/web:1"
API = "shoalbench/api:1"
PUBLISHED = {0: 8201, 2: 8202}     # service index -> published port
REDEPLOY_TARGET = 1.0              # seconds


def compose_file() -> str:
    """The benchmark's Compose file: 10 services, 2 networks, 2 published ports."""
    lines = ['version: "3.8"', "services:"]
    for index, replicas in enumerate(REPLICAS):
        lines += [f"  svc{index}:", f"    image: {WEB if index % 2 == 0 else API}"]
        if index in PUBLISHED:
            lines.append(f'    ports: ["{PUBLISHED[index]}:80"]')
        nets = ["front"] if index < 4 else ["back"] if index >= 7 else ["front", "back"]
        lines += [f"    networks: [{', '.join(nets)}]", "    stop_grace_period: 1s",
                  "    deploy:", f"      replicas: {replicas}"]
    lines += ["networks:", "  front:", "  back:"]
    return "\n".join(lines) + "\n"


def _api(lab: Lab) -> control_pb2_grpc.ControlStub:
    return control_pb2_grpc.ControlStub(
        grpc.insecure_channel(f"unix://{lab.data_dir('manager1')}/swarm.sock"))


def running_tasks(lab: Lab, stack: str) -> set[str]:
    """IDs of the running tasks (desired and actual) of the stack's services."""
    api = _api(lab)
    services = [s.id for s in api.ListServices(cpb.ListServicesRequest(), timeout=5).services
                if s.spec.annotations.name.startswith(f"{stack}_")]
    if not services:
        return set()
    req = cpb.ListTasksRequest(filters=cpb.ListFilters(service_ids=services))
    return {t.id for t in api.ListTasks(req, timeout=5).tasks
            if t.desired_state == pb.RUNNING and t.status.state == pb.RUNNING}


def timed_swarm(lab: Lab, *args: str) -> tuple[float, str]:
    """Seconds one `swarm` CLI process in manager1 takes from spawn to exit, and its output."""
    started = time.monotonic()
    res = lab.swarm("manager1", *args, check=False, timeout=300)
    elapsed = time.monotonic() - started
    if res.returncode != 0:
        raise RuntimeError(f"swarm {' '.join(args)} failed ({res.returncode}): "
                           f"{res.stdout}{res.stderr}")
    return elapsed, res.stdout


def remove(lab: Lab, stack: str) -> None:
    """`stack rm` (it waits until the tasks are gone, then removes the networks)."""
    lab.swarm("manager1", "stack", "rm", stack, timeout=180)
    wait_for(lambda: not any(n.spec.annotations.name.startswith(f"{stack}_") for n in
                             _api(lab).ListNetworks(cpb.ListNetworksRequest(),
                                                    timeout=5).networks),
             60, f"{stack}'s networks removed", 0.2)


def floor_once(lab: Lab, definition: pb.StackDefinition) -> float:
    """Seconds from the first Create call to all 40 tasks of the floor running."""
    api = _api(lab)
    started = time.monotonic()
    for network in definition.networks:
        api.CreateNetwork(cpb.CreateNetworkRequest(spec=network), timeout=10)
    for spec in definition.services:
        api.CreateService(cpb.CreateServiceRequest(spec=spec), timeout=10)
    wait_for(lambda: len(running_tasks(lab, FLOOR)) == TASKS, 180,
             f"{TASKS} floor tasks running", 0.1)
    return time.monotonic() - started


def timed_deploy(lab: Lab, path: str) -> tuple[float, float]:
    """(seconds until all 40 tasks run, seconds until the CLI exits) of one
    `stack deploy --detach=false`, both from the CLI process's spawn."""
    argv, env = lab.exec_argv("manager1", [lab.python, "-m", "cli.main", "stack", "deploy",
                                           "--detach=false", "-c", path, STACK])
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=str(REPO), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: len(running_tasks(lab, STACK)) == TASKS, 180,
                 f"{TASKS} stack tasks running", 0.1)
        running = time.monotonic() - started
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    exited = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"stack deploy failed ({proc.returncode}): {output}")
    return running, exited


def deploy_once(lab: Lab, path: str) -> tuple[float, float, float, int]:
    """(seconds to 40 running, deploy seconds to exit, unchanged redeploy seconds,
    tasks restarted by the redeploy)."""
    running, deployed = timed_deploy(lab, path)
    before = running_tasks(lab, STACK)
    if len(before) != TASKS:
        raise RuntimeError(f"deploy exited with {len(before)} of {TASKS} tasks running")
    redeployed, out = timed_swarm(lab, "stack", "deploy", "--detach=false", "-c", path, STACK)
    if "up to date" not in out:
        raise RuntimeError(f"the unchanged redeploy changed something:\n{out}")
    after = running_tasks(lab, STACK)
    return running, deployed, redeployed, len(before - after)


def floor_definition(path: str) -> pb.StackDefinition:
    """The file converted as the CLI converts it, for the stack name `floor`."""
    loaded = load_stack([path], sys.stdin, io.StringIO())
    return convert(loaded.stack, FLOOR, lambda name: Path(name).read_bytes())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.bench.stack",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed rounds after a warm-up")
    opts = parser.parse_args(argv)
    for image in (WEB, API):
        ensure_stand_in(image, 80)
    floors: list[float] = []
    runnings: list[float] = []
    deploys: list[float] = []
    redeploys: list[float] = []
    with tempfile.TemporaryDirectory(prefix="shoal-bench-stack-") as tmp:
        path = str(Path(tmp) / "bench-stack.yml")
        Path(path).write_text(compose_file())
        definition = floor_definition(path)
        with lab_cluster(3, 2) as lab:
            lab.wait_ready(timeout=60)
            deploy_once(lab, path)          # warm-up: every node pulls the stand-ins
            remove(lab, STACK)
            for round_ in range(1, opts.runs + 1):
                floor = floor_once(lab, definition)
                remove(lab, FLOOR)
                running, deployed, redeployed, restarted = deploy_once(lab, path)
                remove(lab, STACK)
                floors.append(floor)
                runnings.append(running)
                deploys.append(deployed)
                redeploys.append(redeployed)
                print(f"round {round_}: floor (10 CreateService over gRPC -> {TASKS} running) "
                      f"{floor:.2f} s", flush=True)
                print(f"round {round_}: stack deploy --detach=false -> {TASKS} running "
                      f"{running:.2f} s", flush=True)
                print(f"round {round_}: stack deploy --detach=false, 10 services, {TASKS} "
                      f"tasks, 5-node lab (3 managers, 2 workers) -> exit {deployed:.2f} s",
                      flush=True)
                print(f"round {round_}: unchanged redeploy -> exit {redeployed:.2f} s "
                      f"(target < {REDEPLOY_TARGET:.0f} s), tasks restarted {restarted}",
                      flush=True)
                print(f"round {round_}: ratio running / floor {running / floor:.2f}, "
                      f"exit / floor {deployed / floor:.2f}", flush=True)
                if restarted:
                    raise RuntimeError(f"the unchanged redeploy restarted {restarted} tasks")
    print(f"floor: best {min(floors):.2f} s, median {statistics.median(floors):.2f} s")
    print(f"stack deploy -> {TASKS} running: best {min(runnings):.2f} s, "
          f"median {statistics.median(runnings):.2f} s")
    print(f"stack deploy -> exit: best {min(deploys):.2f} s, "
          f"median {statistics.median(deploys):.2f} s")
    print(f"unchanged redeploy: best {min(redeploys):.2f} s, "
          f"median {statistics.median(redeploys):.2f} s, worst {max(redeploys):.2f} s")
    print(f"ratio running / floor: best-to-best {min(runnings) / min(floors):.2f}, "
          f"medians {statistics.median(runnings) / statistics.median(floors):.2f}")
    print(f"ratio exit / floor: best-to-best {min(deploys) / min(floors):.2f}, "
          f"medians {statistics.median(deploys) / statistics.median(floors):.2f}")
    print("docker stack deploy: not measured (Docker is not installed on this machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
