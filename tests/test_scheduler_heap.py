"""The scheduler's heap of candidates picks exactly what a scan of every candidate picks.

`scheduler.schedule._Group.pick` keeps candidates in a heap re-keyed lazily; the
oracle here is the plain rule of scheduler/schedule.py's docstring, applied by
scanning every candidate at every pick. Random clusters (labels for spread
preferences, CPU and memory, max replicas, host ports, drained and down nodes,
tasks already placed, several services) must get the same decisions, messages
included, from both.
"""
from __future__ import annotations

import importlib
import random
from typing import Optional

import pytest

from proto import objects_pb2 as pb
from scheduler.filters import dynamic_check, explain
from scheduler.nodeinfo import NodeInfo
from tests.test_scheduler import node, task

# the module (the package's `schedule` is the function of the same name)
sched = importlib.import_module("scheduler.schedule")


class _ScanGroup(sched._Group):
    """The oracle: every pick scans every candidate."""

    def pick(self) -> tuple[Optional[NodeInfo], str]:
        if self.failed_message is not None:
            return None, self.failed_message
        best: Optional[NodeInfo] = None
        best_key: tuple = ()
        dyn_fail: dict = {}
        for info in self.candidates:
            reason = dynamic_check(self.needs, info)
            if reason is not None:
                dyn_fail[reason] = dyn_fail.get(reason, 0) + 1
                continue
            key = self._key(info)
            if best is None or key < best_key:
                best, best_key = info, key
        if best is not None:
            return best, ""
        counts = dict(self.static_fail)
        for r, n in dyn_fail.items():
            counts[r] = counts.get(r, 0) + n
        extra = [self.needs.bad_constraint] if self.needs.bad_constraint else []
        self.failed_message = explain(counts, extra)
        return None, self.failed_message


def _cluster(rng: random.Random) -> tuple[list[pb.Node], list[pb.Task], list[pb.Task], dict]:
    nodes = []
    for i in range(rng.randint(1, 30)):
        state = pb.NodeStatus.DOWN if rng.random() < 0.1 else pb.NodeStatus.READY
        avail = pb.NodeSpec.DRAIN if rng.random() < 0.1 else pb.NodeSpec.ACTIVE
        labels = {"zone": rng.choice("abc")} if rng.random() < 0.8 else {}
        if rng.random() < 0.5:
            labels["rack"] = rng.choice("xy")
        nodes.append(node(f"n{i:02d}", state=state, availability=avail, labels=labels,
                          cpus=rng.choice([0, 1, 2, 4]), memory=rng.choice([0, 1 << 30])))
    services: dict[str, pb.Service] = {}
    existing: list[pb.Task] = []
    pend: list[pb.Task] = []
    for s in range(rng.randint(1, 4)):
        sid = f"svc{s}"
        svc = pb.Service(id=sid)
        if rng.random() < 0.3:
            svc.spec.endpoint.ports.add(protocol=pb.PortConfig.TCP, target_port=80,
                                        published_port=8000 + s,
                                        publish_mode=pb.PortConfig.HOST)
        services[sid] = svc
        prefs = rng.choice([[], ["node.labels.zone"], ["node.labels.zone", "node.labels.rack"]])
        kw = dict(prefs=prefs, cpus=rng.choice([0, 0, 0.5, 1]),
                  max_replicas=rng.choice([0, 0, 1, 2]),
                  constraints=rng.choice([[], [], ["node.labels.zone!=c"], ["node.id==??"]]))
        for slot in range(1, rng.randint(1, 60)):
            placed_on = rng.choice(nodes).id if rng.random() < 0.3 else ""
            t = task(f"{sid}-{slot:03d}", sid, slot=slot, node_id=placed_on,
                     state=pb.RUNNING if placed_on else pb.PENDING, **kw)
            (existing if placed_on else pend).append(t)
        if rng.random() < 0.3:  # a global-style task pinned to a node
            pend.append(task(f"{sid}-pin", sid, node_id=rng.choice(nodes).id, **kw))
    rng.shuffle(pend)
    return nodes, existing + pend, pend, services


@pytest.mark.parametrize("seed", range(200))
def test_heap_picks_what_a_full_scan_picks(seed, monkeypatch):
    nodes, tasks, pend, services = _cluster(random.Random(seed))
    got = sched.schedule(nodes, tasks, pend, services)
    monkeypatch.setattr(sched, "_Group", _ScanGroup)
    want = sched.schedule(nodes, tasks, pend, services)
    assert got == want


def test_many_tasks_on_many_nodes_spread_evenly():
    nodes = [node(f"n{i:04d}") for i in range(1000)]
    pend = [task(f"t{i:05d}", slot=i + 1) for i in range(30000)]
    decisions = sched.schedule(nodes, pend, pend, {})
    counts: dict[str, int] = {}
    for d in decisions:
        counts[d.node_id] = counts.get(d.node_id, 0) + 1
    assert len(decisions) == 30000 and set(counts.values()) == {30}
