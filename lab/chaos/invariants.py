"""The chaos soak's invariants, checked after the faults stop and the lab heals.

Owns `divergence` (what keeps the cluster from its specs right now; empty when
converged, also used by the injector after each fault) and the five checks:

1. writes: every acknowledged write is on every manager with the version it
   was acknowledged with, each writer's versions rise in acknowledgement order,
   no name exists twice, and nothing appears that no writer attempted;
2. agreement: every manager names the same leader and has applied the same
   store (same store version and store digest, `InfoRequest.store_digest`);
3. convergence: every service at its spec within a bound (replicated: its
   replicas RUNNING at the current spec on ready nodes, one task per slot;
   global: one RUNNING task on every eligible node and none elsewhere), and no
   slot with two running containers;
4. orphans: every running task container on every node belongs to a task the
   store wants running there, and every task the store says RUNNING has its
   running container;
5. leftovers: no secret's plaintext in any file under the lab's directory (the
   nodes' data and podman storage; tmpfs mounts skipped, they are not disk),
   no task tmpfs, task network namespace or ingress port chain of a task or
   service that is gone.

Checks 3 to 5 wait (bounded) for the condition, since cleanup is asynchronous;
each returns a `Result` naming what it saw.
"""
from __future__ import annotations

import json
import os
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from lab.chaos.access import CALL_TIMEOUT, Access
from lab.chaos.writers import LABEL as WRITER_LABEL
from lab.chaos.writers import Writer
from overlay_net import netns
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb
from scheduler import constraints as cons
from worker.overlay import task_netns_prefix
from worker.taskfiles import default_root
from worker.taskspec import LABEL_NODE_ID, LABEL_SERVICE_ID, LABEL_TASK_ID, LABEL_TASK_SLOT

UPDATING = (pb.UpdateStatus.UPDATING, pb.UpdateStatus.ROLLBACK_STARTED)
CHAIN = re.compile(r"chain p_([a-z]+)_(\d+) ")


@dataclass
class Result:
    """One invariant's verdict."""
    number: int
    name: str
    ok: bool
    detail: str
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        verdict = "ok" if self.ok else "VIOLATED"
        text = f"invariant {self.number} {self.name}: {verdict} ({self.detail})"
        return text + "".join(f"\n    - {p}" for p in self.problems[:20])


@dataclass
class Snapshot:
    """One manager's nodes, services and tasks, read back to back."""
    nodes: list[pb.Node]
    services: list[pb.Service]
    tasks: list[pb.Task]


def read(access: Access) -> Snapshot:
    """Nodes, services and tasks from the leader if one is agreed, else any manager."""
    rng = random.Random()
    leader = access.leader()

    def get(api) -> Snapshot:
        return Snapshot(list(api.ListNodes(cpb.ListNodesRequest(), timeout=CALL_TIMEOUT).nodes),
                        list(api.ListServices(cpb.ListServicesRequest(),
                                              timeout=CALL_TIMEOUT).services),
                        list(api.ListTasks(cpb.ListTasksRequest(), timeout=CALL_TIMEOUT).tasks))
    if leader is not None:
        return get(access.api(leader))
    return access.call(rng, get)


def _eligible(svc: pb.Service, nodes: Iterable[pb.Node]) -> dict[str, pb.Node]:
    parsed = cons.parse_all(svc.spec.task.placement.constraints)
    return {n.id: n for n in nodes if n.status.state == pb.NodeStatus.READY
            and n.spec.availability == pb.NodeSpec.ACTIVE and cons.match_all(parsed, n)}


def service_problems(svc: pb.Service, nodes: Sequence[pb.Node],
                     tasks: Sequence[pb.Task]) -> list[str]:
    """What keeps one service from its spec (pure: reads the lists it is given)."""
    name = svc.spec.annotations.name
    ready = {n.id for n in nodes if n.status.state == pb.NodeStatus.READY}
    mine = [t for t in tasks if t.service_id == svc.id and t.desired_state == pb.RUNNING]
    running = [t for t in mine if t.status.state == pb.RUNNING and t.node_id in ready]
    problems = []
    if svc.update_status.state in UPDATING:
        problems.append(f"{name}: update in progress ({pb.UpdateStatus.State.Name(svc.update_status.state)})")
    paused = svc.update_status.state in (pb.UpdateStatus.PAUSED, pb.UpdateStatus.ROLLBACK_PAUSED)
    # out of date as Swarm judges it: made from another task or endpoint spec (a task
    # of an older spec version whose spec is the current one stays, as in Docker)
    stale = [t for t in running if t.spec_version != svc.spec_version
             and (t.spec != svc.spec.task or t.endpoint.spec != svc.spec.endpoint)]
    if stale and not paused:
        problems.append(f"{name}: {len(stale)} task(s) of an older spec run")
    eligible = _eligible(svc, nodes)
    if svc.spec.HasField("replicated"):
        want = svc.spec.replicated.replicas
        if len(running) != want or len(mine) != want:
            problems.append(f"{name}: {len(running)}/{want} running ({len(mine)} wanted running)")
        doubled = [slot for slot, n in Counter(t.slot for t in mine).items() if n > 1]
        if doubled:
            problems.append(f"{name}: slots {sorted(doubled)} have two tasks wanted running")
        misplaced = [t.id[:12] for t in running if t.node_id not in eligible and not paused]
        if misplaced:
            problems.append(f"{name}: tasks {misplaced} run on nodes its placement excludes")
    elif svc.spec.HasField("global"):
        per_node = Counter(t.node_id for t in running)
        missing = [n.description.hostname for i, n in eligible.items() if per_node[i] != 1]
        extra = [t.id[:12] for t in mine if t.node_id not in eligible]
        if missing:
            problems.append(f"{name}: not exactly one running task on {sorted(missing)}")
        if extra:
            problems.append(f"{name}: tasks {extra} wanted running on ineligible nodes")
    return problems


def divergence(access: Access) -> list[str]:
    """What keeps the cluster from its specs now (empty: converged)."""
    try:
        snap = read(access)
    except Exception as err:  # noqa: BLE001 - no answer is not converged
        return [f"no manager answered: {err}"]
    down = [n.description.hostname for n in snap.nodes if n.status.state != pb.NodeStatus.READY]
    problems = [f"nodes not ready: {sorted(down)}"] if down else []
    for svc in snap.services:
        problems += service_problems(svc, snap.nodes, snap.tasks)
    return problems


def _wait(check: Callable[[], list[str]], within: float, interval: float = 1.0
          ) -> tuple[list[str], float]:
    """Calls check() until it returns no problems or `within` passes: (problems, seconds)."""
    started = time.monotonic()
    while True:
        problems = check()
        took = time.monotonic() - started
        if not problems or took >= within:
            return problems, took
        time.sleep(interval)


# ---- 1. acknowledged writes

def check_writes(access: Access, writers: Sequence[Writer], within: float = 30.0) -> Result:
    """Invariant 1; waits up to `within` for a follower still applying the last writes."""
    problems, _ = _wait(lambda: write_problems(access, writers), within)
    acked = sum(len(w.acked) for w in writers)
    unacked = sum(len(w.attempted) - len(w.acked) for w in writers)
    return Result(1, "acknowledged writes", not problems,
                  f"{acked} acknowledged ({sum(w.recovered for w in writers)} through a retry), "
                  f"{unacked} never acknowledged, on {len(access.managers)} managers", problems)


def write_problems(access: Access, writers: Sequence[Writer]) -> list[str]:
    problems: list[str] = []
    for w in writers:
        versions = [v for _, v in w.acked]
        if versions != sorted(versions) or len(set(versions)) != len(versions):
            problems.append(f"writer {w.index}: versions not rising in acknowledgement order")
        problems += [f"writer {w.index} refused: {r}" for r in w.refused]
    attempted = set().union(*(w.attempted for w in writers)) if writers else set()
    for manager in access.managers:
        try:
            configs = access.api(manager).ListConfigs(cpb.ListConfigsRequest(
                filters=cpb.ListFilters(labels={WRITER_LABEL: ""})), timeout=30).configs
        except Exception as err:  # noqa: BLE001 - a manager that cannot answer fails the check
            problems.append(f"{manager}: ListConfigs failed: {err}")
            continue
        names = Counter(c.spec.annotations.name for c in configs)
        have = {c.spec.annotations.name: c.meta.version for c in configs}
        twice = sorted(n for n, k in names.items() if k > 1)
        if twice:
            problems.append(f"{manager}: names stored twice: {twice[:5]}")
        unknown = sorted(set(have) - attempted)
        if unknown:
            problems.append(f"{manager}: writes nobody attempted: {unknown[:5]}")
        for w in writers:
            lost = [n for n, _ in w.acked if n not in have]
            moved = [n for n, v in w.acked if n in have and have[n] != v]
            if lost:
                problems.append(f"{manager}: writer {w.index} lost {len(lost)} acknowledged "
                                f"writes, e.g. {lost[:3]}")
            if moved:
                problems.append(f"{manager}: writer {w.index}: {len(moved)} writes at another "
                                f"version than acknowledged, e.g. {moved[:3]}")
    return problems


# ---- 2. one leader, one log

def check_agreement(access: Access, within: float = 60.0) -> Result:
    seen: dict[str, str] = {}

    def disagreement() -> list[str]:
        seen.clear()
        views = {}
        for m in access.managers:
            try:
                info = access.info(m)
            except Exception as err:  # noqa: BLE001
                seen[m] = f"no answer ({err.__class__.__name__})"
                continue
            views[m] = (info.raft_leader_id, info.store_version, info.store_digest,
                        info.raft_applied_index)
            seen[m] = (f"leader {info.raft_leader_id[:12]} version {info.store_version} "
                       f"applied {info.raft_applied_index} digest {info.store_digest[:12]}")
        if len(views) != len(access.managers):
            return [f"{m}: {v}" for m, v in seen.items()]
        if len(set(views.values())) != 1 or not next(iter(views.values()))[0]:
            return [f"{m}: {v}" for m, v in seen.items()]
        return []
    problems, took = _wait(disagreement, within, interval=0.5)
    detail = (f"agreed after {took:.1f}s: {next(iter(seen.values()))}" if not problems
              else f"no agreement within {within:g}s")
    return Result(2, "one leader, one store", not problems, detail, problems)


# ---- 3. convergence

def _container_rows(access: Access, name: str) -> list[dict]:
    lab = access.lab
    out = lab.podman(name, "ps", "--format", "json", "--filter",
                     f"label={LABEL_NODE_ID}={lab.node_id(name)}").stdout.strip()
    return json.loads(out) if out else []


def doubled_slots(access: Access) -> tuple[list[str], int]:
    """Slots of replicated services with more than one running container, over every
    node; and how many such containers run."""
    snap = read(access)
    replicated = {s.id for s in snap.services if s.spec.HasField("replicated")}
    slots: Counter[tuple[str, str]] = Counter()
    for name in access.lab.names():
        for row in _container_rows(access, name):
            labels = row.get("Labels") or {}
            if labels.get(LABEL_SERVICE_ID) in replicated:
                slots[(labels[LABEL_SERVICE_ID], labels.get(LABEL_TASK_SLOT, ""))] += 1
    return ([f"service {s[:12]} slot {slot}: {n} containers"
             for (s, slot), n in slots.items() if n > 1], sum(slots.values()))


def check_convergence(access: Access, within: float) -> Result:
    problems, took = _wait(lambda: divergence(access), within)
    if problems:
        return Result(3, "convergence", False, f"not converged within {within:g}s", problems)
    # a node back from a partition runs its old containers until its agent stops them
    counted: list[int] = [0]

    def doubled() -> list[str]:
        found, counted[0] = doubled_slots(access)
        return found
    twice, settled = _wait(doubled, 60.0)
    return Result(3, "convergence", not twice,
                  f"{len(read(access).services)} services converged in {took:.1f}s; "
                  f"{counted[0]} replicated-task containers, one per slot after "
                  f"{settled:.1f}s more", twice)


# ---- 4. orphans

def orphan_problems(access: Access) -> list[str]:
    snap = read(access)
    tasks = {t.id: t for t in snap.tasks}
    problems = []
    running_containers: set[str] = set()
    for name in access.lab.names():
        node_id = access.lab.node_id(name)
        for row in _container_rows(access, name):
            task_id = (row.get("Labels") or {}).get(LABEL_TASK_ID, "")
            running_containers.add(task_id)
            task = tasks.get(task_id)
            if task is None:
                problems.append(f"{name}: container {row.get('Id', '')[:12]} of unknown task "
                                f"{task_id[:12]}")
            elif task.node_id != node_id or task.desired_state != pb.RUNNING:
                problems.append(f"{name}: container of task {task_id[:12]} which the store wants "
                                f"{pb.TaskState.Name(task.desired_state)} on {task.node_id[:12]}")
    for task in snap.tasks:
        if task.status.state == pb.RUNNING and task.id not in running_containers:
            problems.append(f"task {task.id[:12]} ({task.annotations.name}) is RUNNING in the "
                            f"store without a running container")
    return problems


def check_orphans(access: Access, within: float = 60.0) -> Result:
    problems, took = _wait(lambda: orphan_problems(access), within)
    return Result(4, "no orphans", not problems,
                  f"containers and store agree after {took:.1f}s" if not problems
                  else f"still disagree after {within:g}s", problems)


# ---- 5. plaintext and leftovers

def plaintext_files(root: Path, mark: bytes) -> list[str]:
    """Regular files under root (not crossing into other mounts) that contain `mark`."""
    found = []
    keep = len(mark) - 1
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(top, d))]
        for f in files:
            path = os.path.join(top, f)
            try:
                if not os.path.isfile(path) or os.path.islink(path):
                    continue
                with open(path, "rb") as handle:
                    tail = b""
                    while chunk := handle.read(1 << 20):
                        if mark in tail + chunk:
                            found.append(path)
                            break
                        tail = chunk[-keep:] if keep else b""
            except OSError:
                continue
    return found


def _task_mounts(node_id: str) -> list[str]:
    root = default_root(node_id) + "/"
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4] for line in handle]
    return [p[len(root):] for p in points if p.startswith(root)]


def leftover_problems(access: Access) -> list[str]:
    snap = read(access)
    published = {(p.protocol, p.published_port) for s in snap.services
                 for p in s.endpoint.ports if p.published_port}
    problems = []
    for name in access.lab.names():
        node_id = access.lab.node_id(name)
        live = {t.id for t in snap.tasks if t.node_id == node_id
                and t.desired_state <= pb.RUNNING}
        for task_id in _task_mounts(node_id):
            if task_id not in live:
                problems.append(f"{name}: tmpfs of ended task {task_id[:12]} still mounted")
        prefix = task_netns_prefix(node_id)
        for ns in netns.list_names(prefix):
            if not any(t.startswith(ns[len(prefix):]) for t in live):
                problems.append(f"{name}: network namespace {ns} of an ended task")
        res = access.lab.exec(name, "nft", "list", "table", "ip", "shoal_ingress", timeout=30)
        for proto, port in CHAIN.findall(res.stdout if res.returncode == 0 else ""):
            key = (pb.PortConfig.Protocol.Value(proto.upper()), int(port))
            if key not in published:
                problems.append(f"{name}: ingress chain p_{proto}_{port} of a port no service "
                                f"publishes")
    return problems


def check_leftovers(access: Access, marks: Sequence[bytes], mark_prefix: bytes,
                    within: float = 60.0) -> Result:
    problems, took = _wait(lambda: leftover_problems(access), within)
    files = plaintext_files(access.lab.root, mark_prefix)
    problems += [f"secret plaintext on disk: {path}" for path in files]
    return Result(5, "no plaintext, no leftovers", not problems,
                  f"{len(marks)} secrets' plaintext looked for under {access.lab.root}; "
                  f"task mounts, namespaces and ingress chains "
                  f"{'clean after %.1fs' % took if not files and took < within else 'checked'}",
                  problems)
