"""`swarm init`, `join`, `daemon` and `leave` at work: the commands that make and start a node.

Their arguments are declared in cli/commands_daemon.py (cheap to import);
this module, which imports node/ and so the manager, worker and store code,
is imported only when one of them runs (cli/main.py, `NODE_COMMANDS`).

Each builds a `node.config.NodeConfig` from its flags and the environment
(cli/environment.py), calls `node/` to do the work, and prints the outcome in
Docker's words. The node they work on is found as client commands find theirs
(`node_data_dir`): --data-dir, else the node whose control socket -H/--host or
$SWARM_HOST names (`<data-dir>/swarm.sock`), else the default one. The node runs detached (`swarm daemon --foreground` started
in a new session) unless `--foreground` is given. Its tasks run on podman with
the storage the config names (node/runtimes.py).
"""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from cli import environment
from cli.client import DEFAULT_HOST, HOST_ENV, parse_target, resolve_host
from cli.commands_swarm import (check_history_limit, parse_availability, parse_cert_expiry,
                                parse_data_path_port, parse_heartbeat, parse_max_snapshots,
                                parse_snapshot_interval, read_key, unlock_key_text)
from cli import externalca
from cli.flags import is_on
from cli.parsing import UsageError
from node import bootstrap, daemon, runtimes
from node.bootstrap import NodeError
from node.config import ClusterSettings, NodeConfig, PodmanOptions
from node.lockedmode import LOCKED
from node.state import socket_path
from proto import genericres

INIT_ONLY_FLAGS = (("--task-history-limit", "task_history_limit"),
                   ("--dispatcher-heartbeat", "dispatcher_heartbeat"),
                   ("--default-addr-pool", "default_addr_pool"),
                   ("--default-addr-pool-mask-length", "default_addr_pool_mask_length"),
                   ("--autolock", "autolock"),
                   ("--availability", "availability"),
                   ("--cert-expiry", "cert_expiry"),
                   ("--data-path-addr", "data_path_addr"),
                   ("--data-path-port", "data_path_port"),
                   ("--max-snapshots", "max_snapshots"),
                   ("--snapshot-interval", "snapshot_interval"),
                   ("--external-ca", "external_ca"))


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def daemon_command(data_dir: Path) -> tuple[str, ...]:
    """The command that runs the node in `data_dir` in the foreground (this CLI)."""
    return (sys.executable, "-m", "cli.main", "daemon", "--foreground",
            "--data-dir", str(data_dir))


def node_data_dir(args: argparse.Namespace,
                  environ: Optional[Mapping[str, str]] = None) -> Path:
    """The data directory of the node an `init`, `join`, `daemon` or `leave` works on.

    --data-dir names it. Without it, the node client commands would talk to: the
    control socket -H/--host names, then $SWARM_HOST, then the default
    (/var/lib/shoal/swarm.sock), is `<data-dir>/swarm.sock`; as `docker -H
    unix:///other.sock swarm leave` leaves the daemon at that socket. These commands
    work on the node's files, so a TCP host (a node reached over the network) is
    refused, as are -H and --data-dir naming two different nodes (UsageError).
    The path is made absolute: the detached daemon runs in /.
    """
    flag_host = getattr(args, "host", None)
    given_dir = getattr(args, "data_dir", None)
    command = f"swarm {getattr(args, 'command', None) or 'leave'}"
    if given_dir:
        data_dir = Path(given_dir).absolute()
        if flag_host:   # an explicit -H must name the same node ($SWARM_HOST is ambient)
            target = parse_target(flag_host)
            if not target.is_unix or \
                    Path(target.socket_path).resolve() != socket_path(data_dir).resolve():
                raise UsageError(
                    f"-H {flag_host} and --data-dir {given_dir} name different nodes: the "
                    f"node in {given_dir} listens on unix://{socket_path(data_dir)}; "
                    "give only one of them")
        return data_dir
    host = resolve_host(flag_host, environ)
    source = "-H " if flag_host else f"${HOST_ENV}=" if host != DEFAULT_HOST else "host "
    target = parse_target(host)
    if not target.is_unix:
        raise UsageError(
            f"{command} works on a node of this machine, through its data directory; "
            f"{source}{host} is a node reached over the network: run the command on that "
            "node's machine, or give --data-dir DIR for a node here")
    sock = Path(target.socket_path)
    if sock.name != socket_path(sock.parent).name:
        raise UsageError(
            f"{command}: {source}{host} is not a node's control socket (a node listens on "
            f"<data-dir>/{socket_path(Path()).name}); give --data-dir DIR instead")
    return sock.parent.absolute()


def node_config(args: argparse.Namespace,
                environ: Optional[Mapping[str, str]] = None) -> NodeConfig:
    """The node's config from the command's flags and the environment (os.environ
    unless `environ` is given); ValueError when a variable cannot be used, UsageError
    when the node cannot be found (`node_data_dir`)."""
    data_dir = node_data_dir(args, environ)
    return NodeConfig(
        data_dir=data_dir, listen_addr=getattr(args, "listen_addr", None),
        advertise_addr=getattr(args, "advertise_addr", None),
        data_path_addr=getattr(args, "data_path_addr", None),
        foreground=bool(getattr(args, "foreground", False)),
        daemon_command=daemon_command(data_dir),
        podman=PodmanOptions.from_env(environment.podman_variables(environ)),
        min_cert_expiry=environment.min_cert_expiry(environ),
        raft_snapshot_entries=environment.raft_snapshot_entries(environ),
        debug=environment.debug(environ),
        notify_socket=environment.notify_socket(environ),
        metrics_addr=getattr(args, "metrics_addr", None),
        metrics_tls=getattr(args, "metrics_tls", None),
        generic_resources=_generic_resources(args))


def _generic_resources(args: argparse.Namespace) -> Optional[tuple[str, ...]]:
    """--node-generic-resource terms (None: not given); UsageError for a bad one."""
    given = getattr(args, "node_generic_resource", None)
    if given is None:
        return None
    try:
        genericres.parse_node(t for t in given if t != "")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return tuple(given)


def _start(config: NodeConfig, message: Optional[str] = None) -> int:
    """Runs the node (in this process with --foreground, else detached) and prints
    `message`, if any: before serving in the foreground, once it serves when detached."""
    if config.foreground:
        environment.take_notify_socket()   # the config has it; the node's children must not
        if message is not None:
            print(message, flush=True)
        try:
            daemon.run_daemon(config, runtimes.podman_factory(config))
        except (daemon.AlreadyRunning, daemon.MetricsServerError,
                daemon.StoreStartError) as exc:
            _err(f"Error: {exc}")
            return 1
        return 0
    try:
        started_locked = bootstrap.spawn_daemon(config)
    except NodeError as exc:
        _err(f"Error: {exc}")
        return 1
    if started_locked:
        _err(f"The node started locked. {LOCKED}")
    if message is not None:
        print(message)
    return 0


# ------------------------------------------------------------------- init --

def cluster_settings(args: argparse.Namespace) -> ClusterSettings:
    """`swarm init`'s cluster-wide flags (UsageError names a bad one)."""
    heartbeat = None
    if args.dispatcher_heartbeat is not None:   # the rules `swarm update` follows
        heartbeat = parse_heartbeat(args.dispatcher_heartbeat)
    if args.task_history_limit is not None:
        check_history_limit(args.task_history_limit, str(args.task_history_limit))

    def given(value: Optional[str], parse: Callable[[str], Any]) -> Any:
        return None if value is None else parse(value)

    return ClusterSettings(
        task_history_limit=args.task_history_limit, dispatcher_heartbeat_ns=heartbeat,
        default_addr_pool=args.default_addr_pool,
        default_addr_pool_mask_length=args.default_addr_pool_mask_length,
        autolock=is_on(getattr(args, "autolock", None), "--autolock"),
        availability=given(args.availability, parse_availability),
        cert_expiry_ns=given(args.cert_expiry, parse_cert_expiry),
        snapshot_interval=given(args.snapshot_interval, parse_snapshot_interval),
        keep_old_snapshots=given(args.max_snapshots, parse_max_snapshots),
        data_path_port=given(args.data_path_port, parse_data_path_port),
        external_cas=[externalca.as_dict(c) for c in
                      externalca.parse_external_cas(getattr(args, "external_ca", None)) or []]
        or None)


def cmd_init(args: argparse.Namespace) -> int:
    if getattr(args, "force_new_cluster", False):
        return cmd_force_new_cluster(args)
    settings = cluster_settings(args)
    try:
        config = node_config(args)
        state = bootstrap.init_cluster(config, settings)
    except (ValueError, NodeError) as exc:
        _err(f"Error: {exc}")
        return 1
    message = f"Swarm initialized: current node ({state.node_id}) is now a manager."
    if settings.autolock and config.foreground:  # printed once this process serves it
        threading.Thread(target=_print_unlock_key, args=(config.data_dir,), daemon=True,
                         name="print-unlock-key").start()
    rc = _start(config, message)
    if rc != 0:
        bootstrap.forget_state(config.data_dir)
    elif settings.autolock:
        rc = _print_unlock_key(config.data_dir)
    return rc


def _print_unlock_key(data_dir: Path) -> int:
    try:
        key = bootstrap.fetch_unlock_key(data_dir)
    except TimeoutError as exc:
        _err(f"Error: {exc}; run 'swarm unlock-key' to see it")
        return 1
    print()
    print(unlock_key_text(key), end="", flush=True)
    return 0


def cmd_force_new_cluster(args: argparse.Namespace) -> int:
    """`swarm init --force-new-cluster` (see node.bootstrap.force_new_cluster)."""
    refused = [flag for flag, key in INIT_ONLY_FLAGS if getattr(args, key, None) is not None]
    if refused:
        _err(f"Error: {', '.join(refused)} cannot be combined with --force-new-cluster: the "
             "cluster keeps its settings; change them with 'swarm update' afterwards")
        return 1
    try:
        config = node_config(args)
        state = bootstrap.force_new_cluster(config, read_key, _err)
    except (ValueError, NodeError) as exc:
        _err(f"Error: {exc}")
        return 1
    return _start(config, f"Swarm initialized: current node ({state.node_id}) is now a manager.")


# ------------------------------------------------------------ join, daemon --

def cmd_join(args: argparse.Namespace) -> int:
    availability = parse_availability(args.availability or "active")
    try:
        config = node_config(args)
        state = bootstrap.join_cluster(config, args.remote, args.token,
                                       availability=availability)
    except (ValueError, NodeError) as exc:
        _err(f"Error: {exc}")
        return 1
    return _start(config, f"This node joined a swarm as a {state.role}.")


def cmd_daemon(args: argparse.Namespace) -> int:
    try:
        config = node_config(args)
        bootstrap.prepare_resume(config)
    except (ValueError, NodeError) as exc:
        _err(f"Error: {exc}")
        return 1
    return _start(config)


# ------------------------------------------------------------------ leave --

def cmd_leave(args: argparse.Namespace) -> int:
    try:
        data_dir = node_data_dir(args)
    except UsageError as exc:
        _err(f"Error: {exc}")
        return 1
    try:
        config = node_config(args)
    except ValueError:  # unusable $SHOAL_PODMAN_*: clean up the host's podman storage
        config = NodeConfig(data_dir=data_dir)
    try:
        bootstrap.leave(config, args.force, _err)
    except NodeError as exc:
        _err(f"Error: {exc}")
        return 1
    print("Node left the swarm.")
    return 0
