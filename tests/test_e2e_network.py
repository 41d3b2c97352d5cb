"""Overlay networks' control plane on a real lab (1 manager + 2 workers).

Covers issue 5's control-side points: the `ingress` network `swarm init`
makes; `network create/ls/inspect/rm` with Docker's output and refusals; a
service on an overlay getting distinct task addresses and a VIP visible in
`service inspect` and `network inspect`; `network rm` refused while a service
uses the network; published-port conflicts and auto-assignment; and the
per-node network view reaching exactly the agents of the nodes that run the
tasks (asked of each node's agent over its unix socket with
LocalNode.GetNetworkViews); and (issue 18) addresses from a --config-from
network's --ip-range, never its --aux-address. Tasks still run in loopback-only namespaces:
programming the overlay is the data plane's job. Every wait polls with a
deadline.
"""
from __future__ import annotations

import json
from typing import Any, Optional

import grpc
import pytest

from lab.cluster import Lab
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from tests.helpers import sw, wait
from tests.labfixtures import image, module_lab  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

NODES = ("manager1", "worker1", "worker2")
GRACE = ("--stop-grace-period", "1s")

lab = module_lab(1, 2)


def inspect_network(lab: Lab, name: str) -> dict[str, Any]:
    (data,) = json.loads(sw(lab, "network", "inspect", name).stdout)
    return data


def inspect_service(lab: Lab, name: str) -> dict[str, Any]:
    (data,) = json.loads(sw(lab, "service", "inspect", name).stdout)
    return data


def views(lab: Lab, node: str) -> dict[str, dict[str, Any]]:
    """The node agent's current network views by network name."""
    with grpc.insecure_channel(f"unix://{lab.data_dir(node)}/swarm.sock") as channel:
        text = control_pb2_grpc.LocalNodeStub(channel).GetNetworkViews(
            cpb.GetNetworkViewsRequest(), timeout=10).views_json
    return {n["name"]: n for n in json.loads(text)["networks"]} if text else {}


def running(lab: Lab, service: str, count: int) -> Optional[list[dict[str, Any]]]:
    rows = [json.loads(line) for line in
            sw(lab, "service", "ps", service, "--format", "json").stdout.splitlines() if line]
    live = [r for r in rows if r["DesiredState"] == "Running"
            and r["CurrentState"].startswith("Running")]
    return live if len(live) == count else None


def test_ingress_network_made_at_init(lab: Lab):
    lines = sw(lab, "network", "ls").stdout.splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert any(line.split()[1:] == ["ingress", "overlay", "swarm"] for line in lines[1:])
    data = inspect_network(lab, "ingress")
    assert data["Ingress"] is True and data["Scope"] == "swarm"
    assert data["IPAM"]["Config"] == [{"Subnet": "10.0.0.0/24", "Gateway": "10.0.0.1"}]
    assert data["Options"]["com.docker.network.driver.overlay.vxlanid_list"] == "4096"


def test_network_create_ls_inspect_rm(lab: Lab):
    nid = sw(lab, "network", "create", "-d", "overlay", "--label", "team=a", "--opt",
             "encrypted", "scratch").stdout.strip()
    try:
        assert len(nid) == 25
        quiet = sw(lab, "network", "ls", "-q", "--filter", "name=scratch").stdout.split()
        assert quiet == [nid[:12]]
        data = inspect_network(lab, "scratch")
        assert data["Id"] == nid and data["Labels"] == {"team": "a"}
        assert data["Options"]["encrypted"] == ""
        subnet = data["IPAM"]["Config"][0]["Subnet"]
        assert subnet.startswith("10.0.") and subnet != "10.0.0.0/24"
        assert int(data["Options"]["com.docker.network.driver.overlay.vxlanid_list"]) > 4096
        # refusals: overlapping subnet, same name, unknown driver; nothing is created
        bad = sw(lab, "network", "create", "--subnet", subnet, "other", check=False)
        assert bad.returncode != 0 and "overlaps" in bad.stderr
        same = sw(lab, "network", "create", "scratch", check=False)
        assert same.returncode != 0 and "already exists" in same.stderr
        driver = sw(lab, "network", "create", "-d", "bridge", "br", check=False)
        assert driver.returncode != 0 and "not supported" in driver.stderr
        names = [line.split()[1] for line in sw(lab, "network", "ls").stdout.splitlines()[1:]]
        assert sorted(names) == ["ingress", "scratch"]
    finally:
        sw(lab, "network", "rm", "scratch", check=False)
    missing = sw(lab, "network", "inspect", "scratch", check=False)
    assert missing.returncode != 0 and "No such network: scratch" in missing.stderr


def test_service_on_overlay_addresses_vip_and_node_views(lab: Lab, image: str):
    sw(lab, "network", "create", "-d", "overlay", "--subnet", "10.77.0.0/24", "--opt",
       "encrypted", "back")
    try:
        sw(lab, "service", "create", "-d", "--name", "web", "--replicas", "2", *GRACE,
           "--constraint", "node.role==worker", "--network", "name=back,alias=www",
           image, "sleep", "3600")
        rows = wait(lambda: running(lab, "web", 2), 60, "two web tasks running")
        assert sorted(r["Node"] for r in rows) == ["worker1", "worker2"]
        svc = inspect_service(lab, "web")
        net_id = inspect_network(lab, "back")["Id"]
        assert svc["endpoint"]["virtual_ips"] == [{"network_id": net_id, "addr": "10.77.0.2/24"}]
        data = inspect_network(lab, "back")
        addrs = sorted(c["IPv4Address"] for c in data["Containers"].values())
        assert addrs == ["10.77.0.3/24", "10.77.0.4/24"]
        assert data["Services"]["web"]["VIP"] == "10.77.0.2"
        assert sorted(p["Name"] for p in data["Peers"]) == sorted(
            c["Node"] for c in data["Containers"].values())

        # the per-node view: on both workers, not on the manager (no task there)
        def both_workers() -> Optional[list[dict[str, Any]]]:
            got = [views(lab, w).get("back") for w in ("worker1", "worker2")]
            if not all(got):
                return None
            if any(len(v["services"][0].get("backend_addrs", [])) != 2 for v in got):
                return None
            return got
        got = wait(both_workers, 30, "the view of 'back' on both workers")
        for view in got:
            assert view["vni"] == int(
                data["Options"]["com.docker.network.driver.overlay.vxlanid_list"])
            assert view["subnet"] == "10.77.0.0/24" and view["gateway"] == "10.77.0.1"
            assert view["encrypted"] is True
            assert [(k["id"], k["primary"]) for k in view["keys"]] == [(1, True)]
            assert "key" not in view["keys"][0]  # the dump never holds key bytes
            assert sorted(e["addr"] for e in view["endpoints"]) == addrs
            assert {e["node_addr"] for e in view["endpoints"]} == {
                lab.ip("worker1"), lab.ip("worker2")}
            (service,) = view["services"]
            assert service["name"] == "web" and service["vip"] == "10.77.0.2/24"
            assert service["aliases"] == ["www"]
            assert sorted(service["backend_addrs"]) == ["10.77.0.3", "10.77.0.4"]
        assert "back" not in views(lab, "manager1")

        refused = sw(lab, "network", "rm", "back", check=False)
        assert refused.returncode != 0 and "in use" in refused.stderr and "web" in refused.stderr

        # scaling down: the stopped task leaves every view's backends at once
        sw(lab, "service", "scale", "-d", "web=1")
        wait(lambda: running(lab, "web", 1), 30, "one web task")
        left = wait(lambda: [w for w in ("worker1", "worker2") if "back" not in views(lab, w)],
                    30, "the view of 'back' withdrawn from the node that lost its task")
        (kept,) = [w for w in ("worker1", "worker2") if w not in left]
        wait(lambda: len(views(lab, kept)["back"]["services"][0].get("backend_addrs", []))
             == 1, 30, "one backend left")
        sw(lab, "service", "rm", "web")
        wait(lambda: "back" not in views(lab, kept), 30, "the view withdrawn after service rm")
        wait(lambda: sw(lab, "network", "rm", "back", check=False).returncode == 0, 30,
             "network rm once the tasks are gone")
    finally:
        sw(lab, "service", "rm", "web", check=False)
        wait(lambda: sw(lab, "network", "rm", "back", check=False).returncode == 0 or
             "No such network" in sw(lab, "network", "rm", "back", check=False).stderr,
             30, "back removed")


def test_published_ports_conflict_auto_assign_and_mesh_views(lab: Lab, image: str):
    try:
        sw(lab, "service", "create", "-d", "--name", "pub", *GRACE, "-p", "8080:80",
           image, "sleep", "3600")
        clash = sw(lab, "service", "create", "-d", "--name", "pub2", *GRACE,
                   "--publish", "published=8080,target=81", image, "sleep", "3600",
                   check=False)
        assert clash.returncode != 0
        assert "port '8080/tcp' is already in use by service 'pub'" in clash.stderr
        assert sw(lab, "service", "inspect", "pub2", check=False).returncode != 0
        explicit = sw(lab, "service", "create", "-d", "--name", "pub3", "--network", "ingress",
                      image, check=False)
        assert explicit.returncode != 0
        assert "cannot be explicitly attached to the ingress network" in explicit.stderr
        sw(lab, "service", "create", "-d", "--name", "auto", *GRACE, "-p", "80",
           image, "sleep", "3600")

        def auto_port() -> Optional[int]:
            ports = inspect_service(lab, "auto").get("endpoint", {}).get("ports", [])
            return ports[0].get("published_port") if ports else None
        port = wait(auto_port, 30, "a published port for 'auto'")
        assert 30000 <= port <= 32767
        upd = sw(lab, "service", "update", "-d", "--publish-add", f"{port}:90", "pub",
                 check=False)
        assert upd.returncode != 0 and "already in use by service 'auto'" in upd.stderr
        # the routing mesh: every node gets the ingress view with its own address
        def mesh() -> Optional[dict[str, dict[str, Any]]]:
            got = {n: views(lab, n).get("ingress") for n in NODES}
            if not all(got.values()) or any(len(v.get("services", [])) != 2
                                             for v in got.values()):
                return None
            return got
        got = wait(mesh, 60, "the ingress view on every node")
        assert len({v["local_addr"] for v in got.values()}) == 3
        assert len(inspect_network(lab, "ingress")["Peers"]) == 3
        for view in got.values():
            published = sorted(p["published_port"] for s in view["services"]
                               for p in s["ports"])
            assert published == sorted([8080, port])
            assert all(s["vip"].startswith("10.0.0.") for s in view["services"])
    finally:
        for name in ("pub", "pub2", "pub3", "auto"):
            sw(lab, "service", "rm", name, check=False)


def test_prune_and_inspect_format_through_the_real_cli(lab: Lab, image: str):
    """`network prune` removes only the idle network its filter names (a service's stays,
    ingress stays); `service|node inspect -f` print one rendered line per object."""
    for name, label in (("prune-used", "e2e=prune"), ("prune-idle", "e2e=prune"),
                        ("prune-other", "e2e=other")):
        sw(lab, "network", "create", "--label", label, name)
    sw(lab, "service", "create", "-d", "--name", "pruneweb", "--label", "k=v", *GRACE,
       "--network", "prune-used", image, "sleep", "3600")
    try:
        declined = sw(lab, "network", "prune", "--filter", "label=e2e=prune", input="n\n")
        assert "Are you sure you want to continue? [y/N]" in declined.stdout
        assert "Deleted" not in declined.stdout
        res = sw(lab, "network", "prune", "-f", "--filter", "label=e2e=prune")
        assert res.stdout == "Deleted Networks:\nprune-idle\n\n"
        names = sw(lab, "network", "ls", "--format", "{{.Name}}").stdout.split()
        assert {"prune-used", "prune-other", "ingress"} <= set(names)
        assert "prune-idle" not in names
        svc = inspect_service(lab, "pruneweb")
        out = sw(lab, "service", "inspect", "-f",
                 '{{.Spec.Name}} {{.ID}} {{index .Spec.Labels "k"}}', "pruneweb").stdout
        assert out == f"pruneweb {svc['id']} v\n"
        assert sw(lab, "node", "inspect", "-f", "{{.Description.Hostname}}",
                  "self").stdout == "manager1\n"
        bad = sw(lab, "service", "inspect", "-f", "{{.Spec.Nme}}", "pruneweb", check=False)
        assert bad.returncode == 1 and bad.stdout == "" and '"Nme"' in bad.stderr
    finally:
        sw(lab, "service", "rm", "pruneweb", check=False)
        wait(lambda: sw(lab, "network", "rm", "prune-used", check=False).returncode == 0,
             60, "prune-used removable once pruneweb's tasks are gone")
        sw(lab, "network", "rm", "prune-other", check=False)


def test_ip_range_aux_address_and_config_from(lab: Lab, image: str):
    """A network made --config-from a config-only one with --ip-range and --aux-address:
    the VIP and task addresses come from the range, never the aux address."""
    sw(lab, "network", "create", "--config-only", "--subnet", "10.78.0.0/24", "--ip-range",
       "10.78.0.64/28", "--aux-address", "router=10.78.0.65", "cfg78")
    try:
        assert "null" in sw(lab, "network", "ls", "--filter", "name=cfg78").stdout
        sw(lab, "network", "create", "--config-from", "cfg78", "--scope", "swarm", "ranged")
        on_cfg = sw(lab, "service", "create", "-d", "--name", "bad", "--network", "cfg78",
                    image, check=False)
        assert on_cfg.returncode != 0 and "configuration-only network" in on_cfg.stderr
        sw(lab, "service", "create", "-d", "--name", "rng", "--replicas", "3", *GRACE,
           "--network", "ranged", image, "sleep", "3600")
        wait(lambda: running(lab, "rng", 3), 60, "three rng tasks running")
        data = inspect_network(lab, "ranged")
        assert data["ConfigFrom"] == {"Network": "cfg78"} and data["ConfigOnly"] is False
        assert data["IPAM"]["Config"] == [{"Subnet": "10.78.0.0/24", "IPRange": "10.78.0.64/28",
                                           "Gateway": "10.78.0.1",
                                           "AuxiliaryAddresses": {"router": "10.78.0.65"}}]
        addrs = sorted(c["IPv4Address"] for c in data["Containers"].values())
        assert addrs == ["10.78.0.66/24", "10.78.0.67/24", "10.78.0.68/24"]
        assert data["Services"]["rng"]["VIP"] == "10.78.0.64"
        refused = sw(lab, "network", "rm", "cfg78", check=False)
        assert refused.returncode != 0 and "in use by network ranged" in refused.stderr
    finally:
        sw(lab, "service", "rm", "rng", check=False)
        wait(lambda: sw(lab, "network", "rm", "ranged", check=False).returncode == 0 or
             "No such network" in sw(lab, "network", "rm", "ranged", check=False).stderr,
             30, "ranged removed")
        sw(lab, "network", "rm", "cfg78", check=False)
