"""One real node on this host, for end-to-end tests and benchmarks.

A node started with `swarm init` in its own data directory, driven through the
real `swarm` CLI and the gRPC API, and torn down completely (daemon, podman
service, containers) by `destroy()`, also after a failure.

The node uses the host's podman storage and registry configuration, except with
`hub_stand_ins=True`: then its podman reads a registries.conf of its own
(CONTAINERS_REGISTRIES_CONF, for this node's processes only; the host's files
stay as they are) that pulls Docker Hub names from the lab registry, as lab
nodes do (lab/podstore.py), and `destroy()` removes the stand-in images it
pulled under Docker Hub names from the host's storage.
"""
from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import grpc

from lab.images import REGISTRY_ADDR, STAND_IN_LABEL
from lab.podstore import registries_conf
from node.state import log_path
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb

REPO = Path(__file__).resolve().parent.parent
LABEL_NODE = "com.shoal.node.id"
ENV_REGISTRIES_CONF = "CONTAINERS_REGISTRIES_CONF"   # podman's override of registries.conf


def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Polls cond() until it returns something truthy; fails with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = cond()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what} "
                                 f"(last value: {last!r})")
        time.sleep(interval)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(span: int = 3) -> int:
    """A port P such that P .. P+span-1 are free on 127.0.0.1 (a node uses P for its
    manager endpoint, P+1 for raft and P+2 for joins). Chosen below the kernel's
    ephemeral range, so outgoing connections cannot take P+1 or P+2 meanwhile."""
    for _ in range(500):
        base = random.randrange(20000, 32000 - span)
        if all(_bindable(base + i) for i in range(span)):
            return base
    raise RuntimeError("no free block of ports between 20000 and 32000 on 127.0.0.1")


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check,
                          timeout=120)


def _pids_matching(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if text.encode() in cmdline:
            pids.append(int(entry))
    return pids


class SingleNode:
    """One node (manager + agent) in its own data directory."""

    def __init__(self, base: Path, hub_stand_ins: bool = False) -> None:
        self.data_dir = base / "node"
        self.port = free_port()
        self.node_id = ""
        self.env = dict(os.environ, SWARM_HOST=f"unix://{self.data_dir}/swarm.sock",
                        PYTHONPATH=str(REPO))
        self.hub_stand_ins = hub_stand_ins
        if hub_stand_ins:
            conf = base / "registries.conf"
            conf.parent.mkdir(parents=True, exist_ok=True)
            conf.write_text(registries_conf(REGISTRY_ADDR))
            self.env[ENV_REGISTRIES_CONF] = str(conf)      # the daemon and its podman inherit it
        self._channel: Optional[grpc.Channel] = None

    # ---- process control

    def init(self, *extra: str) -> subprocess.CompletedProcess:
        res = self.swarm("init", "--data-dir", str(self.data_dir),
                         "--listen-addr", f"127.0.0.1:{self.port}", *extra)
        self.node_id = json.loads((self.data_dir / "node.json").read_text())["node_id"]
        return res

    def swarm(self, *args: str, check: bool = True, input: Optional[str] = None,
              timeout: float = 120) -> subprocess.CompletedProcess:
        res = subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True,
                             text=True, env=self.env, input=input, timeout=timeout,
                             cwd=str(REPO))
        if check and res.returncode != 0:
            raise AssertionError(f"swarm {' '.join(args)} failed ({res.returncode}):\n"
                                 f"{res.stdout}\n{res.stderr}\n--- daemon log tail:\n"
                                 f"{self.log_tail()}")
        return res

    def log_tail(self, lines: int = 40) -> str:
        path = log_path(self.data_dir)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def daemon_pid(self) -> int:
        return int((self.data_dir / "daemon.pid").read_text().strip())

    def kill9(self) -> None:
        pid = self.daemon_pid()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or
                 Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z",
                 10, "the daemon to die")
        self.close_channel()

    def restart(self) -> None:
        self.swarm("daemon", "--data-dir", str(self.data_dir))

    def close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def destroy(self) -> None:
        """Stops everything the node made: daemon, containers, podman service."""
        self.close_channel()
        try:
            os.kill(self.daemon_pid(), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        if self.node_id:
            ids = podman("ps", "-aq", "--filter", f"label={LABEL_NODE}={self.node_id}",
                         check=False).stdout.split()
            if ids:
                podman("rm", "-f", "-v", "-t", "0", *ids, check=False)  # with anonymous volumes
        for pid in _pids_matching(str(self.data_dir / "podman")):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.hub_stand_ins:
            self._remove_hub_stand_ins()

    def _remove_hub_stand_ins(self) -> None:
        """Untags the stand-ins pulled under Docker Hub names, by tag or (pulled by a
        pinned digest) by digest (not forced: an image a container still uses stays)."""
        listed = podman("images", "--filter", f"label={STAND_IN_LABEL}", "--format",
                        "{{.Repository}} {{.Tag}} {{.Digest}}", check=False).stdout
        names = []
        for line in listed.splitlines():
            repo, tag, digest = (line.split() + ["", "", ""])[:3]
            if repo.startswith("docker.io/"):   # pulled by a pinned digest: no tag
                names.append(f"{repo}:{tag}" if tag and tag != "<none>" else f"{repo}@{digest}")
        if names:
            podman("rmi", *names, check=False)

    # ---- API

    def api(self) -> control_pb2_grpc.ControlStub:
        if self._channel is None:
            self._channel = grpc.insecure_channel(f"unix://{self.data_dir}/swarm.sock")
        return control_pb2_grpc.ControlStub(self._channel)

    def service(self, name: str) -> pb.Service:
        return self.api().GetService(cpb.GetServiceRequest(service_id=name), timeout=10).service

    def tasks(self, service: str) -> list[pb.Task]:
        svc = self.service(service)
        req = cpb.ListTasksRequest(filters=cpb.ListFilters(service_ids=[svc.id]))
        return list(self.api().ListTasks(req, timeout=10).tasks)

    def running(self, service: str) -> list[pb.Task]:
        return [t for t in self.tasks(service)
                if t.status.state == pb.RUNNING and t.desired_state == pb.RUNNING]

    def containers(self, service: str, all_states: bool = False) -> list[dict]:
        args = ["ps", "--format", "json", "--filter", f"label=com.shoal.service.name={service}",
                "--filter", f"label={LABEL_NODE}={self.node_id}"]
        if all_states:
            args.insert(1, "-a")
        out = podman(*args).stdout.strip()
        return json.loads(out) if out else []
