"""The hollow runtime: the shared runtime contract (tests/runtime_contract.py, which
includes a task controller driving it as it drives podman), its own controls (start
delay, rules, fail, logs, volumes), and a task that exits by itself."""
from __future__ import annotations

import asyncio
import itertools
import time
from typing import AsyncIterator

import pytest
import pytest_asyncio

from node.runtimes import hollow_factory
from proto import model
from proto import objects_pb2 as pb
from tests.runtime_contract import RuntimeContract, RuntimeHarness, wait_report
from tests.test_worker_fakes import make_task
from worker.controller import TaskController
from worker.hollow import (LABEL_EXIT_CODE, LABEL_RUN_FOR, LABEL_START_ERROR, HollowEngine,
                           HollowRule, HollowRuntime)
from worker.runtime import (VOLUME, ContainerConfig, ImagePullError, Mount, Runtime,
                            RuntimeError_, VolumeConfig, VolumeInUse, VolumeNotFound)

pytestmark = pytest.mark.timeout(30)

IMAGE = "registry.test/demo:1"
RUN_LABEL = "com.shoal.test.run"


class HollowHarness(RuntimeHarness):
    failure_text = "exec: /no/such/binary: not found"

    def __init__(self) -> None:
        self.engine = HollowEngine("test", start_delay=0.01)
        self.engine.rules["registry.test/no-such-image:1"] = HollowRule(
            pull_error="manifest unknown")
        self.runtime = HollowRuntime(self.engine)
        self.image, self.missing_image = IMAGE, "registry.test/no-such-image:1"
        self.labels = {RUN_LABEL: "run1"}
        self._names = itertools.count()

    def _config(self, hollow: dict[str, str], **kwargs: object) -> ContainerConfig:
        extra = kwargs.pop("labels", {})
        assert isinstance(extra, dict)
        return ContainerConfig(name=f"shoaltest.{next(self._names)}", image=IMAGE,
                               labels={**self.labels, **extra, **hollow}, **kwargs)  # type: ignore[arg-type]

    def running(self, **kwargs: object) -> ContainerConfig:
        return self._config({}, **kwargs)

    def exiting(self, code: int, **kwargs: object) -> ContainerConfig:
        return self._config({LABEL_EXIT_CODE: str(code), LABEL_RUN_FOR: "0.02"}, **kwargs)

    def start_fails(self) -> ContainerConfig:
        return self._config({LABEL_START_ERROR: self.failure_text})

    def running_task(self, task: pb.Task) -> None:
        """Hollow containers run until stopped unless a rule says otherwise."""

    async def kill(self, container_id: str) -> None:
        self.engine.fail(container_id, 137)

    async def reopen(self) -> Runtime:
        self.runtime = HollowRuntime(self.engine)
        return self.runtime


@pytest_asyncio.fixture
async def harness() -> AsyncIterator[HollowHarness]:
    h = HollowHarness()
    yield h
    await h.runtime.close()


class TestHollowContract(RuntimeContract):
    pass


async def test_start_takes_the_configured_delay() -> None:
    for delay in (0.0, 0.2):
        rt = HollowRuntime(node_id="n1", start_delay=delay)
        await rt.ensure_image(IMAGE)
        cid = await rt.create(ContainerConfig(name="a", image=IMAGE))
        began = time.monotonic()
        await rt.start(cid)
        took = time.monotonic() - began
        assert delay <= took < delay + 1.0, (delay, took)   # upper bound: a loaded machine
        assert (await rt.inspect(cid)).running
    assert HollowRuntime().engine.start_delay == 0.05
    with pytest.raises(ValueError, match="start delay"):
        HollowEngine(start_delay=-1)


async def test_image_rules_and_labels_decide_how_containers_end() -> None:
    engine = HollowEngine(start_delay=0)
    engine.rules["crash:1"] = HollowRule(exit_code=2, run_for=0.05)
    rt = HollowRuntime(engine)
    for image in ("crash:1", IMAGE):
        await rt.ensure_image(image)
    crash = await rt.create(ContainerConfig(name="c", image="crash:1"))
    relabelled = await rt.create(ContainerConfig(name="r", image="crash:1",
                                                 labels={LABEL_EXIT_CODE: "0"}))
    forever = await rt.create(ContainerConfig(name="f", image=IMAGE))
    for cid in (crash, relabelled, forever):
        await rt.start(cid)
    assert (await asyncio.wait_for(rt.wait(crash), 5)).exit_code == 2
    assert (await asyncio.wait_for(rt.wait(relabelled), 5)).exit_code == 0
    assert (await rt.inspect(forever)).running
    with pytest.raises(RuntimeError_, match="exit-code=<integer>"):
        await rt.create(ContainerConfig(name="bad", image=IMAGE, labels={LABEL_EXIT_CODE: "x"}))
    engine.rules["gone:1"] = HollowRule(pull_error="manifest unknown")
    with pytest.raises(ImagePullError, match="gone:1: manifest unknown"):
        await rt.ensure_image("gone:1")
    with pytest.raises(RuntimeError_, match="not known"):
        await rt.create(ContainerConfig(name="g", image="gone:1"))


async def test_fail_and_stop_signals() -> None:
    rt = HollowRuntime(start_delay=0)
    await rt.ensure_image(IMAGE)
    ids = [await rt.create(ContainerConfig(name=f"c{i}", image=IMAGE, stop_signal=sig))
           for i, sig in enumerate(["", "SIGUSR1", "", ""])]
    for cid in ids:
        await rt.start(cid)
    await rt.stop(ids[0], "", 10)
    await rt.stop(ids[1], "", 10)
    await rt.stop(ids[2], "INT", 10)
    rt.engine.fail(ids[3], 42, "oom")
    codes = [(await rt.inspect(cid)).exit_code for cid in ids]
    assert codes == [143, 138, 130, 42]
    assert (await rt.inspect(ids[3])).error == "oom"
    with pytest.raises(RuntimeError_, match="not running"):
        rt.engine.fail(ids[3], 1)
    await rt.start(ids[3])                            # a restart runs it again
    assert (await rt.inspect(ids[3])).running


async def test_logs_follow_until_exit_and_tail() -> None:
    rt = HollowRuntime(start_delay=0)
    await rt.ensure_image(IMAGE)
    cid = await rt.create(ContainerConfig(name="l", image=IMAGE))
    await rt.start(cid)
    for data in (b"1", b"2", b"3"):
        rt.engine.write(cid, data)
    assert [line.data async for line in rt.logs(cid, tail=2)] == [b"2", b"3"]
    assert [line.data async for line in rt.logs(cid, tail=0)] == []

    async def follow() -> list[bytes]:
        return [line.data async for line in rt.logs(cid, follow=True)]
    following = asyncio.ensure_future(follow())
    await asyncio.sleep(0)
    rt.engine.write(cid, b"4", "stderr")
    await rt.stop(cid, "", 0)
    assert await asyncio.wait_for(following, 5) == [b"1", b"2", b"3", b"4"]


async def test_named_volumes() -> None:
    rt = HollowRuntime(start_delay=0)
    await rt.ensure_volume(VolumeConfig("data", labels={"a": "b"}))
    await rt.ensure_volume(VolumeConfig("data", labels={"c": "d"}))   # existing: kept as is
    assert [(v.name, v.driver, v.labels) for v in await rt.list_volumes()] == \
        [("data", "local", {"a": "b"})]
    with pytest.raises(RuntimeError_, match="no volume driver 'nfs'"):
        await rt.ensure_volume(VolumeConfig("other", driver="nfs"))
    await rt.ensure_image(IMAGE)
    cid = await rt.create(ContainerConfig(name="v", image=IMAGE,
                                          mounts=[Mount("data", "/data", False, VOLUME)]))
    with pytest.raises(VolumeInUse, match="in use by v"):
        await rt.remove_volume("data")
    await rt.remove(cid)
    await rt.remove_volume("data")
    with pytest.raises(VolumeNotFound):
        await rt.remove_volume("data")


async def test_controller_sees_a_task_that_exits_by_itself() -> None:
    node_id = model.new_id()
    runtime = HollowRuntime(node_id=node_id, start_delay=0.0)
    task = make_task(model.new_id(), node_id=node_id, image=IMAGE)
    task.spec.container.labels[LABEL_EXIT_CODE] = "0"
    task.spec.container.labels[LABEL_RUN_FOR] = "0.05"
    reports: list[pb.TaskStatus] = []
    ctrl = TaskController(task, runtime, lambda tid, st: reports.append(st), node_id=node_id)
    job = ctrl.start()
    try:
        done = await wait_report(reports, pb.COMPLETE, 5)
        assert done.container_status.exit_code == 0
        ctrl.remove()
        await asyncio.wait_for(job, 5)
    finally:
        await ctrl.cancel()


async def test_the_node_factory_keeps_one_engine_per_node() -> None:
    """A node's agent that restarts in the same process finds its containers again."""
    engines: dict[str, HollowEngine] = {}
    make = hollow_factory(start_delay=0.0, engines=engines)
    first = make("n1")
    await first.ensure_image(IMAGE)
    cid = await first.create(ContainerConfig(name="a", image=IMAGE, labels={"k": "v"}))
    await first.start(cid)
    await first.close()
    again = make("n1")
    assert again is not first
    assert [s.id for s in await again.list({"k": "v"})] == [cid]
    assert await make("n2").list({}) == []
    assert set(engines) == {"n1", "n2"} and engines["n1"].start_delay == 0.0
    with pytest.raises(ValueError, match="start delay"):
        hollow_factory(start_delay=-0.1)
