"""Unit tests for worker/netviews.py: the node's network views, listeners and their JSON."""
from __future__ import annotations

import json

from proto import dispatcher_pb2 as dpb
from worker.netviews import NetworkViews


def _view(nid: str, name: str, endpoints: int = 1) -> dpb.NetworkView:
    view = dpb.NetworkView(network_id=nid, name=name, vni=4097, subnet="10.0.1.0/24",
                           gateway="10.0.1.1")
    for i in range(endpoints):
        view.endpoints.add(task_id=f"t{i}", addr=f"10.0.1.{3 + i}/24")
    return view


def test_updates_removals_listeners_and_json():
    views = NetworkViews("node1")
    seen: list[tuple[str, object]] = []
    views.add_listener(lambda nid, v: seen.append((nid, v.name if v else None)))
    views.replace([_view("a", "back"), _view("b", "front")])
    assert sorted(views.views) == ["a", "b"]
    assert [n["name"] for n in json.loads(views.as_json())["networks"]] == ["back", "front"]
    views.update(_view("a", "back"))  # unchanged: no notification
    views.update(_view("a", "back", endpoints=2))
    views.retain(["a"])
    assert seen == [("a", "back"), ("b", "front"), ("a", "back"), ("b", None)]
    data = json.loads(views.as_json())
    assert data["node_id"] == "node1"
    assert [n["name"] for n in data["networks"]] == ["back"]
    assert [e["addr"] for e in data["networks"][0]["endpoints"]] == ["10.0.1.3/24",
                                                                     "10.0.1.4/24"]


def test_broken_listener_does_not_stop_updates():
    views = NetworkViews("node1")

    def broken(nid, view):
        raise RuntimeError("boom")

    views.add_listener(broken)
    views.update(_view("a", "back"))
    assert "a" in views.views


def test_json_never_holds_key_bytes():
    views = NetworkViews("node1")
    view = _view("a", "secret")
    view.encrypted = True
    view.keys.add(id=7, key=b"\x01" * 32, primary=True)
    views.update(view)
    data = json.loads(views.as_json())
    assert data["networks"][0]["keys"] == [{"id": 7, "primary": True}]
    assert views.views["a"].keys[0].key == b"\x01" * 32  # in memory for the data plane
