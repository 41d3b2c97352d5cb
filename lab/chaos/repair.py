"""Putting a chaos lab back together: heal, restart, unlock, reactivate.

Owns the steps after a fault (and the final heal): every partition removed,
every daemon running again, every manager that waits locked unlocked with the
current key, autolock on and off, node availability; then one leader that
every live manager names. Cluster changes go through the `swarm` CLI on a live
manager, the way an operator makes them.
"""
from __future__ import annotations

import random
import time
from typing import Optional

from lab.chaos.access import CALL_TIMEOUT, Access
from lab.chaos.timeline import Timeline
from pki.keystore import ManagerKeys
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb

RETRY_FOR = 60.0       # seconds a CLI change is retried while there is no leader


class RepairError(Exception):
    """The lab could not be put back together; the message says where it stuck."""


class Repair:
    """Heals the lab; remembers the unlock key while autolock is on."""

    def __init__(self, access: Access, timeline: Timeline) -> None:
        self.access, self.timeline = access, timeline
        self.key: Optional[str] = None
        self.rng = random.Random(0)      # which manager answers: no bearing on the plan

    def _cli(self, *args: str, what: str) -> str:
        """`swarm ARGS` on a live manager, retried on other managers until it succeeds."""
        deadline = time.monotonic() + RETRY_FOR
        said = ""
        while time.monotonic() < deadline:
            for name in self.access.live_managers():
                res = self.access.lab.swarm(name, *args, check=False, timeout=60)
                if res.returncode == 0:
                    return res.stdout
                said = f"{name}: {(res.stderr or res.stdout).strip()[-300:]}"
            time.sleep(1.0)
        raise RepairError(f"{what} failed for {RETRY_FOR:g}s; last answer {said}")

    def autolock(self, on: bool) -> Optional[str]:
        """Turns autolock on (returns the unlock key) or off, and waits until every running
        manager has re-wrapped its data key accordingly (each does it after applying the
        change: a manager killed before that would restart in the old mode)."""
        self._cli("update", f"--autolock={'true' if on else 'false'}", what="swarm update")
        self.key = self._cli("unlock-key", "-q", what="swarm unlock-key").strip() if on else None
        lab = self.access.lab
        for name in self.access.managers:
            if lab.pid(name) is None or lab.locked(name):
                continue
            keys = ManagerKeys(lab.data_dir(name))
            try:
                lab.wait_for(lambda: keys.wrapped_by(self.key), 30,
                             f"{name}'s data key wrapped {'by the unlock key' if on else 'locally'}",
                             interval=0.1)
            except AssertionError as err:
                raise RepairError(str(err)) from None
        return self.key

    def _active(self, node: str) -> None:
        """Makes the node active again if a drain was left in place."""
        def drained(api: control_pb2_grpc.ControlStub) -> bool:
            nodes = api.ListNodes(cpb.ListNodesRequest(), timeout=CALL_TIMEOUT).nodes
            return any(n.description.hostname == node and n.spec.availability != pb.NodeSpec.ACTIVE
                       for n in nodes)
        if self.access.call(self.rng, drained):
            self.availability(node, "active")

    def availability(self, node: str, value: str) -> None:
        self._cli("node", "update", "--availability", value, node, what=f"drain of {node}")

    def unlock(self, name: str, key: Optional[str]) -> None:
        if key is None:
            raise RepairError(f"{name} waits locked and the soak has no unlock key")
        res = self.access.lab.swarm(name, "unlock", input=key + "\n", check=False, timeout=120)
        if res.returncode != 0:
            raise RepairError(f"swarm unlock on {name}: {res.stderr.strip()}")
        self.access.lab.wait_for(lambda: not self.access.lab.locked(name), 60,
                                 f"{name} to leave locked mode", interval=0.2)
        self.access.reset(name)

    def start(self, name: str, unlock: bool = True) -> None:
        """Starts the node's daemon if it is not running; unlocks it if autolock is on
        (unless `unlock` is False)."""
        lab = self.access.lab
        if lab.pid(name) is None:
            lab.start(name)
            self.access.reset(name)
        if unlock and lab.locked(name) and self.key is not None:
            self.unlock(name, self.key)

    def restore(self, leader_within: float = 90.0) -> None:
        """Heals every partition, starts and unlocks every node, makes every worker active
        again, and waits for one leader that all managers name."""
        lab = self.access.lab
        lab.heal()
        for name in lab.names():
            self.start(name)
        locked = [n for n in lab.names() if lab.locked(n)]
        if locked:
            raise RepairError(f"{locked} wait locked and the soak has no unlock key")
        if self.key is not None:        # a fault stopped half-way: autolock back off
            self.autolock(False)
        for name in self.access.workers:
            self._active(name)
        try:
            lab.wait_for(self.access.leader, leader_within, "one leader that every manager names",
                         interval=0.5)
        except Exception as err:
            raise RepairError(str(err)) from None
