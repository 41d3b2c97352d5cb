"""A multi-node Shoal cluster on one host: the `Lab` behind `swarm-lab`.

Owns the lab's nodes: a data directory per node (`<lab-dir>/nodes/<name>`),
podman storage of its own (`<lab-dir>/podman/<name>`, see `lab.podstore`:
nodes share no images and pull from the lab registry through their
namespace), its daemon started inside the node's network namespace and in a
fresh UTS namespace whose hostname is the node's name (`nsenter --net=…
unshare --uts`; not `ip netns exec`, which remounts /sys and hides the cgroups
podman needs), and their teardown: daemons, containers labelled with the
lab's node IDs, the podman services of the lab's data directories, then the
network (`lab.netlab`), then the nodes' podman storage and data directories.
What a node is, is written to the state file before it is made, so `down`
works after any crash.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from lab import hollowlab
from lab.localnode import LABEL_NODE, wait_for
from lab.netlab import NetLab, NetLabError, Underlay, kill_and_wait, process_alive
from lab.podstore import NodeStorage, pids_using
from lab.state import StateFile, lab_dir
from node.state import locked, log_path, podman_log_path
from worker.overlay import cleanup_node
from worker.taskfiles import TaskFiles, default_root

REPO = Path(__file__).resolve().parent.parent
MANAGER_PORT = 2377
REGISTRY_PORT = 5000
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
FIELDS = ("Name", "Role", "IP", "DataDir", "Pid", "Host", "Underlay", "Nodes")
JOIN_MISSING = ("swarm join is not available yet in this checkout (swarm join-token is "
                "missing): only a one-node lab can be brought up (--managers 1 --workers 0)")

__all__ = ["Lab", "LabError", "NodeInfo", "wait_for", "FIELDS"]


class LabError(Exception):
    """A lab command cannot be done; the message says why and what to do."""


@dataclass
class NodeInfo:
    """One row of `swarm-lab status`."""
    name: str
    role: str
    ip: str
    data_dir: str
    pid: Optional[int]
    host: str
    underlay: str
    nodes: int = 1   # cluster nodes this lab node is: 1, or a hollow group's count

    def row(self) -> dict[str, Any]:
        return {"Name": self.name, "Role": self.role, "IP": self.ip, "DataDir": self.data_dir,
                "Pid": self.pid or "", "Host": self.host, "Underlay": self.underlay,
                "Nodes": self.nodes}


def _natural(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


_pids_using = pids_using


def _remove_data_dir(data_dir: Path) -> None:
    """Removes a node's data directory and the logs kept beside it."""
    shutil.rmtree(data_dir, ignore_errors=True)
    for path in (log_path(data_dir), podman_log_path(data_dir)):
        path.unlink(missing_ok=True)


def _is_swarm(pid: int) -> bool:
    """Whether pid is a node daemon or a hollow group's process."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        return b"cli.main" in cmdline or b"lab.hollownodes" in cmdline
    except OSError:
        return False


class Lab:
    """The nodes of one lab; every method reads the state file afresh."""

    def __init__(self, root: Optional[Path] = None, underlay_index: Optional[int] = None,
                 metrics_port: Optional[int] = None, init_flags: Sequence[str] = (),
                 node_flags: Optional[Mapping[str, Sequence[str]]] = None) -> None:
        self.root = Path(root) if root else lab_dir()
        # more `swarm init` flags for manager1 (e.g. --data-path-port 7789)
        self.init_flags = tuple(init_flags)
        # more `swarm init|join` flags for the node of that name, e.g. {"worker1":
        # ["--node-generic-resource", "gpu=GPU-1"]} (the node keeps them across restarts)
        self.node_flags = {name: tuple(flags) for name, flags in (node_flags or {}).items()}
        # nodes made by this Lab serve /metrics on <their IP>:<port> over mutual TLS
        # (`--metrics-addr IP:PORT --metrics-tls`, kept across restarts)
        self.metrics_port = metrics_port
        self.state = StateFile(self.root / "lab.json")
        if underlay_index is None:
            underlay_index = int(os.environ.get("SHOAL_LAB_INDEX", "0"))
        self.net = NetLab(self.state, Underlay.indexed(underlay_index))
        self.python = sys.executable
        bindir = str(Path(sys.executable).parent)
        self.env = dict(os.environ, PYTHONPATH=str(REPO),
                        PATH=f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}")

    # ---- queries

    def _nodes(self) -> dict[str, dict[str, Any]]:
        return dict(self.state.read().get("nodes", {}))

    def is_up(self) -> bool:
        return self.net.created()

    def _require_up(self) -> None:
        if not self.is_up():
            raise LabError(f"the lab is not up (no state in {self.state.path}); "
                           "run 'swarm-lab up' first")

    def _node(self, name: str) -> dict[str, Any]:
        self._require_up()
        node = self._nodes().get(name)
        if node is None:
            known = ", ".join(sorted(self._nodes(), key=_natural)) or "none"
            raise LabError(f"unknown node {name!r} (lab nodes: {known})")
        return node

    def names(self) -> list[str]:
        return sorted(self._nodes(), key=_natural)

    def data_dir(self, name: str) -> Path:
        return Path(self._node(name)["data_dir"])

    def ip(self, name: str) -> str:
        self._node(name)
        return self.net.ip(name)

    def storage(self, name: str) -> Optional[NodeStorage]:
        """The node's own podman storage (None for a node made before labs had it)."""
        path = self._node(name).get("podman_dir")
        return NodeStorage(Path(path)) if path else None

    def node_env(self, name: str) -> dict[str, str]:
        """The environment of the node's processes: the lab's, with the node's podman storage."""
        storage = self.storage(name)
        return dict(self.env, **(storage.options.to_env() if storage else {}))

    def host(self, name: str) -> str:
        """The SWARM_HOST value that reaches this node's control API."""
        if self.is_hollow(name):
            raise LabError(f"{name} is a hollow group: its nodes have no control socket")
        return f"unix://{self.data_dir(name)}/swarm.sock"

    def is_hollow(self, name: str) -> bool:
        return self._node(name)["role"] == hollowlab.ROLE

    def hollow_groups(self) -> dict[str, dict[str, Any]]:
        """Each hollow group: its node count, process pid, IP and its nodes' hostnames."""
        return {name: {"count": int(node["hollow"]), "pid": self.pid(name),
                       "ip": self.net.ip(name), "hostnames": hollowlab.hostnames(name, node)}
                for name, node in sorted(self._nodes().items(), key=lambda i: _natural(i[0]))
                if node["role"] == hollowlab.ROLE}

    def hostnames(self) -> list[str]:
        """The hostnames every cluster node of the lab has (hollow nodes' included)."""
        found: list[str] = []
        for name, node in sorted(self._nodes().items(), key=lambda i: _natural(i[0])):
            found += hollowlab.hostnames(name, node) if node["role"] == hollowlab.ROLE \
                else [name]
        return found

    def role(self, name: str) -> str:
        node = self._node(name)
        try:
            return json.loads((Path(node["data_dir"]) / "node.json").read_text())["role"]
        except (OSError, ValueError, KeyError):
            return node["role"]

    def node_id(self, name: str) -> str:
        try:
            return json.loads((self.data_dir(name) / "node.json").read_text())["node_id"]
        except (OSError, ValueError, KeyError):
            return ""

    def pid(self, name: str) -> Optional[int]:
        """PID of the node's running daemon, or None."""
        data_dir = self.data_dir(name)
        try:
            pid = int((data_dir / "daemon.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if str(data_dir).encode() + b"\0" not in cmdline or not process_alive(pid):
            return None
        return pid

    def nodes(self) -> list[NodeInfo]:
        self._require_up()
        hollow = self.hollow_groups()
        return [NodeInfo(n, hollowlab.ROLE, self.ip(n), str(self.data_dir(n)), self.pid(n), "",
                         self.net.underlay.bridge, hollow[n]["count"]) if n in hollow else
                NodeInfo(n, self.role(n), self.ip(n), str(self.data_dir(n)), self.pid(n),
                         self.host(n), self.net.underlay.bridge) for n in self.names()]

    # ---- running things inside a node

    def _swarm_argv(self, *args: str) -> list[str]:
        return [self.python, "-m", "cli.main", *args]

    def _with_hostname(self, name: str, argv: Sequence[str]) -> list[str]:
        """argv run in the node's netns and a new UTS namespace named after the node."""
        return ["nsenter", f"--net={self.net.netns_path(name)}", "unshare", "--uts", "--",
                "sh", "-c", 'hostname "$0" && exec "$@"', name, *argv]

    def exec_argv(self, name: str, cmd: Sequence[str], registry_view: bool = False
                  ) -> tuple[list[str], dict[str, str]]:
        """The command line and environment that run cmd inside the node; with
        `registry_view`, cmd sees registries as the node's podman does (its
        registries.conf: `swarm` then pins the digests the node's pulls will find)."""
        self._node(name)
        argv = ["nsenter", f"--net={self.net.netns_path(name)}"]
        pid = self.pid(name)
        if pid is not None:
            argv.append(f"--uts=/proc/{pid}/ns/uts")
        env = dict(self.node_env(name), SWARM_HOST=self.host(name))
        storage = self.storage(name)
        if registry_view and storage:
            env["CONTAINERS_REGISTRIES_CONF"] = str(storage.registries_conf)
        return [*argv, "--", *cmd], env

    def exec(self, name: str, *cmd: str, check: bool = False, timeout: float = 120,
             input: Optional[str] = None, registry_view: bool = False
             ) -> subprocess.CompletedProcess:
        """Runs cmd in the node's namespaces with SWARM_HOST set; captures its output."""
        argv, env = self.exec_argv(name, cmd, registry_view)
        res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                             input=input, cwd=str(REPO))
        if check and res.returncode != 0:
            raise LabError(f"{' '.join(cmd)} on {name} failed ({res.returncode}):\n"
                           f"{res.stdout}{res.stderr}")
        return res

    def swarm(self, name: str, *args: str, check: bool = True, timeout: float = 120,
              input: Optional[str] = None, registry_view: bool = False
              ) -> subprocess.CompletedProcess:
        """Runs the `swarm` CLI inside the node against its own daemon (`input` on stdin)."""
        return self.exec(name, *self._swarm_argv(*args), check=check, timeout=timeout,
                         input=input, registry_view=registry_view)

    def podman_argv(self, name: str, args: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """The command line and environment of `podman ARGS` on the node's own storage,
        inside the node's network namespace (so pulls go the way the node's do)."""
        storage = self.storage(name)
        command = storage.command() if storage else ["podman"]
        # the network namespace only: the argv stays valid across daemon restarts
        argv = ["nsenter", f"--net={self.net.netns_path(name)}", "--", *command, *args]
        env = self.node_env(name)
        return argv, storage.environ(env) if storage else env

    def containers(self, *filters: str, all_states: bool = False) -> list[dict[str, Any]]:
        """`podman ps --format json` over every node's storage (each `--filter` value in
        filters); each entry gets "LabNode", the node whose storage holds it."""
        found = []
        for name in self.names():
            if self.is_hollow(name):
                continue    # no containers there
            args = ["ps", "--format", "json", *(f"--filter={f}" for f in filters)]
            if all_states:
                args.insert(1, "-a")
            res = self.podman(name, *args, check=True)
            for entry in json.loads(res.stdout or "[]"):
                entry["LabNode"] = name
                found.append(entry)
        return found

    def podman(self, name: str, *args: str, check: bool = False,
               timeout: float = 120) -> subprocess.CompletedProcess:
        """Runs `podman ARGS` as the node sees it (its storage, its registry view)."""
        argv, env = self.podman_argv(name, args)
        res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                             cwd=str(REPO))
        if check and res.returncode != 0:
            raise LabError(f"podman {' '.join(args)} on {name} failed ({res.returncode}): "
                           f"{res.stderr.strip()}")
        return res

    def log_path(self, name: str) -> Path:
        """The node daemon's log (beside its data directory, see node.state.log_path)."""
        return log_path(self.data_dir(name))

    def locked(self, name: str) -> bool:
        """Whether the node's daemon runs locked, waiting for `swarm unlock`."""
        return self.pid(name) is not None and locked(self.data_dir(name))

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_path(name)
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _run_node_starter(self, name: str, *args: str) -> None:
        res = subprocess.run(self._with_hostname(name, self._swarm_argv(*args)),
                             env=self.node_env(name),
                             capture_output=True, text=True, timeout=120, cwd=str(REPO))
        if res.returncode != 0:
            raise LabError(f"swarm {args[0]} on {name} failed ({res.returncode}): "
                           f"{(res.stderr or res.stdout).strip()}\n"
                           f"--- daemon log tail:\n{self.log_tail(name)}")

    # ---- lifecycle

    def join_available(self) -> bool:
        """Whether this checkout's `swarm` can join nodes (join and join-token exist)."""
        for cmd in (("join", "--help"), ("join-token", "--help")):
            res = subprocess.run(self._swarm_argv(*cmd), env=self.env, capture_output=True,
                                 text=True, timeout=60, cwd=str(REPO))
            if res.returncode != 0:
                return False
        return True

    def up(self, managers: int = 1, workers: int = 0, hollow: int = 0,
           hollow_per_process: int = hollowlab.PER_PROCESS) -> list[NodeInfo]:
        """Creates the underlay and nodes manager1..N, worker1..M, then `hollow` hollow
        nodes in groups hollow1..K of at most `hollow_per_process`; tears down on failure."""
        if managers < 1 or workers < 0 or hollow < 0:
            raise LabError("a lab needs at least one manager and no negative worker or "
                           "hollow node count")
        if hollow_per_process < 1:
            raise LabError("--hollow-per-process must be at least 1")
        if self.state.read():
            raise LabError(f"a lab is already up (state in {self.state.path}); "
                           "run 'swarm-lab down' first")
        if managers + workers > 1 and not self.join_available():
            raise LabError(JOIN_MISSING)
        try:
            self.net.create()
        except NetLabError as err:
            self.down(missing_ok=True)
            raise LabError(str(err)) from None
        try:
            self._new_node("manager1", "manager", create_cluster=True)
            for i in range(2, managers + 1):
                self._new_node(f"manager{i}", "manager")
            for i in range(1, workers + 1):
                self._new_node(f"worker{i}", "worker")
            if hollow:
                self.add_hollow_groups(hollowlab.split(hollow, hollow_per_process))
        except BaseException:
            self.down(missing_ok=True)
            raise
        return self.nodes()

    def add_hollow(self, count: int, wait: bool = True,
                   start_delay: float = hollowlab.DEFAULT_START_DELAY,
                   generic_resources: Sequence[str] = ()) -> str:
        """Starts one more hollow group of `count` nodes; returns its name (hollowK).
        With `wait`, returns once every node of it has had a session. Each node offers
        `generic_resources` (KIND=VALUE terms; none by default)."""
        self._require_up()
        if count < 1:
            raise LabError("a hollow group needs at least one node")
        return self.add_hollow_groups([count], wait=wait, start_delay=start_delay,
                                      generic_resources=generic_resources)[0]

    def add_hollow_groups(self, counts: Sequence[int], wait: bool = True,
                          start_delay: float = hollowlab.DEFAULT_START_DELAY,
                          generic_resources: Sequence[str] = ()) -> list[str]:
        """Starts a hollow group per count, all at once (then waits for all, with `wait`)."""
        if start_delay < 0:
            raise LabError("the hollow start delay must be at least 0 seconds")
        names = hollowlab.group_names(set(self._nodes()), len(counts))
        token = self.join_token("worker")
        procs: dict[str, subprocess.Popen] = {}
        for name, count in zip(names, counts):
            data_dir = self.root / "nodes" / name
            with self.state.edit() as doc:
                doc.setdefault("nodes", {})[name] = hollowlab.entry(
                    data_dir, count, start_delay, token, generic_resources)
            try:
                self.net.add_node(name)
                _remove_data_dir(data_dir)
                data_dir.mkdir(parents=True, mode=0o700)
                procs[name] = self._launch_hollow(name)
            except BaseException:
                for made in [*names[:names.index(name) + 1]]:
                    self._teardown_node(made)
                raise
        if wait:
            self._wait_hollow(procs)
        return names

    def _launch_hollow(self, name: str) -> subprocess.Popen:
        node = self._node(name)
        managers = [f"{self.ip(m)}:{MANAGER_PORT}" for m in self.names()
                    if self.role(m) == "manager"]
        argv = hollowlab.command(self.python, name, node, managers, node["token"],
                                 self.ip(name))
        return hollowlab.launch(argv, self.net.netns_path(name), self.env,
                                log_path(Path(node["data_dir"])), str(REPO))

    def _wait_hollow(self, procs: dict[str, subprocess.Popen]) -> None:
        timeout = max(hollowlab.ready_timeout(int(self._node(n)["hollow"])) for n in procs)
        try:
            hollowlab.wait_ready(procs, {n: self.data_dir(n) for n in procs}, timeout,
                                 lambda n: self.log_tail(n))
        except RuntimeError as err:
            raise LabError(str(err)) from None

    def _new_node(self, name: str, role: str, create_cluster: bool = False,
                  token: Optional[str] = None, flags: Sequence[str] = ()) -> None:
        if not NAME_RE.match(name):
            raise LabError(f"invalid node name {name!r}: use lowercase letters, digits and "
                           "'-' (at most 31 characters)")
        data_dir = self.root / "nodes" / name
        podman_dir = self.root / "podman" / name
        with self.state.edit() as doc:
            if name in doc.get("nodes", {}):
                raise LabError(f"node {name!r} already exists")
            doc.setdefault("nodes", {})[name] = {"role": role, "data_dir": str(data_dir),
                                                 "podman_dir": str(podman_dir)}
        try:
            ip = self.net.add_node(name)
            _remove_data_dir(data_dir)
            data_dir.parent.mkdir(parents=True, exist_ok=True)
            storage = NodeStorage(podman_dir)
            problems = storage.remove()          # a leftover of an earlier node of that name
            if problems:
                raise LabError(f"node {name!r}: old podman storage left: {'; '.join(problems)}")
            storage.prepare(f"{self.net.underlay.host_ip}:{REGISTRY_PORT}")
            addr = f"{ip}:{MANAGER_PORT}"
            metrics = [] if self.metrics_port is None else [
                "--metrics-addr", f"{ip}:{self.metrics_port}", "--metrics-tls"]
            extra = [*self.node_flags.get(name, ()), *flags]
            if create_cluster:
                self._run_node_starter(name, "init", "--data-dir", str(data_dir),
                                       "--listen-addr", addr, "--advertise-addr", addr,
                                       *metrics, *self.init_flags, *extra)
                return
            if token is None:
                token = self.join_token(role)
            self._run_node_starter(name, "join", "--token", token, "--data-dir", str(data_dir),
                                   "--listen-addr", addr, "--advertise-addr", addr, *metrics,
                                   *extra, f"{self.ip(self._live_manager())}:{MANAGER_PORT}")
        except BaseException:
            self._teardown_node(name)
            raise

    def _live_manager(self) -> str:
        for name in self.names():
            if self.role(name) == "manager" and self.pid(name) is not None \
                    and not self.locked(name):
                return name
        raise LabError("no manager of the lab is running (start one with 'swarm-lab start')")

    def join_token(self, role: str) -> str:
        """The current join token for role, asked from a running manager."""
        if not self.join_available():
            raise LabError(JOIN_MISSING)
        res = self.swarm(self._live_manager(), "join-token", "-q", role)
        return res.stdout.strip()

    def add(self, name: str, manager: bool = False, token: Optional[str] = None,
            flags: Sequence[str] = ()) -> NodeInfo:
        """Joins a new node to the lab's cluster (with token, or a fresh one of its role;
        `flags`: more `swarm join` flags, e.g. --node-generic-resource gpu=GPU-1)."""
        self._require_up()
        if not self.join_available():
            raise LabError(JOIN_MISSING)
        self._new_node(name, "manager" if manager else "worker", token=token, flags=flags)
        return next(n for n in self.nodes() if n.name == name)

    def kill(self, name: str) -> int:
        """SIGKILLs the node's daemon (its podman service and containers stay); returns its pid."""
        pid = self.pid(name)
        if pid is None:
            raise LabError(f"node {name!r} has no running daemon")
        kill_and_wait([pid])
        return pid

    def start(self, name: str, *flags: str) -> int:
        """Starts `swarm daemon [FLAGS]` on the node's data dir inside its namespaces; returns
        the pid once it serves, or once it waits locked for `swarm unlock` (see `locked`)."""
        if self.pid(name) is not None:
            raise LabError(f"node {name!r} is already running (pid {self.pid(name)})")
        if self.is_hollow(name):
            if flags:
                raise LabError("a hollow group's process takes no daemon flags")
            self._wait_hollow({name: self._launch_hollow(name)})
            pid = self.pid(name)
            assert pid is not None
            return pid
        self._run_node_starter(name, "daemon", "--data-dir", str(self.data_dir(name)), *flags)
        pid = self.pid(name)
        if pid is None:
            raise LabError(f"the daemon of {name!r} exited after starting:\n{self.log_tail(name)}")
        return pid

    def remove(self, name: str) -> None:
        """Removes a node as if its machine vanished: the cluster sees it go Down."""
        self._node(name)
        problems = self._teardown_node(name)
        if problems:
            raise LabError(f"removing {name}: " + "; ".join(problems))

    def partition(self, group: Sequence[str], others: Sequence[str]) -> None:
        """Drops traffic between the two groups of nodes, both ways (host still reaches all)."""
        for name in [*group, *others]:
            self._node(name)
        try:
            self.net.partition(group, others)
        except NetLabError as err:
            raise LabError(str(err)) from None

    def heal(self) -> None:
        self._require_up()
        self.net.heal()

    # ---- teardown

    def _stop_node_processes(self, node: dict[str, Any]) -> list[str]:
        """Kills the daemon, removes its containers, kills its podman service."""
        data_dir = Path(node["data_dir"])
        kill_and_wait(p for p in _pids_using(str(data_dir)) if _is_swarm(p))
        problems = hollowlab.cleanup(data_dir) if node.get("role") == hollowlab.ROLE else []
        try:
            node_id = json.loads((data_dir / "node.json").read_text())["node_id"]
        except (OSError, ValueError, KeyError):
            node_id = ""
        storage = NodeStorage(Path(node["podman_dir"])) if node.get("podman_dir") else None
        if storage is not None and not storage.base.exists():
            node_id = ""                      # never prepared: no container can be there
        podman = storage.command() if storage else ["podman"]
        env = storage.environ() if storage else None
        if node_id and shutil.which("podman"):
            ids = subprocess.run([*podman, "ps", "-aq", "--filter", f"label={LABEL_NODE}={node_id}"],
                                 capture_output=True, text=True, timeout=120, env=env).stdout.split()
            if ids:
                res = subprocess.run([*podman, "rm", "-f", "-t", "0", *ids], env=env,
                                     capture_output=True, text=True, timeout=300)
                if res.returncode != 0:
                    problems.append(f"podman rm: {res.stderr.strip()}")
        if node_id:
            # overlay sandboxes and task namespaces live under /run/netns, beside the node's
            problems += cleanup_node(node_id, mesh=False)
            files = TaskFiles(default_root(node_id))
            files.cleanup(keep=())
            shutil.rmtree(Path(files.root).parent, ignore_errors=True)
        kill_and_wait(_pids_using(str(data_dir)))
        return problems

    @staticmethod
    def _remove_storage(node: dict[str, Any]) -> list[str]:
        """Removes the node's podman storage (after its processes were stopped)."""
        if not node.get("podman_dir"):
            return []
        return NodeStorage(Path(node["podman_dir"])).remove()

    def _teardown_node(self, name: str) -> list[str]:
        with self.state.edit() as doc:
            node = doc.get("nodes", {}).get(name)
            if node is None:
                return []
            problems = self._stop_node_processes(node)
            try:
                if name in self.net.nodes():
                    self.net.remove_node(name)
            except (NetLabError, OSError) as err:
                problems.append(str(err))
            problems += self._remove_storage(node)
            _remove_data_dir(Path(node["data_dir"]))
            if not problems:
                del doc["nodes"][name]
            return problems

    def down(self, missing_ok: bool = False) -> None:
        """Removes everything the lab made: processes, containers, network, data dirs."""
        if not self.state.read():
            if missing_ok:
                return
            raise LabError(f"the lab is not up (no state in {self.state.path})")
        problems: list[str] = []
        with self.state.edit() as doc:
            nodes = doc.get("nodes", {})
            for node in nodes.values():
                problems += self._stop_node_processes(node)
            try:
                problems += self.net.destroy()
            except (NetLabError, OSError) as err:
                problems.append(str(err))
            for node in nodes.values():
                problems += self._remove_storage(node)
            if problems:
                raise LabError("down left things behind (run it again): " + "; ".join(problems))
            for node in nodes.values():
                _remove_data_dir(Path(node["data_dir"]))
            doc.clear()

    # ---- helpers for tests and benchmarks

    @staticmethod
    def wait_for(cond: Callable[[], Any], timeout: float, what: str,
                 interval: float = 0.05) -> Any:
        """Polls cond() until truthy; AssertionError naming `what` at the deadline."""
        return wait_for(cond, timeout, what, interval)

    def wait_running(self, name: str, timeout: float = 30.0) -> int:
        """Waits until the node's daemon answers `swarm node ls`; returns its pid."""
        def ready() -> Optional[int]:
            pid = self.pid(name)
            if pid is None or self.swarm(name, "node", "ls", "-q", check=False).returncode:
                return None
            return pid
        return self.wait_for(ready, timeout, f"{name}'s daemon to answer")

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Waits until a running manager lists every lab node as Ready (by hostname)."""
        def all_ready() -> bool:
            res = self.swarm(self._live_manager(), "node", "ls", "--format",
                             "{{.Hostname}} {{.Status}}", check=False)
            ready = {line.split()[0] for line in res.stdout.splitlines()
                     if line.endswith(" Ready")}
            return res.returncode == 0 and set(self.hostnames()) <= ready
        self.wait_for(all_ready, timeout, f"nodes {', '.join(self.names())} to be Ready")
