"""Making a node, and starting and stopping its daemon: init, join, force-new-cluster, leave.

`init_cluster` creates a node's identity and a new cluster in a data
directory, `join_cluster` joins an existing one through a manager,
`force_new_cluster` turns a manager's data directory into a one-manager
cluster, `leave` takes the node out of its swarm and clears its data
directory. `spawn_daemon` starts the daemon detached (the command in
`NodeConfig.daemon_command`) and waits until it serves or waits locked;
`stop_daemon` ends it. Failures raise `NodeError` with a message for a
person; the CLI prints it. Nothing here prints: progress and warnings go to
the `say` callback the caller passes.
"""
from __future__ import annotations

import datetime as _dt
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import grpc

from manager.allocator import ipam
from node import credentials
from node.config import ClusterSettings, NodeConfig
from node.runtimes import remove_node_containers
from node import state as nodestate
from node.state import (DEFAULT_PORT, LOCKED_FILE, PID_FILE, READY_FILE, STATE_FILE, NodeState,
                        apply_generic_flags, apply_metrics_flags, daemon_running, locked,
                        log_path, node_addresses, raft_addr_of, raft_bind_addr,
                        serving, socket_path, split_addr)
from pki import keystore, tokens
from pki import raft_tls as pki_raft_tls
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import model
from raft import recovery
from worker.overlay import cleanup_node
from worker.taskfiles import TaskFiles, default_root

ALREADY = ('This node is already part of a swarm. Use "swarm leave" to leave this swarm '
           'and join another one.')
NOT_A_MEMBER = "This node is not part of a swarm"
LEAVE_MANAGER = ("You are attempting to leave the swarm on a node that is participating "
                 "as a manager. Removing the last manager erases all current state of the "
                 "swarm, and removing a manager can cost the swarm its quorum. Use `--force` "
                 "to ignore this message.")

Say = Callable[[str], None]  # one line of progress or warning for the person running it


class NodeError(Exception):
    """A node cannot be made, started or left; the message says why and what to do."""


# ------------------------------------------------------------------- init --

def init_cluster(config: NodeConfig, settings: ClusterSettings) -> NodeState:
    """A new cluster's identity and PKI in `config.data_dir`, this node its first manager.

    The daemon creates the cluster object from `settings` when it first runs.
    """
    data_dir = config.data_dir
    if NodeState.exists(data_dir):
        raise NodeError(ALREADY)
    try:
        listen, advertise = node_addresses(config.listen_addr, config.advertise_addr)
        ipam.parse_pools(settings.default_addr_pool or [],
                         settings.default_addr_pool_mask_length or 0)
        state = NodeState(node_id=model.new_id(), role="manager", advertise_addr=advertise,
                          listen_addr=listen, raft_addr=raft_addr_of(advertise),
                          init=settings.as_init(), creates_cluster=True,
                          cluster_id=model.new_id(), managers=[advertise],
                          data_path_addr=_data_path_addr(config))
        apply_metrics_flags(state, config.metrics_addr, config.metrics_tls)
        apply_generic_flags(state, config.generic_resources)
    except ValueError as exc:  # ipam's AllocationError is a ValueError
        raise NodeError(str(exc)) from None
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    expiry = _dt.timedelta(microseconds=settings.cert_expiry_ns / 1000) \
        if settings.cert_expiry_ns else None
    credentials.create_cluster_pki(data_dir, state.node_id, state.cluster_id,
                                   state.advertise_addr, expiry)
    state.save(data_dir)
    return state


def forget_state(data_dir: Path) -> None:
    """Drops node.json (an init whose daemon did not start)."""
    (data_dir / STATE_FILE).unlink(missing_ok=True)


def fetch_unlock_key(data_dir: Path, timeout: float = 30.0) -> str:
    """The unlock key, asked from the node's own socket once its cluster exists."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"unix://{socket_path(data_dir)}") as channel:
        stub = control_pb2_grpc.ControlStub(channel)
        while True:
            try:
                key = stub.GetUnlockKey(cpb.GetUnlockKeyRequest(), timeout=5).unlock_key
                if key:
                    return str(key)
            except grpc.RpcError:
                pass
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the node did not report its unlock key within {timeout:g}s")
            time.sleep(0.1)


# ------------------------------------------------------ force-new-cluster --

def force_new_cluster(config: NodeConfig, read_unlock_key: Callable[[], str],
                      say: Say) -> NodeState:
    """`swarm init --force-new-cluster`: a one-manager cluster from a manager's data directory.

    The data directory is a (stopped, or then stopped here) manager's, or a
    copy of one restored from a backup.  Every object is kept with its ID
    (services, tasks, networks, secrets, configs, nodes, the cluster object
    with its CA and join tokens); this node becomes the only raft member and
    the leader, the other managers are demoted to workers in the store (see
    raft/recovery.py).  `--listen-addr`/`--advertise-addr` move the node
    (restore onto another host); without them it keeps its addresses.  The
    node keeps its certificates and raft key; the old raft directory stays
    as `<data-dir>/raft.old-<time>`. `read_unlock_key` is asked for the
    unlock key when the cluster is locked.
    """
    data_dir = config.data_dir
    no_state = (f"{data_dir} holds no manager state to recover: --force-new-cluster "
                "needs the data directory of a manager (node.json and raft/)")
    if not NodeState.exists(data_dir):
        raise NodeError(no_state)
    try:
        state = NodeState.load(data_dir)
    except (OSError, ValueError, TypeError) as exc:
        raise NodeError(f"cannot read {data_dir / STATE_FILE}: {exc}") from None
    if state.role != "manager":
        raise NodeError(f"{no_state}; this one is a worker's, which holds no cluster state")
    try:
        try:
            dek = credentials.open_manager_keys(data_dir)
        except keystore.LockedError:  # the cluster is locked: ask for its key
            dek = credentials.open_manager_keys(data_dir, read_unlock_key().strip())
        raft_tls = pki_raft_tls.from_data_dir(data_dir, kek=keystore.private_key_passphrase(dek))
        credentials.root_ca(data_dir, dek)
    except keystore.InvalidUnlockKey as exc:
        raise NodeError(f"swarm could not be unlocked: invalid key provided ({exc})") from None
    except (OSError, ValueError, keystore.KeyStoreError) as exc:
        raise NodeError(f"the manager credentials in {credentials.cert_dir(data_dir)} are "
                        f"missing or unreadable ({exc}); restore them with the data "
                        "directory") from None
    try:
        listen, advertise = node_addresses(config.listen_addr, config.advertise_addr,
                                           default_listen=state.listen_addr,
                                           default_advertise=state.advertise_addr)
        apply_metrics_flags(state, config.metrics_addr, config.metrics_tls)
        apply_generic_flags(state, config.generic_resources)
    except ValueError as exc:
        raise NodeError(str(exc)) from None
    raft_addr = raft_addr_of(advertise)
    if daemon_running(data_dir):  # as Docker does on a running node: stop it, then rebuild
        stop_daemon(data_dir)
    cipher = tokens.DataCipher(dek)
    try:
        rebuilt = recovery.force_new_cluster(
            data_dir, state.node_id, bind_addr=raft_bind_addr(listen, raft_addr),
            raft_addr=raft_addr, manager_addr=advertise, tls=raft_tls,
            encrypt=cipher.encrypt, decrypt=cipher.decrypt)
    except recovery.NoManagerState as exc:
        raise NodeError(f"{no_state} ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - any failure leaves raft/ as it was
        raise NodeError(f"cannot start a new cluster from {data_dir}: {exc}; "
                        f"{data_dir / 'raft'} is unchanged") from None
    state.listen_addr = listen
    state.advertise_addr = advertise
    state.raft_addr = raft_addr
    state.raft_peers = []
    state.managers = [advertise]
    state.creates_cluster = False
    state.save(data_dir)
    local = rebuilt.local
    say(f"Recovered {rebuilt.objects} objects (store version {local.state.version}, raft "
        f"index {local.last_index}); the previous raft state is kept in "
        f"{rebuilt.old_raft_dir}")
    for reason in local.skipped:
        say(f"Warning: raft entry skipped as the store did: {reason}")
    (data_dir / READY_FILE).unlink(missing_ok=True)
    return state


def _data_path_addr(config: NodeConfig) -> str:
    """--data-path-addr as an IPv4 address ("" when not given); ValueError says why not."""
    return nodestate.data_path_addr(config.data_path_addr) if config.data_path_addr else ""


# ------------------------------------------------------------------- join --

def join_cluster(config: NodeConfig, remote: str, token: str,
                 availability: str = "active") -> NodeState:
    """Joins the swarm of the manager at `remote` (ip[:port]) with `token`."""
    data_dir = config.data_dir
    if NodeState.exists(data_dir):
        raise NodeError(ALREADY)
    try:
        remote_host, remote_port = split_addr(remote, DEFAULT_PORT)
        listen, advertise = node_addresses(config.listen_addr, config.advertise_addr)
        data_path = _data_path_addr(config)
        metrics = NodeState(node_id="", role="", advertise_addr="", listen_addr="",
                            raft_addr="")  # the metrics flags, checked before joining
        apply_metrics_flags(metrics, config.metrics_addr, config.metrics_tls)
        apply_generic_flags(metrics, config.generic_resources)
        joined = credentials.join(
            data_dir, remote_host, remote_port, token, advertise_addr=advertise,
            raft_addr=raft_addr_of(advertise), availability=availability)
    except (credentials.JoinError, ValueError) as exc:
        raise NodeError(str(exc)) from None
    state = NodeState(node_id=joined.node_id, role=joined.role, advertise_addr=advertise,
                      listen_addr=listen, raft_addr=raft_addr_of(advertise),
                      cluster_id=joined.cluster_id, managers=joined.managers,
                      raft_peers=joined.raft_peers, metrics_addr=metrics.metrics_addr,
                      metrics_tls=metrics.metrics_tls, data_path_addr=data_path,
                      generic_resources=metrics.generic_resources)
    state.save(data_dir)
    return state


# ------------------------------------------------------------------ leave --

def leave(config: NodeConfig, force: bool, say: Say) -> None:
    """Takes the node out of its swarm: raft (managers), daemon, task containers, overlay
    interfaces, credentials and node.json."""
    data_dir = config.data_dir
    if not NodeState.exists(data_dir):
        raise NodeError(NOT_A_MEMBER)
    state = NodeState.load(data_dir)
    if state.role == "manager" and not force:
        raise NodeError(LEAVE_MANAGER)
    if state.role == "manager":
        credentials.leave_raft(data_dir, state.managers, state.raft_addr)
    stop_daemon(data_dir)
    remove_node_containers(config.podman, state.node_id)
    TaskFiles(default_root(state.node_id)).cleanup(keep=())  # their secret/config tmpfs
    overlay_addr = state.data_path_addr or state.advertise_addr.rsplit(":", 1)[0]
    for problem in cleanup_node(state.node_id, overlay_addr):
        say(f"Warning: overlay cleanup: {problem}")
    credentials.forget(data_dir)
    forget_state(data_dir)


# ----------------------------------------------------------- the daemon --

def stop_daemon(data_dir: Path, timeout: float = 20.0) -> None:
    """SIGTERMs the node's daemon and waits for it to exit (SIGKILL after `timeout`)."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return
    if not daemon_running(data_dir):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and daemon_running(data_dir):
        time.sleep(0.05)
    if daemon_running(data_dir):
        os.kill(pid, signal.SIGKILL)


def spawn_daemon(config: NodeConfig, timeout: float = 30.0) -> bool:
    """Starts `config.daemon_command` detached and waits until it serves (False) or
    waits locked for `swarm unlock` (True); NodeError when it does neither."""
    data_dir = config.data_dir
    if not config.daemon_command:
        raise NodeError("no daemon command configured to start the node with")
    log_file = log_path(data_dir)
    with open(log_file, "ab") as log:
        logged_from = log.tell()
        proc = subprocess.Popen(list(config.daemon_command), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, start_new_session=True, cwd="/")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            reason = _last_error(log_file, logged_from)
            raise NodeError(f"the daemon exited with code {proc.returncode}"
                            f"{': ' + reason if reason else ''}; see {log_file}")
        if serving(data_dir):
            return False
        if locked(data_dir):
            return True
        time.sleep(0.05)
    raise NodeError(f"the daemon did not become ready within {timeout:.0f}s; see {log_file}")


def _last_error(log_file: Path, offset: int) -> str:
    """The last "Error: ..." line the daemon wrote to its log after `offset` ("" if none)."""
    try:
        with open(log_file, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError:
        return ""
    errors = [line[len("Error: "):] for line in text.splitlines() if line.startswith("Error: ")]
    return errors[-1] if errors else ""


def prepare_resume(config: NodeConfig) -> None:
    """Checks that `swarm daemon` (detached) can start the node kept in its data directory."""
    data_dir = config.data_dir
    if not NodeState.exists(data_dir):
        raise NodeError(f"{data_dir} holds no node: run 'swarm init' or 'swarm join' first")
    if not daemon_running(data_dir):  # (a running one is refused below or by run_daemon)
        state = NodeState.load(data_dir)
        try:
            metrics = apply_metrics_flags(state, config.metrics_addr, config.metrics_tls)
            if apply_generic_flags(state, config.generic_resources) or metrics:
                state.save(data_dir)  # kept: a later `swarm daemon` serves them too
        except ValueError as exc:
            raise NodeError(str(exc)) from None
    if config.foreground:
        return
    if daemon_running(data_dir):
        raise NodeError(f"a daemon is already running on {data_dir}")
    (data_dir / READY_FILE).unlink(missing_ok=True)
    (data_dir / LOCKED_FILE).unlink(missing_ok=True)
