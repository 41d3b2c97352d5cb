"""The Watch gRPC service: streams store changes that match the caller's selectors.

A watcher may first replay what it missed (`resume_after_version`) or what
happened since a time (`since`), from this manager's event history
(raft/history.py), then goes on live with no gap and no repeat; `progress`
marks where the replay ends (a message with a version and no events).

Secrets' data never leaves through it (as the control API, it is redacted)."""
from __future__ import annotations

import asyncio

import grpc

from manager import redact
from proto import model
from proto import watch_pb2 as wpb
from proto import watch_pb2_grpc
from raft.api import ObjectStore
from raft.errors import HistoryGone

_ACTIONS = {"create": wpb.WatchEvent.CREATE, "update": wpb.WatchEvent.UPDATE,
            "remove": wpb.WatchEvent.REMOVE}


def selected(event: wpb.WatchEvent, selectors: list[wpb.WatchSelector]) -> bool:
    """True when the event matches any selector (or there are none)."""
    if not selectors:
        return True
    kind = event.object.WhichOneof("object")
    obj = model.unwrap(event.object)
    for sel in selectors:
        if sel.kind and sel.kind != kind:
            continue
        if sel.id and sel.id != obj.id:
            continue
        if sel.name and sel.name != model.object_name(obj):
            continue
        if sel.service_id and getattr(obj, "service_id", None) != sel.service_id:
            continue
        if sel.node_id and getattr(obj, "node_id", None) != sel.node_id:
            continue
        if sel.actions and event.action not in {_ACTIONS.get(a.lower(), -1) for a in sel.actions}:
            continue
        return True
    return False


def outgoing(event: wpb.WatchEvent, include_old: bool) -> wpb.WatchEvent:
    """The event as a watcher gets it (manager/redact.py: no secret data, no keys)."""
    return redact.event(event, include_old)


SNAPSHOT_GAP = ("this manager installed a raft snapshot after store version {version}: the "
                "changes it folded in cannot be streamed one by one; resume on another manager")


def consecutive(events: list[wpb.WatchEvent], expected: int) -> bool:
    """True when a batch is the one transaction at version `expected` (a raft snapshot
    install delivers one batch of differences instead, with other versions)."""
    return bool(events) and all(ev.version == expected for ev in events)


class WatchServicer(watch_pb2_grpc.WatchServicer):
    """Serves Watch on one manager from its local store (every manager does, leader or not:
    each replica applies the same log, so a watcher may resume on any of them)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    async def Watch(self, request, context):
        for sel in request.selectors:
            if sel.kind and sel.kind not in model.KINDS:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"unknown kind {sel.kind!r}: use one of {', '.join(model.KINDS)}")
            unknown = [a for a in sel.actions if a.lower() not in _ACTIONS]
            if unknown:  # such a selector would match nothing, silently
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"unknown action {unknown[0]!r}: use one of {', '.join(_ACTIONS)}")
        resume = request.HasField("resume_after_version")
        after = request.resume_after_version if resume else None
        since = model.ts_seconds(request.since) if request.HasField("since") else None
        try:
            stream = self.store.watch_async(asyncio.get_running_loop(), after_version=after,
                                            since=None if resume else since)
        except HistoryGone as exc:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, str(exc))
            raise AssertionError("unreachable: abort raises") from exc
        replayed = stream.pending()   # before any await: nothing live is queued yet
        try:
            # headers go out at once: the caller knows from then on that no change is missed
            await context.send_initial_metadata(())
            selectors = list(request.selectors)
            if request.progress and not replayed:
                yield wpb.WatchMessage(version=max(stream.view.version, after or 0))
            strict = resume or request.progress   # the caller counts on consecutive versions
            expected = None if replayed else stream.view.version + 1
            async for events in stream:
                if strict and expected is not None and not consecutive(events, expected):
                    await context.abort(grpc.StatusCode.OUT_OF_RANGE, SNAPSHOT_GAP.format(
                        version=expected - 1))
                    raise AssertionError("unreachable: abort raises")
                out = [outgoing(ev, request.include_old_object) for ev in events
                       if (after is None or ev.version > after) and selected(ev, selectors)]
                if out:
                    yield wpb.WatchMessage(events=out)
                if replayed:
                    replayed -= 1
                    if not replayed:
                        expected = stream.view.version
                        if request.progress:
                            yield wpb.WatchMessage(version=max(stream.view.version, after or 0))
                if expected is not None:
                    expected += 1
        finally:
            stream.close()
