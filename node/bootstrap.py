"""The composition root of a node: `swarm init` and `swarm daemon`.

`init` creates a node's identity and a new cluster in a data directory, then
starts the daemon. The daemon hosts the raft store and the manager components
(manager nodes) and always the agent with its podman runtime. It serves gRPC
on `<data-dir>/swarm.sock` (mode 0600).
"""
from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = "/var/lib/shoal"
DEFAULT_PORT = 2377
STATE_FILE = "node.json"
ALREADY = ('This node is already part of a swarm. Use "swarm leave" to leave this swarm '
           'and join another one.')


@dataclass
class NodeState:
    """What a node keeps in `<data-dir>/node.json` (no secrets)."""
    node_id: str
    role: str                      # manager | worker
    advertise_addr: str            # ip:port of the manager endpoint
    listen_addr: str               # ip:port to bind
    raft_addr: str                 # ip:port of the raft endpoint
    created_at: float = field(default_factory=time.time)
    init: dict = field(default_factory=dict)   # cluster settings given to `swarm init`
    creates_cluster: bool = False              # this node ran `swarm init`
    cluster_id: str = ""
    managers: list = field(default_factory=list)    # manager endpoints (ip:port) the agent uses
    raft_peers: list = field(default_factory=list)  # other managers' raft endpoints at join

    @classmethod
    def load(cls, data_dir: Path) -> "NodeState":
        return cls(**json.loads((data_dir / STATE_FILE).read_text()))

    def save(self, data_dir: Path) -> None:
        tmp = data_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, data_dir / STATE_FILE)


def split_addr(addr: str, default_port: int) -> tuple[str, int]:
    """Parses "ip", "ip:port" or ":port"; raises ValueError with a readable reason."""
    host, sep, port = addr.rpartition(":")
    if not sep:
        host, port = addr, str(default_port)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid address {addr!r}: expected IP[:PORT] with a port 1-65535")
    return host.strip("[]"), int(port)


def default_ip() -> str:
    """The IPv4 address of the interface of the default route (no packet is sent)."""
    try:
        from pyroute2 import IPRoute
        with IPRoute() as ipr:
            routes = ipr.route("get", dst="192.0.2.1")
            for r in routes:
                src = r.get_attr("RTA_PREFSRC")
                if src:
                    return src
    except Exception:
        pass
    return "127.0.0.1"


def socket_path(data_dir: Path) -> Path:
    return data_dir / "swarm.sock"


def log_path(data_dir: Path) -> Path:
    """The detached daemon's log, `<data-dir>.log` next to the data directory.

    Logs name services, tasks and containers; nothing in the data directory
    may (DESIGN §2), so they live beside it, like Docker's journal.
    """
    return data_dir.parent / f"{data_dir.name}.log"


def podman_log_path(data_dir: Path) -> Path:
    """The log of the node's `podman system service`, beside the data directory."""
    return data_dir.parent / f"{data_dir.name}.podman.log"


def locked(data_dir: Path) -> bool:
    """Whether the node's daemon runs locked, waiting for `swarm unlock`."""
    from cli.lockedmode import LOCKED_FILE
    return (data_dir / LOCKED_FILE).exists() and socket_path(data_dir).exists()


def node_addresses(listen_addr: str | None, advertise_addr: str | None,
                   default_listen: str = f"0.0.0.0:{DEFAULT_PORT}",
                   default_advertise: str | None = None) -> tuple[str, str]:
    """("listen ip:port", "advertise ip:port") from the flags, as Docker picks them.

    Without --advertise-addr: the listen IP unless it is a wildcard, then
    `default_advertise` (when the listen address was not given either), then the
    IP of the default route. Raises ValueError with a readable reason.
    """
    listen_host, listen_port = split_addr(listen_addr or default_listen, DEFAULT_PORT)
    if advertise_addr:
        adv_host, adv_port = split_addr(advertise_addr, listen_port)
    elif default_advertise and not listen_addr:
        adv_host, adv_port = split_addr(default_advertise, DEFAULT_PORT)
    else:
        adv_host = listen_host if listen_host not in ("0.0.0.0", "") else default_ip()
        adv_port = listen_port
    try:
        socket.inet_aton(adv_host)
    except OSError:
        raise ValueError(f"invalid advertise address {adv_host!r}: expected an IPv4 address")
    return f"{listen_host}:{listen_port}", f"{adv_host}:{adv_port}"


def raft_addr_of(advertise: str) -> str:
    """The raft endpoint: the manager port + 1 on the advertised IP."""
    host, port = split_addr(advertise, DEFAULT_PORT)
    return f"{host}:{port + 1}"


def raft_bind_addr(listen: str, raft_addr: str) -> str:
    """Where the raft endpoint binds: the listen IP with the raft port."""
    return f"{split_addr(listen, DEFAULT_PORT)[0]}:{split_addr(raft_addr, DEFAULT_PORT)[1]}"


def podman_env_error() -> str:
    """Why $SHOAL_PODMAN_* cannot be used ("" when they can, or are unset)."""
    from worker.podman import PodmanOptions
    try:
        PodmanOptions.from_env()
    except ValueError as err:
        return str(err)
    return ""


def start_and_announce(data_dir: Path, foreground: bool, message: str) -> int:
    """Starts the daemon (detached unless foreground) and prints `message` once it serves."""
    if podman_env_error():
        print(f"Error: {podman_env_error()}", file=sys.stderr)
        return 1
    if foreground:
        print(message, flush=True)
        return run_daemon(data_dir)
    rc = spawn_daemon(data_dir)
    if rc == 0:
        print(message)
    return rc


# ------------------------------------------------------------------- init --

def cmd_init(args: argparse.Namespace) -> int:
    from proto import model

    data_dir = Path(args.data_dir or DEFAULT_DATA_DIR)
    if getattr(args, "force_new_cluster", False):
        return force_new_cluster(args, data_dir)
    if (data_dir / STATE_FILE).exists():
        print(f"Error: {ALREADY}", file=sys.stderr)
        return 1
    try:
        listen, advertise = node_addresses(args.listen_addr, args.advertise_addr)
        from manager.allocator import ipam  # AllocationError is a ValueError
        ipam.parse_pools(args.default_addr_pool or [],
                         getattr(args, "default_addr_pool_mask_length", None) or 0)
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings = {}
    for key in ("task_history_limit", "dispatcher_heartbeat", "default_addr_pool",
                "default_addr_pool_mask_length"):
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = value
    if getattr(args, "autolock", None) is not None:
        from cli.flags import is_on
        if is_on(args.autolock, "--autolock"):
            settings["autolock"] = True
    state = NodeState(node_id=model.new_id(), role="manager", advertise_addr=advertise,
                      listen_addr=listen, raft_addr=raft_addr_of(advertise), init=settings,
                      creates_cluster=True, cluster_id=model.new_id(), managers=[advertise])
    from cli import credentials
    credentials.create_cluster_pki(data_dir, state.node_id, state.cluster_id,
                                   state.advertise_addr)
    state.save(data_dir)
    message = f"Swarm initialized: current node ({state.node_id}) is now a manager."
    if settings.get("autolock") and args.foreground:
        _print_unlock_key_when_served(data_dir)
    rc = start_and_announce(data_dir, args.foreground, message)
    if rc != 0:
        (data_dir / STATE_FILE).unlink(missing_ok=True)
    elif settings.get("autolock"):
        rc = _print_unlock_key(data_dir)
    return rc


def _fetch_unlock_key(data_dir: Path, timeout: float = 30.0) -> str:
    """The unlock key, asked from the node's own socket once its cluster exists."""
    import grpc

    from proto import control_pb2 as cpb
    from proto import control_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"unix://{socket_path(data_dir)}") as channel:
        stub = control_pb2_grpc.ControlStub(channel)
        while True:
            try:
                key = stub.GetUnlockKey(cpb.GetUnlockKeyRequest(), timeout=5).unlock_key
                if key:
                    return key
            except grpc.RpcError:
                pass
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the node did not report its unlock key within {timeout:g}s")
            time.sleep(0.1)


def _print_unlock_key(data_dir: Path) -> int:
    from cli.commands_swarm import unlock_key_text

    try:
        key = _fetch_unlock_key(data_dir)
    except TimeoutError as exc:
        print(f"Error: {exc}; run 'swarm unlock-key' to see it", file=sys.stderr)
        return 1
    print()
    print(unlock_key_text(key), end="", flush=True)
    return 0


def _print_unlock_key_when_served(data_dir: Path) -> None:
    """`init --autolock --foreground`: prints the key from a thread once the
    daemon (this process) serves it."""
    import threading

    threading.Thread(target=_print_unlock_key, args=(data_dir,), daemon=True,
                     name="print-unlock-key").start()


def force_new_cluster(args: argparse.Namespace, data_dir: Path) -> int:
    """`swarm init --force-new-cluster`: a one-manager cluster from a manager's data directory.

    The data directory is a (stopped, or then stopped here) manager's, or a
    copy of one restored from a backup.  Every object is kept with its ID
    (services, tasks, networks, secrets, configs, nodes, the cluster object
    with its CA and join tokens); this node becomes the only raft member and
    the leader, the other managers are demoted to workers in the store (see
    raft/recovery.py).  `--listen-addr`/`--advertise-addr` move the node
    (restore onto another host); without them it keeps its addresses.  The
    node keeps its certificates and raft key; the old raft directory stays
    as `<data-dir>/raft.old-<time>`.
    """
    from cli import credentials
    from pki import raft_tls as pki_raft_tls
    from raft import recovery

    refused = [flag for flag, key in (("--task-history-limit", "task_history_limit"),
                                      ("--dispatcher-heartbeat", "dispatcher_heartbeat"),
                                      ("--default-addr-pool", "default_addr_pool"),
                                      ("--default-addr-pool-mask-length",
                                       "default_addr_pool_mask_length"),
                                      ("--autolock", "autolock"))
               if getattr(args, key, None) is not None]
    if refused:
        print(f"Error: {', '.join(refused)} cannot be combined with --force-new-cluster: the "
              "cluster keeps its settings; change them with 'swarm update' afterwards",
              file=sys.stderr)
        return 1
    no_state = (f"Error: {data_dir} holds no manager state to recover: --force-new-cluster "
                "needs the data directory of a manager (node.json and raft/)")
    if not (data_dir / STATE_FILE).exists():
        print(no_state, file=sys.stderr)
        return 1
    try:
        state = NodeState.load(data_dir)
    except (OSError, ValueError, TypeError) as exc:
        print(f"Error: cannot read {data_dir / STATE_FILE}: {exc}", file=sys.stderr)
        return 1
    if state.role != "manager":
        print(f"{no_state}; this one is a worker's, which holds no cluster state",
              file=sys.stderr)
        return 1
    from pki import keystore, tokens

    try:
        try:
            dek = credentials.open_manager_keys(data_dir)
        except keystore.LockedError:
            from cli.commands_swarm import read_key  # the cluster is locked: ask for its key
            dek = credentials.open_manager_keys(data_dir, read_key().strip())
        raft_tls = pki_raft_tls.from_data_dir(data_dir, kek=keystore.private_key_passphrase(dek))
        credentials.root_ca(data_dir, dek)
    except keystore.InvalidUnlockKey as exc:
        print(f"Error: swarm could not be unlocked: invalid key provided ({exc})",
              file=sys.stderr)
        return 1
    except (OSError, ValueError, keystore.KeyStoreError) as exc:
        print(f"Error: the manager credentials in {credentials.cert_dir(data_dir)} are "
              f"missing or unreadable ({exc}); restore them with the data directory",
              file=sys.stderr)
        return 1
    try:
        listen, advertise = node_addresses(args.listen_addr, args.advertise_addr,
                                           default_listen=state.listen_addr,
                                           default_advertise=state.advertise_addr)
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    raft_addr = raft_addr_of(advertise)
    if _locked(data_dir):  # as Docker does on a running node: stop it, then rebuild
        stop_daemon(data_dir)
    try:
        rebuilt = recovery.force_new_cluster(
            data_dir, state.node_id, bind_addr=raft_bind_addr(listen, raft_addr),
            raft_addr=raft_addr, manager_addr=advertise, tls=raft_tls,
            encrypt=tokens.DataCipher(dek).encrypt, decrypt=tokens.DataCipher(dek).decrypt)
    except recovery.NoManagerState as exc:
        print(f"{no_state} ({exc})", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - any failure leaves raft/ as it was
        print(f"Error: cannot start a new cluster from {data_dir}: {exc}; "
              f"{data_dir / 'raft'} is unchanged", file=sys.stderr)
        return 1
    state.listen_addr = listen
    state.advertise_addr = advertise
    state.raft_addr = raft_addr
    state.raft_peers = []
    state.managers = [advertise]
    state.creates_cluster = False
    state.save(data_dir)
    local = rebuilt.local
    print(f"Recovered {rebuilt.objects} objects (store version {local.state.version}, raft "
          f"index {local.last_index}); the previous raft state is kept in "
          f"{rebuilt.old_raft_dir}", file=sys.stderr)
    for reason in local.skipped:
        print(f"Warning: raft entry skipped as the store did: {reason}", file=sys.stderr)
    (data_dir / "ready").unlink(missing_ok=True)
    return start_and_announce(data_dir, args.foreground,
                              f"Swarm initialized: current node ({state.node_id}) is now a manager.")


def cmd_join(args: argparse.Namespace) -> int:
    from cli import credentials

    data_dir = Path(args.data_dir or DEFAULT_DATA_DIR)
    if (data_dir / STATE_FILE).exists():
        print(f"Error: {ALREADY}", file=sys.stderr)
        return 1
    try:
        remote_host, remote_port = split_addr(args.remote, DEFAULT_PORT)
        listen, advertise = node_addresses(args.listen_addr, args.advertise_addr)
        joined = credentials.join(
            data_dir, remote_host, remote_port, args.token, advertise_addr=advertise,
            raft_addr=raft_addr_of(advertise),
            availability=getattr(args, "availability", None) or "active")
    except (credentials.JoinError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    state = NodeState(node_id=joined.node_id, role=joined.role, advertise_addr=advertise,
                      listen_addr=listen, raft_addr=raft_addr_of(advertise),
                      cluster_id=joined.cluster_id, managers=joined.managers,
                      raft_peers=joined.raft_peers)
    state.save(data_dir)
    return start_and_announce(data_dir, args.foreground,
                              f"This node joined a swarm as a {joined.role}.")


def cmd_leave(args: argparse.Namespace) -> int:
    from cli import credentials

    data_dir = Path(getattr(args, "data_dir", None) or DEFAULT_DATA_DIR)
    if not (data_dir / STATE_FILE).exists():
        print("Error: This node is not part of a swarm", file=sys.stderr)
        return 1
    state = NodeState.load(data_dir)
    if state.role == "manager" and not args.force:
        print("Error: You are attempting to leave the swarm on a node that is participating "
              "as a manager. Removing the last manager erases all current state of the swarm, "
              "and removing a manager can cost the swarm its quorum. Use `--force` to ignore "
              "this message.", file=sys.stderr)
        return 1
    if state.role == "manager":
        credentials.leave_raft(data_dir, state.managers, state.raft_addr)
    stop_daemon(data_dir)
    remove_task_containers(state.node_id)
    from worker.overlay import cleanup_node
    for problem in cleanup_node(state.node_id, state.advertise_addr.rsplit(":", 1)[0]):
        print(f"Warning: overlay cleanup: {problem}", file=sys.stderr)
    credentials.forget(data_dir)
    (data_dir / STATE_FILE).unlink(missing_ok=True)
    print("Node left the swarm.")
    return 0


def remove_task_containers(node_id: str) -> None:
    """Removes the containers of this node's tasks and their secret/config tmpfs, as
    leaving the swarm does (containers in the podman storage the node's daemon uses:
    $SHOAL_PODMAN_*, else the host's)."""
    from worker.podman import PodmanOptions
    try:
        options = PodmanOptions.from_env()
    except ValueError:
        options = PodmanOptions()
    podman, env = options.command(), options.environ()
    found = subprocess.run([*podman, "ps", "-aq", "--filter", f"label=com.shoal.node.id={node_id}"],
                           capture_output=True, text=True, timeout=60, env=env)
    ids = found.stdout.split()
    if ids:
        subprocess.run([*podman, "rm", "-f", "-t", "10", *ids], capture_output=True, timeout=120,
                       env=env)
    from worker.taskfiles import TaskFiles, default_root
    TaskFiles(default_root(node_id)).cleanup(keep=())  # their secret/config tmpfs


def stop_daemon(data_dir: Path, timeout: float = 20.0) -> None:
    """SIGTERMs the node's daemon and waits for it to exit."""
    import signal as _signal
    try:
        pid = int((data_dir / "daemon.pid").read_text().strip())
    except (OSError, ValueError):
        return
    if not _locked(data_dir):
        return
    try:
        os.kill(pid, _signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _locked(data_dir):
        time.sleep(0.05)
    if _locked(data_dir):
        os.kill(pid, _signal.SIGKILL)


def spawn_daemon(data_dir: Path, timeout: float = 30.0) -> int:
    """Starts `swarm daemon --foreground` detached; waits until it serves."""
    log_file = log_path(data_dir)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "daemon", "--foreground",
             "--data-dir", str(data_dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            cwd="/")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"Error: the daemon exited with code {proc.returncode}; see {log_file}",
                  file=sys.stderr)
            return 1
        if _serving(data_dir):
            return 0
        if locked(data_dir):
            from cli.lockedmode import LOCKED
            print(f"The node started locked. {LOCKED}", file=sys.stderr)
            return 0
        time.sleep(0.05)
    print(f"Error: the daemon did not become ready within {timeout:.0f}s; see {log_file}",
          file=sys.stderr)
    return 1


def _serving(data_dir: Path) -> bool:
    return (data_dir / "ready").exists() and socket_path(data_dir).exists()


# ----------------------------------------------------------------- daemon --

def cmd_daemon(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir or DEFAULT_DATA_DIR)
    if not (data_dir / STATE_FILE).exists():
        print(f"Error: {data_dir} holds no node: run 'swarm init' or 'swarm join' first",
              file=sys.stderr)
        return 1
    if podman_env_error():
        print(f"Error: {podman_env_error()}", file=sys.stderr)
        return 1
    if args.foreground:
        return run_daemon(data_dir)
    if _locked(data_dir):
        print(f"Error: a daemon is already running on {data_dir}", file=sys.stderr)
        return 1
    (data_dir / "ready").unlink(missing_ok=True)
    (data_dir / "locked").unlink(missing_ok=True)
    return spawn_daemon(data_dir)


def _locked(data_dir: Path) -> bool:
    try:
        with open(data_dir / "daemon.pid", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(f, fcntl.LOCK_UN)
            return False
    except BlockingIOError:
        return True


class _NodeFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "node"):
            record.node = "-"
        return True


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_NodeFilter())
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s node=%(node)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pysyncobj").setLevel(logging.WARNING)


def run_daemon(data_dir: Path) -> int:
    """Runs the node in this process until SIGTERM/SIGINT."""
    from cli.node import Node

    setup_logging(logging.DEBUG if os.environ.get("SWARM_DEBUG") else logging.INFO)
    lock = open(data_dir / "daemon.pid", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"Error: a daemon is already running on {data_dir}", file=sys.stderr)
        return 1
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    state = NodeState.load(data_dir)
    node = Node(state, data_dir)
    try:
        asyncio.run(node.run())
    except KeyboardInterrupt:
        pass
    if node.restart_requested:  # a role change: start again as the new role
        lock.close()
        os.execv(sys.executable, [sys.executable, "-m", "cli.main", "daemon", "--foreground",
                                  "--data-dir", str(data_dir)])
    return 0
