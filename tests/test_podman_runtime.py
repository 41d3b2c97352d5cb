"""PodmanRuntime against real podman: the shared runtime contract
(tests/runtime_contract.py), then images, config, stop, logs and the service.

Every container a test makes carries this run's label and is removed (through
the podman CLI, independent of the code under test) when the test ends.
"""
from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import tarfile
import time
import uuid
from pathlib import Path
from typing import AsyncIterator, Callable

import pytest
import pytest_asyncio

from proto import objects_pb2 as pb
from tests.podmanfixtures import RUN_LABEL, alive, kill_service, podman, podman_fixtures
from worker.podman import PodmanRuntime
from tests.runtime_contract import RuntimeContract, RuntimeHarness
from worker.runtime import ContainerConfig, ContainerNotFound, ImagePullError, Mount, Runtime

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

service_dir, runtime, run_id = podman_fixtures("test", "podman-runtime")


@pytest.fixture
def make_config(demo_image: str, run_id: str) -> Callable[..., ContainerConfig]:
    counter = iter(range(1000))

    def make(**kwargs: object) -> ContainerConfig:
        labels = {RUN_LABEL: run_id, **kwargs.pop("labels", {})}  # type: ignore[dict-item]
        name = f"shoaltest.{run_id}.{next(counter)}"
        return ContainerConfig(name=name, image=demo_image, labels=labels, **kwargs)  # type: ignore[arg-type]
    return make


class PodmanHarness(RuntimeHarness):
    """The contract's containers as busybox commands; kills through the podman CLI."""
    failure_text = "/no/such/binary"

    def __init__(self, runtime: PodmanRuntime, service_dir: Path, demo_image: str,
                 make_config: Callable[..., ContainerConfig], run_id: str) -> None:
        self.runtime, self.service_dir, self.make_config = runtime, service_dir, make_config
        self.image = demo_image
        self.missing_image = demo_image.rsplit("/", 1)[0] + "/no-such-image:latest"
        self.labels = {RUN_LABEL: run_id}
        self.opened: list[PodmanRuntime] = []

    def running(self, **kwargs: object) -> ContainerConfig:
        return self.make_config(command=["sleep", "300"], **kwargs)

    def exiting(self, code: int, **kwargs: object) -> ContainerConfig:
        return self.make_config(command=["sh", "-c", f"exit {code}"], **kwargs)

    def start_fails(self) -> ContainerConfig:
        return self.make_config(command=["/no/such/binary"])

    def running_task(self, task: pb.Task) -> None:
        task.spec.container.args.extend(["sh", "-c", "exec sleep 300"])

    async def kill(self, container_id: str) -> None:
        podman("kill", "--signal", "KILL", container_id)

    async def reopen(self) -> Runtime:
        second = PodmanRuntime(str(self.service_dir), node_id="test")
        self.opened.append(second)
        self.runtime = second
        return second


@pytest_asyncio.fixture
async def harness(runtime: PodmanRuntime, service_dir: Path, demo_image: str, run_id: str,
                  make_config: Callable[..., ContainerConfig]) -> AsyncIterator[PodmanHarness]:
    h = PodmanHarness(runtime, service_dir, demo_image, make_config, run_id)
    yield h
    for opened in h.opened:
        await opened.close()


class TestPodmanContract(RuntimeContract):
    pass


async def run_to_end(rt: PodmanRuntime, config: ContainerConfig) -> tuple[int, list[str]]:
    """Creates, starts and waits for a container; returns its exit code and stdout lines."""
    await rt.ensure_image(config.image)
    cid = await rt.create(config)
    await rt.start(cid)
    state = await asyncio.wait_for(rt.wait(cid), 30)
    lines = [line.data.decode() async for line in rt.logs(cid)]
    return state.exit_code, lines


async def wait_for_output(rt: PodmanRuntime, cid: str, text: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in [line.data.decode() async for line in rt.logs(cid)]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in the logs of {cid}")


async def test_version(runtime: PodmanRuntime) -> None:
    assert (await runtime.version()).startswith("podman 4.")


async def test_pull_missing_image(runtime: PodmanRuntime, demo_image: str) -> None:
    # A separate tiny image: pulling another tag of the demo image's own ID would
    # move podman's name for it (the demo tag ends up dangling).
    reference = demo_image.rsplit("/", 1)[0] + "/pulltest:latest"
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("pulltest")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"shoal\n"))
    subprocess.run(["podman", "import", "-", reference], input=layer.getvalue(),
                   check=True, capture_output=True, timeout=60)
    podman("push", "--tls-verify=false", reference)
    podman("rmi", reference)
    try:
        assert not await runtime.image_present(reference)
        await runtime.ensure_image(reference)
        assert await runtime.image_present(reference)
        await runtime.ensure_image(reference)          # cached: no second pull
    finally:
        podman("rmi", reference, check=False)


async def test_pull_failure_reports_reason(runtime: PodmanRuntime, demo_image: str) -> None:
    missing = demo_image.rsplit("/", 1)[0] + "/no-such-image:latest"
    with pytest.raises(ImagePullError) as caught:
        await runtime.ensure_image(missing)
    assert "no-such-image" in str(caught.value)
    assert "manifest unknown" in str(caught.value) or "not found" in str(caught.value)
    with pytest.raises(ImagePullError) as caught:
        await runtime.ensure_image("127.0.0.1:5999/nothing/here:1")
    assert "connection refused" in str(caught.value)


async def test_config_is_honoured(runtime: PodmanRuntime,
                                  make_config: Callable[..., ContainerConfig]) -> None:
    script = 'echo "foo=$FOO bar=$BAR"; id -un; pwd; hostname'
    code, lines = await run_to_end(runtime, make_config(
        command=["sh", "-c"], args=[script], env=["FOO=1", "BAR=two words"],
        user="nobody", workdir="/tmp", hostname="shoal-host"))
    assert code == 0
    assert lines == ["foo=1 bar=two words", "nobody", "/tmp", "shoal-host"]


async def test_command_and_args_semantics(runtime: PodmanRuntime,
                                          make_config: Callable[..., ContainerConfig]) -> None:
    # command replaces the entrypoint and drops the image's CMD (["sh"]), as in Docker
    _, lines = await run_to_end(runtime, make_config(command=["echo", "only-command"]))
    assert lines == ["only-command"]
    # args alone replace the image's CMD
    _, lines = await run_to_end(runtime, make_config(args=["echo", "only", "args"]))
    assert lines == ["only args"]


async def test_limits_visible_in_inspect(runtime: PodmanRuntime,
                                         make_config: Callable[..., ContainerConfig]) -> None:
    probe = ("cat /sys/fs/cgroup/memory.max 2>/dev/null"
             " || cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
    config = make_config(command=["sh", "-c", probe], memory_bytes=64 * 1024 * 1024,
                         nano_cpus=500_000_000)
    code, lines = await run_to_end(runtime, config)
    assert code == 0 and lines == [str(64 * 1024 * 1024)]
    (state,) = await runtime.list({RUN_LABEL: config.labels[RUN_LABEL]})
    host = (await runtime.inspect_raw(state.id))["HostConfig"]
    assert host["Memory"] == 64 * 1024 * 1024
    assert host["CpuQuota"] * 1_000_000_000 // host["CpuPeriod"] == 500_000_000


async def test_network_namespaces_and_dns(runtime: PodmanRuntime,
                                          make_config: Callable[..., ContainerConfig]) -> None:
    _, lines = await run_to_end(runtime, make_config(command=["ip", "-o", "link"]))
    assert len(lines) == 1 and ": lo:" in lines[0]    # own netns, loopback only
    name = f"shoaltest-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "addr", "add", "10.99.7.7/32", "dev", "lo"], check=True)
        script = "ip -o addr show dev lo; grep -E '^(nameserver|search|options)' /etc/resolv.conf"
        code, lines = await run_to_end(runtime, make_config(
            command=["sh", "-c", script], network_ns=f"/run/netns/{name}",
            dns_servers=["10.0.0.53"], dns_search=["shoal.test"], dns_options=["ndots:2"]))
        assert code == 0
        assert any("10.99.7.7/32" in line for line in lines)
        assert {"nameserver 10.0.0.53", "search shoal.test", "options ndots:2"} <= set(lines)
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


async def test_read_only_bind_mount(runtime: PodmanRuntime, tmp_path: Path,
                                    make_config: Callable[..., ContainerConfig]) -> None:
    (tmp_path / "secret").write_text("s3cret\n")
    script = "cat /run/secrets/secret; touch /run/secrets/x 2>/dev/null || echo read-only"
    code, lines = await run_to_end(runtime, make_config(
        command=["sh", "-c", script], mounts=[Mount(str(tmp_path), "/run/secrets", True)]))
    assert code == 0 and lines == ["s3cret", "read-only"]
    assert not (tmp_path / "x").exists()


async def test_stop_sends_signal_then_kills_after_grace(
        runtime: PodmanRuntime, make_config: Callable[..., ContainerConfig]) -> None:
    stubborn = "trap 'echo got TERM' TERM; echo ready; while :; do sleep 0.1; done"
    config = make_config(command=["sh", "-c", stubborn])
    await runtime.ensure_image(config.image)
    cid = await runtime.create(config)
    await runtime.start(cid)
    await wait_for_output(runtime, cid, "ready")
    started = time.monotonic()
    await runtime.stop(cid, "", 1.5)
    elapsed = time.monotonic() - started
    state = await runtime.inspect(cid)
    assert not state.running and state.exit_code == 137
    assert 1.5 <= elapsed < 10, elapsed
    assert "got TERM" in [line.data.decode() async for line in runtime.logs(cid)]
    await runtime.stop(cid, "", 1.0)                  # stopping a stopped container: no-op


@pytest.mark.parametrize("signal_arg", ["", "USR1"])   # "" = the configured stop signal
async def test_stop_with_custom_signal_returns_early(
        runtime: PodmanRuntime, make_config: Callable[..., ContainerConfig],
        signal_arg: str) -> None:
    polite = "trap 'exit 42' USR1; echo ready; while :; do sleep 0.1; done"
    config = make_config(command=["sh", "-c", polite], stop_signal="SIGUSR1")
    await runtime.ensure_image(config.image)
    cid = await runtime.create(config)
    assert (await runtime.inspect_raw(cid))["Config"]["StopSignal"] in ("SIGUSR1", 10)
    await runtime.start(cid)
    await wait_for_output(runtime, cid, "ready")
    started = time.monotonic()
    await runtime.stop(cid, signal_arg, 20)
    assert time.monotonic() - started < 5
    assert (await runtime.inspect(cid)).exit_code == 42


async def test_logs_tail_streams_and_follow(
        runtime: PodmanRuntime, make_config: Callable[..., ContainerConfig]) -> None:
    config = make_config(command=["sh", "-c", "for i in 1 2 3 4 5; do echo $i; done; "
                                  "echo oops >&2; printf partial"])
    await run_to_end(runtime, config)
    (state,) = await runtime.list({RUN_LABEL: config.labels[RUN_LABEL]})
    lines = [line async for line in runtime.logs(state.id)]
    # the two streams are separate pipes: their relative order is not kept
    assert [line.data for line in lines if line.stream == "stdout"] == \
        [b"1", b"2", b"3", b"4", b"5", b"partial"]
    assert [line.data for line in lines if line.stream == "stderr"] == [b"oops"]

    counted = make_config(command=["sh", "-c", "for i in 1 2 3 4 5; do echo $i; done"])
    await run_to_end(runtime, counted)
    (state,) = [s for s in await runtime.list({RUN_LABEL: config.labels[RUN_LABEL]})
                if s.name == counted.name]
    assert [line.data async for line in runtime.logs(state.id, tail=2)] == [b"4", b"5"]
    assert [line.data async for line in runtime.logs(state.id, tail=0)] == []

    slow = make_config(command=["sh", "-c", "echo ready; for i in a b c; do sleep 0.3;"
                                " echo $i; done"])
    cid = await runtime.create(slow)
    await runtime.start(cid)
    await wait_for_output(runtime, cid, "ready")

    async def follow() -> list[tuple[bytes, float]]:
        return [(line.data, time.time()) async for line in runtime.logs(cid, follow=True)]
    followed = await asyncio.wait_for(follow(), 30)
    assert [data for data, _ in followed] == [b"ready", b"a", b"b", b"c"]
    assert followed[-1][1] - followed[0][1] > 0.3     # arrived while the container ran
    assert all(abs(line.timestamp - time.time()) < 60
               for line in [line async for line in runtime.logs(cid)])


async def test_remove_running_container(runtime: PodmanRuntime,
                                        make_config: Callable[..., ContainerConfig]) -> None:
    config = make_config(command=["sleep", "600"])
    await runtime.ensure_image(config.image)
    cid = await runtime.create(config)
    await runtime.start(cid)
    assert (await runtime.inspect(cid)).running
    started = time.monotonic()
    await runtime.remove(cid)
    assert time.monotonic() - started < 10
    with pytest.raises(ContainerNotFound):
        await runtime.inspect(cid)


async def test_service_socket_is_reused_and_restarted(tmp_path: Path) -> None:
    first = PodmanRuntime(str(tmp_path), node_id="test")
    try:
        await first.version()
        pid = first.service_pid
        assert pid is not None and alive(pid)
        assert os.getsid(pid) == pid                  # own session: survives the agent
        await first.close()
        del first

        second = PodmanRuntime(str(tmp_path), node_id="test")
        assert await second.list({RUN_LABEL: "nothing"}) == []
        assert second.service_pid == pid and alive(pid)

        os.kill(pid, signal.SIGKILL)                  # the service dies: next call restarts it
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await second.list({RUN_LABEL: "nothing"}) == []
        assert second.service_pid not in (None, pid) and alive(second.service_pid or 0)
        await second.close()
    finally:
        kill_service(tmp_path)


async def test_own_storage_holds_the_runtimes_images_and_containers(
        tmp_path: Path, demo_image: str, run_id: str) -> None:
    """PodmanOptions: the service runs on the given storage, the host's storage is untouched."""
    from lab.podstore import NodeStorage
    from worker.podman import PodmanOptions

    storage = NodeStorage(tmp_path / "storage")
    options = PodmanOptions(root=storage.options.root, run_root=storage.options.run_root)
    state_dir = tmp_path / "state"
    rt = PodmanRuntime(str(state_dir), node_id="test", options=options)
    try:
        assert not await rt.image_present(demo_image)      # a new storage holds nothing
        await rt.ensure_image(demo_image)
        assert await rt.image_present(demo_image)
        pid = rt.service_pid
        assert pid is not None
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert [b"--root", options.root.encode()] == cmdline[1:3]
        cid = await rt.create(ContainerConfig(name=f"shoaltest.{run_id}.own", image=demo_image,
                                              command=["sleep", "600"],
                                              labels={RUN_LABEL: run_id}))
        await rt.start(cid)
        on_storage = subprocess.run([*options.command(), "ps", "-q", "--no-trunc"],
                                    capture_output=True, text=True, check=True).stdout.split()
        assert on_storage == [cid]
        assert podman("ps", "-aq", "--filter", f"label={RUN_LABEL}={run_id}").stdout == ""
        await rt.close()
    finally:
        kill_service(state_dir)
        assert storage.remove() == []
    assert not storage.base.exists()


async def test_concurrent_waits_share_one_event_stream(
        runtime: PodmanRuntime, make_config: Callable[..., ContainerConfig]) -> None:
    """Many waits, one subscription; exit codes exact (137 after kill -9), exits seen promptly."""
    commands = {"exit3": ["sh", "-c", "exit 3"], "short": ["sleep", "0.5"],
                "killed": ["sleep", "300"], "long": ["sleep", "300"]}
    await runtime.ensure_image(make_config().image)
    ids = {}
    for key, command in commands.items():
        ids[key] = await runtime.create(make_config(command=command))
        await runtime.start(ids[key])
    seen_running: list[int] = []
    waits = {key: asyncio.ensure_future(runtime.wait(cid, on_running=lambda s: seen_running.append(s.pid)))
             for key, cid in ids.items()}
    try:
        done_at: dict[str, float] = {}
        for key in ("exit3", "short"):
            final = await asyncio.wait_for(waits[key], 30)
            done_at[key] = time.time()
            assert final.exit_code == {"exit3": 3, "short": 0}[key] and not final.running
            assert done_at[key] - final.finished_at < 1.0, (key, done_at[key] - final.finished_at)
        podman("kill", "--signal", "KILL", ids["killed"])
        killed = await asyncio.wait_for(waits["killed"], 30)
        assert killed.status in ("stopped", "exited") and killed.exit_code == 137
        assert time.time() - killed.finished_at < 1.0
        assert not waits["long"].done()
        assert len([pid for pid in seen_running if pid > 0]) >= 2   # killed and long ran
        assert runtime._exits.subscriptions == 1
        await runtime.stop(ids["long"], "", 0.0)
        assert (await asyncio.wait_for(waits["long"], 30)).exit_code == 137
    finally:
        for job in waits.values():
            job.cancel()


async def test_wait_survives_a_service_restart_and_an_exit_while_unsubscribed(
        tmp_path: Path, make_config: Callable[..., ContainerConfig]) -> None:
    """The service dies while a container is waited for and the container exits meanwhile:
    the runtime resubscribes (restarting the service) and still reports the exact exit code."""
    rt = PodmanRuntime(str(tmp_path), node_id="test")
    rt._exits._pidfd_ok = False          # events and the reconciling inspect only
    try:
        config = make_config(command=["sleep", "300"])
        await rt.ensure_image(config.image)
        cid = await rt.create(config)
        await rt.start(cid)
        waiting = asyncio.ensure_future(rt.wait(cid))
        deadline = time.monotonic() + 20
        while rt._exits.subscriptions < 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        pid = rt.service_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        podman("kill", "--signal", "KILL", cid)      # exits while nobody is subscribed
        final = await asyncio.wait_for(waiting, 60)
        assert final.status in ("stopped", "exited") and final.exit_code == 137
        assert rt._exits.subscriptions >= 2
        assert rt.service_pid not in (None, pid) and alive(rt.service_pid or 0)
    finally:
        await rt.close()
        kill_service(tmp_path)


async def test_exec_runs_in_the_container_and_reports_exit_and_output(
        runtime: PodmanRuntime, make_config: Callable[..., ContainerConfig]) -> None:
    config = make_config(args=["sh", "-c", "echo ready > /tmp/mark; exec sleep 300"])
    await runtime.ensure_image(config.image)
    cid = await runtime.create(config)
    await runtime.start(cid)
    try:
        ok = await runtime.exec(cid, ["cat", "/tmp/mark"], timeout=10)
        assert (ok.exit_code, ok.output, ok.timed_out) == (0, b"ready\n", False)
        failed = await runtime.exec(cid, ["/bin/sh", "-c", "echo oops >&2; exit 3"], timeout=10)
        assert (failed.exit_code, failed.output) == (3, b"oops\n")
        big = await runtime.exec(cid, ["/bin/sh", "-c", "head -c 10000 /dev/zero"], timeout=10,
                                 max_output=4096)
        assert big.exit_code == 0 and len(big.output) == 4096
        started = time.monotonic()
        slow = await runtime.exec(cid, ["sleep", "37"], timeout=1)
        assert slow.timed_out and slow.exit_code == -1
        assert time.monotonic() - started < 5
        # the abandoned session was killed: no sleep 37 is left in the container
        procs = await runtime.exec(cid, ["ps"], timeout=10)
        assert b"sleep 37" not in procs.output, procs.output.decode()
        assert (await runtime.inspect(cid)).running
    finally:
        await runtime.remove(cid)
    with pytest.raises(ContainerNotFound):
        await runtime.exec(cid, ["true"], timeout=5)
