"""Secrets and configs end to end on a real lab (one manager, one worker).

A secret created from standard input reaches a task of a service that uses
it, at /run/secrets/<name>, on a tmpfs; a task of another service cannot see
it; removing a secret in use is refused; a config lands at its target with
its mode; `--secret-add`/`--secret-rm` give the service a new task with the
new files; a restarted worker keeps the files of the task it adopts and drops
those of a task removed while it was down; after the service is removed its
tmpfs is gone from the node. The
value is searched for in the task container's storage (its upper layer and
podman's per-container directory) and in the worker's data directory, and
never found there (the managers' encrypted store is tested with encryption at rest).

One lab serves the module; tests run in file order and build on each other
(the service created in one is examined by the next). Every wait polls a
condition with a deadline.
"""
from __future__ import annotations

import json
import os
import secrets as random_secrets
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lab.cluster import Lab
from tests.helpers import sw, wait
from tests.labfixtures import image, module_lab  # noqa: F401 (fixtures)
from worker.taskfiles import default_root

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SECRET_VALUE = "shoal-" + random_secrets.token_hex(16)   # unique: any hit is this test's
API_VALUE = "api-" + random_secrets.token_hex(16)
CONFIG_TEXT = "listen=8080\n"
GRACE = ("--stop-grace-period", "1s")

lab = module_lab(1, 1)


# ------------------------------------------------------------------- helpers --

def running_container(lab: Lab, service: str) -> dict[str, Any] | None:
    """The one running podman container of `service` in this lab, or None."""
    node_ids = {lab.node_id(n) for n in lab.names()}
    found = [c for c in lab.containers(f"label=com.shoal.service.name={service}")
             if (c.get("Labels") or {}).get("com.shoal.node.id") in node_ids]
    if len(found) != 1:
        return None
    found[0]["podman"] = lab.podman_argv(found[0]["LabNode"], [])   # its node's podman
    return found[0]


def node_podman(container: dict[str, Any], *args: str) -> subprocess.CompletedProcess:
    """podman ARGS on the storage of the node that runs the container."""
    argv, env = container["podman"]
    return subprocess.run([*argv, *args], env=env, capture_output=True, text=True, timeout=60)


def in_task(container: dict[str, Any], *cmd: str) -> subprocess.CompletedProcess:
    return node_podman(container, "exec", container["Id"], *cmd)


def task_id_of(container: dict[str, Any]) -> str:
    return container["Labels"]["com.shoal.task.id"]


def worker_root(lab: Lab) -> Path:
    return Path(default_root(lab.node_id("worker1")))


def host_mounts() -> list[list[str]]:
    return [line.split() for line in Path("/proc/self/mounts").read_text().splitlines()]


def files_containing(roots: list[Path], needle: bytes) -> list[str]:
    """Regular files under `roots` whose bytes contain `needle` (symlinks not followed)."""
    hits = []
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = os.path.join(dirpath, name)
                if not os.path.isfile(path) or os.path.islink(path):
                    continue
                try:
                    with open(path, "rb") as handle:
                        if needle in handle.read():
                            hits.append(path)
                except OSError:
                    continue
    return hits


def start_service(lab: Lab, name: str, image: str, *flags: str) -> dict[str, Any]:
    sw(lab, "service", "create", "-d", "--name", name, *GRACE,
       "--constraint", "node.role==worker", *flags, image, "sleep", "3600")
    return wait(lambda: running_container(lab, name), 60, f"a running task of {name}")


# --------------------------------------------------------------------- tests --

def test_create_from_stdin_list_and_inspect_without_data(lab: Lab) -> None:
    created = sw(lab, "secret", "create", "--label", "team=db", "db_pass", "-",
                 input=SECRET_VALUE)
    secret_id = created.stdout.strip()
    assert len(secret_id) == 25
    sw(lab, "secret", "create", "api_key", "-", input=API_VALUE)
    rows = [json.loads(line) for line in sw(lab, "secret", "ls", "--format", "json")
            .stdout.splitlines()]
    assert {r["Name"] for r in rows} == {"db_pass", "api_key"}
    table = sw(lab, "secret", "ls").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "DRIVER", "CREATED", "UPDATED"]
    assert sw(lab, "secret", "ls", "-q", "--filter", "name=db").stdout.split() == [secret_id]
    doc = json.loads(sw(lab, "secret", "inspect", "db_pass").stdout)
    assert doc[0]["ID"] == secret_id and doc[0]["Spec"] == {"Name": "db_pass",
                                                             "Labels": {"team": "db"}}
    everything = sw(lab, "secret", "inspect", "db_pass", "api_key").stdout + \
        sw(lab, "secret", "inspect", "--pretty", "db_pass").stdout
    assert SECRET_VALUE not in everything and API_VALUE not in everything
    dup = sw(lab, "secret", "create", "db_pass", "-", input="x", check=False)
    assert dup.returncode != 0 and "already exists" in dup.stderr


def test_config_create_and_unknown_references_are_refused(lab: Lab, tmp_path: Path) -> None:
    source = tmp_path / "app.conf"
    source.write_text(CONFIG_TEXT)
    sw(lab, "config", "create", "app_conf", str(source))
    assert sw(lab, "config", "ls").stdout.splitlines()[0].split() == \
        ["ID", "NAME", "CREATED", "UPDATED"]
    doc = json.loads(sw(lab, "config", "inspect", "app_conf").stdout)[0]
    assert doc["Spec"]["Name"] == "app_conf" and "Data" in doc["Spec"]
    for flag, word in (("--secret", "secret"), ("--config", "config")):
        res = sw(lab, "service", "create", "-d", "--name", "broken", flag, "nope", "busybox",
                 check=False)
        assert res.returncode != 0 and f"{word} not found: nope" in res.stderr, res.stderr
    assert "broken" not in sw(lab, "service", "ls").stdout


def test_task_reads_the_secret_on_a_tmpfs_and_the_config_at_its_target(
        lab: Lab, image: str) -> None:
    box = start_service(lab, "sa", image, "--secret", "db_pass",
                        "--config", "source=app_conf,target=/etc/app.conf,mode=0440")
    assert in_task(box, "cat", "/run/secrets/db_pass").stdout == SECRET_VALUE
    mounts = [line.split() for line in in_task(box, "cat", "/proc/mounts").stdout.splitlines()]
    entry = next(m for m in mounts if m[1] == "/run/secrets/db_pass")
    assert entry[2] == "tmpfs" and "ro" in entry[3].split(","), entry
    assert in_task(box, "cat", "/etc/app.conf").stdout == CONFIG_TEXT
    assert in_task(box, "stat", "-c", "%a", "/etc/app.conf").stdout.strip() == "440"
    assert in_task(box, "stat", "-c", "%a", "/run/secrets/db_pass").stdout.strip() == "444"
    assert in_task(box, "sh", "-c", "echo x > /run/secrets/db_pass").returncode != 0
    # On the worker: one tmpfs for this task, under the node's own directory.
    task_dir = worker_root(lab) / task_id_of(box)
    assert any(m[1] == str(task_dir) and m[2] == "tmpfs" for m in host_mounts())
    # The manager runs no task using it: it holds no files.
    assert not Path(default_root(lab.node_id("manager1"))).exists() or \
        not os.listdir(default_root(lab.node_id("manager1")))


def test_another_service_cannot_see_the_secret(lab: Lab, image: str) -> None:
    other = start_service(lab, "sb", image)
    assert in_task(other, "cat", "/run/secrets/db_pass").returncode != 0
    listing = in_task(other, "sh", "-c", "ls -la /run/secrets 2>&1; cat /proc/mounts")
    assert "db_pass" not in listing.stdout and SECRET_VALUE not in listing.stdout
    assert task_id_of(other) not in os.listdir(worker_root(lab))  # no files: no tmpfs


def test_rm_of_a_secret_in_use_is_refused(lab: Lab) -> None:
    res = sw(lab, "secret", "rm", "db_pass", check=False)
    assert res.returncode != 0
    assert "secret 'db_pass' is in use by the following service: sa" in res.stderr, res.stderr
    res = sw(lab, "config", "rm", "app_conf", check=False)
    assert res.returncode != 0 and "in use" in res.stderr and "sa" in res.stderr
    assert "db_pass" in sw(lab, "secret", "ls").stdout


def test_the_value_is_not_in_container_storage_nor_the_data_dir(lab: Lab) -> None:
    box = running_container(lab, "sa")
    assert box is not None
    info = json.loads(node_podman(box, "inspect", box["Id"]).stdout)[0]
    # The managers' store (raft journal, snapshots) is encryption at rest's business,
    # searched by its own tests; here: the task's storage and the worker's data directory.
    roots = [Path(info["GraphDriver"]["Data"]["UpperDir"]), Path(info["StaticDir"]),
             lab.data_dir("worker1")]
    assert all(r.exists() for r in roots), roots
    # The file is there for the task (so a search can find it) ...
    assert in_task(box, "cat", "/run/secrets/db_pass").stdout == SECRET_VALUE
    # ... yet nothing on disk holds the value.
    assert files_containing(roots, SECRET_VALUE.encode()) == []
    assert SECRET_VALUE not in node_podman(box, "inspect", box["Id"]).stdout


def test_secret_add_and_rm_give_a_new_task_with_the_new_files(lab: Lab) -> None:
    before = running_container(lab, "sa")
    assert before is not None
    sw(lab, "service", "update", "-d", "--secret-rm", "db_pass",
       "--secret-add", "source=api_key,target=key,uid=1234,gid=5678,mode=0400", "sa")

    def replaced() -> dict[str, Any] | None:
        box = running_container(lab, "sa")
        return box if box is not None and box["Id"] != before["Id"] else None
    after = wait(replaced, 60, "a new task of sa")
    assert in_task(after, "cat", "/run/secrets/key").stdout == API_VALUE
    assert in_task(after, "stat", "-c", "%a %u %g", "/run/secrets/key").stdout.split() == \
        ["400", "1234", "5678"]
    assert in_task(after, "cat", "/run/secrets/db_pass").returncode != 0
    old_dir = worker_root(lab) / task_id_of(before)
    wait(lambda: not old_dir.exists(), 20, "the old task's tmpfs to go")
    # No service uses db_pass any more: it can be removed now.
    assert sw(lab, "secret", "rm", "db_pass").stdout.strip() == "db_pass"
    assert "db_pass" not in sw(lab, "secret", "ls").stdout


def test_a_restarted_worker_keeps_the_files_of_its_running_task(lab: Lab) -> None:
    box = running_container(lab, "sa")
    assert box is not None
    task_dir = worker_root(lab) / task_id_of(box)
    lab.kill("worker1")
    lab.start("worker1")
    adopted = f"task {task_id_of(box)}: adopted running container"
    wait(lambda: adopted in lab.log_tail("worker1", 200), 40, "the agent to adopt sa's task")
    assert running_container(lab, "sa")["Id"] == box["Id"]
    assert any(m[1] == str(task_dir) and m[2] == "tmpfs" for m in host_mounts())
    res = in_task(box, "cat", "/run/secrets/key")
    assert res.stdout == API_VALUE, res.stderr


def test_files_of_a_task_removed_while_the_worker_was_down_go_at_its_start(
        lab: Lab, image: str) -> None:
    box = start_service(lab, "sc", image, "--secret", "api_key")
    task_dir = worker_root(lab) / task_id_of(box)
    assert task_dir.exists()
    lab.kill("worker1")
    sw(lab, "service", "rm", "sc")
    lab.start("worker1")
    wait(lambda: not task_dir.exists(), 40, "the leftover tmpfs of sc's task to go")
    wait(lambda: running_container(lab, "sc") is None, 40, "sc's leftover container to go")
    assert not any(m[1] == str(task_dir) for m in host_mounts())
    lab.wait_ready(timeout=40)


def test_after_service_rm_the_files_are_gone_from_the_node(lab: Lab) -> None:
    box = running_container(lab, "sa")
    assert box is not None
    task_dir = worker_root(lab) / task_id_of(box)
    assert task_dir.exists()
    sw(lab, "service", "rm", "sa", "sb")
    wait(lambda: running_container(lab, "sa") is None, 30, "the task of sa to stop")
    wait(lambda: not task_dir.exists(), 20, "the task's tmpfs to go")
    assert not any(m[1].startswith(str(worker_root(lab))) for m in host_mounts())
    assert sw(lab, "secret", "rm", "api_key").returncode == 0
    assert sw(lab, "config", "rm", "app_conf").returncode == 0
