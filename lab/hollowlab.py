"""The lab's hollow groups: processes of hollow nodes (`lab.hollownodes`) beside real nodes.

A hollow group is a lab node of role "hollow": one network namespace with one
underlay IP (like a host of its own, so partitions apply to it), a data directory,
and one process in that namespace hosting `count` hollow nodes that joined the
lab's cluster with a worker token. Its entry in the lab state file records how
to start it again (`swarm-lab start hollowK` resumes the same node identities),
so `kill` fails all its nodes at once and `down` removes them with the rest.
The helpers here are called by `lab.cluster.Lab`; they only build command lines,
start and wait for processes and clean up the group's task tmpfs.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from lab.hollownodes import LABEL_HOLLOW, READY_FILE, hostname_of
from worker.hollow import DEFAULT_START_DELAY
from worker.taskfiles import TaskFiles

ROLE = "hollow"
PER_PROCESS = 250          # hollow nodes per process by default
READY_SECONDS_PER_NODE = 0.5   # how long `up`/`add` wait for a group, per node (plus a base)
READY_BASE_SECONDS = 60.0

__all__ = ["ROLE", "PER_PROCESS", "LABEL_HOLLOW", "DEFAULT_START_DELAY", "group_names", "entry",
           "split", "hostnames", "command", "launch", "wait_ready", "cleanup", "ready_timeout"]


def group_names(taken: set[str], count: int) -> list[str]:
    """`count` new group names hollowK, the lowest K not in `taken`."""
    names: list[str] = []
    k = 1
    while len(names) < count:
        if f"hollow{k}" not in taken:
            names.append(f"hollow{k}")
        k += 1
    return names


def entry(data_dir: Path, count: int, start_delay: float, token: str,
          generic_resources: Sequence[str] = ()) -> dict[str, Any]:
    """A new group's entry in the lab's state file (what `command` starts it from);
    `generic_resources`: KIND=VALUE terms every node of the group offers."""
    doc: dict[str, Any] = {"role": ROLE, "data_dir": str(data_dir), "hollow": count,
                           "first_index": 1, "start_delay": start_delay, "token": token}
    if generic_resources:
        doc["generic_resources"] = list(generic_resources)
    return doc


def split(total: int, per_process: int) -> list[int]:
    """Node counts of the groups that hold `total` nodes, at most `per_process` each,
    as even as possible (1000 by 250 -> 4 x 250; 600 by 250 -> 3 x 200)."""
    if total < 0 or per_process < 1:
        raise ValueError("hollow node counts must be >= 0 and per-process counts >= 1")
    if total == 0:
        return []
    groups = -(-total // per_process)
    base, extra = divmod(total, groups)
    return [base + (1 if i < extra else 0) for i in range(groups)]


def hostnames(group: str, entry: dict[str, Any]) -> list[str]:
    """The hostnames of a group's nodes, as `node ls` shows them."""
    first = int(entry.get("first_index", 1))
    return [hostname_of(group, i) for i in range(first, first + int(entry["hollow"]))]


def ready_timeout(count: int) -> float:
    return READY_BASE_SECONDS + READY_SECONDS_PER_NODE * count


def command(python: str, group: str, entry: dict[str, Any], managers: Sequence[str],
            token: str, ip: str) -> list[str]:
    """The hollow process's command line (run inside the group's namespace)."""
    return [python, "-m", "lab.hollownodes", "--data-dir", entry["data_dir"],
            "--group", group, "--count", str(entry["hollow"]),
            "--first-index", str(entry.get("first_index", 1)),
            "--manager", ",".join(managers), "--token", token, "--advertise-ip", ip,
            "--start-delay", str(entry.get("start_delay", DEFAULT_START_DELAY)),
            *(flag for term in entry.get("generic_resources", ())
              for flag in ("--node-generic-resource", term))]


def launch(argv: list[str], netns_path: str, env: dict[str, str], log: Path,
           cwd: str) -> subprocess.Popen:
    """Starts the hollow process detached, in the namespace, its output in `log`."""
    (Path(argv[argv.index("--data-dir") + 1]) / READY_FILE).unlink(missing_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(["nsenter", f"--net={netns_path}", "--", *argv],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                cwd=cwd, start_new_session=True)


def wait_ready(procs: dict[str, subprocess.Popen], data_dirs: dict[str, Path],
               timeout: float, log_tail: Callable[[str], str]) -> None:
    """Waits until every group wrote its ready file; raises RuntimeError (with the
    group's log) when one exits first or the deadline passes."""
    deadline = time.monotonic() + timeout
    waiting = set(procs)
    while waiting:
        for name in sorted(waiting):
            if (data_dirs[name] / READY_FILE).exists():
                waiting.discard(name)
            elif procs[name].poll() is not None:
                raise RuntimeError(f"hollow group {name} exited ({procs[name].returncode}) "
                                   f"before its nodes were up:\n{log_tail(name)}")
        if waiting and time.monotonic() > deadline:
            raise RuntimeError(f"hollow groups {', '.join(sorted(waiting))} did not get every "
                               f"node a session within {timeout:.0f} s")
        if waiting:
            time.sleep(0.2)


def cleanup(data_dir: Path) -> list[str]:
    """Unmounts the task tmpfs a group's nodes may have left (secrets, configs)."""
    problems: list[str] = []
    nodes = data_dir / "nodes"
    if not nodes.is_dir():
        return problems
    for node in nodes.iterdir():
        tasks = node / "tasks"
        if tasks.is_dir():
            try:
                TaskFiles(str(tasks)).cleanup(keep=())
            except OSError as err:
                problems.append(f"{tasks}: {err}")
    return problems

