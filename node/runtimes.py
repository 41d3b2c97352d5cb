"""The container runtimes a node can run its tasks with, made from a `NodeConfig`.

The agent knows containers only through `worker.runtime.Runtime`; the daemon
is handed a `RuntimeFactory` (node ID -> runtime) by whoever starts it. This
module makes the production one, podman with the config's storage options,
and removes a node's containers (with their anonymous volumes, never its named
volumes) from that storage when it leaves the swarm (the daemon is stopped by
then, so this uses podman's command line).
"""
from __future__ import annotations

import subprocess
from typing import Callable

from node.config import NodeConfig
from node.state import podman_log_path
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
