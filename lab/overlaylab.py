"""Real-namespace harness for the overlay data plane tests and benchmark (lab.bench.overlay).

Owns `OverlayLab`: an underlay bridge with node namespaces (lab.netlab), one
`DataPlane` per node running in the test process against its node namespace,
plain task namespaces, busybox run inside them with nsenter, and teardown of
all of it (sandboxes, task namespaces, underlay) whatever happened.
Every name carries a test-unique prefix (`ot<index>-`).
"""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

from pyroute2 import IPRoute

from lab.netlab import NetLab, NetLabError, Underlay, kill_and_wait, pids_in_netns
from lab.state import StateFile
from overlay_net import netns
from overlay_net.dataplane import DataPlane
from overlay_net.plan import Naming

FIRST_INDEX = 200      # underlays 200..239 are for overlay tests (lab tests use 100..199)
LAST_INDEX = 239
BUSYBOX = "/bin/busybox"


def _bridge_exists(name: str) -> bool:
    with IPRoute() as ipr:
        return bool(ipr.link_lookup(ifname=name))


class OverlayLab:
    """Nodes on one underlay, each with its DataPlane, plus task namespaces."""

    def __init__(self, net: NetLab, index: int) -> None:
        self.net = net
        self.index = index
        self.prefix = f"ot{index}-"
        self.planes: dict[str, DataPlane] = {}
        self.tasks: list[str] = []

    def add_node(self, name: str) -> DataPlane:
        ip = self.net.add_node(name)
        plane = DataPlane(ip, Naming(prefix=self.prefix, node_key=name),
                          node_netns=self.net.netns_path(name), node=name)
        self.planes[name] = plane
        return plane

    def node_ip(self, name: str) -> str:
        return self.net.ip(name)

    def task_netns(self, name: str) -> str:
        """Creates a task namespace (loopback up); returns its path."""
        full = f"{self.prefix}task-{name}"
        self.tasks.append(full)
        return netns.create(full)

    def remove_task_netns(self, path: str) -> None:
        netns.remove(path)

    def sandboxes(self) -> list[str]:
        return netns.list_names(f"{self.prefix}ov-")

    def teardown(self) -> list[str]:
        problems: list[str] = []
        for name, plane in self.planes.items():
            try:
                plane.teardown()
            except Exception as err:  # noqa: BLE001 - teardown goes on
                problems.append(f"{name}: {err}")
        for leftover in netns.list_names(self.prefix):
            with contextlib.suppress(Exception):
                _kill_netns_processes(leftover)
            netns.remove(leftover)
        problems += self.net.destroy()
        return problems


def _kill_netns_processes(name: str) -> None:
    kill_and_wait(pids_in_netns(name))


@contextlib.contextmanager
def overlay_lab(nodes: tuple[str, ...] = ("n1", "n2")) -> Iterator[OverlayLab]:
    root = Path(tempfile.mkdtemp(prefix="shoal-ovl-"))
    lab: Optional[OverlayLab] = None
    try:
        for index in range(FIRST_INDEX, LAST_INDEX + 1):
            if _bridge_exists(f"shoallab{index}"):
                continue
            net = NetLab(StateFile(root / f"net{index}.json"), Underlay.indexed(index))
            try:
                net.create()
            except NetLabError as err:
                if "already exists" in str(err):
                    continue
                raise
            lab = OverlayLab(net, index)
            break
        if lab is None:
            raise NetLabError(f"no free underlay between {FIRST_INDEX} and {LAST_INDEX}")
        for name in nodes:
            lab.add_node(name)
        yield lab
    finally:
        if lab is not None:
            problems = lab.teardown()
            assert not problems, f"overlay lab teardown: {problems}"
        shutil.rmtree(root, ignore_errors=True)


def bb(path: Optional[str], *args: str, timeout: float = 20.0,
       input: Optional[str] = None) -> subprocess.CompletedProcess:
    """Runs busybox <args> inside the namespace at path (None: the host's)."""
    prefix = ["nsenter", f"--net={path}"] if path else []
    return subprocess.run([*prefix, BUSYBOX, *args], capture_output=True,
                          text=True, timeout=timeout, input=input)


def bb_background(path: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(["nsenter", f"--net={path}", BUSYBOX, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    """Polls cond until truthy; fails the test naming what did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def ping(path: str, ip: str, count: int = 1) -> bool:
    return bb(path, "ping", "-c", str(count), "-W", "2", ip).returncode == 0
