"""Which services a reconcile pass may skip because nothing about them changed (pure).

A pass reads every service and all of its tasks: at 30,000 tasks the per-service
rules take most of a second, and every store change (one more service, a status
report) would pay it again. A service's rules depend on the service object, its
tasks, the nodes (placement, moves off unusable nodes), the networks, secrets,
configs, volumes of stacks and the cluster object, and on the time (restart delays,
update monitors: those ask for a wake-up, and a pass at a wake-up skips nothing).

`Fingerprints` sums that up per snapshot: per service (its version, how many tasks it
has, the highest version among them, raised to the store version of a removal: a task
created, changed or removed moves one of them; kept by the TaskIndex) and one for
everything else that is not a task. `quiet` names the services
whose fingerprint did not change since the previous pass, when that pass was committed
whole and nothing else changed: their rules would decide the same (nothing), so the
pass leaves them out. A skipped service asks for no wake-up in that pass, so the
leader loop keeps the wake-up it had (`manager.leader.next_wake`), and a pass at a
wake-up is full. While changes keep coming, the loop also checks a skipping pass every
AUDIT_EVERY seconds (manager.leader.audit): the same snapshot reconciled whole on
another thread must give the same plan; when it does not, the loop's next pass is
full, so a rule depending on anything else is late by about that much at worst, and
the miss is logged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

from manager.orchestrator.taskindex import TaskIndex
from raft.view import StoreView

AUDIT_EVERY = 10.0   # seconds between two checks of a skipping pass (manager.leader.audit)

# the tables other than services and tasks that the rules read
_CONTEXT = ("nodes", "networks", "secrets", "configs", "clusters", "stacks")


@dataclass(frozen=True)
class Fingerprints:
    """What a snapshot looks like to the per-service rules."""
    services: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)
    context: tuple[tuple[int, int], ...] = ()


def fingerprints(view: StoreView, index: TaskIndex) -> Fingerprints:
    """The services' from `index` (the view's TaskIndex); the other tables are summed up
    by count and top version."""
    services = {sid: (svc.meta.version, index.service_task_count(sid), index.tops.get(sid, 0))
                for sid, svc in view.services.items()}
    context = tuple((len(table), max((o.meta.version for o in table.values()), default=0))
                    for table in (getattr(view, name) for name in _CONTEXT))
    return Fingerprints(services, context)


def quiet(previous: Optional[Fingerprints], now: Fingerprints) -> frozenset[str]:
    """Services whose rules need not run again: unchanged since `previous`, the snapshot
    of the last pass (None: unknown, e.g. its plan was not committed whole: none)."""
    if previous is None or previous.context != now.context:
        return frozenset()
    return frozenset(sid for sid, mark in now.services.items()
                     if previous.services.get(sid) == mark)
