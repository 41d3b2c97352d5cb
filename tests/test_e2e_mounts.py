"""End to end on one node: `--mount` volumes, binds and tmpfs, and task containers with
Docker's defaults (issue 12), through the `swarm` CLI on real podman.

Named volumes outlive tasks, services and a daemon killed with -9; a read-only bind
can be read and not written, a missing bind source rejects the task with Docker's
reason; a tmpfs has its size limit; `volume-opt` reaches podman; `--mount-add` /
`--mount-rm` / `--read-only` roll the tasks; the capability set, sysctls, ulimits,
groups, DNS options, extra hosts, init and tty are checked from inside a task, and
the container carries Docker's labels. Bad input changes nothing. The node's podman
is the host's: every volume a test names is unique to the run and removed after it.
"""
from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from lab import images
from proto import objects_pb2 as pb
from tests.cluster import SingleNode, podman
from tests.helpers import wait

pytestmark = pytest.mark.e2e

RUN = secrets.token_hex(3)
SLEEP = ["sh", "-c", "exec sleep 3600"]
# Docker's default capability set (moby's oci/caps defaults), by number
DOCKER_CAPS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5,
               "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "NET_BIND_SERVICE": 10, "NET_RAW": 13,
               "SYS_CHROOT": 18, "MKNOD": 27, "AUDIT_WRITE": 29, "SETFCAP": 31}
NET_ADMIN = 12


@pytest.fixture(scope="module")
def image() -> str:
    return images.ensure_demo_image()


@pytest.fixture(scope="module")
def node(tmp_path_factory, image) -> Iterator[SingleNode]:
    n = SingleNode(tmp_path_factory.mktemp("mounts"))
    try:
        n.init()
        yield n
    finally:
        n.destroy()
        names = podman("volume", "ls", "-q", "--filter", f"label=shoaltest={RUN}",
                       check=False).stdout.split()
        if names:
            podman("volume", "rm", "-f", *names, check=False)


def volume(name: str) -> str:
    """A volume name unique to this run (the node's podman is the host's)."""
    return f"t{RUN}{name}"


def one_running(node: SingleNode, service: str, other_than: str = "") -> pb.Task:
    def found():
        tasks = [t for t in node.running(service) if t.id != other_than]
        return tasks[0] if len(tasks) == 1 else None
    return wait(found, 60, f"one {service} task running")


def cexec(task: pb.Task, *cmd: str, check: bool = False) -> subprocess.CompletedProcess:
    return podman("exec", task.status.container_status.container_id, *cmd, check=check)


def mounts_inside(task: pb.Task) -> dict[str, str]:
    """Mount point -> filesystem type, from the container's /proc/mounts."""
    table: dict[str, str] = {}
    for line in cexec(task, "cat", "/proc/mounts", check=True).stdout.splitlines():
        fields = line.split()
        table[fields[1]] = fields[2]
    return table


def test_a_named_volume_outlives_its_tasks_services_and_the_daemon(
        node: SingleNode, image: str) -> None:
    name = volume("data")
    mount = f"type=volume,source={name},target=/data,volume-label=shoaltest={RUN}"
    appender = ["sh", "-c", "echo started >> /data/starts; exec sleep 3600"]
    try:
        node.swarm("service", "create", "-d", "--name", "keep", "--mount", mount,
                   "--stop-grace-period", "1s", "--restart-delay", "1s", image, *appender)
        first = one_running(node, "keep")
        wait(lambda: cexec(first, "cat", "/data/starts").stdout.count("started") == 1, 10,
             "the first task wrote to the volume")
        inspect = podman("volume", "inspect", "--format", "{{.Driver}} {{.Labels.shoaltest}}",
                         name).stdout.split()
        assert inspect == ["local", RUN], inspect
        podman("kill", first.status.container_status.container_id)
        second = one_running(node, "keep", other_than=first.id)
        assert second.slot == first.slot
        wait(lambda: cexec(second, "cat", "/data/starts").stdout.count("started") == 2, 10,
             "the replacement saw the first task's file and added its own line")
        node.kill9()
        node.restart()
        adopted = one_running(node, "keep")
        assert adopted.id == second.id, "the task was not adopted after the restart"
        assert cexec(adopted, "cat", "/data/starts").stdout.count("started") == 2
        node.swarm("service", "rm", "keep")
        wait(lambda: not node.containers("keep", all_states=True), 30, "keep's containers gone")
        assert podman("volume", "exists", name, check=False).returncode == 0, \
            "the volume went with its service"
        node.swarm("service", "create", "-d", "--name", "keep2", "--mount", mount, image,
                   *appender)
        again = one_running(node, "keep2")
        wait(lambda: cexec(again, "cat", "/data/starts").stdout.count("started") == 3, 10,
             "a new service with the same mount saw the data")
    finally:
        node.swarm("service", "rm", "keep", "keep2", check=False)


def test_a_read_only_bind_and_a_missing_bind_source(node: SingleNode, image: str,
                                                    tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello.txt").write_text("hello from the node\n")
    missing = tmp_path / "not-there"
    try:
        node.swarm("service", "create", "-d", "--name", "bindro", "--mount",
                   f"type=bind,source={shared},target=/in,readonly", image, *SLEEP)
        task = one_running(node, "bindro")
        assert cexec(task, "cat", "/in/hello.txt").stdout == "hello from the node\n"
        write = cexec(task, "sh", "-c", "echo x > /in/new.txt")
        assert write.returncode != 0 and "Read-only file system" in write.stderr, write
        assert sorted(p.name for p in shared.iterdir()) == ["hello.txt"]

        node.swarm("service", "create", "-d", "--name", "bindgone", "--mount",
                   f"type=bind,source={missing},target=/in", image, *SLEEP)
        reason = (f'invalid mount config for type "bind": bind source path does not exist: '
                  f"{missing}")

        def rejected():
            return [t for t in node.tasks("bindgone") if t.status.state == pb.REJECTED] or None
        task = wait(rejected, 30, "the task with a missing bind source rejected")[0]
        assert task.status.err == reason, task.status
        ps = node.swarm("service", "ps", "--no-trunc", "bindgone").stdout
        assert "Rejected" in ps and reason in ps, ps
        assert not node.running("bindgone")
        assert node.containers("bindgone", all_states=True) == [], "a container was made"
    finally:
        node.swarm("service", "rm", "bindro", "bindgone", check=False)


def test_tmpfs_mounts_and_volume_options_reach_podman(node: SingleNode, image: str) -> None:
    name = volume("mem")
    try:
        node.swarm("service", "create", "-d", "--name", "mem",
                   "--mount", "type=tmpfs,target=/scratch,tmpfs-size=1m",
                   "--mount", f"type=volume,source={name},target=/fast,volume-opt=type=tmpfs,"
                   f"volume-opt=device=tmpfs,volume-opt=o=size=2m,volume-label=shoaltest={RUN}",
                   image, *SLEEP)
        task = one_running(node, "mem")
        table = mounts_inside(task)
        assert table.get("/scratch") == "tmpfs", table
        assert table.get("/fast") == "tmpfs", table
        small = cexec(task, "dd", "if=/dev/zero", "of=/scratch/half", "bs=1024", "count=512")
        assert small.returncode == 0, small.stderr
        big = cexec(task, "dd", "if=/dev/zero", "of=/scratch/big", "bs=1024", "count=2048")
        assert big.returncode != 0 and "No space left" in big.stderr, big
        options = podman("volume", "inspect", "--format", "{{json .Options}}", name).stdout
        compact = options.replace(" ", "")
        assert '"type":"tmpfs"' in compact and '"device":"tmpfs"' in compact, options
        # podman 4.3 reads o=size= as a disk quota: the agent gives it as tmpfs blocks
        assert '"o":"nr_blocks=512"' in compact, options
        over = cexec(task, "dd", "if=/dev/zero", "of=/fast/big", "bs=1024", "count=3072")
        assert over.returncode != 0 and "No space left" in over.stderr, over
    finally:
        node.swarm("service", "rm", "mem", check=False)


def test_mount_add_mount_rm_and_read_only_roll_the_tasks(node: SingleNode, image: str) -> None:
    try:
        node.swarm("service", "create", "-d", "--name", "roll", "--stop-grace-period", "1s",
                   "--update-monitor", "1s", image, *SLEEP)
        first = one_running(node, "roll")
        assert "/t" not in mounts_inside(first)
        node.swarm("service", "update", "--mount-add", "type=tmpfs,target=/t", "roll")
        second = one_running(node, "roll", other_than=first.id)
        assert mounts_inside(second).get("/t") == "tmpfs"
        assert [m.target for m in node.service("roll").spec.task.container.mounts] == ["/t"]
        node.swarm("service", "update", "--mount-rm", "/t", "roll")
        third = one_running(node, "roll", other_than=second.id)
        assert "/t" not in mounts_inside(third)
        assert cexec(third, "touch", "/made-here").returncode == 0
        node.swarm("service", "update", "--read-only", "roll")
        fourth = one_running(node, "roll", other_than=third.id)
        for path in ("/made-here", "/tmp/x", "/etc/x"):
            res = cexec(fourth, "touch", path)
            assert res.returncode != 0 and "Read-only file system" in res.stderr, (path, res)
        pretty = node.swarm("service", "inspect", "--pretty", "roll").stdout
        assert any(line.split() == ["Read", "Only:", "true"] for line in pretty.splitlines()), \
            pretty
    finally:
        node.swarm("service", "rm", "roll", check=False)


def cap_mask(status: str) -> int:
    line = next(line for line in status.splitlines() if line.startswith("CapEff:"))
    return int(line.split()[1], 16)


def test_task_containers_have_dockers_defaults_and_the_options_given(
        node: SingleNode, image: str) -> None:
    node.swarm("network", "create", "-d", "overlay", "--subnet", "10.83.0.0/24", "optnet")
    try:
        node.swarm("service", "create", "-d", "--name", "plain", image, *SLEEP)
        node.swarm("service", "create", "-d", "--name", "opts", "--network", "optnet",
                   "--cap-add", "net_admin", "--cap-drop", "CAP_MKNOD",
                   "--sysctl", "net.ipv4.ip_forward=1", "--ulimit", "nofile=1024:2048",
                   "--group", "1234", "--dns-option", "ndots:3", "--host", "db.local:10.1.2.3",
                   "--init", "--tty", image,
                   "sh", "-c", "[ -t 1 ] && echo yes > /tty-out || echo no > /tty-out; "
                   "exec sleep 3600")
        plain = one_running(node, "plain")
        opts = one_running(node, "opts")
        docker = sum(1 << bit for bit in DOCKER_CAPS.values())
        assert cap_mask(cexec(plain, "cat", "/proc/1/status").stdout) == docker
        ping = cexec(plain, "ping", "-c", "1", "-W", "2", "127.0.0.1")
        assert ping.returncode == 0 and "permission denied" not in ping.stderr, ping
        expected = (docker | (1 << NET_ADMIN)) & ~(1 << DOCKER_CAPS["MKNOD"])
        assert cap_mask(cexec(opts, "cat", "/proc/self/status").stdout) == expected
        assert cexec(opts, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
        assert cexec(opts, "sh", "-c", "ulimit -n; ulimit -Hn").stdout.split() == \
            ["1024", "2048"]
        assert "1234" in cexec(opts, "id", "-G").stdout.split()
        resolv = cexec(opts, "cat", "/etc/resolv.conf").stdout
        assert "ndots:3" in resolv, resolv
        hosts = cexec(opts, "cat", "/etc/hosts").stdout
        assert any(line.split()[:2] == ["10.1.2.3", "db.local"]
                   for line in hosts.splitlines() if line.strip()), hosts
        init = cexec(opts, "cat", "/proc/1/comm").stdout.strip()
        assert init not in ("sh", "sleep"), f"PID 1 is {init}: no init process"
        wait(lambda: cexec(opts, "cat", "/tty-out").stdout.strip() == "yes", 10,
             "the task's stdout is a terminal")
        assert cexec(plain, "cat", "/proc/1/comm").stdout.strip() == "sleep"

        svc = node.service("opts")
        labels = podman("inspect", "--format", "{{json .Config.Labels}}",
                        opts.status.container_status.container_id).stdout
        for key, value in (("com.docker.swarm.service.id", svc.id),
                           ("com.docker.swarm.service.name", "opts"),
                           ("com.docker.swarm.task.id", opts.id),
                           ("com.docker.swarm.task.name", f"opts.{opts.slot}.{opts.id}"),
                           ("com.docker.swarm.node.id", node.node_id),
                           ("com.docker.swarm.task", "")):
            assert f'"{key}":"{value}"' in labels.replace(" ", ""), (key, labels)
    finally:
        node.swarm("service", "rm", "plain", "opts", check=False)
        wait(lambda: node.swarm("network", "rm", "optnet", check=False).returncode == 0, 60,
             "optnet removed")


def test_bad_mounts_are_refused_and_change_nothing(node: SingleNode, image: str) -> None:
    node.swarm("secret", "create", "mounted_secret", "-", input="s3cret")
    node.swarm("service", "create", "-d", "--name", "steady", "--replicas", "0", image, *SLEEP)
    before = node.service("steady")
    bad = [
        (["--mount", "type=volume,source=v,target=data"], "must be an absolute path"),
        (["--mount", "type=volume,source=/abs,target=/data"], "must not be an absolute path"),
        (["--mount", "type=volume,target=/data,colour=red"], "unknown option"),
        (["--mount", "type=bind,source=/tmp,target=/data,volume-opt=a=b"],
         "cannot mix 'volume-*' options with mount type 'bind'"),
        (["--mount", "type=tmpfs,target=/d", "--mount", "type=volume,target=/d"],
         "duplicate mount"),
        (["--secret", "mounted_secret", "--mount",
          "type=tmpfs,target=/run/secrets/mounted_secret"], "collides with secret"),
    ]
    try:
        for flags, message in bad:
            create = node.swarm("service", "create", "--name", "bad", *flags, image, *SLEEP,
                                check=False)
            assert create.returncode != 0 and message in create.stderr, (flags, create.stderr)
            update_flags = ["--mount-add" if f == "--mount" else
                            "--secret-add" if f == "--secret" else f for f in flags]
            update = node.swarm("service", "update", *update_flags, "steady", check=False)
            assert update.returncode != 0 and message in update.stderr, (flags, update.stderr)
        listed = node.swarm("service", "ls", "--format", "{{.Name}}").stdout.split()
        assert "bad" not in listed
        after = node.service("steady")
        assert after.spec_version == before.spec_version and after.spec == before.spec
    finally:
        node.swarm("service", "rm", "steady", check=False)
        node.swarm("secret", "rm", "mounted_secret", check=False)
