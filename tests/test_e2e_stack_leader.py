"""A stack deploy survives its leader all or nothing: issue 13's leader-kill acceptance.

Three managers, no workers. Generation 0 of a stack is deployed normally. Then,
round after round, generation g of the file (every service's environment
GEN=g, plus a new service `add<g>` on a new network `net<g>`) is deployed with
`swarm stack deploy -d` from a follower in a background process, and the
leader's daemon is SIGKILLed a little after the process starts (the offset
differs per round, so the kill lands before, during or after the DeployStack
call). The CLI may fail (its leader is gone); that is allowed. Once a new
leader is elected and the CLI has exited, the store, as every live manager
reports it, must hold either generation g entirely (every service of the file
with GEN=g, every network) or generation g-1 entirely (no trace of g): never
half. The killed manager is restarted before the next round. Every wait polls
with a deadline.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Iterator, Optional

import grpc
import pytest

from lab.cluster import Lab
from lab.images import ensure_stand_in
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb
from tests.helpers import sw, wait
from tests.labfixtures import module_lab
from tests.test_e2e_update_leader import api, leader, live_managers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

MANAGERS = ("manager1", "manager2", "manager3")
STACK = "lead"
IMAGE = "dockersamples/atsea_app:latest"     # the same stand-in as tests/test_e2e_stacks.py
REPO = Path(__file__).resolve().parents[1]
# seconds between starting the CLI process and SIGKILLing the leader, one per round: the
# CLI needs ≈ 0.3-0.6 s to start and send its call, so these land before, during and after
# it (the experiment's variable, not a synchronisation: every outcome is then waited for)
KILL_AFTER = (0.2, 0.45, 0.7, 0.9, 1.1, 1.4)

lab = module_lab(3, 0)


def stack_file(gen: int) -> str:
    """Generation `gen`: s1..s3 and add1..add<gen>, all with GEN=gen; net1..net<gen>."""
    lines = ["services:"]
    for name in ("s1", "s2", "s3"):
        lines += [f"  {name}:", f"    image: {IMAGE}", f"    environment: [GEN={gen}]",
                  "    stop_grace_period: 1s"]
    for k in range(1, gen + 1):
        lines += [f"  add{k}:", f"    image: {IMAGE}", f"    environment: [GEN={gen}]",
                  "    stop_grace_period: 1s", f"    networks: [net{k}]"]
    if gen:
        lines += ["networks:", *(f"  net{k}:" for k in range(1, gen + 1))]
    return "\n".join(lines) + "\n"


def expected(gen: int) -> tuple[dict[str, str], set[str]]:
    """Services (name -> GEN) and networks a fully applied generation `gen` leaves."""
    names = ["s1", "s2", "s3", *(f"add{k}" for k in range(1, gen + 1))]
    services = {f"{STACK}_{n}": str(gen) for n in names}
    networks = {f"{STACK}_net{k}" for k in range(1, gen + 1)} | {f"{STACK}_default"}
    return services, networks


def gen_of(service: pb.Service) -> str:
    env = [e for e in service.spec.task.container.env if e.startswith("GEN=")]
    return env[0].split("=", 1)[1] if env else "?"


def observed(lab: Lab, node: str) -> Optional[tuple[dict[str, str], set[str]]]:
    """The stack's services (name -> GEN) and networks as `node` reports them."""
    try:
        services = api(lab, node).ListServices(cpb.ListServicesRequest(), timeout=5).services
        networks = api(lab, node).ListNetworks(cpb.ListNetworksRequest(), timeout=5).networks
    except grpc.RpcError:
        return None
    return ({s.spec.annotations.name: gen_of(s) for s in services
             if s.spec.annotations.name.startswith(f"{STACK}_")},
            {n.spec.annotations.name for n in networks
             if n.spec.annotations.name.startswith(f"{STACK}_")})


def answered(lab: Lab, node: str) -> tuple[dict[str, str], set[str]]:
    """`observed`, waiting until `node` answers."""
    found: tuple[dict[str, str], set[str]] = wait(lambda: observed(lab, node), 30,
                                                  f"{node} answering")
    return found


def restore(lab: Lab) -> str:
    """Every manager's daemon running and one leader all agree on; returns it."""
    for name in MANAGERS:
        if lab.pid(name) is None:
            lab.start(name)
    for name in MANAGERS:
        lab.wait_running(name, timeout=30)
    return wait(lambda: leader(lab), 60, "one leader named by all three managers")


def start_deploy(lab: Lab, node: str, path: Path) -> subprocess.Popen:
    """`swarm stack deploy -d -c path lead` in `node`, in the background."""
    argv, env = lab.exec_argv(node, [lab.python, "-m", "cli.main", "stack", "deploy", "-d",
                                     "-c", str(path), STACK])
    return subprocess.Popen(argv, env=env, cwd=str(REPO), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.fixture
def cleanup(lab: Lab) -> Iterator[None]:
    yield
    restore(lab)
    sw(lab, "stack", "rm", STACK, node=wait(lambda: leader(lab), 60, "a leader"),
       check=False)


def test_leader_killed_during_stack_deploy_all_or_nothing(lab: Lab, tmp_path: Path,
                                                          cleanup: None) -> None:
    ensure_stand_in(IMAGE, 80)
    first = restore(lab)
    path = tmp_path / "gen0.yml"
    path.write_text(stack_file(0))
    sw(lab, "stack", "deploy", "-d", "-c", str(path), STACK, node=first)
    current = 0
    outcomes: list[str] = []
    for round_, delay in enumerate(KILL_AFTER, start=1):
        boss = restore(lab)
        gen = current + 1
        path = tmp_path / f"gen{gen}.yml"
        path.write_text(stack_file(gen))
        client = next(m for m in MANAGERS if m != boss)
        proc = start_deploy(lab, client, path)
        time.sleep(delay)   # the kill's moment (see KILL_AFTER), not a synchronisation
        lab.kill(boss)
        survivors = [m for m in MANAGERS if m != boss]
        wait(lambda: (lambda found: found if found in survivors else None)(leader(lab)),
             30, f"round {round_}: a new leader among {survivors}")
        try:
            output, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            raise AssertionError(f"round {round_}: the CLI did not exit:\n{output}") from None
        views = {m: answered(lab, m) for m in live_managers(lab)}
        assert len({repr(sorted(v[0].items())) + repr(sorted(v[1]))
                    for v in views.values()}) == 1, f"round {round_}: managers differ: {views}"
        seen = next(iter(views.values()))
        applied, kept = expected(gen), expected(current)
        detail = (f"round {round_} (kill {delay} s after start, CLI on {client}, exit "
                  f"{proc.returncode}): store {seen}; all of gen {gen} would be {applied}; "
                  f"none would be {kept}\nCLI: {output}")
        assert seen in (applied, kept), "half a stack: " + detail
        if seen == applied:
            current = gen
            outcomes.append(f"applied (exit {proc.returncode})")
        else:
            assert proc.returncode != 0, "the CLI succeeded but nothing was applied: " + detail
            outcomes.append(f"not applied (exit {proc.returncode})")
    print("rounds:", "; ".join(outcomes))
