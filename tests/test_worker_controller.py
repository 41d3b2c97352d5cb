"""Worker pure parts (naming, Task → ContainerConfig, forward-only states, status
batching) and the task state machine against an in-memory runtime."""
from __future__ import annotations

import asyncio

import pytest

from proto import dispatcher_pb2 as dpb
from proto import model
from proto import objects_pb2 as pb
from tests.test_worker_fakes import FakeClock, FakeRuntime, make_task, until
from worker import taskspec
from worker.controller import TaskController, exit_status
from worker.runtime import ContainerState
from worker.status import StatusReporter, make_status, moves_forward

# ------------------------------------------------------------- naming --


def test_container_name_replicated_uses_slot() -> None:
    assert taskspec.container_name(make_task("abc", slot=3), "n1") == "web.3.abc"


def test_container_name_global_uses_node_id() -> None:
    task = make_task("abc", slot=0, node_id="node7")
    assert taskspec.container_name(task, "node7") == "web.node7.abc"
    task.node_id = ""
    assert taskspec.container_name(task, "self") == "web.self.abc"


def test_labels_include_ours_and_user_labels_but_ours_win() -> None:
    task = make_task("t9", slot=2)
    task.spec.container.labels["team"] = "blue"
    task.spec.container.labels[taskspec.LABEL_TASK_ID] = "forged"
    labels = taskspec.container_labels(task, "n1", "cl1")
    assert labels == {
        "team": "blue",
        "com.shoal.cluster.id": "cl1",
        "com.shoal.node.id": "n1",
        "com.shoal.service.id": "svc1",
        "com.shoal.service.name": "web",
        "com.shoal.task.id": "t9",
        "com.shoal.task.name": "web.2",
        "com.shoal.task.slot": "2",
        # Docker's labels (issue 12)
        "com.docker.swarm.service.id": "svc1",
        "com.docker.swarm.service.name": "web",
        "com.docker.swarm.task": "",
        "com.docker.swarm.task.id": "t9",
        "com.docker.swarm.task.name": "web.2.t9",
        "com.docker.swarm.node.id": "n1",
    }
    assert taskspec.LABEL_CLUSTER_ID not in taskspec.container_labels(task, "n1")


def test_container_config_maps_the_spec() -> None:
    task = make_task("t1")
    spec = task.spec.container
    spec.command.extend(["/bin/sh", "-c"])
    spec.args.append("sleep 1")
    spec.env.append("A=1")
    spec.user, spec.dir, spec.hostname, spec.stop_signal = "nobody", "/tmp", "h1", "SIGINT"
    spec.stop_grace_period.CopyFrom(model.duration(3.5))
    spec.dns_nameservers.append("10.0.0.2")
    spec.tty, spec.read_only, spec.init = True, True, True
    task.spec.resources.limits.nano_cpus = 500_000_000
    task.spec.resources.limits.memory_bytes = 64 << 20
    config = taskspec.container_config(task, "n1")
    assert config.name == "web.1.t1"
    assert config.image == "busybox"
    assert config.command == ["/bin/sh", "-c"] and config.args == ["sleep 1"]
    assert config.env == ["A=1"]
    assert (config.user, config.workdir, config.hostname) == ("nobody", "/tmp", "h1")
    assert (config.stop_signal, config.stop_grace_period) == ("SIGINT", 3.5)
    assert (config.nano_cpus, config.memory_bytes) == (500_000_000, 64 << 20)
    assert config.dns_servers == ["10.0.0.2"]
    assert config.tty and config.read_only and config.init
    assert config.labels["com.shoal.task.id"] == "t1"


def test_stop_grace_defaults_to_ten_seconds_but_honours_zero() -> None:
    task = make_task()
    assert taskspec.stop_grace_period(task) == 10.0
    task.spec.container.stop_grace_period.CopyFrom(model.duration(0))
    assert taskspec.stop_grace_period(task) == 0.0

# ----------------------------------------------------- forward-only --


def test_moves_forward() -> None:
    assert moves_forward(pb.ACCEPTED, pb.PREPARING)
    assert not moves_forward(pb.RUNNING, pb.STARTING)
    assert not moves_forward(pb.RUNNING, pb.RUNNING)
    assert moves_forward(pb.RUNNING, pb.RUNNING, allow_same=True)
    assert not moves_forward(pb.FAILED, pb.RUNNING, allow_same=True)


def test_exit_status() -> None:
    def state(code: int, error: str = "") -> ContainerState:
        return ContainerState(id="c", name="n", labels={}, status="exited", running=False,
                              exit_code=code, error=error)
    assert exit_status(state(0)) == (pb.COMPLETE, "finished", "")
    assert exit_status(state(3)) == (pb.FAILED, "failed", "task: non-zero exit (3)")
    assert exit_status(state(127, "oci: no such file")) == (pb.FAILED, "failed", "oci: no such file")

# ------------------------------------------------------------ batching --


def test_reporter_keeps_only_the_newest_status() -> None:
    rep = StatusReporter()
    rep.report("a", make_status(pb.ACCEPTED, "accepted"))
    rep.report("a", make_status(pb.RUNNING, "started"))
    rep.report("a", make_status(pb.PREPARING, "late"))  # older: dropped
    rep.report("b", make_status(pb.ACCEPTED, "accepted"))
    batch = rep.take()
    assert [(u.task_id, u.status.state) for u in batch] == [("a", pb.RUNNING), ("b", pb.ACCEPTED)]
    assert len(rep) == 0


def test_reporter_take_limit_and_restore_keeps_newer() -> None:
    rep = StatusReporter(max_batch=100)
    for i in range(250):
        rep.report(f"t{i}", make_status(pb.ACCEPTED, ""))
    first = rep.take()
    assert len(first) == 100 and first[0].task_id == "t0"
    rep.report("t0", make_status(pb.RUNNING, ""))  # newer than the failed batch's
    rep.restore(first)
    pending = rep.pending()
    assert len(pending) == 150 + 100
    assert pending["t0"].state == pb.RUNNING and pending["t1"].state == pb.ACCEPTED


async def test_reporter_batches_within_the_delay() -> None:
    clock = FakeClock()
    rep = StatusReporter(max_delay=0.05, max_batch=100, clock=clock)
    sent: list[list[dpb.TaskStatusUpdate]] = []

    async def send(batch: list[dpb.TaskStatusUpdate]) -> None:
        sent.append(batch)

    runner = asyncio.create_task(rep.run(send))
    for i in range(5):  # one update every 5 ms: all within the 50 ms the first one waits
        rep.report(f"t{i}", make_status(pb.ACCEPTED, ""))
        await until(clock.pending, what="the reporter to wait for more updates")
        clock.advance(0.005)
    assert sent == []
    clock.advance(0.1)
    await until(lambda: sent, what="the first batch")
    assert [len(b) for b in sent] == [5]
    for i in range(230):  # full batches go at once, the rest after the delay
        rep.report(f"u{i}", make_status(pb.ACCEPTED, ""))
    await until(lambda: len(sent) == 3 and clock.pending(), what="two full batches sent")
    clock.advance(0.1)
    await until(lambda: len(sent) == 4, what="the last batch")
    assert [len(b) for b in sent[1:]] == [100, 100, 30]
    runner.cancel()


async def test_reporter_failed_send_keeps_the_updates() -> None:
    rep = StatusReporter(max_delay=0.001)
    rep.report("a", make_status(pb.RUNNING, ""))

    async def broken(batch: list[dpb.TaskStatusUpdate]) -> None:
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        await rep.run(broken)
    assert rep.pending()["a"].state == pb.RUNNING

# ---------------------------------------------------- state machine --


class Harness:
    """One controller on a FakeRuntime, recording every reported status."""

    def __init__(self, task: pb.Task, runtime: FakeRuntime | None = None,
                 container: ContainerState | None = None) -> None:
        self.runtime = runtime or FakeRuntime()
        self.reports: list[pb.TaskStatus] = []
        self.ctrl = TaskController(task, self.runtime, lambda tid, st: self.reports.append(st),
                                   node_id="node1", container=container)
        self.job = self.ctrl.start()

    @property
    def states(self) -> list[int]:
        return [s.state for s in self.reports]

    def first(self, state: int, with_pid: bool = False) -> pb.TaskStatus | None:
        return next((s for s in self.reports if s.state == state
                     and (not with_pid or s.container_status.pid > 0)), None)

    async def until(self, state: int, timeout: float = 2.0) -> pb.TaskStatus:
        await until(lambda: self.first(state), timeout,
                    f"{model.state_name(state)} (reported: {self.states})")
        return self.first(state)  # type: ignore[return-value]

    async def until_pid(self, timeout: float = 2.0) -> pb.TaskStatus:
        """The RUNNING report that carries the container's PID (it follows the first RUNNING)."""
        await until(lambda: self.first(pb.RUNNING, with_pid=True), timeout,
                    f"a RUNNING report with a PID (reported: {self.states})")
        return self.first(pb.RUNNING, with_pid=True)  # type: ignore[return-value]


async def test_task_runs_then_completes() -> None:
    h = Harness(make_task())
    first = await h.until(pb.RUNNING)
    assert first.container_status.pid == 0      # reported before anything asked for the PID
    running = await h.until_pid()
    assert h.states == [pb.ACCEPTED, pb.PREPARING, pb.READY, pb.STARTING, pb.RUNNING, pb.RUNNING]
    assert running.message == "started" and running.container_status.container_id
    cid = running.container_status.container_id
    assert h.runtime.containers[cid].name == "web.1.t1"
    h.runtime.exit(cid, 0)
    done = await h.until(pb.COMPLETE)
    assert done.message == "finished" and done.err == ""


async def test_the_pull_gets_the_tasks_registry_auth_and_nothing_else_does() -> None:
    task = make_task(image="10.0.0.1:5443/team/app:1")
    task.spec.container.pull_options.registry_auth = "eyJ1c2VybmFtZSI6ICJhIn0="
    h = Harness(task)
    await h.until(pb.RUNNING)
    assert h.runtime.pull_auths == ["eyJ1c2VybmFtZSI6ICJhIn0="]
    config = taskspec.container_config(task, "node1", "", "")
    assert config.registry_auth == ""          # the container's config does not carry it
    config.registry_auth = task.spec.container.pull_options.registry_auth
    assert "eyJ1c2VybmFtZSI6ICJhIn0" not in repr(config)   # (kept for a re-pull only)
    plain = Harness(make_task("t2"))
    await plain.until(pb.RUNNING)
    assert plain.runtime.pull_auths == [""]


async def test_non_zero_exit_fails_with_the_code() -> None:
    h = Harness(make_task())
    cid = (await h.until(pb.RUNNING)).container_status.container_id
    h.runtime.exit(cid, 3)
    failed = await h.until(pb.FAILED)
    assert failed.err == "task: non-zero exit (3)"
    assert failed.container_status.exit_code == 3


async def test_pull_failure_rejects() -> None:
    rt = FakeRuntime()
    rt.pull_errors["nope"] = "manifest unknown"
    h = Harness(make_task(image="nope"), rt)
    rejected = await h.until(pb.REJECTED)
    assert (rejected.message, rejected.err) == ("preparing", "manifest unknown")
    assert rt.count("create") == 0


async def test_create_failure_rejects_and_start_failure_fails() -> None:
    rt = FakeRuntime()
    rt.create_error = "name in use"
    assert (await Harness(make_task("a"), rt).until(pb.REJECTED)).err == "name in use"
    rt2 = FakeRuntime()
    rt2.start_error = "error setting rlimit type 7"
    failed = await Harness(make_task("b"), rt2).until(pb.FAILED)
    assert failed.err == "error setting rlimit type 7"


async def test_shutdown_stops_with_signal_and_grace_then_remove_removes() -> None:
    task = make_task()
    task.spec.container.stop_signal = "SIGQUIT"
    task.spec.container.stop_grace_period.CopyFrom(model.duration(2))
    h = Harness(task)
    cid = (await h.until(pb.RUNNING)).container_status.container_id
    task.desired_state = pb.SHUTDOWN
    h.ctrl.update(task)
    await h.until(pb.SHUTDOWN)
    assert h.runtime.stops == [(cid, "SIGQUIT", 2.0)]
    assert pb.FAILED not in h.states  # the stop's exit is not a failure
    assert cid in h.runtime.containers  # kept until the task goes away
    h.ctrl.remove()
    await asyncio.wait_for(h.job, 2)
    assert cid not in h.runtime.containers


async def test_desired_remove_removes_the_container() -> None:
    h = Harness(make_task())
    cid = (await h.until(pb.RUNNING)).container_status.container_id
    task = make_task(desired=pb.REMOVE)
    h.ctrl.update(task)
    await h.until(pb.SHUTDOWN)
    await until(lambda: cid not in h.runtime.containers, 1.0, "the container removed")


async def test_exited_task_keeps_its_state_on_shutdown() -> None:
    h = Harness(make_task())
    cid = (await h.until(pb.RUNNING)).container_status.container_id
    h.runtime.exit(cid, 1)
    await h.until(pb.FAILED)
    h.ctrl.update(make_task(desired=pb.SHUTDOWN))
    h.ctrl.remove()
    await asyncio.wait_for(h.job, 2)
    assert h.states[-1] == pb.FAILED and pb.SHUTDOWN not in h.states


async def test_shutdown_during_pull_never_creates() -> None:
    rt = FakeRuntime(pull_gate=asyncio.Event())  # the pull never finishes
    h = Harness(make_task(), rt)
    await h.until(pb.PREPARING)
    h.ctrl.update(make_task(desired=pb.SHUTDOWN))
    await h.until(pb.SHUTDOWN, timeout=1)
    assert rt.count("create") == 0


async def test_desired_ready_holds_before_start() -> None:
    h = Harness(make_task(desired=pb.READY))
    await h.until(pb.READY)
    await asyncio.wait_for(h.ctrl.idle.wait(), 2)  # parked until the task changes
    assert h.states[-1] == pb.READY and h.runtime.count("start") == 0
    h.ctrl.update(make_task(desired=pb.RUNNING))
    await h.until(pb.RUNNING)


async def test_never_reports_below_the_known_state() -> None:
    # The store already says READY (a previous agent created the container, now gone).
    h = Harness(make_task(state=pb.READY))
    await h.until_pid()
    assert h.states == [pb.STARTING, pb.RUNNING, pb.RUNNING]
    # Known RUNNING but no container any more: the task failed.
    h2 = Harness(make_task("t2", state=pb.RUNNING))
    failed = await h2.until(pb.FAILED)
    assert "container" in failed.err and h2.runtime.count("create") == 0


async def test_adopts_a_running_container_without_recreating() -> None:
    rt = FakeRuntime()
    task = make_task(state=pb.RUNNING)
    existing = rt.add(taskspec.container_labels(task, "node1"), running=True)
    h = Harness(task, rt, container=existing)
    running = await h.until(pb.RUNNING)
    assert running.container_status.container_id == existing.id
    assert rt.count("create") == 0 and rt.count("start") == 0
    rt.exit(existing.id, 137)
    assert (await h.until(pb.FAILED)).container_status.exit_code == 137


async def test_adopts_an_exited_container_as_complete() -> None:
    rt = FakeRuntime()
    task = make_task(state=pb.RUNNING)
    existing = rt.add(taskspec.container_labels(task, "node1"), running=False, exit_code=0)
    h = Harness(task, rt, container=existing)
    await h.until(pb.COMPLETE)
    assert rt.count("create") == 0


async def test_many_tasks_start_in_parallel() -> None:
    gate = asyncio.Event()
    rt = FakeRuntime(pull_gate=gate)
    reports: dict[str, int] = {}
    ctrls = [TaskController(make_task(f"t{i}"), rt, lambda tid, st: reports.__setitem__(tid, st.state),
                            node_id="node1") for i in range(40)]
    for ctrl in ctrls:
        ctrl.start()
    # every pull is under way while none has finished: the controllers do not wait for each other
    await until(lambda: rt.count("pull") == 40, 1.5, "all 40 pulls under way at once")
    gate.set()
    await until(lambda: len([s for s in reports.values() if s == pb.RUNNING]) == 40, 1.5,
                "40 running tasks")
    assert len({c.name for c in rt.containers.values()}) == 40
    for ctrl in ctrls:
        await ctrl.cancel()


def test_templates_expand_in_env_hostname_and_labels() -> None:
    from worker import taskspec
    task = make_task("t1", slot=3)
    task.service_name = "web"
    task.annotations.name = "web.3"
    task.spec.container.env.extend(["SLOT={{.Task.Slot}}", "WHERE={{ .Node.Hostname }}",
                                    "KEEP={{.Unknown}}"])
    task.spec.container.hostname = "{{.Service.Name}}-{{.Task.Slot}}"
    task.spec.container.labels["who"] = "{{.Node.ID}}"
    cfg = taskspec.container_config(task, "node9", node_hostname="box1")
    assert cfg.env == ["SLOT=3", "WHERE=box1", "KEEP={{.Unknown}}"]
    assert cfg.hostname == "web-3"
    assert cfg.labels["who"] == "node9"


def test_host_network_shares_the_node_namespace() -> None:
    from worker import taskspec
    from worker.runtime import HOST_NETWORK
    task = make_task("t1")
    assert taskspec.container_config(task, "n").network_ns == ""
    task.spec.networks.add(target="host")
    assert taskspec.container_config(task, "n").network_ns == HOST_NETWORK
