"""What the daemon tells systemd (node/sdnotify.py) when its run ends: a role change
(the process execs itself again under the same PID) sends RELOADING=1 and never
STOPPING=1, which would make systemd ignore the new process's READY=1 and kill it."""
from __future__ import annotations

import socket
import time
from pathlib import Path

from node.config import NodeConfig
from node.daemon import Node
from node.sdnotify import Notifier, stop_lines


def _fields(lines: tuple[str, ...]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in lines)


def test_a_role_change_reloads_instead_of_stopping() -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    fields = _fields(stop_lines(restarting=True))
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert "STOPPING" not in fields
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= after
    assert fields["STATUS"] == "restarting in a new role"


def test_a_real_stop_sends_stopping() -> None:
    fields = _fields(stop_lines(restarting=False))
    assert fields["STOPPING"] == "1"
    assert "RELOADING" not in fields


def test_the_reload_lines_reach_the_socket_as_one_datagram(tmp_path: Path) -> None:
    address = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(address))
        assert Notifier(str(address)).notify(*stop_lines(restarting=True))
        sock.settimeout(5)
        lines = sock.recv(4096).split(b"\n")
    assert b"RELOADING=1" in lines and b"STOPPING=1" not in lines


def _node(restart_requested: bool, daemon_command: tuple[str, ...]) -> Node:
    node = Node.__new__(Node)   # only the fields replaces_itself reads
    node.restart_requested = restart_requested
    node.config = NodeConfig(data_dir=Path("/nonexistent"), daemon_command=daemon_command)
    return node


def test_only_a_role_change_with_a_command_to_exec_counts_as_a_reload() -> None:
    command = ("swarm", "daemon", "--foreground")
    assert _node(True, command).replaces_itself
    # no command to exec: the process ends, so systemd must hear STOPPING=1
    assert not _node(True, ()).replaces_itself
    assert not _node(False, command).replaces_itself
