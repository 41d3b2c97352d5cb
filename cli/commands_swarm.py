"""`swarm join-token`, `swarm update`, `swarm unlock-key` and `swarm unlock`.

Owns showing and rotating the join tokens (with the `swarm join` command a
new node runs, naming the manager this CLI talks to), changing the
cluster-wide settings (the dispatcher heartbeat, the task history kept per
slot, the lifetime of node certificates, autolock, raft snapshots, external CAs), showing and rotating the
manager unlock key, and unlocking a locked manager through its socket. Changes read the cluster, edit a
copy of its spec and send it with the version read. Arguments are checked
before anything is sent, by pure functions that tests call directly.
"""
from __future__ import annotations

import argparse
import getpass
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional

from cli import environment, externalca
from cli.client import CLIError, RpcFailure
from cli.context import Context
from cli.flags import bool_flag, declare_snapshot_flags
from cli.parsing import (INT64_MAX, UsageError, format_duration, parse_bool, parse_duration,
                         parse_uint)
from proto import control_pb2 as cpb
from proto import model
from proto import objects_pb2 as pb

ROLES = ("worker", "manager")
MIN_HEARTBEAT_NS = 100_000_000  # the manager rejects shorter periods
UPDATE_FLAGS = ("--dispatcher-heartbeat", "--task-history-limit", "--cert-expiry", "--autolock",
                "--external-ca", "--snapshot-interval", "--max-snapshots")
AVAILABILITIES = ("active", "pause", "drain")
NO_UNLOCK_KEY = "Error: no unlock key is set"
CANNOT_ROTATE = "Error: cannot rotate because autolock is not turned on"
NOT_LOCKED = "Error: swarm is not locked"
UNLOCK_WAIT = 60.0  # seconds an unlocked node may take to serve again


# ------------------------------------------------------------ join-token ----

def check_role(role: str) -> str:
    """The role named on the command line, or UsageError."""
    if role not in ROLES:
        raise UsageError(f'unknown role "{role}": expected worker or manager')
    return role


def token_for(cluster: pb.Cluster, role: str) -> str:
    return cluster.join_tokens.manager if role == "manager" else cluster.join_tokens.worker


def join_command_text(role: str, token: str, addr: str) -> str:
    """What `swarm join-token ROLE` prints (Docker's wording)."""
    return (f"To add a {role} to this swarm, run the following command:\n\n"
            f"    swarm join --token {token} {addr}\n")


def rotated_text(role: str) -> str:
    return f"Successfully rotated {role} join token.\n"


def manager_addr(node: pb.Node) -> str:
    """The address other nodes reach this manager at, or CLIError."""
    addr = node.manager_status.addr or node.manager_status.raft_addr
    if not addr:
        raise CLIError(f"Error: node {node.id} has no manager address; run this command "
                       "against a manager of the swarm")
    return addr


def _get_cluster(ctx: Context) -> pb.Cluster:
    return ctx.call("GetCluster", cpb.GetClusterRequest(cluster_id="")).cluster


def rotate_request(cluster: pb.Cluster, role: str) -> cpb.UpdateClusterRequest:
    """An UpdateCluster that keeps the spec and replaces ROLE's join token."""
    return cpb.UpdateClusterRequest(cluster_id=cluster.id, cluster_version=cluster.meta.version,
                                    spec=cluster.spec,
                                    rotate_worker_token=role == "worker",
                                    rotate_manager_token=role == "manager")


def join_token(ctx: Context, ns: argparse.Namespace) -> int:
    role = check_role(ns.role)
    cluster = _get_cluster(ctx)
    if ns.rotate:
        ctx.call("UpdateCluster", rotate_request(cluster, role))
        if not ns.quiet:
            ctx.print(rotated_text(role))
        cluster = _get_cluster(ctx)
    token = token_for(cluster, role)
    if ns.quiet:
        ctx.print(token)
        return 0
    node = ctx.call("GetNode", cpb.GetNodeRequest(node_id=ctx.info().node_id)).node
    ctx.out.write(join_command_text(role, token, manager_addr(node)))
    return 0


# ---------------------------------------------------------------- update ----

@dataclass(frozen=True)
class ClusterChanges:
    """The settings `swarm update` was asked to change (None: leave as is)."""

    heartbeat_ns: Optional[int] = None
    task_history_limit: Optional[int] = None
    cert_expiry_ns: Optional[int] = None
    autolock: Optional[bool] = None
    snapshot_interval: Optional[int] = None
    keep_old_snapshots: Optional[int] = None
    external_cas: Optional[tuple[pb.ExternalCA, ...]] = None   # replaces the list

    def empty(self) -> bool:
        return all(value is None for value in (
            self.heartbeat_ns, self.task_history_limit, self.cert_expiry_ns, self.autolock,
            self.snapshot_interval, self.keep_old_snapshots, self.external_cas))


def parse_heartbeat(text: str) -> int:
    """--dispatcher-heartbeat (`swarm init` and `swarm update`) in nanoseconds: at least
    the period the manager accepts."""
    heartbeat = parse_duration(text, "--dispatcher-heartbeat")
    if heartbeat < MIN_HEARTBEAT_NS:
        raise UsageError(f'invalid value "{text}" for --dispatcher-heartbeat: the period '
                         f"must be at least {format_duration(MIN_HEARTBEAT_NS)}")
    return heartbeat


def check_history_limit(limit: int, text: str) -> int:
    """--task-history-limit within the cluster spec's field (int64)."""
    if not -INT64_MAX - 1 <= limit <= INT64_MAX:
        raise UsageError(f'invalid value "{text}" for --task-history-limit: out of range; '
                         "give a number of tasks (negative keeps every task)")
    return limit


def parse_cert_expiry(text: str) -> int:
    """--cert-expiry (`swarm init` and `swarm update`) in nanoseconds: at least the
    shortest node certificate life the managers issue."""
    expiry = parse_duration(text, "--cert-expiry")
    minimum = int(environment.min_cert_expiry().total_seconds() * 10**9)
    if expiry < minimum:
        raise UsageError(f'invalid value "{text}" for --cert-expiry: '
                         "node certificates must be valid for at least "
                         f"{format_duration(minimum)}")
    return expiry


def parse_snapshot_interval(text: str) -> int:
    """--snapshot-interval: raft log entries between two snapshots (at least one)."""
    interval = parse_uint(text.strip(), "--snapshot-interval", "number of log entries")
    if interval == 0:
        raise UsageError(f'invalid number of log entries "{text}" for --snapshot-interval: '
                         f"must be at least 1 (default {model.DEFAULT_SNAPSHOT_INTERVAL})")
    return interval


def parse_max_snapshots(text: str) -> int:
    """--max-snapshots: former raft snapshots kept beside the current one."""
    return parse_uint(text.strip(), "--max-snapshots", "number of snapshots")


def parse_availability(text: str) -> str:
    """--availability of `swarm init` and `swarm join` (any case, as Docker)."""
    value = text.strip().lower()
    if value not in AVAILABILITIES:
        raise UsageError(f'invalid availability "{text}", only active, pause and drain '
                         "are supported")
    return value


def parse_data_path_port(text: str) -> int:
    """--data-path-port: the cluster's VXLAN UDP port (0: the default, 4789)."""
    low, high = model.DATA_PATH_PORT_RANGE
    try:
        port = int(text.strip(), 10)
    except ValueError:
        port = -1
    if port != 0 and not low <= port <= high:
        raise UsageError(f'invalid value "{text}" for --data-path-port: the port must be '
                         f"from {low} to {high} (0 or none: "
                         f"{model.DEFAULT_DATA_PATH_PORT})")
    return port


def parse_changes(ns: argparse.Namespace) -> ClusterChanges:
    """Checks `swarm update`'s flags; UsageError names the bad one."""
    heartbeat = expiry = limit = None
    if ns.dispatcher_heartbeat is not None:
        heartbeat = parse_heartbeat(ns.dispatcher_heartbeat)
    if ns.task_history_limit is not None:
        try:
            limit = int(ns.task_history_limit.strip())
        except ValueError:
            raise UsageError(f'invalid value "{ns.task_history_limit}" for '
                             "--task-history-limit: expected an integer number of tasks "
                             "(negative keeps every task)") from None
        check_history_limit(limit, ns.task_history_limit)
    if ns.cert_expiry is not None:
        expiry = parse_cert_expiry(ns.cert_expiry)
    autolock = None
    if getattr(ns, "autolock", None) is not None:
        autolock = parse_bool(ns.autolock, "--autolock")
    interval = keep = None   # (swarm ca reads its --cert-expiry here, without these)
    if getattr(ns, "snapshot_interval", None) is not None:
        interval = parse_snapshot_interval(ns.snapshot_interval)
    if getattr(ns, "max_snapshots", None) is not None:
        keep = parse_max_snapshots(ns.max_snapshots)
    cas = externalca.parse_external_cas(getattr(ns, "external_ca", None))
    changes = ClusterChanges(heartbeat, limit, expiry, autolock, interval, keep,
                             None if cas is None else tuple(cas))
    if changes.empty():
        raise UsageError("at least one of the flags " + ", ".join(UPDATE_FLAGS)
                         + " must be given (see swarm update --help)")
    return changes


def apply_changes(spec: pb.ClusterSpec, changes: ClusterChanges) -> pb.ClusterSpec:
    """A copy of SPEC with CHANGES made; SPEC itself is left alone."""
    new = pb.ClusterSpec()
    new.CopyFrom(spec)
    if changes.heartbeat_ns is not None:
        new.dispatcher.heartbeat_period.nanos = changes.heartbeat_ns
    if changes.task_history_limit is not None:
        new.orchestration.task_history_retention_limit = changes.task_history_limit
    if changes.cert_expiry_ns is not None:
        new.ca_config.node_cert_expiry.nanos = changes.cert_expiry_ns
    if changes.autolock is not None:
        new.encryption.auto_lock_managers = changes.autolock
    if changes.snapshot_interval is not None:
        new.raft.snapshot_interval = changes.snapshot_interval
    if changes.keep_old_snapshots is not None:
        new.raft.keep_old_snapshots = changes.keep_old_snapshots
    if changes.external_cas is not None:
        del new.ca_config.external_cas[:]
        new.ca_config.external_cas.extend(changes.external_cas)
    return new


def update(ctx: Context, ns: argparse.Namespace) -> int:
    changes = parse_changes(ns)
    cluster = _get_cluster(ctx)
    ctx.call("UpdateCluster", cpb.UpdateClusterRequest(
        cluster_id=cluster.id, cluster_version=cluster.meta.version,
        spec=apply_changes(cluster.spec, changes)))
    ctx.print("Swarm updated.")
    if changes.autolock and not cluster.spec.encryption.auto_lock_managers:
        key = ctx.call("GetUnlockKey", cpb.GetUnlockKeyRequest()).unlock_key
        if key:
            ctx.out.write(unlock_key_text(key))
    return 0


# ------------------------------------------------------- unlock key, unlock --

def unlock_key_text(key: str) -> str:
    """How Docker shows an unlock key (init --autolock, update, unlock-key)."""
    return ("To unlock a swarm manager after it restarts, run the `swarm unlock`\n"
            f"command and provide the following key:\n\n    {key}\n\n"
            "Please remember to store this key in a password manager, since without it you\n"
            "will not be able to restart the manager.\n")


def unlock_key(ctx: Context, ns: argparse.Namespace) -> int:
    if ns.rotate:
        cluster = _get_cluster(ctx)
        if not cluster.spec.encryption.auto_lock_managers:
            raise CLIError(CANNOT_ROTATE)
        ctx.call("UpdateCluster", cpb.UpdateClusterRequest(
            cluster_id=cluster.id, cluster_version=cluster.meta.version, spec=cluster.spec,
            rotate_manager_unlock_key=True))
        if not ns.quiet:
            ctx.print("Successfully rotated manager unlock key.\n")
    key = ctx.call("GetUnlockKey", cpb.GetUnlockKeyRequest()).unlock_key
    if not key:
        raise CLIError(NO_UNLOCK_KEY)
    if ns.quiet:
        ctx.print(key)
    else:
        ctx.out.write(unlock_key_text(key))
    return 0


def read_key(prompt: str = "Please enter unlock key: ") -> str:
    """The key from a prompt without echo on a terminal, else one line of stdin."""
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline()


def unlock(ctx: Context, ns: argparse.Namespace,
           read: Callable[[], str] = read_key) -> int:
    """`swarm unlock`: only on the node's own socket, only when it is locked."""
    if not ctx.client.target.is_unix:
        raise CLIError("Error: swarm unlock works on the node's own socket only: run it on "
                       "the locked manager (-H unix:///path/swarm.sock)")
    if not ctx.client.local_call("GetLockState", cpb.GetLockStateRequest(), timeout=10).locked:
        raise CLIError(NOT_LOCKED)
    key = read().strip()
    if not key:
        raise CLIError("Error: no unlock key given: type it at the prompt or pass it on "
                       "standard input")
    ctx.client.local_call("Unlock", cpb.UnlockRequest(unlock_key=key), timeout=30)
    _wait_unlocked(ctx)
    return 0


def _wait_unlocked(ctx: Context, timeout: float = UNLOCK_WAIT) -> None:
    """Waits until the unlocked node serves its Control API again."""
    deadline = time.monotonic() + timeout
    while True:
        ctx.client.close()
        ctx._client = None
        try:
            ctx.call("Info", cpb.InfoRequest(), timeout=5)
            return
        except RpcFailure as exc:
            last = exc.details()
        if time.monotonic() >= deadline:
            raise CLIError(f"Error: the node was unlocked but does not serve yet after "
                           f"{timeout:g}s ({last}); see its log")
        time.sleep(0.2)


def declare_join_token(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm join-token [-q] [--rotate] (worker|manager)` on `parser`."""
    parser.usage = "swarm join-token [OPTIONS] (worker|manager)"
    parser.add_argument("-q", "--quiet", action="store_true", help="Only display token")
    parser.add_argument("--rotate", action="store_true", help="Rotate join token")
    parser.add_argument("role", metavar="(worker|manager)")
    parser.set_defaults(handler=join_token)


def declare_update(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm update`'s cluster settings on `parser`."""
    parser.add_argument("--dispatcher-heartbeat", default=None,
                        help="Dispatcher heartbeat period (ns|us|ms|s|m|h) (default 5s)")
    parser.add_argument("--task-history-limit", default=None,
                        help="Task history retention limit (default 5)")
    parser.add_argument("--cert-expiry", default=None,
                        help="Validity period for node certificates (ns|us|ms|s|m|h) "
                             "(default 2160h0m0s)")
    bool_flag(parser, "--autolock", None, "Change manager autolocking setting (true|false)")
    parser.add_argument("--external-ca", action="append", default=None, metavar="external-ca",
                        help="Specifications of one or more certificate signing endpoints "
                             "(protocol=cfssl,url=https://...[,cacert=FILE]; repeatable; "
                             "replaces the list)")
    declare_snapshot_flags(parser)
    parser.set_defaults(handler=update)


def declare_unlock_key(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm unlock-key [-q] [--rotate]` on `parser`."""
    parser.add_argument("-q", "--quiet", action="store_true", help="Only display token")
    parser.add_argument("--rotate", action="store_true", help="Rotate unlock key")
    parser.set_defaults(handler=unlock_key)


def declare_unlock(parser: argparse.ArgumentParser) -> None:
    """`swarm unlock` takes no arguments (the key comes from a prompt or stdin)."""
    parser.set_defaults(handler=unlock)
