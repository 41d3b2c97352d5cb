"""A task's registry credentials (`ContainerSpec.pull_options`) reach the node that runs
the task and no other (manager/dispatcher.py over a real one-node raft store): in the
complete assignment set a session gets first and in the changes after it."""
from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import AsyncIterator

from manager.dispatcher import Dispatcher, _Session
from manager.logbroker import LogBroker
from proto import dispatcher_pb2 as dpb
from proto import objects_pb2 as pb
from raft import actions
from tests.test_store import store  # noqa: F401  (the fixture: a one-node raft store)

AUTH = base64.urlsafe_b64encode(json.dumps(
    {"username": "a", "password": "pw-of-a", "serveraddress": "10.0.0.1:5443"}).encode()
).decode()


def task(task_id: str, node_id: str, auth: str = "") -> pb.Task:
    t = pb.Task(id=task_id, service_id="s1", node_id=node_id, desired_state=pb.RUNNING)
    t.status.state = pb.ASSIGNED
    t.spec.container.image = "10.0.0.1:5443/team/app:1"
    if auth:
        t.spec.container.pull_options.registry_auth = auth
    return t


def auths(message: dpb.AssignmentsMessage) -> dict[str, str]:
    """Task ID -> registry auth of each task the message assigns."""
    return {c.assignment.task.id: c.assignment.task.spec.container.pull_options.registry_auth
            for c in message.changes if c.assignment.WhichOneof("item") == "task"}


def test_pull_options_go_only_to_the_node_running_the_task(store) -> None:  # noqa: F811
    store.commit([actions.create(task("t1", "nA", AUTH)), actions.create(task("t2", "nB"))])

    async def scenario() -> None:
        disp = Dispatcher(store, "m1", LogBroker("m1"))
        disp.start()
        streams: dict[str, AsyncIterator[dpb.AssignmentsMessage]] = {}
        try:
            for node in ("nA", "nB"):
                sess = _Session(id=f"sess-{node}", node_id=node,
                                last_heartbeat=time.monotonic())
                disp.sessions[node], disp._by_id[sess.id] = sess, sess
                streams[node] = disp.Assignments(
                    dpb.AssignmentsRequest(session_id=sess.id), None).__aiter__()
            first_a = await asyncio.wait_for(streams["nA"].__anext__(), 10)
            first_b = await asyncio.wait_for(streams["nB"].__anext__(), 10)
            assert first_a.type == first_b.type == dpb.AssignmentsMessage.COMPLETE
            assert auths(first_a) == {"t1": AUTH}
            assert auths(first_b) == {"t2": ""}
            assert AUTH not in str(first_b)
            # a new task with credentials on A, then one without on B: each node hears
            # of its own only, and B never of the credentials
            store.commit([actions.create(task("t3", "nA", AUTH))])
            store.commit([actions.create(task("t4", "nB"))])
            seen_b: dict[str, str] = {}
            while "t4" not in seen_b:
                message = await asyncio.wait_for(streams["nB"].__anext__(), 10)
                assert AUTH not in str(message)
                seen_b.update(auths(message))
            assert seen_b == {"t4": ""}
            seen_a: dict[str, str] = {}
            while "t3" not in seen_a:
                seen_a.update(auths(await asyncio.wait_for(streams["nA"].__anext__(), 10)))
            assert seen_a == {"t3": AUTH}
        finally:
            await disp.stop()
            for stream in streams.values():
                await stream.aclose()   # type: ignore[attr-defined]

    asyncio.run(scenario())
