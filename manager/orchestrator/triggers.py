"""Which store changes can change what a reconcile pass decides (pure).

A pass over a big service's 30,000 tasks costs a few tenths of a second; the
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
# update states in which a task reaching RUNNING matters to the update
# (manager/orchestrator/update.py uses the same set)
UPDATE_UNDER_WAY = frozenset({US.UPDATING, US.PAUSED, US.ROLLBACK_STARTED, US.ROLLBACK_PAUSED})


_UPDATE = wpb.WatchEvent.UPDATE
_ASSIGNED, _RUNNING = pb.ASSIGNED, pb.RUNNING


def is_progress_report(ev: wpb.WatchEvent, update_under_way: Callable[[str], bool]) -> bool:
    """The event is a placed task's progress report that no rule acts on.

    (Called for every event of every transaction while no pass is pending: each field
    is read once, cheapest tests first.)"""
    if ev.action != _UPDATE:
        return False
    obj, before = ev.object, ev.old_object
    if obj.WhichOneof("object") != "task" or before.WhichOneof("object") != "task":
        return False
    return is_progress(obj.task, before.task, update_under_way)


def is_progress(new: pb.Task, old: pb.Task, update_under_way: Callable[[str], bool]) -> bool:
    """`new`, a later version of the task `old`, is a progress report no rule acts on."""
    state, was = new.status.state, old.status.state
    if not (_ASSIGNED <= was <= _RUNNING and _ASSIGNED <= state <= _RUNNING):
        return False
    if new.desired_state != old.desired_state or new.node_id != old.node_id \
            or new.slot != old.slot or new.service_id != old.service_id \
            or new.spec_version != old.spec_version:
        return False
    if new.spec != old.spec or new.endpoint != old.endpoint or new.networks != old.networks:
        return False
    return not (state == _RUNNING and was != _RUNNING and update_under_way(new.service_id))


def needs_pass(events: Iterable[wpb.WatchEvent], update_under_way: Callable[[str], bool]) -> bool:
    """Whether a transaction's events may change what a reconcile pass decides.

    `update_under_way(service_id)`: the service's rolling update is under way or
    paused (say True for a service that cannot be read)."""
    return not all(is_progress_report(ev, update_under_way) for ev in events)
