"""The node's current network views, as the dispatcher last sent them.

The agent feeds `NetworkViews` from its assignment stream (a complete set,
then per-network updates and removals; see `NetworkView` in
dispatcher.proto). The data plane (`overlay_net`) reads `views` or registers
a listener, called on the event loop with (network ID, view) after each
change, view None when the node left the network; listeners run before the
tasks of the same assignment message are started. For operators and tests
the views are also written, as JSON, to a file (`dump_path`), replaced
atomically after each change (encryption keys without their bytes). Nothing here touches the host's networking.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Callable, Iterable, Optional

from google.protobuf import json_format

from proto import dispatcher_pb2 as dpb

Listener = Callable[[str, Optional[dpb.NetworkView]], None]


def views_json(node_id: str, views: Iterable[dpb.NetworkView]) -> str:
    """The dump file's text: {"node_id": ..., "networks": [view, ...]} sorted by name,
    without the bytes of encryption keys."""
    items = []
    for view in sorted(views, key=lambda v: (v.name, v.network_id)):
        if view.keys:  # key bytes never reach the disk: ids and the primary flag only
            shown = dpb.NetworkView()
            shown.CopyFrom(view)
            for key in shown.keys:
                key.key = b""
            view = shown
        items.append(json_format.MessageToDict(view, preserving_proto_field_name=True))
    data = {"node_id": node_id, "networks": items}
    return json.dumps(data, indent=2, sort_keys=True)


class NetworkViews:
    """Current views by network ID, listeners, and the JSON dump."""

    def __init__(self, node_id: str, dump_path: Optional[str] = None,
                 log: Optional[logging.LoggerAdapter] = None) -> None:
        self.node_id = node_id
        self.dump_path = dump_path
        self.views: dict[str, dpb.NetworkView] = {}
        self._listeners: list[Listener] = []
        self.log = log or logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})
        self._writer: Optional[asyncio.Task[None]] = None
        self._dirty = False

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # ------------------------------------------------------------ changes --
    def replace(self, views: Iterable[dpb.NetworkView]) -> None:
        """A complete set: every network not in `views` is left."""
        views = list(views)
        for view in views:
            self.update(view)
        self.retain(v.network_id for v in views)

    def retain(self, network_ids: Iterable[str]) -> None:
        """Leaves every network not in `network_ids`."""
        keep = set(network_ids)
        for nid in sorted(set(self.views) - keep):
            self.remove(nid)

    def update(self, view: dpb.NetworkView) -> None:
        old = self.views.get(view.network_id)
        if old == view:
            return
        self.views[view.network_id] = view
        if old is None:
            self.log.info("joined network %s (%s, VNI %d, %s): %d endpoints, %d services",
                          view.name, view.network_id, view.vni, view.subnet,
                          len(view.endpoints), len(view.services))
        self._notify(view.network_id, view)
        self._changed()

    def remove(self, network_id: str) -> None:
        old = self.views.pop(network_id, None)
        if old is None:
            return
        self.log.info("left network %s (%s)", old.name, network_id)
        self._notify(network_id, None)
        self._changed()

    def _notify(self, network_id: str, view: Optional[dpb.NetworkView]) -> None:
        for listener in list(self._listeners):
            try:
                listener(network_id, view)
            except Exception:  # one broken consumer must not stop the agent
                self.log.exception("network view listener failed for %s", network_id)

    # --------------------------------------------------------------- dump --
    def _changed(self) -> None:
        if self.dump_path is None:
            return
        self._dirty = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.write()
            return
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_loop())

    async def _write_loop(self) -> None:
        while self._dirty:
            self._dirty = False
            text = views_json(self.node_id, self.views.values())
            await asyncio.to_thread(self._write_text, text)

    def write(self) -> None:
        """Writes the dump now (blocking)."""
        self._dirty = False
        self._write_text(views_json(self.node_id, self.views.values()))

    def _write_text(self, text: str) -> None:
        assert self.dump_path is not None
        tmp = f"{self.dump_path}.tmp"
        try:
            os.makedirs(os.path.dirname(self.dump_path) or ".", mode=0o700, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(tmp, self.dump_path)
        except OSError as exc:
            self.log.warning("cannot write %s: %s", self.dump_path, exc)

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
