"""Docker Hub names run in the lab: stand-in images under `redis:alpine` and
`docker.io/dockersamples/examplevotingapp_vote:before` (lab/images.py), services
created with those names on a 1+1 lab.

The tasks run on the worker, whose own podman storage pulls the names from the
lab registry (its registry view, lab/podstore.py, reads Docker Hub from there);
the manager's storage never sees them. The vote stand-in answers through the
routing mesh on its published port, from the manager's network namespace; the
redis stand-in answers on port 6379 at the address its service name resolves to
in the vote task, over their overlay network, although its service gives it a command of its own (a
stand-in ignores it, as a Compose file's `command:` must not break it).

The single-node harness with `hub_stand_ins=True` runs `redis:alpine` from the
host's podman the same way, and leaves no Docker Hub-named image behind. Every
wait polls with a deadline.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lab.cluster import Lab
from lab.images import ensure_stand_in, manifest_digest
from tests.cluster import SingleNode, podman
from tests.helpers import sw, wait
from tests.test_e2e_overlay import lookup, remove_all
from tests.labfixtures import module_lab

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

REDIS = "redis:alpine"
VOTE = "docker.io/dockersamples/examplevotingapp_vote:before"
VOTE_PORT = 8097

lab = module_lab(1, 1)

FETCH = r"""
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/", timeout=3) as answer:
        print(answer.read().decode())
except OSError as err:
    print(f"error {err}")
"""


@pytest.fixture(scope="module")
def stand_ins() -> dict[str, str]:
    """The two stand-ins, pushed to the lab registry (once; cheap when present)."""
    return {REDIS: ensure_stand_in(REDIS, 6379), VOTE: ensure_stand_in(VOTE, 80)}


def running_nodes(lab: Lab, service: str) -> list[str]:
    rows = [json.loads(line) for line in
            sw(lab, "service", "ps", service, "--format", "json").stdout.splitlines() if line]
    return [r["Node"] for r in rows if r["DesiredState"] == "Running"
            and r["CurrentState"].startswith("Running")]


def images(lab: Lab, node: str) -> list[str]:
    out = lab.podman(node, "images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout
    return out.split()


def fetch_from(lab: Lab, node: str, ip: str, port: int) -> str:
    """The page `GET http://ip:port/` gets from inside `node`'s network namespace."""
    res = subprocess.run(["nsenter", f"--net={lab.net.netns_path(node)}", "--", sys.executable,
                          "-c", FETCH, ip, str(port)], capture_output=True, text=True,
                         timeout=30)
    return res.stdout


def test_docker_hub_names_run_from_their_stand_ins(lab: Lab, stand_ins: dict[str, Any]) -> None:
    assert stand_ins == {REDIS: "127.0.0.1:5000/library/redis:alpine",
                         VOTE: "127.0.0.1:5000/dockersamples/examplevotingapp_vote:before"}
    created: list[tuple[str, ...]] = []
    try:
        sw(lab, "network", "create", "-d", "overlay", "--subnet", "10.84.0.0/24", "backend")
        created.append(("network", "rm", "backend"))
        sw(lab, "service", "create", "-d", "--name", "redis", "--network", "backend",
           "--constraint", "node.role==worker", REDIS, "redis-server", "--appendonly", "yes")
        created.append(("service", "rm", "redis"))
        sw(lab, "service", "create", "-d", "--name", "vote", "--network", "backend",
           "-p", f"{VOTE_PORT}:80", "--constraint", "node.role==worker", VOTE)
        created.append(("service", "rm", "vote"))
        wait(lambda: running_nodes(lab, "redis") == ["worker1"]
             and running_nodes(lab, "vote") == ["worker1"], 90,
             "redis and vote running on worker1")

        on_worker = images(lab, "worker1")
        assert "docker.io/library/redis:alpine" in on_worker, on_worker
        assert "docker.io/dockersamples/examplevotingapp_vote:before" in on_worker, on_worker
        on_manager = images(lab, "manager1")
        assert not [i for i in on_manager if i.startswith("docker.io/")], on_manager

        def vote_page() -> str:
            page = fetch_from(lab, "manager1", lab.ip("worker1"), VOTE_PORT)
            return page if VOTE in page else ""
        page = wait(vote_page, 30, "the vote stand-in answering through the mesh")
        assert f"Shoal lab stand-in for {VOTE}" in page

        vote_cid = lab.podman("worker1", "ps", "-q", "--filter",
                              "label=com.shoal.service.name=vote", check=True).stdout.split()[0]

        # busybox-static's wget crashes resolving a name (static glibc, no NSS) and with
        # -T: the name is resolved by busybox nslookup through the task's resolver
        [vip] = wait(lambda: lookup(lab, ("worker1", vote_cid), "redis"), 30,
                     "the name redis resolving in the vote task")

        def redis_page() -> str:
            res = lab.podman("worker1", "exec", vote_cid, "wget", "-q", "-O", "-",
                             f"http://{vip}:6379/")
            return res.stdout if "docker.io/library/redis:alpine" in res.stdout else ""
        wait(redis_page, 30, "redis answering on 6379 from the vote task")
    finally:
        for args in reversed(created):
            if args[0] == "network":
                remove_all(lab, (), (args[2],))
            else:
                sw(lab, *args, check=False)


def test_the_single_node_harness_runs_a_docker_hub_name_from_its_stand_in(
        tmp_path: Path, stand_ins: dict[str, Any]) -> None:
    node = SingleNode(tmp_path, hub_stand_ins=True)
    pinned = f"docker.io/library/redis@{manifest_digest('library/redis', 'alpine')}"
    try:
        node.init()
        made = node.swarm("service", "create", "-d", "--name", "cache", REDIS)
        # the CLI asks where the node's podman pulls (its registries.conf: the lab
        # registry for Docker Hub names), so the Hub name is pinned to the stand-in's digest
        assert "could not be accessed" not in made.stderr, made.stderr
        wait(lambda: node.running("cache"), 60, "the cache task running")
        [container] = node.containers("cache")
        assert container["Image"] == pinned, container

        def page() -> str:
            res = podman("exec", container["Id"], "wget", "-q", "-O", "-",
                         "http://127.0.0.1:6379/", check=False)
            return res.stdout if "docker.io/library/redis:alpine" in res.stdout else ""
        wait(page, 30, "the stand-in answering on 6379")
    finally:
        node.destroy()
    for name in ("docker.io/library/redis:alpine", pinned):
        assert podman("image", "exists", name, check=False).returncode == 1, name
