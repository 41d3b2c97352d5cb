"""Hollow nodes: many real node identities in one process, with no containers.

Scale tests need hundreds of nodes on a 2-core machine. A hollow node is a whole
node as the managers see it: its own private key and CSR, a node certificate
issued by the cluster CA through the real join flow (`node.credentials.join`:
CA pinned with the token's digest, `IssueNodeCertificate` on the join port), its
own mutual-TLS channel and dispatcher session, heartbeats, assignments and
status reports, all driven by the real `worker.agent.Agent`. Only the runtime is
hollow (`worker.hollow`: a task "starts" after the start delay and runs until it
is stopped or told to fail), and the node has no underlay address of its own, so
no overlay sandboxes are made for its tasks.

One process (`HollowHost`) hosts a group of them on one event loop; the lab runs
several groups to spread them over the cores (`lab.hollowlab`). Each node lives in
`<data-dir>/nodes/<index>/` (certificate, key, `hollow.json`); a group started
again on the same directory resumes its nodes instead of joining new ones, as a
restarted daemon would. Every node describes itself with the hostname
`<group>-<index>` and the engine label `com.shoal.lab.hollow=<group>`, which is
how the lab (and a reader of `node inspect`) tells hollow nodes from real ones.

The process writes `<data-dir>/daemon.pid` when it starts and `<data-dir>/ready`
(the node count) once every node has had a session; SIGTERM stops the agents and
exits 0. Run: `python -m lab.hollownodes --data-dir D --group hollow1 --count 250
--manager IP:PORT[,IP:PORT...] --token SWMTKN-... --advertise-ip IP`.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from node import credentials
from node.daemon import setup_logging
from node.runtimes import hollow_factory
from node.state import DEFAULT_PORT, split_addr
from pki import node as pkinode
from pki import tls
from proto import dispatcher_pb2 as dpb
from proto import genericres
from proto import objects_pb2 as pb
from worker.agent import Agent
from worker.hollow import DEFAULT_START_DELAY, HollowEngine

LABEL_HOLLOW = "com.shoal.lab.hollow"   # engine label: the hollow group a node belongs to
PID_FILE = "daemon.pid"
READY_FILE = "ready"
NODE_FILE = "hollow.json"
JOIN_CONCURRENCY = 4        # joins in flight per process (each is a key, a CSR and two calls)
JOIN_RETRY_MAX = 5.0        # seconds between join attempts at most, while managers are busy

log = logging.getLogger(__name__)


def hostname_of(group: str, index: int) -> str:
    """The hostname hollow node `index` (from 1) of `group` describes itself with."""
    return f"{group}-{index}"


def node_dir(data_dir: Path, index: int) -> Path:
    return data_dir / "nodes" / str(index)


@dataclass
class HollowNode:
    """One hollow node of a group: its identity once joined, and its agent once running."""
    index: int
    hostname: str
    directory: Path
    node_id: str = ""
    cluster_id: str = ""
    managers: list[str] = field(default_factory=list)
    agent: Optional[Agent] = None

    def load(self) -> bool:
        """Reads a saved identity (a restarted group); False when the node never joined."""
        try:
            doc = json.loads((self.directory / NODE_FILE).read_text())
        except (OSError, ValueError):
            return False
        if not pkinode.exists(self.directory):
            return False
        self.node_id, self.cluster_id = doc["node_id"], doc["cluster_id"]
        self.managers = list(doc["managers"])
        return True

    def save(self) -> None:
        path = self.directory / NODE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"node_id": self.node_id, "cluster_id": self.cluster_id,
                                   "managers": self.managers, "hostname": self.hostname}))
        os.replace(tmp, path)


class JoinRefused(Exception):
    """The managers refused a join (bad token, ...): retrying cannot help."""


def _retryable(message: str) -> bool:
    """Whether a join failure may pass by itself (a busy or unreachable manager)."""
    text = message.lower()
    return any(word in text for word in (
        "cannot reach", "deadline", "timed out", "timeout", "unavailable", "connection",
        "not the leader", "leader", "try again", "no manager"))


class HollowHost:
    """Joins and runs a group of hollow nodes until stopped."""

    def __init__(self, data_dir: Path, group: str, count: int, managers: Sequence[str],
                 token: str, advertise_ip: str, *, first_index: int = 1,
                 start_delay: float = DEFAULT_START_DELAY,
                 join_concurrency: int = JOIN_CONCURRENCY,
                 generic_resources: Sequence[pb.GenericResource] = ()) -> None:
        if count < 1:
            raise ValueError("a hollow group needs at least one node")
        self.data_dir = data_dir
        self.group = group
        self.managers = list(managers)
        self.token = token
        self.advertise_ip = advertise_ip
        # what every node of the group offers (none unless --node-generic-resource)
        self.generic_resources = list(generic_resources)
        self.nodes = [HollowNode(i, hostname_of(group, i), node_dir(data_dir, i))
                      for i in range(first_index, first_index + count)]
        self.engines: dict[str, HollowEngine] = {}
        self.make_runtime = hollow_factory(start_delay, self.engines)
        self.join_slots = asyncio.Semaphore(join_concurrency)
        self.executor = ThreadPoolExecutor(max_workers=join_concurrency,
                                           thread_name_prefix="join")
        self.stopping = asyncio.Event()
        self.failed: Optional[BaseException] = None
        self._connected = 0

    async def run(self) -> None:
        """Joins (or resumes) every node and runs their agents until `stop()`."""
        jobs = [asyncio.create_task(self._run_node(node), name=node.hostname)
                for node in self.nodes]
        stopper = asyncio.create_task(self.stopping.wait())
        try:
            done, _ = await asyncio.wait([*jobs, stopper], return_when=asyncio.FIRST_COMPLETED)
            for job in done:
                if job is not stopper and not job.cancelled() and job.exception() is not None:
                    self.failed = job.exception()
                    break
        finally:
            await asyncio.gather(*(node.agent.stop() for node in self.nodes
                                   if node.agent is not None), return_exceptions=True)
            for job in jobs:
                job.cancel()
            stopper.cancel()
            await asyncio.gather(*jobs, stopper, return_exceptions=True)
            self.executor.shutdown(wait=False, cancel_futures=True)
        if self.failed is not None:
            raise self.failed

    def stop(self) -> None:
        self.stopping.set()

    async def _run_node(self, node: HollowNode) -> None:
        if not node.load():
            await self._join(node)
        creds = pkinode.load(node.directory)
        agent = Agent(
            node.node_id, self.make_runtime(node.node_id), node.managers,
            hostname=node.hostname, credentials=tls.client_credentials(creds),
            engine_labels={LABEL_HOLLOW: self.group}, cluster_id=node.cluster_id,
            generic_resources=self.generic_resources,
            on_session_message=lambda message: self._session_message(node, message),
            files_root=str(node.directory / "tasks"))
        node.agent = agent
        watcher = asyncio.create_task(self._count_connected(agent))
        try:
            await agent.run()
        finally:
            watcher.cancel()

    async def _join(self, node: HollowNode) -> None:
        """The real join flow for one node, retried while the managers are busy."""
        node.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        delay = 0.2
        attempt = 0
        loop = asyncio.get_running_loop()
        while True:
            target = self.managers[attempt % len(self.managers)]
            host, port = split_addr(target, DEFAULT_PORT)
            async with self.join_slots:
                log.debug("%s: joining through %s (attempt %d)", node.hostname, target,
                          attempt + 1)
                try:
                    joined = await loop.run_in_executor(
                        self.executor, lambda: credentials.join(
                            node.directory, host, port, self.token,
                            advertise_addr=f"{self.advertise_ip}:{port}", raft_addr="",
                            hostname=node.hostname))
                    break
                except credentials.JoinError as err:
                    if not _retryable(str(err)):
                        raise JoinRefused(f"{node.hostname}: {err}") from None
                    log.warning("%s: join through %s failed (%s); retrying", node.hostname,
                                target, err)
            attempt += 1
            await asyncio.sleep(delay)
            delay = min(JOIN_RETRY_MAX, delay * 2)
        node.node_id, node.cluster_id = joined.node_id, joined.cluster_id
        node.managers = list(joined.managers) or list(self.managers)
        node.save()

    def _session_message(self, node: HollowNode, message: dpb.SessionMessage) -> None:
        """Follows the manager list, as a daemon does (saved for a restart)."""
        managers = sorted(m.addr for m in message.managers if m.addr)
        if managers and managers != sorted(node.managers):
            node.managers = managers
            if node.agent is not None:
                node.agent.targets = list(managers)
            node.save()

    async def _count_connected(self, agent: Agent) -> None:
        await agent.connected.wait()
        self._connected += 1
        if self._connected == len(self.nodes):
            ready = self.data_dir / READY_FILE
            ready.with_suffix(".tmp").write_text(str(len(self.nodes)))
            os.replace(ready.with_suffix(".tmp"), ready)
            log.info("group %s: all %d hollow nodes have a session", self.group,
                     len(self.nodes))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab.hollownodes",
                                     description="Run a group of hollow Shoal nodes")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--group", required=True, help="The group's name (hostname prefix)")
    parser.add_argument("--count", required=True, type=int, help="How many nodes")
    parser.add_argument("--manager", required=True,
                        help="Manager addresses to join through, IP:PORT[,IP:PORT...]")
    parser.add_argument("--token", required=True, help="A worker join token")
    parser.add_argument("--advertise-ip", required=True, help="This process's underlay IP")
    parser.add_argument("--first-index", type=int, default=1)
    parser.add_argument("--start-delay", type=float, default=DEFAULT_START_DELAY,
                        help="Seconds a hollow task takes to start (default 0.05)")
    parser.add_argument("--debug", action="store_true",
                        help="Log at DEBUG level (join attempts, assignments, task states)")
    parser.add_argument("--node-generic-resource", action="append", default=[],
                        metavar="KIND=VALUE",
                        help="A generic resource every node of the group offers (repeatable)")
    return parser


def host_from_args(args: argparse.Namespace) -> HollowHost:
    """The group the parsed command line describes (not started yet)."""
    return HollowHost(args.data_dir, args.group, args.count,
                      [m.strip() for m in args.manager.split(",") if m.strip()],
                      args.token, args.advertise_ip, first_index=args.first_index,
                      start_delay=args.start_delay,
                      generic_resources=genericres.parse_node(args.node_generic_resource))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(logging.DEBUG if args.debug else logging.INFO)
    if args.count < 1 or args.start_delay < 0:
        print("Error: --count must be at least 1 and --start-delay at least 0",
              file=sys.stderr)
        return 2
    try:
        genericres.parse_node(args.node_generic_resource)
    except ValueError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (data_dir / READY_FILE).unlink(missing_ok=True)
    (data_dir / PID_FILE).write_text(str(os.getpid()))

    async def serve() -> None:
        host = host_from_args(args)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, host.stop)
        await host.run()

    try:
        asyncio.run(serve())
    except JoinRefused as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
