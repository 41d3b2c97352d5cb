"""ExitWatcher logic with a scripted event stream (podman itself: test_podman_runtime)."""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, AsyncIterator

import pytest

from worker.podman_exits import ExitWatcher, event_container, split_json_lines
from worker.runtime import RuntimeError_

LOG = logging.LoggerAdapter(logging.getLogger("test"), {"node": "n1"})


class FakeStream:
    """A Response-like event stream fed by the test."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closed = False

    def send(self, cid: str, action: str) -> None:
        doc = {"Type": "container", "Action": action, "Actor": {"ID": cid, "Attributes": {}}}
        raw = json.dumps(doc).encode() + b"\n"
        self.queue.put_nowait(raw[:10])          # split across chunks
        self.queue.put_nowait(raw[10:])

    def end(self) -> None:
        self.queue.put_nowait(None)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self.queue.get()) is not None:
            yield chunk

    async def read(self) -> bytes:
        return b"boom"

    def close(self) -> None:
        self.closed = True


class Subscriber:
    def __init__(self) -> None:
        self.streams: list[FakeStream] = []
        self.params: list[dict[str, Any]] = []
        self.fail = False

    async def __call__(self, params: dict[str, Any]) -> Any:
        self.params.append(params)
        if self.fail:
            raise RuntimeError_("podman service unreachable")
        stream = FakeStream()
        self.streams.append(stream)
        return stream


def test_event_parsing() -> None:
    docs, rest = split_json_lines(b'{"a": 1}\n\nnot json\n{"b"')
    assert docs == [{"a": 1}] and rest == b'{"b"'
    assert event_container({"Type": "container", "Action": "died",
                            "Actor": {"ID": "abc"}}) == ("abc", "died")
    assert event_container({"Type": "image", "Action": "remove", "Actor": {"ID": "x"}}) == ("", "")
    assert event_container("junk") == ("", "")


async def test_events_wake_their_waiter_and_a_broken_stream_wakes_all() -> None:
    sub = Subscriber()
    watcher = ExitWatcher(sub, LOG, max_backoff=0.05)
    a = await watcher.register("a")
    b = await watcher.register("b")
    assert len(sub.streams) == 1 and sub.params[0]["filters"]["event"] == ["died", "remove"]
    assert sub.params[0]["stream"] is True and int(sub.params[0]["since"]) > 0
    sub.streams[0].send("a", "died")
    sub.streams[0].send("zzz", "died")
    await asyncio.wait_for(a.woken.wait(), 2)
    assert not b.woken.is_set()
    sub.streams[0].end()                          # the service went away
    await asyncio.wait_for(b.woken.wait(), 2)     # everyone looks again
    deadline = asyncio.get_running_loop().time() + 2
    while watcher.subscriptions < 2:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    assert sub.streams[0].closed
    watcher.unregister(a)
    c = await watcher.register("a")
    sub.streams[1].send("a", "remove")
    await asyncio.wait_for(c.woken.wait(), 2)
    watcher.unregister(b)
    watcher.unregister(c)
    await watcher.close()


async def test_register_fails_when_subscribing_fails() -> None:
    sub = Subscriber()
    sub.fail = True
    watcher = ExitWatcher(sub, LOG, max_backoff=0.05)
    with pytest.raises(RuntimeError_, match="unreachable"):
        await asyncio.wait_for(watcher.register("a"), 2)
    sub.fail = False                               # the next wait subscribes again
    waiter = await asyncio.wait_for(watcher.register("a"), 2)
    assert watcher.subscriptions == 1
    watcher.unregister(waiter)
    await watcher.close()


async def test_inspect_asks_again_when_it_races_the_exit(tmp_path) -> None:
    """podman's inspect of a container whose process just ended can fail with
    "no such process"; the runtime asks again (a bounded number of times) and
    passes any other failure through at once."""
    from worker import podman

    runtime = podman.PodmanRuntime(str(tmp_path))
    answers: list[Any] = [RuntimeError_("read /proc/4242/cgroup: no such process")] * 2 + \
        [{"Id": "c1", "State": {"Running": False, "ExitCode": 3}}]
    calls: list[str] = []

    async def scripted(method: str, path: str, **_: Any) -> tuple[int, Any]:
        calls.append(path)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return 200, answer

    runtime._call = scripted  # type: ignore[method-assign]
    assert (await runtime.inspect_raw("c1"))["State"]["ExitCode"] == 3
    assert calls == ["/containers/c1/json"] * 3

    answers[:] = [RuntimeError_("read /proc/1/cgroup: no such process")] * podman.INSPECT_ATTEMPTS
    with pytest.raises(RuntimeError_, match="no such process"):
        await runtime.inspect_raw("c1")
    assert answers == []
    answers[:] = [RuntimeError_("boom"), {"Id": "c1"}]
    with pytest.raises(RuntimeError_, match="boom"):
        await runtime.inspect_raw("c1")
    assert answers == [{"Id": "c1"}]          # not asked again
