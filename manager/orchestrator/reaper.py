"""The task reaper: deleting tasks nobody needs any more.

- A task whose desired state is REMOVE (scaled away, or its service is gone)
  is deleted once it can no longer be running: its observed state is
  terminal, it never reached a node, or its node is down or gone.
- A stack's secret or config version that a redeploy superseded is removed
  once no service refers to it and no task that may still be running does
  (`sweep_versions`; the versions are manager.fileversions').
- Each slot keeps at most `task_history_retention_limit` tasks (cluster
  setting; 0/unset means 5, negative means keep everything).  The oldest
  history goes first; only tasks we no longer want running and that have
  stopped (by the same test) are deleted, and never a slot's newest task.
"""
from __future__ import annotations

from manager import fileversions
from proto import model
from proto import objects_pb2 as pb
from manager.orchestrator.plan import Work
from manager.orchestrator.slots import service_slots

DEFAULT_HISTORY = 5


def history_limit(work: Work) -> int:
    """Tasks kept per slot; negative means unlimited."""
    cluster = work.cluster
    limit = cluster.spec.orchestration.task_history_retention_limit if cluster else 0
    return limit or DEFAULT_HISTORY


def stopped(work: Work, task: pb.Task) -> bool:
    """Nothing can be running for this task any more."""
    if model.is_terminal(task.status.state) or task.status.state < pb.ASSIGNED:
        return True
    if not task.node_id:
        return True
    node = work.nodes.get(task.node_id)
    return node is None or node.status.state == pb.NodeStatus.DOWN


def reap(work: Work, skip: frozenset[str] = frozenset()) -> None:
    """Deletes removable tasks and history beyond the retention limit. The history of
    the services in `skip` (nothing changed for them since a pass committed whole, see
    orchestrator.quiet) is left as that pass left it."""
    for task in work.removable():
        if stopped(work, task):
            work.delete_task(task.id)
    limit = history_limit(work)
    if limit < 0:
        return
    for sid in sorted(work.services):
        if sid in skip:
            continue
        service = work.services[sid]
        for tasks in service_slots(work, service).values():
            excess = len(tasks) - limit
            for t in tasks[:-1]:
                if excess <= 0:
                    break
                if t.desired_state > pb.RUNNING and stopped(work, t):
                    work.delete_task(t.id)
                    excess -= 1


def sweep_versions(work: Work) -> None:
    """Removes the superseded secret and config versions nothing can use any more."""
    secrets = [s for s in work.view.secrets.values() if isinstance(s, pb.Secret)]
    configs = [c for c in work.view.configs.values() if isinstance(c, pb.Config)]
    if not any(fileversions.SUPERSEDED in s.spec.annotations.labels for s in secrets) and \
            not any(fileversions.SUPERSEDED in c.spec.annotations.labels for c in configs):
        return  # nothing could be swept: spare the pass a look at every task
    services = list(work.services.values())
    tasks = [t for t in work.tasks.values() if not stopped(work, t)]
    for obj in (fileversions.sweepable(secrets, fileversions.secret_ids, services, tasks)
                + fileversions.sweepable(configs, fileversions.config_ids, services, tasks)):
        work.remove_file(obj)
