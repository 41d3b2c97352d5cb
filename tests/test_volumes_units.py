"""Named volumes, the pure parts: the control API's rules (listing with services,
filters, the in-use refusal, what a prune keeps, a node's answer), podman's volume
wire format, the agent's VolumeKeeper against an in-memory runtime, the manager's
VolumeBroker, and the `swarm volume` output."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from cli import commands_volume as cv
from cli.parsing import UsageError
from manager.controlapi import volumes
from manager.controlapi.common import Code, Refusal
from manager.volumebroker import NoAnswer, NotConnected, VolumeBroker
from proto import control_pb2 as cpb
from proto import dispatcher_pb2 as dpb
from proto import objects_pb2 as pb
from tests.test_worker_fakes import FakeRuntime, make_task, until
from worker import podman_volumes
from worker.runtime import RuntimeError_, VolumeInfo, VolumeInUse, VolumeNotFound
from worker.volumes import VolumeKeeper, as_node_volume, disk_usage

LOG = logging.LoggerAdapter(logging.getLogger("test"), {"node": "n1"})


def node(node_id: str, hostname: str, *vols: pb.NodeVolume) -> pb.Node:
    n = pb.Node(id=node_id)
    n.description.hostname = hostname
    n.status.state = pb.NodeStatus.READY
    n.status.volumes.extend(vols)
    return n


def vol(name: str, driver: str = "local", **labels: str) -> pb.NodeVolume:
    return pb.NodeVolume(name=name, driver=driver, labels=labels,
                         mountpoint=f"/var/lib/containers/storage/volumes/{name}/_data")


def mounting(task_id: str, node_id: str, *sources: str, service: str = "web",
             state: int = pb.RUNNING) -> pb.Task:
    task = make_task(task_id, node_id=node_id, state=state)
    task.service_name = service
    for source in sources:
        task.spec.container.mounts.append(pb.Mount(type=pb.Mount.VOLUME, source=source,
                                                   target=f"/{source}"))
    return task


NODES = [node("aaa111", "worker1", vol("data"), vol("cache", env="prod")),
         node("bbb222", "manager1", vol("data", tier="db"), vol("logs", driver="other"))]
TASKS = [mounting("t1", "aaa111", "data"), mounting("t2", "bbb222", "data", service="db"),
         mounting("t3", "bbb222", "logs", state=pb.SHUTDOWN),       # over: uses nothing
         mounting("t4", "aaa111", "cache", service="cron", state=pb.PENDING)]


# ------------------------------------------------------------ control rules --

def listing(**filters: object) -> list[tuple[str, str, list[str]]]:
    found = volumes.entries(NODES, TASKS, cpb.VolumeFilters(**filters))  # type: ignore[arg-type]
    return [(e.node_hostname, e.volume.name, list(e.services)) for e in found]


def test_entries_list_every_node_with_the_services_using_each_volume() -> None:
    assert listing() == [("manager1", "data", ["db"]), ("manager1", "logs", []),
                         ("worker1", "cache", ["cron"]), ("worker1", "data", ["web"])]
    entry = volumes.entries(NODES, TASKS)[3]
    assert entry.node_id == "aaa111" and list(entry.task_ids) == ["t1"]


def test_entries_filters() -> None:
    assert listing(nodes=["worker1"]) == [("worker1", "cache", ["cron"]),
                                          ("worker1", "data", ["web"])]
    assert listing(nodes=["bbb"]) == [("manager1", "data", ["db"]), ("manager1", "logs", [])]
    assert listing(nodes=["nowhere"]) == []
    assert listing(names=["at"]) == [("manager1", "data", ["db"]), ("worker1", "data", ["web"])]
    assert listing(labels=["env"]) == [("worker1", "cache", ["cron"])]
    assert listing(labels=["tier=db"]) == [("manager1", "data", ["db"])]
    assert listing(labels=["tier=web"]) == []
    assert listing(drivers=["other"]) == [("manager1", "logs", [])]
    assert listing(dangling="true") == [("manager1", "logs", [])]
    assert [e[1] for e in listing(dangling="0")] == ["data", "cache", "data"]
    with pytest.raises(Refusal, match='invalid filter "dangling=maybe"') as info:
        listing(dangling="maybe")
    assert info.value.code == Code.INVALID_ARGUMENT


def test_removal_is_refused_while_a_task_of_that_node_uses_the_volume() -> None:
    with pytest.raises(Refusal) as info:
        volumes.check_removable(NODES[0], "data", TASKS)
    assert info.value.code == Code.FAILED_PRECONDITION
    assert info.value.message == ("remove data: volume is in use - [web.1 (task t1)] on node "
                                  "worker1: remove the service or its mount first")
    volumes.check_removable(NODES[1], "logs", TASKS)      # its task is over
    volumes.check_removable(NODES[0], "other", TASKS)     # nobody mounts it
    with pytest.raises(Refusal, match="volume name missing"):
        volumes.check_removable(NODES[0], "", TASKS)


def test_prune_keeps_what_live_tasks_of_the_node_mount() -> None:
    assert volumes.needed(TASKS, "aaa111") == ["cache", "data"]
    assert volumes.needed(TASKS, "bbb222") == ["data"]
    assert volumes.needed(TASKS, "ccc") == []


def test_a_nodes_answer_becomes_a_refusal() -> None:
    R = dpb.VolumeResultRequest
    volumes.outcome(R(removed=["data"]), NODES[0], "data")
    with pytest.raises(Refusal) as info:
        volumes.outcome(R(failure=R.NOT_FOUND), NODES[0], "nope")
    assert (info.value.code, info.value.message) == (Code.NOT_FOUND,
                                                      "No such volume: nope (on node worker1)")
    with pytest.raises(Refusal) as info:
        volumes.outcome(R(failure=R.IN_USE, message="remove x: volume is in use - [c1]"),
                        NODES[0], "x")
    assert info.value.code == Code.FAILED_PRECONDITION
    assert info.value.message == "remove x: volume is in use - [c1] (on node worker1)"
    with pytest.raises(Refusal, match="node worker1: disk on fire"):
        volumes.outcome(R(failure=R.ERROR, message="disk on fire"), NODES[0])
    down = node("ccc", "worker9")
    down.status.state = pb.NodeStatus.DOWN
    refusal = volumes.unreachable(down)
    assert refusal.code == Code.UNAVAILABLE and "node worker9 is not connected (status down)" \
        in refusal.message


# ------------------------------------------------------------- podman wire --

def test_podman_volume_list_and_refusals() -> None:
    data = [{"Name": "web", "Driver": "local", "Mountpoint": "/s/volumes/web/_data",
             "CreatedAt": "2024-05-01T10:00:00.5+02:00", "Labels": {"a": "b"},
             "Options": {"type": "tmpfs", "device": "tmpfs"}, "Scope": "local"},
            {"Name": "anon", "Labels": None, "Options": None}, {"Driver": "local"}]
    found = podman_volumes.volumes_from(data)
    assert [v.name for v in found] == ["anon", "web"]
    web = found[1]
    assert (web.driver, web.labels, web.options, web.mountpoint) == (
        "local", {"a": "b"}, {"type": "tmpfs", "device": "tmpfs"}, "/s/volumes/web/_data")
    assert web.created_at == pytest.approx(1714550400.5)
    assert found[0].driver == "local" and found[0].labels == {} and found[0].created_at == 0
    assert podman_volumes.volumes_from(None) == []
    err = podman_volumes.removal_error("web", 404, {"cause": "no such volume"})
    assert isinstance(err, VolumeNotFound) and str(err) == "no such volume: web"
    err = podman_volumes.removal_error("web", 409, {"message": (
        "volume web is being used by the following container(s): 1234abcd, 5678ef: "
        "volume is being used")})
    assert isinstance(err, VolumeInUse)
    assert str(err) == "remove web: volume is in use - [1234abcd, 5678ef]"
    err = podman_volumes.removal_error("web", 500, {"message": "boom"})
    assert type(err) is RuntimeError_ and str(err) == "remove web: boom"


# ------------------------------------------------------------ agent keeper --

class VolumeRuntime(FakeRuntime):
    """FakeRuntime with named volumes; `in_use` maps a volume to the containers using it."""

    def __init__(self) -> None:
        super().__init__()
        self.volumes: dict[str, VolumeInfo] = {}
        self.in_use: dict[str, list[str]] = {}
        self.lists = 0
        self.fail_list = ""

    def add_volume(self, name: str, mountpoint: str = "", **labels: str) -> None:
        self.volumes[name] = VolumeInfo(name=name, labels=labels, mountpoint=mountpoint,
                                        created_at=1700000000.0)

    async def list_volumes(self) -> list[VolumeInfo]:
        self.lists += 1
        if self.fail_list:
            raise RuntimeError_(self.fail_list)
        return [self.volumes[n] for n in sorted(self.volumes)]

    async def remove_volume(self, name: str) -> None:
        if name not in self.volumes:
            raise VolumeNotFound(f"no such volume: {name}")
        if self.in_use.get(name):
            raise VolumeInUse(f"remove {name}: volume is in use - [{', '.join(self.in_use[name])}]")
        del self.volumes[name]


def test_disk_usage_and_node_volume(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"x" * 1000)
    (tmp_path / "b").write_bytes(b"y" * 24)
    (tmp_path / "hard").hardlink_to(tmp_path / "b")
    (tmp_path / "link").symlink_to(tmp_path / "d" / "a")
    assert disk_usage(str(tmp_path)) == 1024
    assert disk_usage(str(tmp_path / "missing")) == 0 and disk_usage("") == 0
    nv = as_node_volume(VolumeInfo("v", labels={"k": "v"}, options={"o": "1"}, mountpoint="/m",
                                   created_at=1700000000.25))
    assert (nv.name, nv.driver, dict(nv.labels), dict(nv.options), nv.mountpoint) == (
        "v", "local", {"k": "v"}, {"o": "1"}, "/m")
    assert nv.created_at.seconds == 1700000000
    assert nv.created_at.nanos == pytest.approx(250_000_000, abs=1000)   # float seconds
    assert not as_node_volume(VolumeInfo("w")).HasField("created_at")


async def test_keeper_reports_at_once_then_only_changes() -> None:
    runtime = VolumeRuntime()
    runtime.add_volume("data")
    keeper = VolumeKeeper(runtime, LOG, rescan_period=3600)
    sent: list[list[str]] = []

    async def send(vols: list[pb.NodeVolume]) -> None:
        sent.append([v.name for v in vols])
    job = asyncio.create_task(keeper.run(send))
    try:
        await until(lambda: sent == [["data"]], what="the first report")
        looks = runtime.lists
        keeper.poke()
        await until(lambda: runtime.lists > looks, what="a look after the poke")
        assert sent == [["data"]]                       # unchanged: nothing sent
        runtime.add_volume("cache")
        keeper.poke()
        await until(lambda: len(sent) == 2, what="the changed list")
        assert sent[1] == ["cache", "data"]
        runtime.fail_list = "podman is down"            # a failed look is tried again
        keeper.poke()
        looks = runtime.lists
        await until(lambda: runtime.lists > looks, what="the failed look")
        runtime.fail_list = ""
        keeper.poke()
        await until(lambda: len(sent) == 3, what="a report after the failure")
        assert sent[2] == ["cache", "data"]
    finally:
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)


async def test_keeper_rescans_on_its_period() -> None:
    runtime = VolumeRuntime()
    keeper = VolumeKeeper(runtime, LOG, rescan_period=0.02)
    sent: list[list[str]] = []

    async def send(vols: list[pb.NodeVolume]) -> None:
        sent.append([v.name for v in vols])
    job = asyncio.create_task(keeper.run(send))
    try:
        await until(lambda: sent == [[]], what="the first report")
        runtime.add_volume("by-hand")       # made on the node by a person: nobody pokes
        await until(lambda: sent == [[], ["by-hand"]], what="the periodic look")
    finally:
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)


async def test_keeper_removes_and_prunes(tmp_path: Path) -> None:
    runtime = VolumeRuntime()
    for name in ("data", "cache", "old", "older", "busy"):
        (tmp_path / name).mkdir()
        runtime.add_volume(name, mountpoint=str(tmp_path / name))
    (tmp_path / "old" / "f").write_bytes(b"z" * 2_000_000)
    (tmp_path / "older" / "g").write_bytes(b"z" * 97_152)
    runtime.in_use["busy"] = ["c0ffee"]
    keeper = VolumeKeeper(runtime, LOG)
    R, Q = dpb.VolumeResultRequest, dpb.VolumeRequest

    result = await keeper.execute(Q(id="r1", op=Q.REMOVE, name="cache"))
    assert (result.request_id, list(result.removed), result.failure) == ("r1", ["cache"], R.NONE)
    result = await keeper.execute(Q(id="r2", op=Q.REMOVE, name="cache"))
    assert result.failure == R.NOT_FOUND and result.message == "no such volume: cache"
    result = await keeper.execute(Q(id="r3", op=Q.REMOVE, name="cache", force=True))
    assert result.failure == R.NONE and list(result.removed) == []
    result = await keeper.execute(Q(id="r4", op=Q.REMOVE, name="busy"))
    assert result.failure == R.IN_USE and result.message == \
        "remove busy: volume is in use - [c0ffee]"
    result = await keeper.execute(Q(id="r5", op=Q.PRUNE, keep=["data"]))
    assert result.failure == R.NONE
    assert list(result.removed) == ["old", "older"] and result.reclaimed_bytes == 2_097_152
    assert sorted(runtime.volumes) == ["busy", "data"]


async def test_keeper_acts_once_per_request_and_answers_again() -> None:
    runtime = VolumeRuntime()
    runtime.add_volume("data")
    keeper = VolumeKeeper(runtime, LOG)
    answers: list[dpb.VolumeResultRequest] = []

    async def answer(result: dpb.VolumeResultRequest) -> None:
        answers.append(result)
    request = dpb.VolumeRequest(id="r1", op=dpb.VolumeRequest.REMOVE, name="data")
    keeper.requests([request], answer)
    await until(lambda: len(answers) == 1, what="the answer")
    assert list(answers[0].removed) == ["data"] and not runtime.volumes
    keeper.requests([request], answer)          # sent again (the answer was lost)
    await until(lambda: len(answers) == 2, what="the answer again")
    assert answers[1] == answers[0]             # the same answer, not a second removal
    keeper.requests([], answer)                 # answered: the managers no longer list it
    runtime.add_volume("data")
    keeper.requests([request], answer)          # an ID it forgot is new again
    await until(lambda: len(answers) == 3, what="a new answer")
    assert not runtime.volumes
    await keeper.close()


# ------------------------------------------------------------ volume broker --

async def test_broker_carries_a_request_to_its_node_and_back() -> None:
    broker = VolumeBroker("m1")
    nudged: list[str] = []
    broker.attach(nudged.append, lambda n: n in ("n1", "n2"))
    assert broker.connected("n1") and not broker.connected("n3")
    with pytest.raises(NotConnected):
        await broker.ask("n3", dpb.VolumeRequest(name="x"))
    job = asyncio.create_task(broker.ask("n1", dpb.VolumeRequest(name="data"), timeout=5))
    await until(lambda: nudged == ["n1"], what="the node's session to be nudged")
    [pending] = broker.requests_for("n1")
    assert pending.name == "data" and pending.id and broker.requests_for("n2") == []
    broker.answer("n2", dpb.VolumeResultRequest(request_id=pending.id))   # not the node asked
    broker.answer("n1", dpb.VolumeResultRequest(request_id="other"))
    await asyncio.sleep(0)
    assert not job.done()
    broker.answer("n1", dpb.VolumeResultRequest(request_id=pending.id, removed=["data"]))
    assert list((await job).removed) == ["data"]
    assert broker.requests_for("n1") == []
    with pytest.raises(NoAnswer):
        await broker.ask("n2", dpb.VolumeRequest(name="x"), timeout=0.01)
    assert broker.requests_for("n2") == []


# -------------------------------------------------------------------- CLI --

def entry(hostname: str, name: str, *services: str, **labels: str) -> cpb.VolumeEntry:
    v = vol(name, **labels)
    v.created_at.FromSeconds(1700000000)
    v.options["type"] = "tmpfs"
    return cpb.VolumeEntry(node_id=hostname + "-id", node_hostname=hostname, volume=v,
                           services=services)


def test_cli_filters() -> None:
    f = cv.request_filters(["node=worker1", "label=env", "label=tier=db", "name=da",
                            "driver=local", "dangling=true"])
    assert (list(f.nodes), list(f.names), list(f.labels), list(f.drivers), f.dangling) == (
        ["worker1"], ["da"], ["env", "tier=db"], ["local"], "true")
    with pytest.raises(UsageError, match='invalid filter "size"'):
        cv.request_filters(["size=1"])
    with pytest.raises(UsageError, match="dangling=true or dangling=false"):
        cv.request_filters(["dangling=yes please"])


def test_cli_table_and_format() -> None:
    rows = [cv.row(entry("manager1", "data", "db", "web")), cv.row(entry("worker1", "cache"))]
    assert cv.table(rows).splitlines() == [
        "NODE       DRIVER    VOLUME NAME   SERVICES",
        "manager1   local     data          db,web",
        "worker1    local     cache"]
    assert cv.render("{{.Node}}/{{.Name}}", rows, cv.COLUMNS, cv.FIELDS) == \
        "manager1/data\nworker1/cache"


def test_cli_inspect_document() -> None:
    doc = cv.inspect_doc(entry("worker1", "data", "web", env="prod"))
    assert doc == {"CreatedAt": "2023-11-14T22:13:20Z", "Driver": "local",
                   "Labels": {"env": "prod"},
                   "Mountpoint": "/var/lib/containers/storage/volumes/data/_data",
                   "Name": "data", "Options": {"type": "tmpfs"}, "Scope": "local",
                   "Node": "worker1", "NodeID": "worker1-id", "Services": ["web"]}


def test_cli_prune_output() -> None:
    assert cv.human_size(0) == "0B" and cv.human_size(1234) == "1.234kB"
    assert cv.human_size(2_097_152) == "2.097MB" and cv.human_size(3 * 10**9) == "3GB"
    assert cv.prune_report(["old", "older"], 2_097_152) == (
        "Deleted Volumes:\nold\nolder\n\nTotal reclaimed space: 2.097MB")
    assert cv.prune_report([], 0) == "Total reclaimed space: 0B"
    assert cv.confirmed("y\n") and cv.confirmed("YES") and not cv.confirmed("") \
        and not cv.confirmed("n") and not cv.confirmed(None)


@pytest.mark.parametrize("turns", range(6))
def test_the_volume_loop_ends_when_cancelled_as_a_change_arrives(turns: int) -> None:
    """The session cancels its loops when it ends; a change noticed at the same moment
    must not swallow the cancellation (asyncio.wait_for in Python 3.11 returns the
    finished wait instead of raising), or the agent waits for the loop forever and
    never reconnects (the chaos soak caught a manager's agent stuck that way)."""
    async def scenario() -> None:
        keeper = VolumeKeeper(FakeRuntime(), logging.LoggerAdapter(logging.getLogger("t"), {}),
                              rescan_period=30.0)
        sent: list[int] = []

        async def send(volumes: list[pb.NodeVolume]) -> None:
            sent.append(len(volumes))
        loop = asyncio.create_task(keeper.run(send))
        while not sent:
            await asyncio.sleep(0)
        for _ in range(3):
            await asyncio.sleep(0)              # the loop now waits for a change
        keeper.poke()
        for _ in range(turns):
            await asyncio.sleep(0)
        loop.cancel()
        done, _ = await asyncio.wait({loop}, timeout=2.0)
        assert done, f"the volume loop ignored its cancellation ({turns} turns after a change)"
        assert loop.cancelled()
    asyncio.run(scenario())
