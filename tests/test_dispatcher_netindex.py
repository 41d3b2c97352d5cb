"""The dispatcher rebuilds its network index only for changes that may touch a network
view (manager/dispatcher.py `_net_index`), not for every store version: at a thousand
nodes every task status report is a new version, and each rebuild reads every task."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

from manager.allocator.networks import ingress_network
from manager.dispatcher import Dispatcher, _Session
from manager.logbroker import LogBroker
from pki.ca import RootCA
from proto import model
from proto import objects_pb2 as pb
from raft import actions
from tests.test_store import store  # noqa: F401  (the fixture: a one-node raft store)


async def until(cond: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def test_index_rebuilt_for_network_changes_only(store) -> None:  # noqa: F811
    async def scenario() -> None:
        disp = Dispatcher(store, "m1", LogBroker("m1"))
        disp.start()
        try:
            await until(lambda: disp._net_changed_at is not None, "the dispatcher's watch")
            queue: asyncio.Queue = asyncio.Queue()
            disp.sessions["n1"] = _Session(id="s1", node_id="n1", last_heartbeat=time.monotonic(),
                                           assignments=queue)
            first = disp._net_index()
            assert disp._net_index() is first

            plain = pb.Task(id=model.new_id(), service_id="svc", node_id="n1")
            await store.acommit([actions.create(plain)])
            batch = await asyncio.wait_for(queue.get(), 10)  # the watch has seen it
            assert [t.id for _, t in batch] == [plain.id]
            assert disp._net_index() is first  # no network in sight: the same index

            net = ingress_network(None)
            net.id = model.new_id()
            version = await store.acommit([actions.create(net)])
            await until(lambda: (disp._net_changed_at or 0) >= version, "the network event")
            rebuilt = disp._net_index()
            assert rebuilt is not first and net.id in rebuilt.views
            assert disp._net_index() is rebuilt

            attached = pb.Task(id=model.new_id(), service_id="svc", node_id="n1")
            attached.networks.add(network_id=net.id, addresses=["10.0.0.5/24"])
            version = await store.acommit([actions.create(attached)])
            await until(lambda: (disp._net_changed_at or 0) >= version, "the task's event")
            endpoints = disp._net_index().views[net.id].endpoints
            assert [e.task_id for e in endpoints] == [attached.id]
        finally:
            await disp.stop()

    asyncio.run(scenario())


def test_managers_read_once_per_store_version(store) -> None:  # noqa: F811
    disp = Dispatcher(store, "m1", LogBroker("m1"))
    manager = pb.Node(id="m1", role=pb.MANAGER)
    manager.manager_status.addr = "10.0.0.1:2377"
    store.commit([actions.create(manager)])
    first = disp._managers()
    assert [(p.node_id, p.addr) for p in first] == [("m1", "10.0.0.1:2377")]
    assert disp._managers() is first
    store.commit([actions.create(pb.Node(id="m2", role=pb.MANAGER))])
    assert sorted(p.node_id for p in disp._managers()) == ["m1", "m2"]


def test_period_and_roots_kept_in_memory_and_read_again_after_a_cluster_change(store) -> None:  # noqa: F811
    first, second = RootCA.create().cert_pem, RootCA.create().cert_pem
    cluster = pb.Cluster(id=model.new_id(), root_ca_cert=first)
    cluster.spec.annotations.name = "default"
    store.commit([actions.create(cluster)])

    async def scenario() -> None:
        disp = Dispatcher(store, "m1", LogBroker("m1"))
        disp.start()
        try:
            await until(lambda: disp._net_changed_at is not None, "the dispatcher's watch")
            assert disp.heartbeat_period() == 5.0 and disp._period == 5.0
            assert disp._roots()["issuing_ca"] == first and disp._roots_cache
            changed = pb.Cluster()
            changed.CopyFrom(store.get("cluster", cluster.id))
            changed.spec.dispatcher.heartbeat_period.CopyFrom(model.duration(2.0))
            changed.root_ca_cert = second
            await store.acommit([actions.update(changed)])
            await until(lambda: disp.heartbeat_period() == 2.0, "the new period")
            assert disp._roots()["issuing_ca"] == second
        finally:
            await disp.stop()

    asyncio.run(scenario())


def test_a_change_that_takes_networks_away_rebuilds_the_index(store) -> None:  # noqa: F811
    """An update whose new object names no network (a service whose VIP was released, a
    task whose attachments were dropped) changes the views as much as one that adds one:
    the old object counts too, or the index keeps the service's VIP indefinitely."""
    net = ingress_network(None)
    net.id = model.new_id()
    svc = pb.Service(id=model.new_id(), spec_version=1)
    svc.spec.annotations.name = "web"
    svc.endpoint.virtual_ips.add(network_id=net.id, addr="10.0.0.2/24")
    store.commit([actions.create(net), actions.create(svc)])

    async def scenario() -> None:
        disp = Dispatcher(store, "m1", LogBroker("m1"))
        disp.start()
        try:
            await until(lambda: disp._net_changed_at is not None, "the dispatcher's watch")
            assert [s.name for s in disp._net_index().views[net.id].services] == ["web"]
            released = pb.Service()
            released.CopyFrom(store.get("service", svc.id))
            released.ClearField("endpoint")       # the allocator released its VIP
            version = await store.acommit([actions.update(released)])
            await until(lambda: (disp._net_changed_at or 0) >= version,
                        "the release to mark the index stale")
            assert [s.name for s in disp._net_index().views[net.id].services] == []
        finally:
            await disp.stop()

    asyncio.run(scenario())
