"""Overlay networking of this node's tasks: the worker's side of `overlay_net`.

Owns, for the agent: each networked task's own named network namespace
(`shoal-tk-<node key>-<task id[:12]>`, made before its container, removed after
it), the task's generated resolv.conf (the embedded DNS at 127.0.0.11), and one
reconciler that hands the data plane the node's network views plus the local
tasks (`DataPlane.apply`, then `DnsServer.update`, then the host-mode port
proxies) whenever either changes. Reconciliations are serialised by one lock
and `apply` runs off the event loop. A task whose networks the data plane could
not set up does not start (`TaskNetworkError`, e.g. an encrypted network without
keys: never plaintext).

`cleanup_node()` removes what a node left (sandboxes, task namespaces, the
routing mesh, resolv.conf files): used by `swarm leave` and the lab's teardown.
Normal daemon stops keep everything: tasks go on running and a restarted agent
adopts them.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path
from typing import Iterable, Optional

from overlay_net import netns, sandbox
from overlay_net.adapter import desired_state
from overlay_net.dataplane import DataPlane
from overlay_net.dns import DnsServer
from overlay_net.dnswire import resolv_conf
from overlay_net.model import ApplyResult, DesiredState
from overlay_net.plan import Naming
from proto import objects_pb2 as pb
from worker.fserrors import describe
from worker.hostports import HostPorts, PortTarget
from worker.netviews import NetworkViews
from worker.runtime import HOST_NETWORK
from worker.taskfiles import RUN_ROOT

PREFIX = "shoal-"
VIEW_WAIT = 15.0      # how long a task waits for the views of its networks
RETRY_MIN, RETRY_MAX = 1.0, 30.0   # a reconciliation with errors is retried after this


class TaskNetworkError(Exception):
    """A task's networks could not be set up; the message says why."""


def node_key(node_id: str) -> str:
    return node_id[:12]


def naming(node_id: str) -> Naming:
    return Naming(prefix=PREFIX, node_key=node_key(node_id))


def task_netns_prefix(node_id: str) -> str:
    return f"{PREFIX}tk-{node_key(node_id)}-"


def task_netns_name(node_id: str, task_id: str) -> str:
    return f"{task_netns_prefix(node_id)}{task_id[:12]}"


def resolv_dir(node_id: str) -> Path:
    return Path(RUN_ROOT) / node_id / "resolv"


def host_ports(task: pb.Task) -> list[pb.PortConfig]:
    """The task's ports published in host mode (on the node that runs it)."""
    return [p for p in task.endpoint.ports
            if p.publish_mode == pb.PortConfig.HOST and p.published_port]


def needs_netns(task: pb.Task) -> bool:
    """A task gets its own namespace when it is on overlays or publishes host-mode ports."""
    if any(n.target == HOST_NETWORK for n in task.spec.networks):
        return False
    return bool(task.networks) or bool(host_ports(task))


def task_resolv_conf(task: pb.Task, host_text: str) -> str:
    """The embedded DNS first, then the service's --dns servers; --dns-search replaces the
    host's search list, --dns-option adds options."""
    spec = task.spec.container
    text = resolv_conf(host_text)
    lines = text.splitlines()
    out: list[str] = []
    for line in lines:
        if line.startswith("search ") and spec.dns_search:
            continue
        if line.startswith("options ") and spec.dns_options:
            line = line + " " + " ".join(spec.dns_options)
        out.append(line)
        if line.startswith("nameserver "):
            out += [f"nameserver {server}" for server in spec.dns_nameservers]
    if spec.dns_search:
        out.insert(-1, "search " + " ".join(spec.dns_search))
    return "\n".join(out) + "\n"


class Networking:
    """The node's overlay data plane, driven by the views and the local tasks."""

    def __init__(self, node_id: str, node_addr: str, views: NetworkViews,
                 log: Optional[logging.LoggerAdapter] = None) -> None:
        self.node_id = node_id
        self.node_addr = node_addr
        self.views = views
        self.log = log or logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})
        self.plane = DataPlane(node_addr, naming(node_id), node=node_id)
        self.dns = DnsServer(node=node_id)
        self.ports = HostPorts(self.log)
        self._tasks: dict[str, pb.Task] = {}
        self._paths: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self._queued: Optional[asyncio.Task[None]] = None
        self._retry: Optional[asyncio.Task[None]] = None
        self._backoff = RETRY_MIN
        self._closed = False
        self.last: ApplyResult = ApplyResult()
        views.add_listener(lambda _nid, _view: self.schedule())

    # ------------------------------------------------------------ reconcile --
    def schedule(self) -> None:
        """Asks for a reconciliation soon (coalesced with one already queued)."""
        if self._closed:
            return
        if self._queued is not None and not self._queued.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._queued = loop.create_task(self._scheduled())

    async def _scheduled(self) -> None:
        await asyncio.sleep(0)           # let the rest of an assignment message land first
        self._queued = None
        failed = True
        try:
            failed = bool((await self.reconcile()).errors)
        except Exception:  # noqa: BLE001 - logged; retried below
            self.log.exception("overlay reconciliation failed")
        if not failed:
            self._backoff = RETRY_MIN
        elif not self._closed and (self._retry is None or self._retry.done()):
            self._retry = asyncio.get_running_loop().create_task(self._retry_later())

    async def _retry_later(self) -> None:
        """A pass with errors is retried (backing off) even when nothing else changes."""
        delay, self._backoff = self._backoff, min(RETRY_MAX, self._backoff * 2)
        await asyncio.sleep(delay)
        self.schedule()

    def desired(self) -> DesiredState:
        return desired_state(self.views.views.values(),
                             [(tid, self._paths[tid], task.networks)
                              for tid, task in sorted(self._tasks.items())])

    async def reconcile(self) -> ApplyResult:
        """One pass: data plane, then DNS, then host-mode ports (serialised)."""
        async with self._lock:
            desired = self.desired()
            result = await asyncio.to_thread(self.plane.apply, desired)
            result.errors += await self.dns.update(desired)
            await self.ports.sync(self._port_targets())
            self.last = result
            return result

    def _port_targets(self) -> dict[tuple[str, int], PortTarget]:
        wanted: dict[tuple[str, int], PortTarget] = {}
        for tid, task in self._tasks.items():
            addr = next((a.addresses[0].split("/")[0] for a in task.networks if a.addresses),
                        "127.0.0.1")
            for port in host_ports(task):
                proto = "udp" if port.protocol == pb.PortConfig.UDP else "tcp"
                wanted[(proto, port.published_port)] = PortTarget(
                    task_id=tid, netns_path=self._paths[tid], addr=addr, port=port.target_port)
        return wanted

    # ---------------------------------------------------------------- tasks --
    def register(self, task: pb.Task) -> bool:
        """Counts an adopted task (its namespace exists from an earlier run) as local."""
        path = netns.netns_path(task_netns_name(self.node_id, task.id))
        if not needs_netns(task) or not os.path.exists(path):
            return False
        self._tasks[task.id] = task
        self._paths[task.id] = path
        self.schedule()
        return True

    async def attach(self, task: pb.Task) -> tuple[str, str]:
        """Makes the task's namespace and interfaces; returns (netns path, resolv.conf path).

        Raises TaskNetworkError (and undoes what it made) when the data plane cannot
        attach the task to one of its networks.
        """
        name = task_netns_name(self.node_id, task.id)
        try:
            path = await asyncio.to_thread(netns.create, name)
            await asyncio.to_thread(netns.run_in_netns, path, _allow_ping)
        except OSError as err:
            raise TaskNetworkError(f"network: cannot create namespace {name}: {err}") from err
        resolv = resolv_dir(self.node_id) / f"{task.id}.conf"
        try:
            host_text = await asyncio.to_thread(_read, "/etc/resolv.conf")
            await asyncio.to_thread(write_resolv_conf, resolv, task_resolv_conf(task, host_text))
            await self._wait_views(task)
            self._tasks[task.id] = task
            self._paths[task.id] = path
            result = await self.reconcile()
            problems = self._task_errors(task, result)
            if problems:
                raise TaskNetworkError("network: " + "; ".join(problems))
        except BaseException:
            await self.release(task.id)
            raise
        self.log.info("task %s: attached to %d network(s) in %s", task.id,
                      len(task.networks), name)
        return path, str(resolv)

    async def _wait_views(self, task: pb.Task) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + VIEW_WAIT
        while True:
            missing = [a.network_id for a in task.networks if a.network_id not in self.views.views]
            if not missing:
                return
            if loop.time() >= deadline:
                raise TaskNetworkError(f"network: no view of network(s) {', '.join(missing)} "
                                       "arrived from the managers")
            await asyncio.sleep(0.1)

    def _task_errors(self, task: pb.Task, result: ApplyResult) -> list[str]:
        keys = [a.network_id for a in task.networks] + [task.id]
        return [e for e in result.errors if any(k in e for k in keys)]

    async def detach(self, task_id: str) -> None:
        """The task's container no longer runs: its interfaces, DNS and ports go."""
        if self._tasks.pop(task_id, None) is None:
            return
        try:
            await self.reconcile()
        except Exception:  # noqa: BLE001 - logged; the next change retries
            self.log.exception("overlay reconciliation after task %s failed", task_id)

    async def release(self, task_id: str) -> None:
        """After the container is removed: detaches, then removes namespace and resolv.conf."""
        await self.detach(task_id)
        self._paths.pop(task_id, None)
        name = task_netns_name(self.node_id, task_id)
        try:
            await asyncio.to_thread(netns.remove, name)
        except OSError as err:
            self.log.warning("task %s: cannot remove namespace %s: %s", task_id, name, err)
        (resolv_dir(self.node_id) / f"{task_id}.conf").unlink(missing_ok=True)

    async def cleanup(self, keep: Iterable[str]) -> list[str]:
        """Removes the namespaces of tasks not in keep (left by an earlier run)."""
        keep_names = {task_netns_name(self.node_id, t) for t in keep}
        removed = []
        for name in netns.list_names(task_netns_prefix(self.node_id)):
            if name not in keep_names:
                await asyncio.to_thread(netns.remove, name)
                removed.append(name)
        return removed

    async def close(self) -> None:
        """Agent stop: closes in-process listeners; the kernel state stays for the tasks."""
        self._closed = True
        for job in (self._queued, self._retry):
            if job is not None:
                job.cancel()
                await asyncio.gather(job, return_exceptions=True)
        async with self._lock:
            await self.dns.close()
            await self.ports.close()
            if self.plane._tunnel is not None:   # the userspace tunnel dies with the process
                self.plane._tunnel.close()


def _allow_ping() -> None:
    """Unprivileged ICMP echo sockets for everyone in the task's namespace, as Docker."""
    Path("/proc/sys/net/ipv4/ping_group_range").write_text("0 2147483647\n")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def write_resolv_conf(path: Path, text: str) -> None:
    """Writes a task's resolv.conf atomically; TaskNetworkError saying why when it cannot
    (a full runtime directory), with nothing of it left behind."""
    tmp = path.with_suffix(".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TaskNetworkError(f"network: cannot write the task's resolv.conf: "
                               f"{describe(exc, str(path))}") from None


def cleanup_node(node_id: str, node_addr: str = "127.0.0.1", mesh: bool = True) -> list[str]:
    """Removes every trace of the node's overlay networking (blocking); returns problems.

    mesh: also remove the routing mesh from the calling thread's namespace (the node's);
    the lab skips it when the node's namespace is going anyway.
    """
    problems: list[str] = []
    if mesh:
        try:
            problems += DataPlane(node_addr, naming(node_id), node=node_id).teardown().errors
        except Exception as err:  # noqa: BLE001 - reported
            problems.append(f"overlay teardown: {err}")
    for name in netns.list_names(naming(node_id).sandbox_prefix):
        try:
            sandbox.destroy(name)
        except Exception as err:  # noqa: BLE001 - reported
            problems.append(f"sandbox {name}: {err}")
    for name in netns.list_names(task_netns_prefix(node_id)):
        try:
            netns.remove(name)
        except OSError as err:
            problems.append(f"namespace {name}: {err}")
    shutil.rmtree(resolv_dir(node_id), ignore_errors=True)
    try:
        resolv_dir(node_id).parent.rmdir()      # /run/shoal/<node id>, once nothing else is in it
    except OSError:
        pass
    return problems
