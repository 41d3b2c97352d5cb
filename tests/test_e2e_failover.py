"""Failures on a real lab: leader and worker kills, partitions, quorum loss, total restart.

Covers issue 3's failure acceptance on one 3-manager + 2-worker lab: a killed
leader is replaced and the cluster writable again within 3 s; a killed
worker's tasks run elsewhere within 10 s and, once it is back, nothing runs
twice; a partitioned minority manager refuses writes fast and catches up after
`heal`; with two managers gone reads work and writes fail; killing every
manager at once loses no acknowledged write; and concurrent writers through a
leader kill and a partition lose and reorder nothing they were told succeeded.

Every test leaves the lab healthy (the `healthy` fixture heals the network,
restarts stopped daemons and waits until every node is Ready), so the tests
share one lab. Timings are measured from the fault with `time.monotonic()`;
every wait polls a condition with a deadline.
"""
from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from typing import Any, Iterator, Optional

import grpc
import pytest

from lab import images
from lab.cluster import Lab
from lab.leadership import agreed_leader, named_leaders
from lab.netlab import process_alive
from manager.controlapi.server import NO_LEADER
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb
from tests.helpers import wait
from tests.labfixtures import module_lab

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

MANAGERS = ("manager1", "manager2", "manager3")
WORKERS = ("worker1", "worker2")
POLL = 0.05     # between two looks: these conditions are cheap gRPC calls
_names = itertools.count(1)


# ------------------------------------------------------------------ fixtures --

lab = module_lab(3, 2)


@pytest.fixture
def healthy(lab: Lab) -> Iterator[Lab]:
    """The lab with every daemon up, no partition and every node Ready, before and after."""
    restore(lab)
    yield lab
    restore(lab)


def restore(lab: Lab) -> None:
    lab.heal()
    for name in lab.names():
        if lab.pid(name) is None:
            lab.start(name)
    for name in MANAGERS:
        lab.wait_running(name, timeout=30)
    wait_one_leader(lab, timeout=60)
    lab.wait_ready(timeout=30)


# ------------------------------------------------------------------- helpers --

_channels: dict[str, grpc.Channel] = {}


def api(lab: Lab, name: str) -> control_pb2_grpc.ControlStub:
    """The control API of a node through its unix socket (local root, no TLS)."""
    path = str(lab.data_dir(name) / "swarm.sock")
    if path not in _channels:
        _channels[path] = grpc.insecure_channel(f"unix://{path}")
    return control_pb2_grpc.ControlStub(_channels[path])


def empty_spec(name: str) -> pb.ServiceSpec:
    """A replicated service with 0 replicas: one store write, no containers."""
    spec = pb.ServiceSpec()
    spec.annotations.name = name
    spec.replicated.SetInParent()
    spec.replicated.replicas = 0
    spec.task.container.image = images.ensure_demo_image()
    return spec


def web_spec(name: str, replicas: int) -> pb.ServiceSpec:
    spec = empty_spec(name)
    spec.replicated.replicas = replicas
    spec.task.container.args.extend(["httpd", "-f", "-p", "8080"])
    spec.task.container.stop_grace_period.nanos = 0
    return spec


def create(lab: Lab, node: str, name: str, timeout: float = 8.0) -> pb.Service:
    """CreateService on `node`; raises grpc.RpcError when it is not acknowledged."""
    return api(lab, node).CreateService(cpb.CreateServiceRequest(spec=empty_spec(name)),
                                        timeout=timeout).service


def try_create(lab: Lab, node: str, name: str, timeout: float) -> Optional[pb.Service]:
    try:
        return create(lab, node, name, timeout)
    except grpc.RpcError:
        return None


def services(lab: Lab, node: str) -> dict[str, pb.Service]:
    res = api(lab, node).ListServices(cpb.ListServicesRequest(), timeout=10)
    return {s.spec.annotations.name: s for s in res.services}


def leaders(lab: Lab, node: str) -> list[str]:
    return named_leaders(api(lab, node))


def wait_one_leader(lab: Lab, timeout: float) -> str:
    """Waits until every running manager names the same single leader and it accepts a write."""
    views: dict[str, object] = {}

    def agreed() -> Optional[str]:
        return agreed_leader(lab, MANAGERS, lambda n: api(lab, n),
                             lambda n: bool(try_create(lab, n, f"probe-{next(_names)}", 3)), views)
    try:
        return wait(agreed, timeout, "one leader that all managers agree on and that accepts "
                    "writes", interval=POLL)
    except AssertionError as exc:
        logs = {name: lab.log_tail(name, 15) for name in MANAGERS}
        raise AssertionError(f"{exc}; leaders seen per manager: {views}; log tails: {logs}")


def leader_name(lab: Lab) -> str:
    return wait_one_leader(lab, timeout=15)


def kill_all(lab: Lab, names: tuple[str, ...]) -> None:
    """SIGKILLs the daemons of `names` back to back, then waits until they are gone."""
    pids = [lab.pid(n) for n in names]
    assert all(pids), f"not all of {names} are running: {pids}"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait(lambda: not any(process_alive(p) for p in pids), 10, f"{names} to die", interval=POLL)


def start_together(lab: Lab, names: tuple[str, ...]) -> None:
    """Starts the daemons at once: a manager only reports ready once raft has a quorum."""
    errors: list[BaseException] = []

    def start(name: str) -> None:
        try:
            lab.start(name)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=start, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=150)
    assert not errors, errors


def running_tasks(lab: Lab, node: str, service_id: str) -> list[pb.Task]:
    req = cpb.ListTasksRequest(filters=cpb.ListFilters(service_ids=[service_id]))
    tasks = api(lab, node).ListTasks(req, timeout=5).tasks
    return [t for t in tasks if t.desired_state == pb.RUNNING and t.status.state == pb.RUNNING]


def service_containers(lab: Lab, service: str) -> list[dict]:
    """Running containers of `service` over every node's own podman storage."""
    found = []
    for name in lab.names():
        out = lab.podman(name, "ps", "--format", "json", "--filter",
                         f"label=com.shoal.service.name={service}").stdout.strip()
        found += json.loads(out) if out else []
    return found


def log_tails(lab: Lab) -> str:
    return "\n".join(f"--- {n} daemon.log:\n{lab.log_tail(n, 15)}" for n in lab.names())


# --------------------------------------------------------------------- tests --

def test_leader_kill_another_manager_writable_within_3s(healthy: Lab) -> None:
    lab = healthy
    old = leader_name(lab)
    others = [m for m in MANAGERS if m != old]
    lab.kill(old)
    killed_at = time.monotonic()
    accepted: list[tuple[str, float]] = []

    def writable() -> bool:
        for node in others:
            if try_create(lab, node, f"failover-{next(_names)}", 0.5):
                accepted.append((node, time.monotonic() - killed_at))
                return True
        return False

    wait(writable, 3.0, f"a write accepted by {' or '.join(others)} after killing {old}",
         interval=POLL)
    node, elapsed = accepted[0]
    assert elapsed <= 3.0, f"write accepted {elapsed:.2f}s after the kill\n{log_tails(lab)}"
    # the new leader is another manager, and every survivor agrees on it
    assert wait_one_leader(lab, timeout=10) in others


def test_worker_kill_reschedules_and_no_duplicates_on_return(healthy: Lab) -> None:
    lab = healthy
    name = f"resched{next(_names)}"
    leader = leader_name(lab)
    svc = api(lab, leader).CreateService(
        cpb.CreateServiceRequest(spec=web_spec(name, 5)), timeout=10).service
    try:
        wait(lambda: len(running_tasks(lab, leader, svc.id)) == 5, 60, f"5 tasks of {name} running",
             interval=POLL)
        victim = lab.node_id("worker1")
        on_victim = [t for t in running_tasks(lab, leader, svc.id) if t.node_id == victim]
        assert on_victim, "the spread put no task on worker1"
        lab.kill("worker1")
        killed_at = time.monotonic()

        def elsewhere() -> bool:
            tasks = running_tasks(lab, leader, svc.id)
            return len(tasks) == 5 and all(t.node_id != victim for t in tasks)

        wait(elsewhere, 10.0, f"worker1's tasks of {name} running on other nodes", interval=POLL)
        print(f"reschedule: {time.monotonic() - killed_at:.2f} s")
        # the killed daemon left its container running; the returning agent must stop it
        lab.start("worker1")
        lab.wait_ready(timeout=30)
        wait(lambda: len(service_containers(lab, name)) == 5, 20,
             f"exactly 5 running containers of {name} after worker1 returned", interval=POLL)
        # and it stays so: the store and podman agree, nothing runs twice
        tasks = running_tasks(lab, leader, svc.id)
        slots = [t.slot for t in tasks]
        assert len(tasks) == 5 and len(set(slots)) == 5, slots
        assert all(t.node_id != victim for t in tasks)
        assert len(service_containers(lab, name)) == 5
    finally:
        api(lab, leader).RemoveService(cpb.RemoveServiceRequest(service_id=svc.id), timeout=10)
        wait(lambda: not service_containers(lab, name), 30, f"{name}'s containers removed",
             interval=POLL)


def test_partitioned_minority_refuses_writes_and_catches_up(healthy: Lab) -> None:
    lab = healthy
    before = f"part-before-{next(_names)}"
    create(lab, "manager1", before)
    lab.partition(["manager3"], ["manager1", "manager2", *WORKERS])
    cut_at = time.monotonic()
    # a write on the minority fails, with the no-leader message, within 5 s of the cut
    res = lab.swarm("manager3", "service", "create", "-d", "--name", f"minority-{next(_names)}",
                    "--replicas", "0", images.ensure_demo_image(), check=False, timeout=30)
    refused_after = time.monotonic() - cut_at
    assert res.returncode != 0, f"the minority accepted a write:\n{res.stdout}"
    assert "does not have a leader" in res.stderr, res.stderr
    assert refused_after <= 5.0, f"the minority took {refused_after:.2f}s to refuse a write"
    # a write issued later also fails fast, through the API, with UNAVAILABLE (no hang)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as refused:
        create(lab, "manager3", f"minority-{next(_names)}", timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
    assert NO_LEADER in refused.value.details()
    assert time.monotonic() - started <= 5.0
    # reads still work on the minority
    assert before in services(lab, "manager3")
    # the majority keeps serving
    during = [f"part-during-{next(_names)}" for _ in range(5)]
    for i, name in enumerate(during):
        create(lab, ("manager1", "manager2")[i % 2], name, timeout=10)
    lab.heal()
    wait(lambda: set(during) <= set(services(lab, "manager3")), 15,
         "manager3 to see the writes made during the partition", interval=POLL)
    create(lab, "manager3", f"part-after-{next(_names)}", timeout=10)


def test_two_of_three_managers_killed_reads_work_writes_fail(healthy: Lab) -> None:
    lab = healthy
    keep = [f"quorum-{next(_names)}" for _ in range(3)]
    for name in keep:
        create(lab, "manager1", name)
    survivor = "manager1"
    kill_all(lab, ("manager2", "manager3"))
    killed_at = time.monotonic()
    ls = lab.swarm(survivor, "service", "ls", "--format", "{{.Name}}", check=False, timeout=30)
    assert ls.returncode == 0, ls.stderr
    assert set(keep) <= set(ls.stdout.split())

    def refused() -> bool:
        try:
            create(lab, survivor, f"noquorum-{next(_names)}", timeout=9)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.UNAVAILABLE, err
            assert NO_LEADER in err.details()
            return True
        return False

    wait(refused, 10.0, "a write on the survivor to fail", interval=POLL)
    assert time.monotonic() - killed_at <= 10.0
    cli = lab.swarm(survivor, "service", "create", "-d", "--name", "noquorum-cli", "--replicas",
                    "0", images.ensure_demo_image(), check=False, timeout=30)
    assert cli.returncode != 0 and "does not have a leader" in cli.stderr, cli
    lab.start("manager2")
    lab.start("manager3")
    wait_one_leader(lab, timeout=60)
    for name in MANAGERS:
        assert set(keep) <= set(wait(lambda: services(lab, name), 10, f"{name} to answer",
                                     interval=POLL))
    create(lab, "manager3", f"quorum-back-{next(_names)}", timeout=10)


def test_all_managers_killed_at_once_keep_acknowledged_writes(healthy: Lab) -> None:
    lab = healthy
    acked: list[tuple[str, int]] = []
    for i in range(30):
        name = f"total-{next(_names)}"
        svc = create(lab, MANAGERS[i % 3], name)
        acked.append((name, svc.meta.version))
    kill_all(lab, MANAGERS)
    start_together(lab, MANAGERS)
    leader = wait_one_leader(lab, timeout=30)
    assert leader in MANAGERS
    for name in MANAGERS:
        have = wait(lambda: services(lab, name), 10, f"{name} to answer", interval=POLL)
        lost = [n for n, _ in acked if n not in have]
        assert not lost, f"{name} lost acknowledged writes {lost}\n{log_tails(lab)}"
        assert [have[n].meta.version for n, _ in acked] == [v for _, v in acked]
    # exactly one leader, seen the same from every manager
    for name in MANAGERS:
        assert leaders(lab, name) == [leader]


class Writer(threading.Thread):
    """Creates services w<i>-<k>-00001, w<i>-<k>-00002, ... on its manager, recording what was acknowledged."""

    def __init__(self, lab: Lab, index: int, stop: threading.Event) -> None:
        super().__init__(daemon=True, name=f"writer{index}")
        self.lab, self.index, self.stop = lab, index, stop
        self.prefix = f"w{index}-{next(_names)}"  # fresh names however often the test runs
        self.acked: list[tuple[str, int]] = []     # (name, store version), in ack order
        self.failures = 0
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        target = self.index
        try:
            for n in itertools.count(1):
                if self.stop.is_set():
                    return
                name = f"{self.prefix}-{n:05d}"
                node = MANAGERS[target % 3]
                try:
                    svc = create(self.lab, node, name, timeout=6)
                except grpc.RpcError:
                    self.failures += 1
                    target += 1       # try the next manager; this name may or may not exist
                    continue
                self.acked.append((name, svc.meta.version))
        except BaseException as err:  # reported by the test
            self.error = err


def test_concurrent_writers_lose_and_reorder_nothing(healthy: Lab) -> None:
    lab = healthy
    stop = threading.Event()
    writers = [Writer(lab, i, stop) for i in range(3)]
    for w in writers:
        w.start()

    def progress(count: int) -> Any:
        marks = [len(w.acked) for w in writers]
        return lambda: all(len(w.acked) >= m + count for w, m in zip(writers, marks))

    try:
        wait(progress(5), 30, "every writer to get 5 writes acknowledged", interval=POLL)
        old = leader_name(lab)
        lab.kill(old)
        wait(progress(5), 30, f"every writer to make progress after killing the leader {old}",
             interval=POLL)
        lab.start(old)
        lab.wait_running(old, timeout=30)
        wait(progress(5), 30, f"every writer to make progress after {old} returned", interval=POLL)
        cut = leader_name(lab)
        lab.partition([cut], [n for n in lab.names() if n != cut])
        wait(progress(5), 30, f"every writer to make progress with the leader {cut} cut off",
             interval=POLL)
        lab.heal()
        wait(progress(5), 30, "every writer to make progress after heal", interval=POLL)
    finally:
        stop.set()
        for w in writers:
            w.join(timeout=15)
    for w in writers:
        assert w.error is None, f"{w.name} crashed: {w.error!r}"
        assert not w.is_alive(), f"{w.name} did not stop"
    wait_one_leader(lab, timeout=60)
    total = sum(len(w.acked) for w in writers)
    for manager in MANAGERS:
        have = wait(lambda: (lambda s: s if all(n in s for w in writers for n, _ in w.acked)
                             else None)(services(lab, manager)),
                    15, f"{manager} to hold all {total} acknowledged writes", interval=POLL)
        for w in writers:
            versions = [have[n].meta.version for n, _ in w.acked]
            assert versions == [v for _, v in w.acked], f"{w.name}: versions differ on {manager}"
            assert versions == sorted(versions) and len(set(versions)) == len(versions), \
                f"{w.name}'s acknowledged writes are out of order on {manager}: {versions}"
    print(f"concurrent writers: {total} acknowledged, "
          f"{sum(w.failures for w in writers)} refused or timed out")
