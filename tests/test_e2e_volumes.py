"""`swarm volume` on a 3-node lab (two managers, one worker), on real podman.

Each lab node has podman storage of its own, so a volume made there by hand is
local to that node as a Swarm volume is. The agents report their volumes to the
managers; `volume ls` shows every node's in one table with the services whose
tasks mount them (a global service created over the API with a volume mount),
`inspect` adds the node, `rm` is refused while a task of that node uses the
volume and works once the service is gone, `prune` asks first (`-f` does not)
and keeps what a task needs. `rm` and `prune` run on the follower manager too
(handed to the leader, where the agents have their sessions).
"""
from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from lab.cluster import Lab
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from proto import objects_pb2 as pb
from tests.helpers import sw, wait
from tests.labfixtures import image, module_lab  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

lab = module_lab(2, 1)
NODES = ("manager1", "manager2", "worker1")
REPORT_TIMEOUT = 40.0   # agents look at their volumes at least every 12 s


def api_create(lab: Lab, spec: pb.ServiceSpec) -> None:
    with grpc.insecure_channel(f"unix://{lab.data_dir('manager1')}/swarm.sock") as channel:
        control_pb2_grpc.ControlStub(channel).CreateService(
            cpb.CreateServiceRequest(spec=spec), timeout=30)


def ls_rows(lab: Lab, *args: str, node: str = "manager1") -> list[tuple[str, str, str]]:
    out = sw(lab, "volume", "ls", "--format", "{{.Node}}|{{.Name}}|{{.Services}}", *args,
             node=node).stdout
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    return sorted((r[0], r[1], r[2]) for r in rows)


def running_tasks(lab: Lab, service: str) -> list[dict[str, Any]]:
    res = sw(lab, "service", "ps", service, "--format", "json", check=False)
    if res.returncode != 0:
        return []
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    return [r for r in rows if r["CurrentState"].startswith("Running")]


def follower(lab: Lab) -> str:
    """A manager that is not the leader (its agent's session is with the leader)."""
    out = sw(lab, "node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}").stdout
    return next(line.split()[0] for line in out.splitlines() if line.endswith(" Reachable"))


def has_volume(lab: Lab, node: str, name: str) -> bool:
    return lab.podman(node, "volume", "exists", name).returncode == 0


def test_volume_ls_inspect_rm_and_prune(lab: Lab, image: str) -> None:
    try:
        _scenario(lab, image)
    finally:
        sw(lab, "service", "rm", "vol", check=False)
        for name in NODES:
            for volume in ("data", "scratch", "junk"):
                lab.podman(name, "volume", "rm", "-f", volume)


def _scenario(lab: Lab, image: str) -> None:
    for name in NODES:
        lab.podman(name, "volume", "create", "--label", "app=shoal", "data", check=True)
    lab.podman("worker1", "volume", "create", "--label", "tier=cache", "scratch", check=True)
    # Volumes made by hand reach the managers through the agents' periodic look.
    wait(lambda: ls_rows(lab) == [("manager1", "data", ""), ("manager2", "data", ""),
                                  ("worker1", "data", ""), ("worker1", "scratch", "")],
         REPORT_TIMEOUT, "every node's volumes in volume ls")

    spec = pb.ServiceSpec()
    spec.annotations.name = "vol"
    getattr(spec, "global").SetInParent()
    spec.task.container.image = image
    spec.task.container.args.extend(["sleep", "3600"])
    spec.task.container.stop_grace_period.nanos = 0
    spec.task.container.mounts.append(pb.Mount(type=pb.Mount.VOLUME, source="data",
                                               target="/data"))
    api_create(lab, spec)
    wait(lambda: len(running_tasks(lab, "vol")) == 3, 90, "a running vol task on every node")

    table = sw(lab, "volume", "ls").stdout.splitlines()
    assert table[0].split() == ["NODE", "DRIVER", "VOLUME", "NAME", "SERVICES"], table
    assert sorted(line.split() for line in table[1:]) == [
        ["manager1", "local", "data", "vol"], ["manager2", "local", "data", "vol"],
        ["worker1", "local", "data", "vol"], ["worker1", "local", "scratch"]], table
    assert ls_rows(lab, "--filter", "node=worker1") == [("worker1", "data", "vol"),
                                                        ("worker1", "scratch", "")]
    assert ls_rows(lab, "--filter", "label=tier=cache") == [("worker1", "scratch", "")]
    assert ls_rows(lab, "--filter", "label=app") == [
        ("manager1", "data", "vol"), ("manager2", "data", "vol"), ("worker1", "data", "vol")]
    assert ls_rows(lab, "--filter", "name=scr") == [("worker1", "scratch", "")]
    assert ls_rows(lab, "--filter", "dangling=true") == [("worker1", "scratch", "")]
    assert sw(lab, "volume", "ls", "-q").stdout.split() == ["data", "scratch"]
    assert ls_rows(lab, node="manager2") == ls_rows(lab)   # any manager answers

    [doc] = json.loads(sw(lab, "volume", "inspect", "data", "--node", "worker1").stdout)
    assert (doc["Name"], doc["Node"], doc["Driver"], doc["Labels"], doc["Services"],
            doc["Scope"]) == ("data", "worker1", "local", {"app": "shoal"}, ["vol"], "local")
    assert doc["Mountpoint"].endswith("/volumes/data/_data") and doc["CreatedAt"]
    docs = json.loads(sw(lab, "volume", "inspect", "data").stdout)
    assert sorted(d["Node"] for d in docs) == list(NODES)
    missing = sw(lab, "volume", "inspect", "nope", check=False)
    assert missing.returncode == 1 and "No such volume: nope" in missing.stderr

    # In use by the node's task: refused, from either manager, and the volume stays.
    for manager in ("manager1", follower(lab)):
        refused = sw(lab, "volume", "rm", "--node", "worker1", "data", node=manager,
                     check=False)
        assert refused.returncode == 1, refused.stdout
        assert "remove data: volume is in use - [vol." in refused.stderr, refused.stderr
        assert "on node worker1" in refused.stderr
    assert has_volume(lab, "worker1", "data")
    unknown = sw(lab, "volume", "rm", "--node", "worker1", "nope", check=False)
    assert unknown.returncode == 1 and "No such volume: nope (on node worker1)" in unknown.stderr
    nowhere = sw(lab, "volume", "rm", "--node", "worker9", "data", check=False)
    assert nowhere.returncode == 1 and "No such node: worker9" in nowhere.stderr
    needs_node = sw(lab, "volume", "rm", "data", check=False)
    assert needs_node.returncode == 1 and "needs --node NODE" in needs_node.stderr

    # Unused: removed on its node, through the follower manager.
    other = follower(lab)
    out = sw(lab, "volume", "rm", "--node", "worker1", "scratch", node=other).stdout
    assert out.split() == ["scratch"]
    assert not has_volume(lab, "worker1", "scratch")
    assert "RemoveVolume handed to the leader" in lab.log_tail(other, 400)
    wait(lambda: ls_rows(lab, "--filter", "node=worker1") == [("worker1", "data", "vol")],
         REPORT_TIMEOUT, "scratch to leave volume ls")

    # Prune asks first; "n" keeps everything; the task's volume survives a prune.
    lab.podman("manager2", "volume", "create", "junk", check=True)
    declined = sw(lab, "volume", "prune", "--node", "manager2", input="n\n")
    assert declined.stdout.startswith(
        "WARNING! This will remove all local volumes not used by at least one container.\n"
        "Are you sure you want to continue? [y/N] "), declined.stdout
    assert "Deleted Volumes" not in declined.stdout and has_volume(lab, "manager2", "junk")
    pruned = sw(lab, "volume", "prune", "--node", "manager2", input="y\n", node=other)
    assert "Deleted Volumes:\njunk\n\nTotal reclaimed space: " in pruned.stdout, pruned.stdout
    assert not has_volume(lab, "manager2", "junk") and has_volume(lab, "manager2", "data")

    # Once the service is gone its volumes stay on their nodes, unused, and can go.
    sw(lab, "service", "rm", "vol")
    wait(lambda: not lab.containers("label=com.shoal.service.name=vol", all_states=True), 60,
         "the vol containers to be removed")
    wait(lambda: ls_rows(lab) == [("manager1", "data", ""), ("manager2", "data", ""),
                                  ("worker1", "data", "")],
         REPORT_TIMEOUT, "data on every node with no service")
    out = sw(lab, "volume", "rm", "--node", "worker1", "data").stdout
    assert out.split() == ["data"] and not has_volume(lab, "worker1", "data")
    forced = sw(lab, "volume", "rm", "-f", "--node", "worker1", "data")
    assert forced.returncode == 0
    pruned = sw(lab, "volume", "prune", "-f", "--node", "manager1").stdout
    assert pruned.startswith("Deleted Volumes:\ndata\n\nTotal reclaimed space: "), pruned
    assert not has_volume(lab, "manager1", "data") and has_volume(lab, "manager2", "data")
    wait(lambda: ls_rows(lab) == [("manager2", "data", "")], REPORT_TIMEOUT,
         "volume ls to follow the removals")


def test_a_global_service_makes_its_volume_on_every_node(lab: Lab, image: str) -> None:
    """No volume made by hand: each node's agent creates `shared` (with its label) for
    its task; `volume ls` shows it once per node with the service; `rm` is refused while
    the task runs and works once the service is gone."""
    try:
        sw(lab, "service", "create", "-d", "--name", "glob", "--mode", "global",
           "--stop-grace-period", "1s", "--mount",
           "type=volume,source=shared,target=/data,volume-label=made=by-agent",
           image, "sh", "-c", "hostname > /data/who; exec sleep 3600")
        wait(lambda: len(running_tasks(lab, "glob")) == 3, 90, "a glob task on every node")
        wait(lambda: ls_rows(lab, "--filter", "name=shared") == [
            (name, "shared", "glob") for name in NODES], REPORT_TIMEOUT,
            "shared once per node, used by glob")
        for name in NODES:
            got = lab.podman(name, "volume", "inspect", "--format",
                             "{{.Driver}} {{.Labels.made}}", "shared").stdout.split()
            assert got == ["local", "by-agent"], (name, got)
        refused = sw(lab, "volume", "rm", "--node", "worker1", "shared", check=False)
        assert refused.returncode == 1 and "volume is in use" in refused.stderr, refused.stderr
        assert has_volume(lab, "worker1", "shared")
        sw(lab, "service", "rm", "glob")
        wait(lambda: not lab.containers("label=com.shoal.service.name=glob", all_states=True),
             60, "the glob containers to be removed")
        assert all(has_volume(lab, name, "shared") for name in NODES), \
            "a volume went with its service"
        out = sw(lab, "volume", "rm", "--node", "worker1", "shared").stdout
        assert out.split() == ["shared"] and not has_volume(lab, "worker1", "shared")
    finally:
        sw(lab, "service", "rm", "glob", check=False)
        for name in NODES:
            lab.podman(name, "volume", "rm", "-f", "shared")
