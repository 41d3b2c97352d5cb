"""Issue 12 on real podman: every new ContainerSpec field reaches the container and
is checked from inside it. Tasks are built as pb specs and go through the agent's own
path (taskspec.container_config, mounts.volumes_needed, Runtime.ensure_volume,
create/start) or through a TaskController; no CLI is involved.

Every container carries this run's label and is removed with its anonymous volumes,
and every named volume a test makes is removed, when the test ends (through the
podman CLI, independent of the code under test).
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from proto import model
from proto import objects_pb2 as pb
from tests.podmanfixtures import RUN_LABEL, podman, podman_fixtures
from tests.test_worker_fakes import make_task
from worker import caps, mounts, taskspec
from worker.controller import TaskController
from worker.podman import PodmanRuntime
from worker.runtime import Mount, RuntimeError_, VolumeConfig

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

NODE = "mountsnode"
DOCKER_CAPEFF = 0xA80425FB   # Docker's default set as /proc/self/status shows it


service_dir, runtime = podman_fixtures(NODE, "podman-mounts")[:2]


@pytest.fixture
def run_id() -> Iterator[str]:
    """This test's label value and volume name prefix; its containers (with their
    anonymous volumes) and named volumes are removed afterwards."""
    value = uuid.uuid4().hex[:10]
    yield value
    ids = podman("ps", "-aq", "--filter", f"label={RUN_LABEL}={value}", check=False).stdout.split()
    if ids:
        podman("rm", "-f", "-v", "-t", "0", *ids, check=False)
    names = podman("volume", "ls", "-q", check=False).stdout.split()
    ours = [n for n in names if n.startswith(f"shoaltest-{value}")]
    if ours:
        podman("volume", "rm", "-f", *ours, check=False)


def volume_name(run_id: str, what: str) -> str:
    return f"shoaltest-{run_id}-{what}"


def volume_exists(name: str) -> bool:
    return podman("volume", "exists", name, check=False).returncode == 0


def shell_task(run_id: str, image: str, script: str) -> pb.Task:
    task = make_task(model.new_id(), node_id=NODE, image=image)
    task.spec.container.labels[RUN_LABEL] = run_id
    task.spec.container.command.extend(["sh", "-c", script])
    return task


async def run_task(rt: PodmanRuntime, task: pb.Task, remove: bool = False
                   ) -> tuple[int, list[str], str]:
    """The agent's path for one task: its named volumes, then the container; returns the
    exit code, the output lines (CR of a TTY stripped) and the container's ID."""
    config = taskspec.container_config(task, NODE)
    for volume in mounts.volumes_needed(task.spec.container):
        await rt.ensure_volume(volume)
    await rt.ensure_image(config.image)
    cid = await rt.create(config)
    await rt.start(cid)
    state = await asyncio.wait_for(rt.wait(cid), 60)
    lines = [line.data.decode().rstrip("\r") async for line in rt.logs(cid)]
    if remove:
        await rt.remove(cid)
    return state.exit_code, lines, cid


def cap_eff(lines: list[str]) -> int:
    return int(next(line for line in lines if line.startswith("CapEff:")).split()[1], 16)


# ------------------------------------------------------------------ volumes --

async def test_named_volume_created_with_options_reused_and_kept(
        runtime: PodmanRuntime, run_id: str, demo_image: str) -> None:
    name = volume_name(run_id, "data")
    writer = shell_task(run_id, demo_image, "echo kept > /data/file")
    mount = writer.spec.container.mounts.add(type=pb.Mount.VOLUME, source=name, target="/data")
    mount.volume_options.labels["tier"] = "db"
    code, _, _ = await run_task(runtime, writer, remove=True)
    assert code == 0
    inspected = json.loads(podman("volume", "inspect", name).stdout)[0]
    assert inspected["Driver"] == "local" and inspected["Labels"] == {"tier": "db"}
    # a later task (any service) reuses it as it is, and the removal of the container
    # that used it left it alone
    reader = shell_task(run_id, demo_image,
                        "cat /data/file; touch /data/other 2>/dev/null || echo read-only")
    reader.spec.container.mounts.add(type=pb.Mount.VOLUME, source=name, target="/data",
                                     read_only=True)
    assert (await run_task(runtime, reader, remove=True))[:2] == (0, ["kept", "read-only"])
    assert volume_exists(name)
    # asking for another driver than the existing volume's is refused
    with pytest.raises(RuntimeError_) as caught:
        await runtime.ensure_volume(VolumeConfig(name, driver="nfsplugin"))
    assert 'exists on this node with driver "local", not "nfsplugin"' in str(caught.value)


async def test_tmpfs_volume_options_reach_podman(runtime: PodmanRuntime, run_id: str,
                                                 demo_image: str) -> None:
    script = ("grep ' /data ' /proc/mounts | cut -d' ' -f1-4;"
              " dd if=/dev/zero of=/data/big bs=1024 count=2048 2>/dev/null && echo wrote"
              " || echo full")
    task = shell_task(run_id, demo_image, script)
    mount = task.spec.container.mounts.add(type=pb.Mount.VOLUME,
                                           source=volume_name(run_id, "mem"), target="/data")
    mount.volume_options.driver = "local"
    mount.volume_options.driver_options.update({"type": "tmpfs", "device": "tmpfs",
                                                "o": "size=1m"})
    code, lines, _ = await run_task(runtime, task)
    assert code == 0
    assert lines[0].split()[:3] == ["tmpfs", "/data", "tmpfs"]
    assert "size=1024k" in lines[0]
    assert lines[1] == "full"
    # without "o": still a tmpfs, so the options reach podman
    plain = shell_task(run_id, demo_image, "grep ' /data ' /proc/mounts | cut -d' ' -f3")
    other = plain.spec.container.mounts.add(type=pb.Mount.VOLUME,
                                            source=volume_name(run_id, "mem2"), target="/data")
    other.volume_options.driver_options.update({"type": "tmpfs", "device": "tmpfs"})
    assert (await run_task(runtime, plain))[:2] == (0, ["tmpfs"])


async def test_unknown_volume_driver_is_refused_clearly(runtime: PodmanRuntime,
                                                        run_id: str) -> None:
    name = volume_name(run_id, "plugin")
    with pytest.raises(RuntimeError_) as caught:
        await runtime.ensure_volume(VolumeConfig(name, driver="nosuchdriver"))
    assert str(caught.value).startswith(
        f'volume "{name}": the volume driver "nosuchdriver" is not available on this node '
        "(it has: local")
    assert not volume_exists(name)


async def test_new_volume_is_seeded_from_the_image_unless_nocopy(
        runtime: PodmanRuntime, run_id: str, demo_image: str) -> None:
    # the demo image has /etc/passwd and /etc/group: Docker copies them into a new volume
    seeded = shell_task(run_id, demo_image, "ls /etc")
    seeded.spec.container.mounts.add(type=pb.Mount.VOLUME, source=volume_name(run_id, "copy"),
                                     target="/etc")
    code, lines, _ = await run_task(runtime, seeded)
    assert code == 0 and {"passwd", "group"} <= set(lines)
    bare = shell_task(run_id, demo_image, "ls /etc")
    mount = bare.spec.container.mounts.add(type=pb.Mount.VOLUME,
                                           source=volume_name(run_id, "nocopy"), target="/etc")
    mount.volume_options.no_copy = True
    code, lines, _ = await run_task(runtime, bare)
    assert code == 0 and "passwd" not in lines and "group" not in lines


async def test_anonymous_volume_lives_and_dies_with_its_container(
        runtime: PodmanRuntime, run_id: str, demo_image: str) -> None:
    task = shell_task(run_id, demo_image, "echo x > /scratch/f && cat /scratch/f")
    task.spec.container.mounts.add(type=pb.Mount.VOLUME, target="/scratch")
    code, lines, cid = await run_task(runtime, task)
    assert (code, lines) == (0, ["x"])
    (mount,) = (await runtime.inspect_raw(cid))["Mounts"]
    anonymous = mount["Name"]
    assert mount["Type"] == "volume" and volume_exists(anonymous)
    await runtime.remove(cid)
    assert not volume_exists(anonymous)


# -------------------------------------------------------------- binds, tmpfs --

async def test_read_only_bind_reads_and_cannot_write(runtime: PodmanRuntime, run_id: str,
                                                     demo_image: str, tmp_path: Path) -> None:
    (tmp_path / "hello").write_text("from the node\n")
    task = shell_task(run_id, demo_image,
                      "cat /host/hello; touch /host/new 2>/dev/null || echo refused")
    mount = task.spec.container.mounts.add(type=pb.Mount.BIND, source=str(tmp_path),
                                           target="/host", read_only=True)
    mount.bind_options.propagation = "rslave"
    code, lines, cid = await run_task(runtime, task)
    assert (code, lines) == (0, ["from the node", "refused"])
    assert not (tmp_path / "new").exists()
    (inspected,) = (await runtime.inspect_raw(cid))["Mounts"]
    assert (inspected["Source"], inspected["RW"], inspected["Propagation"]) == (
        str(tmp_path), False, "rslave")
    # a writable bind writes through to the node
    task = shell_task(run_id, demo_image, "echo yes > /host/new")
    task.spec.container.mounts.add(type=pb.Mount.BIND, source=str(tmp_path), target="/host")
    assert (await run_task(runtime, task))[0] == 0
    assert (tmp_path / "new").read_text() == "yes\n"


async def test_tmpfs_mount_size_and_mode(runtime: PodmanRuntime, run_id: str,
                                         demo_image: str) -> None:
    script = ("grep ' /cache ' /proc/mounts | cut -d' ' -f1-4; stat -c %a /cache;"
              " dd if=/dev/zero of=/cache/big bs=1024 count=2048 2>/dev/null && echo wrote"
              " || echo full")
    task = shell_task(run_id, demo_image, script)
    mount = task.spec.container.mounts.add(type=pb.Mount.TMPFS, target="/cache")
    mount.tmpfs_options.size_bytes = 1 << 20
    mount.tmpfs_options.mode = 0o700
    code, lines, _ = await run_task(runtime, task)
    assert code == 0
    fields = lines[0].split()
    assert fields[:3] == ["tmpfs", "/cache", "tmpfs"]     # memory: nothing on the node's disk
    assert {"size=1024k", "mode=700", "noexec", "nosuid", "nodev"} <= set(fields[3].split(","))
    assert lines[1:] == ["700", "full"]


async def test_read_only_root_filesystem(runtime: PodmanRuntime, run_id: str,
                                         demo_image: str) -> None:
    task = shell_task(run_id, demo_image,
                      "touch /x 2>/dev/null && echo wrote || echo ro;"
                      " touch /tmp/x 2>/dev/null && echo wrote || echo ro")
    task.spec.container.read_only = True
    assert (await run_task(runtime, task))[:2] == (0, ["ro", "ro"])
    task = shell_task(run_id, demo_image, "touch /x && echo wrote")
    assert (await run_task(runtime, task))[:2] == (0, ["wrote"])


async def test_missing_bind_source_rejects_the_task(runtime: PodmanRuntime, run_id: str,
                                                    demo_image: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "not-there")
    task = shell_task(run_id, demo_image, "true")
    task.spec.container.mounts.add(type=pb.Mount.BIND, source=missing, target="/x")
    reports: list[pb.TaskStatus] = []
    ctrl = TaskController(task, runtime, lambda tid, st: reports.append(st), node_id=NODE)
    job = ctrl.start()
    try:
        deadline = time.monotonic() + 60
        while not any(s.state == pb.REJECTED for s in reports):
            assert time.monotonic() < deadline, [(s.state, s.err) for s in reports]
            await asyncio.sleep(0.02)
        assert [s.state for s in reports] == [pb.ACCEPTED, pb.PREPARING, pb.REJECTED]
        assert reports[-1].err == ('invalid mount config for type "bind": bind source path '
                                   f"does not exist: {missing}")
        assert podman("ps", "-aq", "--filter", f"label={RUN_LABEL}={run_id}").stdout == ""
        ctrl.remove()
        await asyncio.wait_for(job, 30)
    finally:
        await ctrl.cancel()


async def test_controller_keeps_named_volumes_and_drops_anonymous_ones(
        runtime: PodmanRuntime, run_id: str, demo_image: str) -> None:
    """A task's container removed by its controller (the task left the node) takes its
    anonymous volume along; the named volume and its data stay for the next task."""
    name = volume_name(run_id, "keep")
    outputs: list[list[str]] = []
    for script in ("echo one > /data/f; echo tmp > /scratch/f", "cat /data/f; ls /scratch"):
        task = shell_task(run_id, demo_image, script)
        task.spec.container.mounts.add(type=pb.Mount.VOLUME, source=name, target="/data")
        task.spec.container.mounts.add(type=pb.Mount.VOLUME, target="/scratch")
        reports: list[pb.TaskStatus] = []
        ctrl = TaskController(task, runtime, lambda tid, st: reports.append(st), node_id=NODE)
        job = ctrl.start()
        try:
            deadline = time.monotonic() + 60
            while not any(s.state == pb.COMPLETE for s in reports):
                assert time.monotonic() < deadline, [(s.state, s.err) for s in reports]
                await asyncio.sleep(0.02)
            cid = ctrl.container_id
            outputs.append([line.data.decode() async for line in runtime.logs(cid)])
            anonymous = [m["Name"] for m in (await runtime.inspect_raw(cid))["Mounts"]
                         if m["Destination"] == "/scratch"]
            assert anonymous and volume_exists(anonymous[0])
            ctrl.remove()
            await asyncio.wait_for(job, 30)
        finally:
            await ctrl.cancel()
        assert not volume_exists(anonymous[0])
        assert volume_exists(name)
    assert outputs == [[], ["one"]]      # the second task's anonymous volume was new


# ------------------------------------------------- Docker's container defaults --

async def test_capabilities_are_dockers(runtime: PodmanRuntime, run_id: str,
                                        demo_image: str) -> None:
    probe = "grep -E '^Cap(Eff|Bnd):' /proc/self/status"
    code, lines, _ = await run_task(runtime, shell_task(run_id, demo_image, probe))
    assert code == 0 and cap_eff(lines) == DOCKER_CAPEFF
    assert caps.names_of(cap_eff(lines)) == list(caps.DOCKER_DEFAULT)
    task = shell_task(run_id, demo_image, probe)
    task.spec.container.cap_add.append("CAP_NET_ADMIN")
    task.spec.container.cap_drop.extend(["CAP_NET_RAW", "CAP_MKNOD"])
    code, lines, _ = await run_task(runtime, task)
    assert cap_eff(lines) == (DOCKER_CAPEFF | 1 << 12) & ~(1 << 13) & ~(1 << 27)
    task = shell_task(run_id, demo_image, probe)
    task.spec.container.cap_drop.append("ALL")
    task.spec.container.cap_add.append("CAP_CHOWN")
    code, lines, _ = await run_task(runtime, task)
    assert cap_eff(lines) == 1
    task = shell_task(run_id, demo_image, probe)
    task.spec.container.cap_add.append("ALL")
    code, lines, _ = await run_task(runtime, task)
    assert cap_eff(lines) == caps.bitmask(caps.grantable())


async def test_non_root_processes_get_no_effective_capability_unasked(
        runtime: PodmanRuntime, run_id: str, demo_image: str, tmp_path: Path) -> None:
    """As in Docker, a process that is not root has no effective capability from the
    default set (podman would make every cap_add effective for it): by the spec's user
    or by the image's USER. What the spec adds itself is given (podman's rule)."""
    probe = "grep -E '^Cap(Eff|Bnd):' /proc/self/status"
    task = shell_task(run_id, demo_image, probe)
    task.spec.container.user = "nobody"
    code, lines, _ = await run_task(runtime, task)
    bounding = int(lines[1].split()[1], 16)
    assert code == 0 and cap_eff(lines) == 0
    assert bounding and bounding & ~DOCKER_CAPEFF == 0
    asked = shell_task(run_id, demo_image, probe)
    asked.spec.container.user = "nobody"
    asked.spec.container.cap_add.append("CAP_NET_BIND_SERVICE")
    assert cap_eff((await run_task(runtime, asked))[1]) == 1 << 10
    # an image whose USER is nobody, the spec naming no user
    image = f"localhost/shoaltest-user-{run_id}:1"
    (tmp_path / "Containerfile").write_text(f"FROM {demo_image}\nUSER nobody\n")
    podman("build", "-q", "-t", image, str(tmp_path))
    try:
        task = shell_task(run_id, image, "id -u; " + probe)
        code, lines, _ = await run_task(runtime, task, remove=True)
        assert code == 0 and lines[0] == "65534" and cap_eff(lines) == 0
    finally:
        podman("rmi", "-f", image, check=False)


async def test_net_raw_lets_root_open_a_raw_socket(runtime: PodmanRuntime, run_id: str,
                                                   demo_image: str) -> None:
    # busybox ping opens a raw ICMP socket: "permission denied (are you root?)" without it
    task = shell_task(run_id, demo_image, "ping -c 1 -W 2 127.0.0.1 >/dev/null && echo pong")
    assert (await run_task(runtime, task))[:2] == (0, ["pong"])
    # what users saw with podman's defaults (no NET_RAW)
    task = shell_task(run_id, demo_image, "ping -c 1 -W 2 127.0.0.1 2>&1 | tail -1")
    task.spec.container.cap_drop.append("CAP_NET_RAW")
    assert (await run_task(runtime, task))[:2] == (0, ["ping: permission denied (are you root?)"])


async def test_sysctls_ulimits_hosts_groups_init_tty(runtime: PodmanRuntime, run_id: str,
                                                     demo_image: str) -> None:
    script = ("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax;"
              " ulimit -n; ulimit -Hn;"
              " grep -E '^10[.]7[.]0[.]' /etc/hosts;"
              " id -G;"
              " tr '\\0' ' ' < /proc/1/cmdline; echo;"
              " test -t 1 && echo tty")
    task = shell_task(run_id, demo_image, script)
    spec = task.spec.container
    spec.sysctls.update({"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789"})
    spec.ulimits.add(name="nofile", soft=1000, hard=2000)
    spec.hosts.extend(["10.7.0.5 db db.internal", "10.7.0.6 api"])
    spec.groups.extend(["1234", "nogroup"])
    spec.init = True
    spec.tty = True
    code, lines, _ = await run_task(runtime, task)
    assert code == 0, lines
    assert lines[:4] == ["1", "123456789", "1000", "2000"]
    hosts = [line.split() for line in lines[4:-3]]
    assert ["10.7.0.5", "db"] in hosts and ["10.7.0.5", "db.internal"] in hosts
    assert ["10.7.0.6", "api"] in hosts
    assert {"1234", "65534"} <= set(lines[-3].split())
    assert "init" in lines[-2].split()[0] and lines[-2].split()[1:4] == ["--", "sh", "-c"]
    assert lines[-1] == "tty"
    # the same task without init and tty: the shell is PID 1, no terminal
    plain = shell_task(run_id, demo_image, "tr '\\0' ' ' < /proc/1/cmdline; echo;"
                                           " test -t 1 && echo tty || echo notty")
    assert (await run_task(runtime, plain))[1] == ["sh -c " + plain.spec.container.command[2]
                                                   + " ", "notty"]


async def test_dns_options_and_hosts_in_a_task_namespace(runtime: PodmanRuntime, run_id: str,
                                               demo_image: str) -> None:
    name = f"shoaltest-{run_id}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        task = shell_task(run_id, demo_image, "grep -E '^options' /etc/resolv.conf;"
                                              " grep -E '^10[.]7[.]' /etc/hosts")
        task.spec.container.dns_options.extend(["ndots:3", "timeout:1"])
        task.spec.container.hosts.append("10.7.1.1 svc")    # in a joined namespace too
        config = taskspec.container_config(task, NODE)
        config.network_ns = f"/run/netns/{name}"
        await runtime.ensure_image(config.image)
        cid = await runtime.create(config)
        await runtime.start(cid)
        state = await asyncio.wait_for(runtime.wait(cid), 60)
        lines = [line.data.decode() async for line in runtime.logs(cid)]
        assert state.exit_code == 0 and lines[0] == "options ndots:3 timeout:1"
        assert [line.split() for line in lines[1:]] == [["10.7.1.1", "svc"]]
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


async def test_docker_labels_on_the_container(runtime: PodmanRuntime, run_id: str,
                                              demo_image: str) -> None:
    task = shell_task(run_id, demo_image, "true")
    task.annotations.labels["com.docker.stack.namespace"] = "shop"
    _, _, cid = await run_task(runtime, task)
    labels = (await runtime.inspect(cid)).labels
    assert {k: v for k, v in labels.items() if k.startswith("com.docker.")} == {
        "com.docker.swarm.service.id": "svc1",
        "com.docker.swarm.service.name": "web",
        "com.docker.swarm.task": "",
        "com.docker.swarm.task.id": task.id,
        "com.docker.swarm.task.name": f"web.1.{task.id}",
        "com.docker.swarm.node.id": NODE,
        "com.docker.stack.namespace": "shop",
    }
    assert labels[taskspec.LABEL_TASK_ID] == task.id and labels[taskspec.LABEL_NODE_ID] == NODE
    # the agent's adoption scan finds it by Shoal's labels
    found = await runtime.list({taskspec.LABEL_NODE_ID: NODE, RUN_LABEL: run_id})
    assert [c.id for c in found] == [cid]



async def test_read_only_root_with_the_agents_own_binds(runtime: PodmanRuntime, run_id: str,
                                                        demo_image: str, tmp_path: Path) -> None:
    """A networked task's resolv.conf and its secrets are binds the agent adds: they work
    on a read-only root too, beside a volume and a tmpfs of the spec."""
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.11\n")
    (tmp_path / "secret").write_text("s3cret\n")
    name = f"shoaltest-{run_id}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        task = shell_task(run_id, demo_image,
                          "cat /etc/resolv.conf /run/secrets/db; echo v > /data/f && echo vol;"
                          " echo t > /cache/f && echo tmp; touch /x 2>/dev/null || echo ro")
        spec = task.spec.container
        spec.read_only = True
        spec.mounts.add(type=pb.Mount.VOLUME, source=volume_name(run_id, "ro"), target="/data")
        spec.mounts.add(type=pb.Mount.TMPFS, target="/cache")
        config = taskspec.container_config(task, NODE)
        config.network_ns = f"/run/netns/{name}"
        config.mounts += [Mount(str(tmp_path / "secret"), "/run/secrets/db"),
                          Mount(str(tmp_path / "resolv.conf"), "/etc/resolv.conf")]
        for volume in mounts.volumes_needed(spec):
            await runtime.ensure_volume(volume)
        await runtime.ensure_image(config.image)
        cid = await runtime.create(config)
        await runtime.start(cid)
        state = await asyncio.wait_for(runtime.wait(cid), 60)
        lines = [line.data.decode() async for line in runtime.logs(cid)]
        assert (state.exit_code, lines) == (0, ["nameserver 127.0.0.11", "s3cret", "vol", "tmp",
                                                "ro"])
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)
