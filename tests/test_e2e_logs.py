"""`swarm service logs` / `swarm task logs` on a lab cluster (2 managers, 1 worker): each
flag's effect on real output, a task ID as the target, the logs read from a follower
manager, and the logs of a node that is down reported as unavailable (exit 1).

One lab for the module (CI time): the down-node test kills the worker, so it runs last.
"""
from __future__ import annotations

import datetime
import json
import re
import subprocess
from typing import Any

import pytest

from lab.cluster import Lab
from tests.helpers import sw, wait
from tests.labfixtures import image, module_lab  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

lab = module_lab(2, 1)

# "one" on stdout, then "two" on stderr two seconds later
SCRIPT = "echo one; sleep 2; echo two >&2; sleep 3600"
PREFIX = re.compile(r"^talk\.([123])\.([0-9a-z]{12})@(\S+?)( *)    \| (.*)$")
INCOMPLETE = ("error from daemon in stream: Error grabbing logs: warning: incomplete log "
              "stream. some logs could not be retrieved for the following reasons: ")


def logs(lab: Lab, *args: str, node: str = "manager1", check: bool = True
         ) -> subprocess.CompletedProcess:
    return sw(lab, "service", "logs", *args, node=node, check=check)


@pytest.fixture(scope="module")
def talk(lab: Lab, image: str) -> dict[str, Any]:
    """The service (3 replicas, one per node) once every task has written both lines;
    its ID and tasks (ID -> (slot, node ID))."""
    sw(lab, "service", "create", "--name", "talk", "--replicas", "3",
       "--replicas-max-per-node", "1", "--stop-grace-period", "1s", image, "sh", "-c", SCRIPT)

    def both_lines() -> bool:
        res = logs(lab, "talk")
        return res.stdout.count("| one") == 3 and res.stderr.count("| two") == 3
    wait(both_lines, 60, "both lines of every task")
    service_id = json.loads(sw(lab, "service", "inspect", "talk").stdout)[0]["id"]
    rows = sw(lab, "service", "ps", "talk", "--no-trunc", "--format",
              "{{.ID}} {{.Name}} {{.Node}}").stdout.split("\n")
    node_ids = {lab.node_id(name): name for name in lab.names()}
    tasks = {}
    for row in filter(None, rows):
        task_id, name, node = row.split()
        tasks[task_id] = (int(name.rpartition(".")[2]), next(i for i, n in node_ids.items() if n == node))
    return {"id": service_id, "tasks": tasks}


def test_default_lines_and_streams(lab: Lab, talk: dict[str, Any]) -> None:
    res = logs(lab, "talk")
    seen = {}
    for line in res.stdout.splitlines():
        m = PREFIX.match(line)
        assert m and m.group(5) == "one" and m.group(4) == "", line
        seen[m.group(1)] = (m.group(2), m.group(3))
    assert sorted(seen) == ["1", "2", "3"]
    assert {host for _, host in seen.values()} == set(lab.names())   # hostnames
    assert all(PREFIX.match(line).group(5) == "two" for line in res.stderr.splitlines())
    assert {tid[:12] for tid in talk["tasks"]} == {short for short, _ in seen.values()}


def test_prefix_flags(lab: Lab, talk: dict[str, Any]) -> None:
    out = logs(lab, "--no-task-ids", "talk").stdout.splitlines()
    assert sorted(out) == [f"talk.{s}@{h}    | one" for s, h in
                           sorted((str(slot), lab_name(lab, node))
                                  for slot, node in talk["tasks"].values())]
    full = logs(lab, "--no-trunc", "talk").stdout
    assert all(f".{task_id}@" in full for task_id in talk["tasks"])
    bare = logs(lab, "--no-resolve", "talk").stdout.splitlines()
    expected = {f"{talk['id']}.{slot}.{task_id[:12]}@{node}    | one"
                for task_id, (slot, node) in talk["tasks"].items()}
    assert set(bare) == expected
    stamped = logs(lab, "-t", "talk").stdout.splitlines()
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z talk\.\d\.", line)
               for line in stamped), stamped


def test_raw_and_details(lab: Lab, talk: dict[str, Any]) -> None:
    raw = logs(lab, "--raw", "talk")
    assert raw.stdout.splitlines() == ["one"] * 3 and raw.stderr.splitlines() == ["two"] * 3
    details = {f"com.docker.swarm.node.id={node},com.docker.swarm.service.id={talk['id']},"
               f"com.docker.swarm.task.id={task_id}"
               for task_id, (_, node) in talk["tasks"].items()}
    raw_details = logs(lab, "--raw", "--details", "talk").stdout.splitlines()
    assert {line.rpartition(" ")[0] for line in raw_details} == details
    assert {line.rpartition(" ")[2] for line in raw_details} == {"one"}
    pretty = logs(lab, "--details", "talk").stdout.splitlines()
    assert {line.split("    | ", 1)[1] for line in pretty} == {d + " one" for d in details}


def test_tail(lab: Lab, talk: dict[str, Any]) -> None:
    last = logs(lab, "--tail", "1", "talk")
    assert last.stdout == "" and last.stderr.count("| two") == 3
    assert logs(lab, "-n", "0", "talk").stdout + logs(lab, "-n", "0", "talk").stderr == ""
    assert "invalid --tail" in logs(lab, "--tail", "-3", "talk", check=False).stderr


def test_a_task_as_target_and_task_logs(lab: Lab, talk: dict[str, Any]) -> None:
    task_id, (slot, _) = sorted(talk["tasks"].items())[0]
    one = logs(lab, task_id[:8])       # Docker's way: a task ID (prefix) where a service is
    assert one.stdout.splitlines() == [line for line in logs(lab, "talk").stdout.splitlines()
                                       if f".{task_id[:12]}@" in line]
    assert len(one.stdout.splitlines()) == 1 and f"talk.{slot}." in one.stdout
    alias = sw(lab, "task", "logs", task_id)
    assert alias.stdout == one.stdout and alias.stderr == one.stderr
    refused = sw(lab, "task", "logs", "talk", check=False)
    assert refused.returncode == 1 and "no such task: talk" in refused.stderr
    missing = logs(lab, "nosuchthing", check=False)
    assert missing.returncode == 1 and "no such task or service: nosuchthing" in missing.stderr


def test_since_and_until(lab: Lab, talk: dict[str, Any]) -> None:
    task_id = sorted(talk["tasks"])[0]
    stamped = sw(lab, "task", "logs", "--raw", "-t", task_id)
    t_one = _time(stamped.stdout.split()[0])
    t_two = _time(stamped.stderr.split()[0])
    assert t_two - t_one > 1.5
    # a unix timestamp, an RFC 3339 time with a zone, relative durations
    since = sw(lab, "task", "logs", "--raw", "--since", f"{t_two - 0.5:.3f}", task_id)
    assert since.stdout == "" and since.stderr == "two\n"
    until_at = datetime.datetime.fromtimestamp(t_one + 0.5, datetime.timezone.utc).isoformat()
    until = sw(lab, "task", "logs", "--raw", "--until", until_at, task_id)
    assert until.stdout == "one\n" and until.stderr == ""
    recent = logs(lab, "--raw", "--since", "10m", "talk")
    assert recent.stdout.count("one") == 3 and recent.stderr.count("two") == 3
    old = logs(lab, "--raw", "--until", "10m", "talk")
    assert old.stdout + old.stderr == ""
    bad = logs(lab, "--since", "yesterday", "talk", check=False)
    assert bad.returncode == 1 and 'invalid value "yesterday" for --since' in bad.stderr


def test_follow_ends_at_until(lab: Lab, talk: dict[str, Any]) -> None:
    """-f streams until --until has passed, then the command ends by itself."""
    end = f"{_now(lab) + 3:.3f}"
    res = logs(lab, "-f", "--raw", "--until", end, "talk")
    assert res.stdout.splitlines() == ["one"] * 3 and res.stderr.splitlines() == ["two"] * 3


def test_logs_from_a_follower_manager(lab: Lab, talk: dict[str, Any]) -> None:
    follower = _follower(lab)
    res = logs(lab, "talk", node=follower)
    assert res.returncode == 0 and res.stdout.count("| one") == 3
    # the same lines as on the leader (nodes' lines interleave in any order)
    assert sorted(res.stdout.splitlines()) == sorted(logs(lab, "talk").stdout.splitlines())


def test_a_down_node_is_reported_unavailable(lab: Lab, talk: dict[str, Any]) -> None:
    worker = next(n for n in lab.names() if lab.role(n) == "worker")
    worker_id = lab.node_id(worker)
    lab.kill(worker)
    warning = f"{INCOMPLETE}node {worker_id} is not available"

    def reported() -> Any:
        res = logs(lab, "talk", check=False)
        return res if warning in res.stderr else None
    res = wait(reported, 30, "the worker's logs reported unavailable")
    assert res.returncode == 1
    lines = [PREFIX.match(line) for line in res.stdout.splitlines()]
    hosts = {m.group(3) for m in lines if m and m.group(5) == "one"}
    assert {n for n in lab.names() if n != worker} <= hosts and worker not in hosts
    # after the lines, as Docker (", no answer within 10s" when the node died so recently
    # that its session had not ended yet)
    assert res.stderr.splitlines()[-1].startswith(warning)
    on_follower = logs(lab, "--raw", "talk", node=_follower(lab), check=False)
    assert on_follower.returncode == 1 and warning in on_follower.stderr
    assert on_follower.stdout.count("one") >= 2


# ---------------------------------------------------------------- helpers ----

def lab_name(lab: Lab, node_id: str) -> str:
    return next(n for n in lab.names() if lab.node_id(n) == node_id)


def _time(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


def _now(lab: Lab) -> float:
    return float(lab.exec("manager1", "date", "+%s.%N", check=True).stdout)


def _follower(lab: Lab) -> str:
    rows = sw(lab, "node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}").stdout
    return next(line.split()[0] for line in rows.splitlines()
                if line.split()[1:] == ["Reachable"])
