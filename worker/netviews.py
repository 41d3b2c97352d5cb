"""The node's current network views, as the dispatcher last sent them.

The agent feeds `NetworkViews` from its assignment stream (a complete set,
then per-network updates and removals; see `NetworkView` in
dispatcher.proto). The data plane (`overlay_net`) reads `views` or registers
a listener, called on the event loop with (network ID, view) after each
change, view None when the node left the network; listeners run before the
tasks of the same assignment message are started. For operators and tests
`as_json()` renders them (encryption keys without their bytes); the node
serves that on its unix socket (LocalNode.GetNetworkViews) and never writes
it to disk, since views name networks and services. Nothing here touches the
host's networking.
"""
from __future__ import annotations

import json
import logging
from typing import Callable, Iterable, Optional

from google.protobuf import json_format

from proto import dispatcher_pb2 as dpb

Listener = Callable[[str, Optional[dpb.NetworkView]], None]


def views_json(node_id: str, views: Iterable[dpb.NetworkView]) -> str:
    """{"node_id": ..., "networks": [view, ...]} sorted by name, as JSON text, without
    the bytes of encryption keys."""
    items = []
    for view in sorted(views, key=lambda v: (v.name, v.network_id)):
        if view.keys:  # key bytes never leave the agent: ids and the primary flag only
            shown = dpb.NetworkView()
            shown.CopyFrom(view)
            for key in shown.keys:
                key.key = b""
            view = shown
        items.append(json_format.MessageToDict(view, preserving_proto_field_name=True))
    data = {"node_id": node_id, "networks": items}
    return json.dumps(data, indent=2, sort_keys=True)


class NetworkViews:
    """Current views by network ID and their listeners."""

    def __init__(self, node_id: str, log: Optional[logging.LoggerAdapter] = None) -> None:
        self.node_id = node_id
        self.views: dict[str, dpb.NetworkView] = {}
        self._listeners: list[Listener] = []
        self.log = log or logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

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

    def remove(self, network_id: str) -> None:
        old = self.views.pop(network_id, None)
        if old is None:
            return
        self.log.info("left network %s (%s)", old.name, network_id)
        self._notify(network_id, None)

    def _notify(self, network_id: str, view: Optional[dpb.NetworkView]) -> None:
        for listener in list(self._listeners):
            try:
                listener(network_id, view)
            except Exception:  # one broken consumer must not stop the agent
                self.log.exception("network view listener failed for %s", network_id)

    def as_json(self) -> str:
        """The views as `views_json` gives them (served by LocalNode.GetNetworkViews)."""
        return views_json(self.node_id, self.views.values())
