"""Secrets and configs without a cluster: reference resolution and checks
(manager.secretrefs), which secrets a node gets and what the dispatcher sends
(Dispatcher._file_changes), the files plan and the real per-task tmpfs
(worker.taskfiles), the task controller using them, and the CLI's rows."""
from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import grpc
import pytest

from cli import commands_secret
from manager import secretrefs
from manager.dispatcher import Dispatcher
from manager.logbroker import LogBroker
from proto import dispatcher_pb2 as dpb
from proto import dispatcher_pb2_grpc as dgrpc
from proto import model
from proto import objects_pb2 as pb
from tests.test_worker_agent import FakeDispatcher, until
from tests.test_worker_fakes import FakeRuntime, make_task
from worker import taskfiles
from worker.agent import Agent
from worker.controller import TaskController
from worker.taskfiles import FileError, TaskFiles


def secret(obj_id: str, name: str, data: bytes = b"s3cr3t") -> pb.Secret:
    return pb.Secret(id=obj_id, spec=pb.SecretSpec(annotations=pb.Annotations(name=name),
                                                   data=data))


def config(obj_id: str, name: str, data: bytes = b"cfg") -> pb.Config:
    return pb.Config(id=obj_id, spec=pb.ConfigSpec(annotations=pb.Annotations(name=name),
                                                   data=data))


SECRETS = [secret("aaa111", "db_pass"), secret("bbb222", "api_key")]
CONFIGS = [config("ccc333", "nginx.conf")]


def container(*secrets: pb.SecretReference, configs: tuple = ()) -> pb.ContainerSpec:
    c = pb.ContainerSpec(image="busybox")
    c.secrets.extend(secrets)
    c.configs.extend(configs)
    return c


# ------------------------------------------------------------- resolution --

def test_resolve_by_name_fills_id_target_and_default_mode() -> None:
    c = container(pb.SecretReference(secret_name="db_pass"),
                  configs=(pb.ConfigReference(config_name="nginx.conf"),))
    secretrefs.resolve(c, SECRETS, CONFIGS)
    ref = c.secrets[0]
    assert (ref.secret_id, ref.secret_name, ref.target, ref.mode) == \
        ("aaa111", "db_pass", "db_pass", 0o444)
    cref = c.configs[0]
    assert (cref.config_id, cref.target, cref.mode) == ("ccc333", "/nginx.conf", 0o444)


def test_resolve_by_id_prefix_keeps_given_target_owner_and_mode() -> None:
    c = container(pb.SecretReference(secret_name="bbb", target="key.txt", uid=33, gid=44,
                                     mode=0o400))
    secretrefs.resolve(c, SECRETS, CONFIGS)
    ref = c.secrets[0]
    assert (ref.secret_id, ref.secret_name, ref.target, ref.uid, ref.gid, ref.mode) == \
        ("bbb222", "api_key", "key.txt", 33, 44, 0o400)


def test_unknown_secret_is_named_like_docker() -> None:
    with pytest.raises(secretrefs.RefError, match="^secret not found: nope$"):
        secretrefs.resolve(container(pb.SecretReference(secret_name="nope")), SECRETS, CONFIGS)
    c = container(configs=(pb.ConfigReference(config_name="gone"),))
    with pytest.raises(secretrefs.RefError, match="^config not found: gone$"):
        secretrefs.resolve(c, SECRETS, CONFIGS)


@pytest.mark.parametrize("target", ["../etc/shadow", "a/../../b", "/", " x"])
def test_bad_targets_are_refused(target: str) -> None:
    with pytest.raises(secretrefs.RefError, match="invalid target"):
        secretrefs.resolve(container(pb.SecretReference(secret_name="db_pass", target=target)),
                           SECRETS, CONFIGS)


def test_relative_config_target_hangs_off_root_and_paths_must_not_clash() -> None:
    c = container(configs=(pb.ConfigReference(config_name="nginx.conf", target="etc/x.conf"),))
    secretrefs.resolve(c, SECRETS, CONFIGS)
    assert c.configs[0].target == "/etc/x.conf"
    clash = container(pb.SecretReference(secret_name="db_pass", target="same"),
                      pb.SecretReference(secret_name="api_key", target="same"))
    with pytest.raises(secretrefs.RefError, match="both mounted at /run/secrets/same"):
        secretrefs.resolve(clash, SECRETS, CONFIGS)
    clash = container(pb.SecretReference(secret_name="db_pass", target="/etc/x"),
                      configs=(pb.ConfigReference(config_name="nginx.conf", target="/etc/x"),))
    with pytest.raises(secretrefs.RefError, match="both mounted at /etc/x"):
        secretrefs.resolve(clash, SECRETS, CONFIGS)


def test_mode_out_of_range_is_refused() -> None:
    with pytest.raises(secretrefs.RefError, match="invalid mode"):
        secretrefs.resolve(container(pb.SecretReference(secret_name="db_pass", mode=0o17777)),
                           SECRETS, CONFIGS)


def test_data_limits() -> None:
    with pytest.raises(secretrefs.RefError, match="must not be empty"):
        secretrefs.check_data("secret", b"")
    with pytest.raises(secretrefs.RefError, match="limit is 500 KiB"):
        secretrefs.check_data("secret", b"x" * (500 * 1024 + 1))
    secretrefs.check_data("config", b"x" * (600 * 1024))


# ----------------------------------------------------- what a node receives --

def task_using(task_id: str, secret_ids: tuple = (), config_ids: tuple = (), *,
               state: int = pb.RUNNING, desired: int = pb.RUNNING) -> pb.Task:
    task = make_task(task_id, state=state, desired=desired)
    for sid in secret_ids:
        task.spec.container.secrets.append(pb.SecretReference(secret_id=sid, target=sid))
    for cid in config_ids:
        task.spec.container.configs.append(pb.ConfigReference(config_id=cid, target="/" + cid))
    return task


def test_wanted_counts_only_live_tasks_meant_to_run() -> None:
    tasks = [task_using("t1", ("s1",), ("c1",)),
             task_using("t2", ("s2",), state=pb.ASSIGNED),
             task_using("t3", ("s3",), state=pb.COMPLETE),          # over
             task_using("t4", ("s4",), desired=pb.SHUTDOWN),        # being stopped
             task_using("t5", ("s1",), ("c2",), state=pb.FAILED)]
    assert secretrefs.wanted(tasks) == ({"s1", "s2"}, {"c1"})
    assert secretrefs.wanted([]) == (set(), set())


class DictStore:
    """The one store read `_file_changes` makes (get by kind and ID)."""

    def __init__(self, *objects: object) -> None:
        self.objects = {(type(o).__name__.lower(), o.id): o for o in objects}

    def get(self, kind: str, obj_id: str) -> object:
        return self.objects.get((kind, obj_id))


def test_dispatcher_adds_then_withdraws_files_as_tasks_come_and_go() -> None:
    store = DictStore(secret("s1", "one"), secret("s2", "two"), config("c1", "conf"))
    disp = Dispatcher(store, "m1", LogBroker("m1"))
    given: dict[str, set[str]] = {"secret": set(), "config": set()}
    held = {"t1": task_using("t1", ("s1",), ("c1",))}
    adds, drops = disp._file_changes(held, given)
    assert [(c.assignment.WhichOneof("item"), c.action) for c in adds] == \
        [("secret", dpb.AssignmentChange.UPDATE), ("config", dpb.AssignmentChange.UPDATE)]
    assert adds[0].assignment.secret.spec.data == b"s3cr3t" and drops == []
    assert disp._file_changes(held, given) == ([], [])      # nothing new: nothing sent
    held["t2"] = task_using("t2", ("s1", "s2", "gone"))
    adds, drops = disp._file_changes(held, given)
    assert [c.assignment.secret.id for c in adds] == ["s2"] and drops == []
    held["t1"] = task_using("t1", ("s1",), ("c1",), state=pb.COMPLETE)
    del held["t2"]
    adds, drops = disp._file_changes(held, given)
    assert adds == []
    assert sorted((c.assignment.WhichOneof("item"), getattr(c.assignment, c.assignment.WhichOneof(
        "item")).id, c.action) for c in drops) == [
        ("config", "c1", dpb.AssignmentChange.REMOVE), ("secret", "s1", dpb.AssignmentChange.REMOVE),
        ("secret", "s2", dpb.AssignmentChange.REMOVE)]
    assert all(not c.assignment.secret.spec.data for c in drops)
    assert given == {"secret": set(), "config": set()}


# ------------------------------------------------------------ worker files --

def held_files(tmp_path: Path) -> TaskFiles:
    files = TaskFiles(str(tmp_path / "tasks"))
    files.secrets.update({"s1": secret("s1", "db_pass", b"hunter2\n")})
    files.configs.update({"c1": config("c1", "app.conf", b"port=80\n")})
    return files


def full_task(task_id: str = "t1") -> pb.Task:
    task = make_task(task_id)
    task.spec.container.secrets.append(pb.SecretReference(
        secret_id="s1", secret_name="db_pass", target="db", uid=1234, gid=5678, mode=0o400))
    task.spec.container.configs.append(pb.ConfigReference(
        config_id="c1", config_name="app.conf", target="/etc/app.conf"))
    return task


def test_plan_maps_references_to_container_paths(tmp_path: Path) -> None:
    files = held_files(tmp_path)
    entries = taskfiles.plan(full_task(), files.secrets, files.configs)
    assert [(e.kind, e.container_path, e.data, e.uid, e.gid, e.mode) for e in entries] == [
        ("secret", "/run/secrets/db", b"hunter2\n", 1234, 5678, 0o400),
        ("config", "/etc/app.conf", b"port=80\n", 0, 0, 0o444)]
    assert taskfiles.plan(make_task(), files.secrets, files.configs) == []
    with pytest.raises(FileError, match="secret db_pass .* was not received"):
        taskfiles.plan(full_task(), {}, files.configs)


def _mount_of(path: str) -> str:
    """The file system type mounted exactly at `path`, "" if none."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == path:
            return fields[fields.index("-") + 1]
    return ""


async def test_prepare_mounts_a_tmpfs_with_the_files_and_finish_removes_it(tmp_path: Path) -> None:
    files = held_files(tmp_path)
    try:
        mounts = await files.prepare(full_task())
        directory = files.task_dir("t1")
        assert _mount_of(directory) == "tmpfs"
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        by_target = {m.target: m for m in mounts}
        assert set(by_target) == {"/run/secrets/db", "/etc/app.conf"}
        assert all(m.read_only and m.source.startswith(directory + "/") for m in mounts)
        info = os.stat(by_target["/run/secrets/db"].source)
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o400, 1234, 5678)
        assert Path(by_target["/run/secrets/db"].source).read_bytes() == b"hunter2\n"
        assert Path(by_target["/etc/app.conf"].source).read_bytes() == b"port=80\n"
        await files.finish("t1")
        assert _mount_of(directory) == "" and not os.path.exists(directory)
        assert await files.prepare(make_task("t2")) == []       # no files: no tmpfs
        assert files.leftovers() == []
    finally:
        files.cleanup(keep=())


async def test_cleanup_removes_all_but_the_kept_tasks(tmp_path: Path) -> None:
    files = held_files(tmp_path)
    try:
        for task_id in ("t1", "t2", "t3"):
            await files.prepare(full_task(task_id))
        assert files.cleanup(keep={"t2"}) == ["t1", "t3"]
        assert files.leftovers() == ["t2"] and _mount_of(files.task_dir("t2")) == "tmpfs"
        assert _mount_of(files.task_dir("t1")) == ""
    finally:
        files.cleanup(keep=())
    assert files.leftovers() == []


async def _until(cond, what: str, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def test_controller_mounts_files_while_running_and_drops_them_at_exit(tmp_path: Path) -> None:
    files = held_files(tmp_path)
    runtime = FakeRuntime()
    reports: list[pb.TaskStatus] = []
    ctrl = TaskController(full_task(), runtime, lambda tid, st: reports.append(st),
                          node_id="node1", files=files)
    job = ctrl.start()
    try:
        await _until(lambda: any(s.state == pb.RUNNING for s in reports), "RUNNING")
        mounts = runtime.configs[ctrl.container_id].mounts
        assert {m.target for m in mounts} == {"/run/secrets/db", "/etc/app.conf"}
        assert _mount_of(files.task_dir("t1")) == "tmpfs"
        runtime.exit(ctrl.container_id, 0)
        await _until(lambda: files.leftovers() == [], "the tmpfs to go")
        assert any(s.state == pb.COMPLETE for s in reports)
    finally:
        await ctrl.cancel()
        files.cleanup(keep=())
    assert job.done()


async def test_controller_rejects_a_task_whose_secret_never_arrived(tmp_path: Path) -> None:
    files = TaskFiles(str(tmp_path / "tasks"))
    reports: list[pb.TaskStatus] = []
    ctrl = TaskController(full_task(), FakeRuntime(), lambda tid, st: reports.append(st),
                          node_id="node1", files=files)
    ctrl.start()
    try:
        await _until(lambda: any(s.state == pb.REJECTED for s in reports), "REJECTED")
        rejected = next(s for s in reports if s.state == pb.REJECTED)
        assert "secret db_pass" in rejected.err and "not received" in rejected.err
        assert files.leftovers() == []
    finally:
        await ctrl.cancel()


async def test_shutdown_releases_the_files(tmp_path: Path) -> None:
    files = held_files(tmp_path)
    reports: list[pb.TaskStatus] = []
    task = full_task()
    ctrl = TaskController(task, FakeRuntime(), lambda tid, st: reports.append(st),
                          node_id="node1", files=files)
    ctrl.start()
    try:
        await _until(lambda: any(s.state == pb.RUNNING for s in reports), "RUNNING")
        stopped = pb.Task()
        stopped.CopyFrom(task)
        stopped.desired_state = pb.SHUTDOWN
        ctrl.update(stopped)
        await _until(lambda: files.leftovers() == [], "the tmpfs to go after shutdown")
    finally:
        await ctrl.cancel()
        files.cleanup(keep=())


# -------------------------------------------------------------------- CLI --

def test_cli_rows_and_inspect_never_show_secret_data() -> None:
    now = time.time()
    sec = secret("sid", "db_pass", b"")
    sec.spec.annotations.labels["env"] = "prod"
    sec.meta.created_at.CopyFrom(model.timestamp(now - 90))
    sec.meta.updated_at.CopyFrom(model.timestamp(now - 90))
    row = commands_secret.row(sec, now)
    assert row == {"ID": "sid", "Name": "db_pass", "Driver": "",
                   "CreatedAt": "About a minute ago", "UpdatedAt": "About a minute ago",
                   "Labels": "env=prod"}
    text = commands_secret.table([row], commands_secret.SECRET_COLUMNS)
    assert text.splitlines()[0].split() == ["ID", "NAME", "DRIVER", "CREATED", "UPDATED"]
    doc = commands_secret.inspect_doc(sec)
    assert doc["Spec"] == {"Name": "db_pass", "Labels": {"env": "prod"}} and "Data" not in doc
    cfg = config("cid", "app.conf", b"port=80\n")
    assert commands_secret.inspect_doc(cfg)["Spec"]["Data"] == "cG9ydD04MAo="
    assert "Driver" not in commands_secret.row(cfg, now)
    assert commands_secret.table([], commands_secret.CONFIG_COLUMNS).split() == \
        ["ID", "NAME", "CREATED", "UPDATED"]


# ------------------------------------------------------------------ agent --

async def test_agent_holds_sent_secrets_in_memory_and_cleans_leftovers(tmp_path: Path) -> None:
    class WithFiles(FakeDispatcher):
        """Sends a secret and a config ahead of the tasks in the first (complete) set."""

        async def Assignments(self, request, context):  # noqa: N802
            first = True
            async for message in super().Assignments(request, context):
                if first:   # the files come before the tasks that use them
                    files = [dpb.AssignmentChange(assignment=dpb.Assignment(secret=secret(
                        "s1", "db_pass", b"hunter2\n"))),
                        dpb.AssignmentChange(assignment=dpb.Assignment(config=config(
                            "c1", "app.conf", b"port=80\n")))]
                    message.changes.insert(0, files[1])
                    message.changes.insert(0, files[0])
                    first = False
                yield message

    root = str(tmp_path / "tasks")
    leftover = TaskFiles(root)
    leftover.secrets["s1"] = secret("s1", "db_pass")
    await leftover.prepare(_with_secret("old"))
    dispatcher = WithFiles()
    dispatcher.tasks = {"t1": full_task("t1")}
    server = grpc.aio.server()
    dgrpc.add_DispatcherServicer_to_server(dispatcher, server)
    address = f"unix://{tmp_path}/d.sock"
    server.add_insecure_port(address)
    await server.start()
    runtime = FakeRuntime()
    agent = Agent("node1", runtime, address, hostname="h", files_root=root)
    job = asyncio.create_task(agent.run())
    try:
        await until(lambda: dispatcher.state("t1") == pb.RUNNING)
        assert agent.files.leftovers() == ["t1"]          # "old" was not assigned: removed
        assert set(agent.secrets) == {"s1"} and set(agent.configs) == {"c1"}
        cid = runtime.by_task("t1")[0].id
        source = next(m.source for m in runtime.configs[cid].mounts
                      if m.target == "/run/secrets/db")
        assert Path(source).read_bytes() == b"hunter2\n"
        await dispatcher.changes.put([
            dpb.AssignmentChange(assignment=dpb.Assignment(task=full_task("t1")),
                                 action=dpb.AssignmentChange.REMOVE),
            dpb.AssignmentChange(assignment=dpb.Assignment(secret=pb.Secret(id="s1")),
                                 action=dpb.AssignmentChange.REMOVE)])
        await until(lambda: agent.files.leftovers() == [] and not agent.secrets)
    finally:
        await asyncio.wait_for(agent.stop(), 5)
        await server.stop(0)
        await asyncio.gather(job, return_exceptions=True)
        TaskFiles(root).cleanup(keep=())


def _with_secret(task_id: str) -> pb.Task:
    task = make_task(task_id)
    task.spec.container.secrets.append(pb.SecretReference(secret_id="s1", secret_name="db_pass",
                                                          target="db_pass"))
    return task


# ------------------------------------------------------------------ watch --

def test_watch_events_never_carry_secret_data() -> None:
    from manager.watchapi import outgoing
    from proto import watch_pb2 as wpb

    event = wpb.WatchEvent(action=wpb.WatchEvent.UPDATE, version=7)
    event.object.secret.CopyFrom(secret("s1", "db_pass", b"hunter2"))
    event.old_object.secret.CopyFrom(secret("s1", "db_pass", b"hunter2"))
    for include_old in (True, False):
        out = outgoing(event, include_old)
        assert out.object.secret.id == "s1" and out.object.secret.spec.data == b""
        assert out.version == 7 and out.HasField("old_object") == include_old
        assert b"hunter2" not in out.SerializeToString()
    assert event.object.secret.spec.data == b"hunter2"        # the store's copy is untouched
    plain = wpb.WatchEvent(action=wpb.WatchEvent.CREATE)
    plain.object.config.CopyFrom(config("c1", "app.conf", b"port=80\n"))
    assert outgoing(plain, False) is plain                   # configs are not secret
