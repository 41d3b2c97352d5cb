"""A secure multi-node cluster on a real lab: PKI, joins, authorization, placement.

Covers issue 3's acceptance points for a running 3-manager + 2-worker lab: the
cluster view and the manager certificate on port 2377; joins with manager and
worker tokens, refused tokens (wrong CA digest, garbage, rotated); a worker's
certificate and a certificate-less caller against the control API; and
placement across nodes (spread, role and label constraints, drain, global
services following a joining node, impossible constraints, generic resources:
worker1 joins with `--node-generic-resource gpu=GPU-1 --node-generic-resource
gpu=GPU-2`, the only node with any).

One lab serves the whole module. Placement tests run first, on exactly the
five nodes the lab starts with; the join tests that add nodes come after them.
Every wait polls a condition with a deadline.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from node import credentials
from lab.cluster import REPO, Lab, LabError
from pki import node as pkinode
from pki import tls, tokens
from pki.ca import RootCA, cert_pem
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from tests.helpers import sw, wait
from tests.labfixtures import image, module_lab  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

MANAGERS = ("manager1", "manager2", "manager3")
WORKERS = ("worker1", "worker2")
NODES = MANAGERS + WORKERS
PORT = 2377
GRACE = ("--stop-grace-period", "1s")
POLL = 0.2


# ------------------------------------------------------------------ fixtures --

GPU_IDS = ("GPU-1", "GPU-2")
lab = module_lab(3, 2, node_flags={"worker1": tuple(
    flag for gpu in GPU_IDS for flag in ("--node-generic-resource", f"gpu={gpu}"))})


# ------------------------------------------------------------------- helpers --

def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def node_rows(lab: Lab) -> dict[str, dict[str, Any]]:
    """`node ls --format json` by hostname."""
    return {row["Hostname"]: row for row in json_lines(sw(lab, "node", "ls", "--format",
                                                          "json").stdout)}


def live_tasks(lab: Lab, service: str) -> list[dict[str, Any]]:
    """`service ps` rows of the tasks meant to run."""
    rows = json_lines(sw(lab, "service", "ps", service, "--format", "json").stdout)
    return [r for r in rows if r["DesiredState"] == "Running"]


def running_per_node(lab: Lab, service: str) -> Counter:
    """Running tasks of `service` per node hostname, as `service ps` shows them."""
    return Counter(r["Node"] for r in live_tasks(lab, service)
                   if r["CurrentState"].startswith("Running"))


def cluster_id(lab: Lab) -> str:
    return credentials.load_node_credentials(lab.data_dir("manager1")).identity.cluster_id


def containers_per_node(lab: Lab, service: str) -> Counter:
    """Running podman containers of `service` in this lab's cluster, per node hostname
    (found in each node's own podman storage, counted by the node label they carry)."""
    names = lab.names()
    ids = {lab.node_id(name): name for name in names}
    found = []
    for name in names:
        out = lab.podman(name, "ps", "--format", "json", "--filter",
                         f"label=com.shoal.service.name={service}",
                         "--filter", f"label=com.shoal.cluster.id={cluster_id(lab)}")
        found += json.loads(out.stdout or "[]")
    return Counter(ids.get((c.get("Labels") or {}).get("com.shoal.node.id", ""), "?")
                   for c in found)


def create(lab: Lab, name: str, *args: str) -> None:
    sw(lab, "service", "create", "-d", "--name", name, *GRACE, *args)


def remove(lab: Lab, name: str) -> None:
    """Removes a service and waits until none of its containers is left."""
    sw(lab, "service", "rm", name)
    wait(lambda: not containers_per_node(lab, name), 20, f"the containers of {name} to go")


def spread_settled(lab: Lab, service: str, expected: dict[str, int], timeout: float = 40
                   ) -> Counter:
    """Waits until `service ps` shows exactly `expected` running tasks per node."""
    def settled() -> Counter | None:
        got = running_per_node(lab, service)
        return got if dict(got) == expected else None
    return wait(settled, timeout, f"{service} running as {expected}")


def certificate_subject(pem: bytes) -> dict[str, str]:
    cert = x509.load_pem_x509_certificate(pem)
    return {key: cert.subject.get_attributes_for_oid(oid)[0].value
            for key, oid in (("O", NameOID.ORGANIZATION_NAME),
                             ("OU", NameOID.ORGANIZATIONAL_UNIT_NAME),
                             ("CN", NameOID.COMMON_NAME))}


def node_certificate(lab: Lab, name: str) -> bytes:
    return credentials.load_node_credentials(lab.data_dir(name)).cert_pem


def control_call(target: str, credentials: grpc.ChannelCredentials) -> grpc.RpcError:
    """ListServices on `target`; returns the error it must fail with."""
    with grpc.secure_channel(target, credentials, options=tls.channel_options()) as channel:
        stub = control_pb2_grpc.ControlStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.ListServices(cpb.ListServicesRequest(), timeout=10)
    return err.value


# ------------------------------------------------------- the cluster as built --

def test_node_ls_shows_five_ready_nodes_one_leader(lab: Lab) -> None:
    rows = node_rows(lab)
    assert set(rows) == set(NODES)
    assert all(r["Status"] == "Ready" and r["Availability"] == "Active" for r in rows.values())
    statuses = Counter(r["ManagerStatus"] for r in rows.values())
    assert statuses == {"Leader": 1, "Reachable": 2, "": 2}, statuses
    assert {h for h, r in rows.items() if r["ManagerStatus"]} == set(MANAGERS)
    for name in NODES:
        assert rows[name]["ID"] == lab.node_id(name)
    table = sw(lab, "node", "ls").stdout
    assert "Leader" in table and table.count("Reachable") == 2


def test_manager_port_presents_a_manager_certificate(lab: Lab) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((lab.ip("manager1"), PORT), timeout=10) as raw:
        with ctx.wrap_socket(raw) as conn:
            der = conn.getpeercert(binary_form=True)
    assert der
    subject = certificate_subject(cert_pem(x509.load_der_x509_certificate(der)))
    info = sw(lab, "info").stdout
    assert f"ClusterID: {subject['O']}" in info
    assert subject == {"O": cluster_id(lab), "OU": "swarm-manager",
                       "CN": lab.node_id("manager1")}
    worker = certificate_subject(node_certificate(lab, "worker1"))
    assert worker == {"O": subject["O"], "OU": "swarm-worker", "CN": lab.node_id("worker1")}


# ------------------------------------------------------------- authorization --

def test_worker_certificate_cannot_call_the_control_api(lab: Lab) -> None:
    creds = pkinode.load(lab.data_dir("worker1"))
    err = control_call(f"{lab.ip('manager1')}:{PORT}", tls.client_credentials(creds))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED, err
    assert "role worker" in err.details()
    manager = credentials.load_node_credentials(lab.data_dir("manager2"))
    target = f"{lab.ip('manager1')}:{PORT}"
    with grpc.secure_channel(target, tls.client_credentials(manager),
                             options=tls.channel_options()) as channel:
        reply = control_pb2_grpc.ControlStub(channel).ListNodes(cpb.ListNodesRequest(), timeout=10)
    assert {n.id for n in reply.nodes} >= {lab.node_id(n) for n in NODES}


def h2_answer(host: str, port: int, creds: pkinode.NodeCredentials | None) -> bytes:
    """What a TLS server says to an HTTP/2 preface (b"" when it hangs up), the client
    presenting `creds`' certificate or none."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    with tempfile.TemporaryDirectory() as tmp:
        if creds is not None:
            (Path(tmp) / "cert.pem").write_bytes(creds.cert_pem)
            (Path(tmp) / "key.pem").write_bytes(creds.key_pem)
            ctx.load_cert_chain(Path(tmp) / "cert.pem", Path(tmp) / "key.pem")
        with socket.create_connection((host, port), timeout=10) as raw:
            with ctx.wrap_socket(raw) as conn:
                try:
                    conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                    return conn.recv(1024)
                except (ssl.SSLError, ConnectionError):
                    return b""


def test_control_api_refuses_callers_without_a_certificate(lab: Lab) -> None:
    ip = lab.ip("manager1")
    worker = pkinode.load(lab.data_dir("worker1"))
    # The manager port asks every caller for a certificate of the cluster CA.
    assert h2_answer(ip, PORT, worker), "the manager port hung up on a worker's certificate"
    assert h2_answer(ip, PORT, None) == b"", "the manager port talked to a caller without one"
    anonymous = grpc.ssl_channel_credentials(root_certificates=worker.ca_pem)
    err = control_call(f"{ip}:{PORT}", anonymous)
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err
    # The join port takes no client certificate, and serves only the joining calls.
    err = control_call(f"{ip}:{PORT + 2}", anonymous)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err
    assert "certificate" in err.details()


# ----------------------------------------------------------------- placement --

def test_ten_replicas_run_two_per_node(lab: Lab, image: str) -> None:
    create(lab, "ten", "--replicas", "10", image, "sleep", "3600")
    spread_settled(lab, "ten", {name: 2 for name in NODES})
    wait(lambda: containers_per_node(lab, "ten") == Counter({n: 2 for n in NODES}), 20,
         "2 containers of ten per node")
    assert "10/10" in sw(lab, "service", "ls", "--filter", "name=ten").stdout
    remove(lab, "ten")


def test_role_constraint_keeps_tasks_on_workers(lab: Lab, image: str) -> None:
    create(lab, "onworkers", "--replicas", "4", "--constraint", "node.role==worker",
           image, "sleep", "3600")
    spread_settled(lab, "onworkers", {"worker1": 2, "worker2": 2})
    assert containers_per_node(lab, "onworkers") == Counter({"worker1": 2, "worker2": 2})
    remove(lab, "onworkers")


def test_label_constraint_holds(lab: Lab, image: str) -> None:
    sw(lab, "node", "update", "--label-add", "zone=a", "manager2")
    try:
        create(lab, "zoned", "--replicas", "3", "--constraint", "node.labels.zone==a",
               image, "sleep", "3600")
        spread_settled(lab, "zoned", {"manager2": 3})
        create(lab, "notzoned", "--replicas", "4", "--constraint", "node.labels.zone!=a",
               image, "sleep", "3600")
        spread_settled(lab, "notzoned", {n: 1 for n in NODES if n != "manager2"})
        remove(lab, "zoned")
        remove(lab, "notzoned")
    finally:
        sw(lab, "node", "update", "--label-rm", "zone", "manager2")


def test_drain_moves_tasks_within_ten_seconds(lab: Lab, image: str) -> None:
    create(lab, "drainme", "--replicas", "5", image, "sleep", "3600")
    spread_settled(lab, "drainme", {n: 1 for n in NODES})
    moved_task = next(r["ID"] for r in live_tasks(lab, "drainme") if r["Node"] == "worker2")
    started = time.monotonic()
    sw(lab, "node", "update", "--availability", "drain", "worker2")
    try:
        def moved() -> bool:
            per_node = running_per_node(lab, "drainme")
            return "worker2" not in per_node and sum(per_node.values()) == 5
        wait(moved, 10, "the tasks of drained worker2 running elsewhere")
        elapsed = time.monotonic() - started
        assert elapsed < 10, elapsed
        assert moved_task not in {r["ID"] for r in live_tasks(lab, "drainme")}
        wait(lambda: "worker2" not in containers_per_node(lab, "drainme"), 10,
             "drainme's container on worker2 stopped")
        assert node_rows(lab)["worker2"]["Availability"] == "Drain"
    finally:
        sw(lab, "node", "update", "--availability", "active", "worker2")
    remove(lab, "drainme")


def test_impossible_constraint_leaves_tasks_pending_with_a_reason(lab: Lab, image: str) -> None:
    create(lab, "nowhere", "--replicas", "2", "--constraint", "node.labels.zone==mars",
           image, "sleep", "3600")

    def pending() -> list[dict[str, Any]] | None:
        rows = live_tasks(lab, "nowhere")
        ok = len(rows) == 2 and all(r["CurrentState"].startswith("Pending") and r["Error"]
                                    for r in rows)
        return rows if ok else None
    rows = wait(pending, 15, "both tasks of nowhere Pending with an error")
    assert all(r["Node"] == "" for r in rows)
    table = sw(lab, "service", "ps", "--no-trunc", "nowhere").stdout
    lines = [line for line in table.splitlines() if "nowhere." in line]
    assert len(lines) == 2
    for line in lines:
        assert "Pending" in line
        assert "no suitable node" in line
        assert "constraints not satisfied on 5 nodes" in line
    assert "0/2" in sw(lab, "service", "ls", "--filter", "name=nowhere").stdout
    remove(lab, "nowhere")


def test_generic_resources_place_tasks_and_reach_their_containers(lab: Lab, image: str
                                                                  ) -> None:
    offered = json.loads(sw(lab, "node", "inspect", "worker1", "--format",
                            "{{json .Description.Resources.GenericResources}}").stdout)
    assert offered == [{"named_resource_spec": {"kind": "gpu", "value": gpu}}
                       for gpu in GPU_IDS]
    assert "gpu:" in sw(lab, "node", "inspect", "--pretty", "worker1").stdout
    assert "Generic Resources" not in sw(lab, "node", "inspect", "--pretty",
                                         "worker2").stdout

    create(lab, "gpus", "--replicas", "2", "--generic-resource", "gpu=1",
           image, "sleep", "3600")
    spread_settled(lab, "gpus", {"worker1": 2})      # spread would use 2 nodes: gpus win
    text = sw(lab, "service", "inspect", "--pretty", "gpus").stdout
    assert " Reservations:\n  Generic Resources:\n   gpu:" in text

    def seen() -> list[str] | None:
        out = lab.podman("worker1", "ps", "-q", "--filter",
                         "label=com.shoal.service.name=gpus").stdout.split()
        if len(out) != 2:
            return None
        return sorted(lab.podman("worker1", "exec", cid, "sh", "-c",
                                 "echo $DOCKER_RESOURCE_GPU", check=True).stdout.strip()
                      for cid in out)
    assert wait(seen, 20, "two gpus containers on worker1") == list(GPU_IDS)

    # a third replica finds no free gpu anywhere: it stays Pending with the reason
    sw(lab, "service", "scale", "-d", "gpus=3")

    def third_pending() -> dict[str, Any] | None:
        rows = [r for r in json_lines(sw(lab, "service", "ps", "--no-trunc", "gpus",
                                         "--format", "json").stdout)
                if r["DesiredState"] == "Running" and r["CurrentState"].startswith("Pending")]
        return rows[0] if len(rows) == 1 and rows[0]["Error"] else None
    row = wait(third_pending, 15, "the third gpus task Pending with an error")
    assert "insufficient resources on 5 nodes" in row["Error"]
    assert dict(running_per_node(lab, "gpus")) == {"worker1": 2}

    # without the reservation the three run anywhere, spread (and hold no gpu)
    sw(lab, "service", "update", "-d", "--update-parallelism", "0", "--generic-resource-rm",
       "gpu", "gpus")
    def one_per_node() -> Counter | None:
        got = running_per_node(lab, "gpus")
        return got if sum(got.values()) == 3 and max(got.values()) == 1 else None
    assert len(wait(one_per_node, 40, "3 gpus tasks running, one per node")) == 3
    assert "Generic Resources" not in sw(lab, "service", "inspect", "--pretty", "gpus").stdout
    remove(lab, "gpus")


# --------------------------------------------------------------------- joins --

class Impostor:
    """A TLS server posing as a manager's join port with a CA of its own.

    It records every byte a client sends after the handshake, so a test can
    show what a joining node gave away to it."""

    def __init__(self) -> None:
        root = RootCA.create()
        key, csr = pkinode.new_key_and_csr()
        cert = root.issue(csr, "impostor0000000000000000000", "manager",
                          "othercluster0000000000000")
        self.dir = Path(tempfile.mkdtemp(prefix="impostor"))
        (self.dir / "chain.pem").write_bytes(cert + root.cert_pem)
        (self.dir / "key.pem").write_bytes(key)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(self.dir / "chain.pem", self.dir / "key.pem")
        self.ctx.set_alpn_protocols(["h2"])
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = self._bind()
        self.sock.listen(8)
        self.sock.settimeout(POLL)
        self.stop = threading.Event()
        self.received = bytearray()
        self.handshakes = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _bind(self) -> int:
        """Listens on P+2 for some free P (the join port of a manager at P)."""
        for _ in range(50):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                base = probe.getsockname()[1]
            if base + 2 > 65535:
                continue
            try:
                self.sock.bind(("127.0.0.1", base + 2))
                return base
            except OSError:
                continue
        raise AssertionError("no free port pair for the impostor")

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                raw, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with raw:
                raw.settimeout(5)
                try:
                    with self.ctx.wrap_socket(raw, server_side=True) as conn:
                        self.handshakes += 1
                        while True:
                            data = conn.recv(65536)
                            if not data:
                                break
                            self.received += data
                except (OSError, ssl.SSLError):
                    continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_wrong_ca_digest_is_refused_before_the_secret_is_sent(lab: Lab) -> None:
    token = tokens.parse(lab.join_token("worker"))
    forged = str(tokens.JoinToken(tokens.to_base36(12345, tokens.DIGEST_LEN), token.secret))
    before = node_rows(lab)
    with pytest.raises(LabError) as err:
        lab.add("forged", token=forged)
    assert "does not match the join token's CA digest" in str(err.value)
    assert "forged" not in lab.names()
    after = node_rows(lab)
    assert set(after) == set(before) and "forged" not in after
    assert {r["ID"] for r in after.values()} == {r["ID"] for r in before.values()}

    # A manager impersonated with another CA: the real token's secret never reaches it.
    impostor = Impostor()
    data_dir = Path(tempfile.mkdtemp(prefix="joiner"))
    try:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        res = subprocess.run([sys.executable, "-m", "cli.main", "join", "--token", str(token),
                              "--data-dir", str(data_dir / "node"),
                              f"127.0.0.1:{impostor.port}"],
                             capture_output=True, text=True, timeout=60, env=env, cwd=str(REPO))
        assert not (data_dir / "node" / "certificates").exists()
    finally:
        impostor.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    assert res.returncode != 0, res.stdout
    assert "does not match the join token's CA digest" in res.stderr
    assert impostor.handshakes >= 1
    assert token.secret.encode() not in impostor.received
    assert b"SWMTKN" not in impostor.received


def test_garbage_token_is_refused_with_a_clear_message(lab: Lab) -> None:
    with pytest.raises(LabError) as err:
        lab.add("garbage", token="not-a-token")
    message = str(err.value)
    assert "invalid join token" in message and "SWMTKN-1-" in message
    assert "garbage" not in lab.names() and "garbage" not in node_rows(lab)


def test_manager_and_worker_tokens_join_with_their_role(lab: Lab) -> None:
    lab.add("manager4", manager=True, token=lab.join_token("manager"))
    lab.add("worker3", token=lab.join_token("worker"))
    lab.wait_ready(timeout=30)
    assert lab.role("manager4") == "manager" and lab.role("worker3") == "worker"
    assert certificate_subject(node_certificate(lab, "manager4"))["OU"] == "swarm-manager"
    assert certificate_subject(node_certificate(lab, "worker3"))["OU"] == "swarm-worker"

    def settled() -> dict[str, dict[str, Any]] | None:
        rows = node_rows(lab)
        ok = (rows.get("manager4", {}).get("ManagerStatus") == "Reachable"
              and rows.get("worker3", {}).get("ManagerStatus") == ""
              and rows["manager1"]["ManagerStatus"] == "Leader")
        return rows if ok else None
    rows = wait(settled, 20, "manager4 Reachable and worker3 a worker")
    assert Counter(r["ManagerStatus"] for r in rows.values()) == {"Leader": 1, "Reachable": 3,
                                                                  "": 3}
    # The new manager serves the control API; the new worker does not.
    assert "manager4" in sw(lab, "node", "ls", node="manager4").stdout
    res = sw(lab, "node", "ls", node="worker3", check=False)
    assert res.returncode != 0 and "not a swarm manager" in res.stderr


def test_global_service_gets_a_task_on_a_node_that_joins_later(lab: Lab, image: str) -> None:
    create(lab, "everywhere", "--mode", "global", image, "sleep", "3600")
    names = lab.names()
    spread_settled(lab, "everywhere", {n: 1 for n in names})
    lab.add("latecomer")
    spread_settled(lab, "everywhere", {n: 1 for n in [*names, "latecomer"]})
    wait(lambda: containers_per_node(lab, "everywhere").get("latecomer") == 1, 20,
         "a container of everywhere on latecomer")
    remove(lab, "everywhere")


def test_rotated_worker_token_refuses_the_old_one(lab: Lab) -> None:
    old = lab.join_token("worker")
    manager_token = lab.join_token("manager")
    before = node_rows(lab)
    certs = {name: node_certificate(lab, name) for name in before}
    out = sw(lab, "join-token", "--rotate", "worker").stdout
    assert "Successfully rotated worker join token." in out
    new = lab.join_token("worker")
    assert new != old
    assert lab.join_token("manager") == manager_token
    assert tokens.parse(new).digest == tokens.parse(old).digest
    assert new in sw(lab, "join-token", "worker", node="manager2").stdout

    with pytest.raises(LabError) as err:
        lab.add("oldtoken", token=old)
    assert "does not grant access to this swarm" in str(err.value)
    assert "oldtoken" not in node_rows(lab)

    lab.add("newtoken", token=new)
    assert lab.role("newtoken") == "worker"
    lab.wait_ready(timeout=30)
    after = node_rows(lab)
    assert set(after) == set(before) | {"newtoken"}
    for name, row in before.items():
        assert after[name]["ID"] == row["ID"]
        assert after[name]["Status"] == "Ready" and after[name]["ManagerStatus"] == \
            row["ManagerStatus"]
        assert node_certificate(lab, name) == certs[name], f"{name}'s certificate changed"
