"""A rolling update survives its leader: issue 11's leader-kill acceptance on a lab.

Three managers and one worker; a 6-replica service on the worker with
parallelism 1 and a 2 s update delay.  An update is started (`-d`); once one or
two slots carry the new spec the leader is SIGKILLed.  The new leader must
continue the update from the store: at the end every slot has exactly one
running task of the new spec, no slot ever got two tasks of it (the task
history counts), and the update status is COMPLETED.  Every wait polls with a
deadline.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterator, Optional

import grpc
import pytest

from lab.cluster import Lab
from lab.leadership import named_leaders
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb
from tests.helpers import sw, wait
from tests.labfixtures import image, module_lab  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

MANAGERS = ("manager1", "manager2", "manager3")
REPLICAS = 6
US = pb.UpdateStatus

lab = module_lab(3, 1)


def api(lab: Lab, name: str) -> control_pb2_grpc.ControlStub:
    """The control API of a node through its unix socket (local root, no TLS)."""
    return control_pb2_grpc.ControlStub(
        grpc.insecure_channel(f"unix://{lab.data_dir(name) / 'swarm.sock'}"))


def live_managers(lab: Lab) -> list[str]:
    return [m for m in MANAGERS if lab.pid(m) is not None]


def leader(lab: Lab) -> Optional[str]:
    """The leader all running managers name, else None."""
    seen = set()
    for name in live_managers(lab):
        try:
            found = named_leaders(api(lab, name))
        except grpc.RpcError:
            return None
        if len(found) != 1:
            return None
        seen.add(found[0])
    return seen.pop() if len(seen) == 1 else None


def service(lab: Lab, node: str, name: str) -> Optional[pb.Service]:
    try:
        found = api(lab, node).ListServices(cpb.ListServicesRequest(), timeout=5).services
    except grpc.RpcError:
        return None
    return next((s for s in found if s.spec.annotations.name == name), None)


def tasks(lab: Lab, node: str, service_id: str) -> Optional[list[pb.Task]]:
    req = cpb.ListTasksRequest(filters=cpb.ListFilters(service_ids=[service_id]))
    try:
        return list(api(lab, node).ListTasks(req, timeout=5).tasks)
    except grpc.RpcError:
        return None


def is_new(task: pb.Task) -> bool:
    return "V=2" in task.spec.container.env


def running_new(task: pb.Task) -> bool:
    return (is_new(task) and task.desired_state == pb.RUNNING
            and task.status.state == pb.RUNNING)


@pytest.fixture
def cleanup(lab: Lab) -> Iterator[None]:
    yield
    for name in live_managers(lab):
        if sw(lab, "service", "rm", "roll", node=name, check=False).returncode == 0:
            break


def test_leader_killed_mid_update_new_leader_continues(lab: Lab, image: str,
                                                      cleanup: None) -> None:
    first = wait(lambda: leader(lab), 60, "one leader")
    sw(lab, "service", "create", "-d", "--name", "roll", "--replicas", str(REPLICAS),
       "--constraint", "node.role==worker", "--stop-grace-period", "1s", "-e", "V=1",
       "--update-parallelism", "1", "--update-delay", "2s", "--update-monitor", "1s",
       image, "sleep", "3600", node=first)
    svc = wait(lambda: service(lab, first, "roll"), 10, "service roll")

    def all_running(pred) -> Optional[list[pb.Task]]:
        node = live_managers(lab)[0]
        got = tasks(lab, node, svc.id) or []
        up = [t for t in got if pred(t)]
        return up if len(up) == REPLICAS else None

    wait(lambda: all_running(lambda t: t.desired_state == pb.RUNNING
                             and t.status.state == pb.RUNNING), 90, "6 roll tasks running")
    sw(lab, "service", "update", "-d", "--env-add", "V=2", "roll", node=first)

    def started() -> Optional[int]:
        got = tasks(lab, first, svc.id) or []
        n = len({t.slot for t in got if running_new(t)})
        return n if n >= 1 else None

    updated = wait(started, 60, "the first slot updated")
    assert updated <= 2, f"{updated} slots updated before the kill; the delay is 2 s"
    lab.kill(first)
    survivors = [m for m in MANAGERS if m != first]
    second = wait(lambda: (lambda found: found if found in survivors else None)(leader(lab)),
                  30, "a new leader among the survivors")

    def completed() -> Optional[pb.Service]:
        got = service(lab, second, "roll")
        return got if got and got.update_status.state == US.COMPLETED else None

    try:
        done = wait(completed, 90, "the update COMPLETED on the new leader")
    except AssertionError as err:
        ps = sw(lab, "service", "ps", "--no-trunc", "roll", node=second, check=False).stdout
        logs = "\n".join(lab.log_tail(n, 40) for n in [*survivors, "worker1"])
        raise AssertionError(f"{err}\n{ps}\n{logs}") from None
    assert done.update_status.message == "update completed"
    final = tasks(lab, second, svc.id)
    assert final is not None
    running = all_running(running_new)
    assert running is not None, [(t.slot, t.status.state, t.desired_state) for t in final]
    assert sorted(t.slot for t in running) == list(range(1, REPLICAS + 1))
    per_slot = Counter(t.slot for t in final if is_new(t))
    assert per_slot == Counter(range(1, REPLICAS + 1)), f"new-spec tasks per slot: {per_slot}"
    assert all(t.spec_version == done.spec_version for t in final if is_new(t))
    old_live = [t for t in final if not is_new(t) and t.desired_state <= pb.RUNNING]
    assert not old_live, old_live
