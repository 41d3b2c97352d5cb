"""End to end on one node (issue 18): `swarm leave` finds its node through -H/$SWARM_HOST.

The node lives in a data directory of its own (not /var/lib/shoal) and the
command is given no --data-dir: as `docker -H unix:///other.sock swarm leave`
leaves the daemon at that socket, `swarm leave` leaves the node whose control
socket -H, or else $SWARM_HOST, names (`<data-dir>/swarm.sock`). It used to
look in /var/lib/shoal and say "This node is not part of a swarm".
"""
from __future__ import annotations

import os
from typing import Iterator

import pytest

from node.bootstrap import LEAVE_MANAGER
from tests.cluster import SingleNode
from tests.helpers import wait

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
def node(tmp_path) -> Iterator[SingleNode]:
    n = SingleNode(tmp_path)
    try:
        n.init()
        yield n
    finally:
        n.destroy()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_leave_reaches_the_node_that_h_and_swarm_host_name(node: SingleNode) -> None:
    socket = f"unix://{node.data_dir}/swarm.sock"
    assert node.env["SWARM_HOST"] == socket
    refused = node.swarm("-H", socket, "leave", check=False)       # a manager: --force needed
    assert refused.returncode == 1
    assert refused.stderr == f"Error: {LEAVE_MANAGER}\n"
    pid = node.daemon_pid()

    left = node.swarm("leave", "--force")                           # through $SWARM_HOST
    assert left.stdout == "Node left the swarm.\n"
    assert not (node.data_dir / "node.json").exists()
    wait(lambda: not _alive(pid), 30, "the daemon to exit")
    again = node.swarm("-H", socket, "leave", check=False)
    assert (again.returncode, again.stderr) == (1, "Error: This node is not part of a swarm\n")
