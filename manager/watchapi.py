"""The Watch gRPC service: streams store changes that match the caller's selectors.

Secrets' data never leaves through it (as the control API, it is redacted)."""
from __future__ import annotations

import asyncio
from typing import Any

from proto import model
from proto import watch_pb2 as wpb
from proto import watch_pb2_grpc

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
    """The event as a watcher gets it: without the old object unless asked, and never
    with a secret's data or the overlay encryption keys (the store's event objects are
    shared: copies are changed)."""
    secret = event.object.WhichOneof("object") == "secret"
    keys = event.object.WhichOneof("object") == "cluster" and (
        bool(event.object.cluster.network_keys) or bool(event.old_object.cluster.network_keys)
        or bool(event.object.cluster.unlock_key) or bool(event.old_object.cluster.unlock_key))
    drop_old = not include_old and event.HasField("old_object")
    if not secret and not keys and not drop_old:
        return event
    out = wpb.WatchEvent(action=event.action, object=event.object, version=event.version)
    if not drop_old and event.HasField("old_object"):
        out.old_object.CopyFrom(event.old_object)
    if secret:
        out.object.secret.spec.data = b""
        if out.HasField("old_object"):
            out.old_object.secret.spec.data = b""
    if keys:  # overlay encryption keys go to nodes in network views only; the
        # unlock key through Control.GetUnlockKey only
        del out.object.cluster.network_keys[:]
        out.object.cluster.unlock_key = ""
        if out.HasField("old_object"):
            del out.old_object.cluster.network_keys[:]
            out.old_object.cluster.unlock_key = ""
    return out


class WatchServicer(watch_pb2_grpc.WatchServicer):
    """Serves Watch on one manager from its local store."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def Watch(self, request, context):
        for sel in request.selectors:
            if sel.kind and sel.kind not in model.KINDS:
                await context.abort(
                    3, f"unknown kind {sel.kind!r}: use one of {', '.join(model.KINDS)}")
        stream = self.store.watch_async(asyncio.get_running_loop())
        # headers go out at once: the caller knows from then on that no change is missed
        await context.send_initial_metadata(())
        async for events in stream:
            out = []
            for ev in events:
                if selected(ev, list(request.selectors)):
                    out.append(outgoing(ev, request.include_old_object))
            if out:
                yield wpb.WatchMessage(events=out)
