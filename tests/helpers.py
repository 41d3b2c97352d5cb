"""Helpers the end-to-end tests share: waiting for a condition with a deadline, and
running the `swarm` CLI inside a lab node.

One definition of each, so that every test waits and fails the same way: a wait
that times out names what it waited for (and the last value it saw); a CLI call
that fails shows its output and the tail of every lab node's log.
"""
from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, Any, Callable, Optional

from lab.localnode import wait_for

if TYPE_CHECKING:  # only a type here; unit tests that wait need not import the lab
    from lab.cluster import Lab

POLL = 0.2      # seconds between two looks; most conditions start a CLI process each


def wait(cond: Callable[[], Any], timeout: float, what: str, interval: float = POLL) -> Any:
    """Polls cond() until it returns something truthy and returns that; AssertionError
    naming `what` once `timeout` seconds have passed."""
    return wait_for(cond, timeout, what, interval)


def sw(lab: Lab, *args: str, node: str = "manager1", check: bool = True,
       input: Optional[str] = None) -> subprocess.CompletedProcess:
    """The swarm CLI inside `node` (manager1 by default) against its own daemon.

    With `check`, a non-zero exit fails the test with the command's output and the
    tail of every node's log.
    """
    res = lab.swarm(node, *args, check=False, input=input)
    if check and res.returncode != 0:
        logs = "".join(f"\n--- {name} log:\n{lab.log_tail(name)}" for name in lab.names())
        raise AssertionError(f"swarm {' '.join(args)} on {node} failed ({res.returncode}):\n"
                             f"{res.stdout}{res.stderr}{logs}")
    return res
