"""Sessions opened together record their nodes ready in one transaction
(manager/dispatcher.py `_register_node`, manager/registration.py): a thousand nodes
reconnecting after a leader change must not cost a thousand raft writes."""
from __future__ import annotations

import asyncio

from manager.dispatcher import Dispatcher
from manager.logbroker import LogBroker
from proto import dispatcher_pb2 as dpb
from proto import objects_pb2 as pb
from raft import actions
from raft.errors import Unavailable
from tests.test_store import store  # noqa: F401  (the fixture: a one-node raft store)


def request(hostname: str) -> dpb.SessionRequest:
    req = dpb.SessionRequest()
    req.description.hostname = hostname
    return req


def test_sessions_opened_together_share_one_transaction(store) -> None:  # noqa: F811
    known = pb.Node(id="n0", role=pb.MANAGER)
    known.spec.annotations.labels["keep"] = "me"
    known.status.state = pb.NodeStatus.DOWN
    store.commit([actions.create(known)])

    async def scenario() -> None:
        disp = Dispatcher(store, "m1", LogBroker("m1"))
        disp.start()
        try:
            before = store.version
            nodes = await asyncio.gather(*(disp._register_node(f"n{i}", request(f"h{i}"),
                                                                f"10.0.0.{i}")
                                           for i in range(50)))
            assert store.version - before <= 3  # one batch, or a few if the loop was slow
        finally:
            await disp.stop()
        assert [n.id for n in nodes] == [f"n{i}" for i in range(50)]
        for i, node in enumerate(nodes):
            assert node.status.state == pb.NodeStatus.READY
            assert node.description.hostname == f"h{i}" and node.status.addr == f"10.0.0.{i}"
        kept = store.get("node", "n0")
        assert kept.role == pb.MANAGER and kept.spec.annotations.labels["keep"] == "me"
        fresh = store.get("node", "n7")
        assert fresh.role == pb.WORKER and fresh.spec.availability == pb.NodeSpec.ACTIVE

    asyncio.run(scenario())


def test_a_stopped_dispatcher_fails_the_sessions_still_waiting(store) -> None:  # noqa: F811
    async def scenario() -> None:
        disp = Dispatcher(store, "m1", LogBroker("m1"))
        disp.start()
        waiting = asyncio.get_running_loop().create_task(
            disp._register_node("n1", request("h1"), ""))
        for _ in range(1000):  # until the session has queued its registration
            if disp.registrar.waiting or waiting.done():
                break
            await asyncio.sleep(0)
        await disp.stop()
        try:
            await waiting
        except Unavailable:
            return
        assert store.get("node", "n1") is not None  # or it made it before the stop

    asyncio.run(scenario())


def test_status_reports_become_updates_of_the_stored_tasks(store) -> None:  # noqa: F811
    t = pb.Task(id="t1", service_id="s1", node_id="n1", desired_state=pb.RUNNING)
    t.status.state = pb.ASSIGNED
    other = pb.Task(id="t2", service_id="s1", node_id="n2")
    other.status.state = pb.ASSIGNED
    store.commit([actions.create(t), actions.create(other)])
    stored = store.get("task", "t1")
    disp = Dispatcher(store, "m1", LogBroker("m1"))
    running = pb.TaskStatus(state=pb.RUNNING, message="started")
    late = pb.TaskStatus(state=pb.NEW)
    acts = disp._status_actions({"t1": ("n1", running), "t2": ("n1", running),  # not its node
                                 "t3": ("n1", running)})                          # no such task
    expected = pb.Task()
    expected.CopyFrom(stored)
    expected.status.CopyFrom(pb.TaskStatus(state=pb.RUNNING, message="started"))
    expected.status.running_since.CopyFrom(running.timestamp)
    assert acts == [actions.update(expected)]
    assert disp._status_actions({"t1": ("n1", late)}) == []  # states never go back


def test_a_stop_during_the_registration_commit_fails_its_sessions(store) -> None:  # noqa: F811
    """A leader that loses the lead while a batch of registrations is being committed
    cancels the registrar mid-commit: the sessions of that batch must hear it (an agent
    waits for its first session message without a deadline)."""
    async def scenario() -> None:
        disp = Dispatcher(store, "m1", LogBroker("m1"))
        committing = asyncio.Event()

        async def stuck_commit(acts, timeout: float = 5.0) -> int:
            committing.set()
            await asyncio.Event().wait()   # raft never answers before the stop
            return 0

        store.acommit = stuck_commit
        disp.start()
        waiting = asyncio.get_running_loop().create_task(
            disp._register_node("n1", request("h1"), ""))
        await asyncio.wait_for(committing.wait(), 5)
        await disp.stop()
        done, _ = await asyncio.wait([waiting], timeout=5)
        assert done, "the session waiting for its registration was never answered"
        assert isinstance(waiting.exception(), Unavailable)

    asyncio.run(scenario())


def test_a_failing_registration_batch_answers_its_sessions_and_the_next_goes_on(
        store) -> None:  # noqa: F811
    """An unexpected error in one batch reaches the sessions of that batch and leaves
    the registrar serving the next ones."""
    async def scenario() -> None:
        disp = Dispatcher(store, "m1", LogBroker("m1"))
        real = store.acommit
        calls = 0

        async def failing_once(acts, timeout: float = 5.0) -> int:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("boom")
            return await real(acts, timeout)

        store.acommit = failing_once
        disp.start()
        try:
            first = asyncio.get_running_loop().create_task(
                disp._register_node("n1", request("h1"), ""))
            done, _ = await asyncio.wait([first], timeout=5)
            assert done and first.exception() is not None
            node = await asyncio.wait_for(disp._register_node("n2", request("h2"), ""), 5)
            assert node is not None and node.status.state == pb.NodeStatus.READY
        finally:
            await disp.stop()

    asyncio.run(scenario())
