"""The container runtimes a node can run its tasks with, made from a `NodeConfig`.

The agent knows containers only through `worker.runtime.Runtime`; the daemon
is handed a `RuntimeFactory` (node ID -> runtime) by whoever starts it. This
module makes the production one, podman with the config's storage options, and
the hollow one of scale tests (`hollow_factory`: no containers, see worker/hollow.py),
and removes a node's containers (with their anonymous volumes, never its named
volumes) from that storage when it leaves the swarm (the daemon is stopped by
then, so this uses podman's command line).
"""
from __future__ import annotations

import subprocess
from typing import Callable

from node.config import NodeConfig
from node.state import podman_log_path
from worker.hollow import DEFAULT_START_DELAY, HollowEngine, HollowRuntime
from worker.podman import PodmanOptions, PodmanRuntime
from worker.runtime import Runtime
from worker.taskspec import LABEL_NODE_ID

RuntimeFactory = Callable[[str], Runtime]  # node ID -> the runtime of that node's tasks


def podman_factory(config: NodeConfig) -> RuntimeFactory:
    """Podman on `config.podman`'s storage, its service under `<data-dir>/podman`."""
    def make(node_id: str) -> Runtime:
        return PodmanRuntime(str(config.data_dir / "podman"), node_id=node_id,
                             options=config.podman,
                             log_path=str(podman_log_path(config.data_dir)))
    return make


def hollow_factory(start_delay: float = DEFAULT_START_DELAY,
                   engines: dict[str, HollowEngine] | None = None) -> RuntimeFactory:
    """Hollow runtimes, one `HollowEngine` per node ID kept in `engines` (the caller's, so
    it can fail containers; a fresh dict unless given): a node whose agent restarts in the
    same process gets its engine back and adopts its containers, as with podman."""
    if start_delay < 0:
        raise ValueError(f"start delay must be >= 0 seconds, not {start_delay}")
    held: dict[str, HollowEngine] = {} if engines is None else engines

    def make(node_id: str) -> Runtime:
        engine = held.get(node_id)
        if engine is None:
            engine = held[node_id] = HollowEngine(node_id, start_delay)
        return HollowRuntime(engine)
    return make


def remove_node_containers(options: PodmanOptions, node_id: str) -> None:
    """Removes the containers of a node's tasks from the podman storage `options` name
    (the one the node's daemon used), as leaving the swarm does."""
    podman, env = options.command(), options.environ()
    found = subprocess.run([*podman, "ps", "-aq", "--filter", f"label={LABEL_NODE_ID}={node_id}"],
                           capture_output=True, text=True, timeout=60, env=env)
    ids = found.stdout.split()
    if ids:
        # -v: their anonymous volumes go with them, as with any task container; named
        # volumes are the node's and stay (Docker keeps them when a node leaves too)
        subprocess.run([*podman, "rm", "-f", "-v", "-t", "10", *ids], capture_output=True,
                       timeout=120, env=env)
