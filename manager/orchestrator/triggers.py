"""Which store changes can change what a reconcile pass decides (pure).

A pass reads the whole cluster, which at 30,000 tasks costs about a second; the
agents' progress reports (a task going ASSIGNED -> ACCEPTED -> ... -> RUNNING)
are most of the store changes while a big service starts, and almost none of
them can change a plan. The rules read a task's observed state only to tell:

- unplaced (NEW, PENDING) from placed (ASSIGNED and later): placement, the
  reaper's and the allocator's "can no longer be running";
- ended (terminal states): restart policy, reaper, update failures, jobs;
- RUNNING from not yet RUNNING: only while the service's rolling update is
  under way or paused (the next batch waits for RUNNING, the monitor period and
  the delay count from it, a start-first slot retires its old task once the new
  one runs); outside an update a slot has one live task and nothing waits.

So a transaction made only of such reports, for tasks whose every other field
(desired state, node, slot, service, spec version, spec, endpoint, networks)
is unchanged, between ASSIGNED and RUNNING without reaching RUNNING in a
service whose update is under way, needs no pass (`needs_pass` is False).
Anything else (a node, a service, a create or a removal, a failure) does.
"""
from __future__ import annotations

from typing import Callable, Iterable

from proto import objects_pb2 as pb
from proto import watch_pb2 as wpb

US = pb.UpdateStatus
# update states in which a task reaching RUNNING matters to the update (manager/orchestrator/update.py)
UPDATE_UNDER_WAY = frozenset({US.UPDATING, US.PAUSED, US.ROLLBACK_STARTED, US.ROLLBACK_PAUSED})


def _progressing(state: int) -> bool:
    return pb.ASSIGNED <= state <= pb.RUNNING


def is_progress_report(ev: wpb.WatchEvent, update_under_way: Callable[[str], bool]) -> bool:
    """The event is a placed task's progress report that no rule acts on."""
    if ev.action != wpb.WatchEvent.UPDATE or ev.object.WhichOneof("object") != "task" \
            or ev.old_object.WhichOneof("object") != "task":
        return False
    new, old = ev.object.task, ev.old_object.task
    if not (_progressing(old.status.state) and _progressing(new.status.state)):
        return False
    if (new.desired_state, new.node_id, new.slot, new.service_id, new.spec_version) != \
            (old.desired_state, old.node_id, old.slot, old.service_id, old.spec_version):
        return False
    if new.spec != old.spec or new.endpoint != old.endpoint or new.networks != old.networks:
        return False
    reached_running = new.status.state == pb.RUNNING and old.status.state != pb.RUNNING
    return not (reached_running and update_under_way(new.service_id))


def needs_pass(events: Iterable[wpb.WatchEvent], update_under_way: Callable[[str], bool]) -> bool:
    """Whether a transaction's events may change what a reconcile pass decides.

    `update_under_way(service_id)`: the service's rolling update is under way or
    paused (say True for a service that cannot be read)."""
    return not all(is_progress_report(ev, update_under_way) for ev in events)
