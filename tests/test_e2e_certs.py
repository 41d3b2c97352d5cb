"""Certificates on a real lab: root CA rotation, automatic renewal, manager token rotation.

Covers issue 4's certificate acceptance points on a 2-manager + 2-worker lab:
`swarm ca --rotate` while a worker is offline (the others get certificates
from the new root at once, services keep their tasks and containers, writes
work; the offline worker comes back with its old certificate, is renewed and
the rotation completes; port 2377 then presents a chain to the new root
only), `join-token --rotate manager`, and certificates with a short lifetime
being renewed before they expire while every node stays Ready, and a rotation to
the operator's own root (`swarm ca --rotate --ca-cert --ca-key`, an openssl RSA CA),
then to a root whose key stays with a real `cfssl serve` (`--external-ca`): every
node's certificate, and a joining node's, is then signed by cfssl.

The daemons get SHOAL_MIN_CERT_EXPIRY=10s (the test hook that lowers the one
hour minimum of --cert-expiry). Every wait polls a condition with a deadline.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from lab.cluster import Lab, LabError
from pki import node as pkinode
from pki import keystore, tls, tokens
from cli.environment import MIN_EXPIRY_ENV
from pki.ca import load_certificates
from proto import control_pb2 as cpb
from proto import control_pb2_grpc
from tests.helpers import sw, wait
from tests.labfixtures import image, module_lab  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

MANAGERS = ("manager1", "manager2")
WORKERS = ("worker1", "worker2")
PORT = 2377


@pytest.fixture(scope="module", autouse=True)
def short_expiry_allowed() -> Iterator[None]:
    """Lets the lab's daemons (started after this) accept a 30 s --cert-expiry."""
    old = os.environ.get(MIN_EXPIRY_ENV)
    os.environ[MIN_EXPIRY_ENV] = "10s"
    yield
    if old is None:
        os.environ.pop(MIN_EXPIRY_ENV, None)
    else:
        os.environ[MIN_EXPIRY_ENV] = old


lab = module_lab(2, 2, ready_timeout=60)


# ------------------------------------------------------------------- helpers --

def disk(lab: Lab, name: str) -> pkinode.NodeCredentials:
    """A node's credentials as on disk, read without touching the files (pkinode.load
    would finish a save the daemon is in the middle of)."""
    d = pkinode.cert_dir(lab.data_dir(name))
    key = (d / pkinode.KEY_FILE).read_bytes()
    if pkinode.is_encrypted_pem(key):  # a manager's key (pki.keystore)
        dek = keystore.ManagerKeys(lab.data_dir(name)).open()
        key = pkinode.decrypt_key_pem(key, keystore.private_key_passphrase(dek))
    return pkinode.NodeCredentials(key,
                                   (d / pkinode.CERT_FILE).read_bytes(),
                                   (d / pkinode.ROOT_CA_FILE).read_bytes())


def cluster(lab: Lab, via: str = "manager2") -> Any:
    """The cluster object, read over mutual TLS with a manager's current certificate
    (retried: the key and certificate files are replaced one after the other)."""
    def read() -> Any:
        creds = disk(lab, via)
        with grpc.secure_channel(f"{lab.ip(via)}:{PORT}", tls.client_credentials(creds),
                                 options=tls.channel_options()) as ch:
            try:
                return control_pb2_grpc.ControlStub(ch).GetCluster(
                    cpb.GetClusterRequest(), timeout=10).cluster
            except grpc.RpcError:
                return None
    return wait(read, 30, f"the cluster object from {via}")


def leaf_issued_by(pem_chain: bytes, root_pem: bytes) -> bool:
    leaf = load_certificates(pem_chain)[0]
    root = load_certificates(root_pem)[0]
    try:
        leaf.verify_directly_issued_by(root)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not issued by"
        return False


def presented(lab: Lab, name: str) -> list[x509.Certificate]:
    return tls.fetch_server_chain(lab.ip(name), PORT)


def ready_rows(lab: Lab) -> dict[str, str]:
    out = sw(lab, "node", "ls", "--format", "{{.Hostname}} {{.Status}}").stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def running_tasks(lab: Lab, service: str) -> dict[str, str]:
    """Task ID -> node of the running tasks of a service."""
    rows = [json.loads(line) for line in
            sw(lab, "service", "ps", service, "--format", "json").stdout.splitlines() if line]
    return {r["ID"]: r["Node"] for r in rows
            if r["DesiredState"] == "Running" and r["CurrentState"].startswith("Running")}


def containers(lab: Lab, service: str) -> set[str]:
    return {c["Id"] for c in lab.containers(f"label=com.shoal.service.name={service}")}


def serial(lab: Lab, name: str) -> int:
    return load_certificates(disk(lab, name).cert_pem)[0].serial_number


# --------------------------------------------------------------------- tests --

def test_root_rotation_with_an_offline_worker(lab: Lab, image: str) -> None:  # noqa: F811
    old_root = sw(lab, "ca").stdout.encode()
    assert load_certificates(old_root)[0] == load_certificates(cluster(lab).root_ca_cert)[0]
    sw(lab, "service", "create", "-d", "--name", "rot", "--replicas", "3",
       "--constraint", "node.hostname!=worker2", "--stop-grace-period", "1s",
       image, "sleep", "3600")
    wait(lambda: len(running_tasks(lab, "rot")) == 3, 60, "3 running tasks of rot")
    tasks_before = running_tasks(lab, "rot")
    containers_before = containers(lab, "rot")
    assert len(containers_before) == 3
    old_worker2_cert = disk(lab, "worker2").cert_pem

    lab.kill("worker2")
    wait(lambda: ready_rows(lab).get("worker2") == "Down", 30, "worker2 to be Down")
    assert sw(lab, "ca", "--rotate", "-d").stdout == ""
    rot = cluster(lab).root_rotation
    assert rot.ca_cert and not rot.ca_key  # the key never leaves the managers
    new_root = rot.ca_cert
    assert load_certificates(new_root)[0] != load_certificates(old_root)[0]

    online = (*MANAGERS, "worker1")
    wait(lambda: all(leaf_issued_by(disk(lab, n).cert_pem, new_root)
                     for n in online), 60, "the online nodes to hold certificates from the new root")
    for name in MANAGERS:
        wait(lambda: leaf_issued_by(presented(lab, name)[0].public_bytes(Encoding.PEM), new_root),
             30, f"{name} to present a certificate from the new root")
    # the rotation waits for the offline worker
    assert cluster(lab).HasField("root_rotation")
    assert sw(lab, "info", "--format", "{{.RootRotationInProgress}}").stdout.strip() == "true"
    progress = sw(lab, "ca").stdout.encode()
    assert load_certificates(progress)[0] == load_certificates(old_root)[0]
    # writes work during the transition; tasks and containers are untouched
    sw(lab, "service", "create", "-d", "--name", "during", "--constraint",
       "node.hostname!=worker2", image, "sleep", "3600")
    wait(lambda: len(running_tasks(lab, "during")) == 1, 60, "the task of a service made mid-rotation")
    assert running_tasks(lab, "rot") == tasks_before
    assert containers(lab, "rot") == containers_before

    # the offline worker comes back with its old certificate and is renewed
    assert disk(lab, "worker2").cert_pem == old_worker2_cert
    lab.start("worker2")
    wait(lambda: ready_rows(lab).get("worker2") == "Ready", 60, "worker2 to be Ready again")
    wait(lambda: leaf_issued_by(disk(lab, "worker2").cert_pem, new_root),
         60, "worker2 to hold a certificate from the new root")
    wait(lambda: not cluster(lab).HasField("root_rotation"), 60, "the rotation to finish")
    assert "Root Rotation In Progress: false" in sw(lab, "info").stdout
    final = cluster(lab)
    assert load_certificates(final.root_ca_cert) == load_certificates(new_root)
    assert load_certificates(sw(lab, "ca").stdout.encode()) == load_certificates(new_root)
    assert tokens.parse(final.join_tokens.worker).digest == tokens.ca_digest(new_root)

    old_cert = load_certificates(old_root)[0]
    new_cert = load_certificates(new_root)[0]
    for name in (*MANAGERS, *WORKERS):
        wait(lambda: load_certificates(disk(lab, name).ca_pem) == [new_cert],
             30, f"{name} to trust the new root only")
    for name in MANAGERS:
        def new_only() -> bool:
            chain = presented(lab, name)
            return (old_cert not in chain and new_cert in chain
                    and pkinode.chains_to(chain, [new_cert])
                    and not pkinode.chains_to(chain, [old_cert]))
        wait(new_only, 30, f"{name} to present a chain to the new root only")
    assert running_tasks(lab, "rot") == tasks_before
    assert containers(lab, "rot") == containers_before
    assert set(ready_rows(lab).values()) == {"Ready"}


def test_rotated_manager_token_refuses_the_old_one(lab: Lab) -> None:
    old = lab.join_token("manager")
    out = sw(lab, "join-token", "--rotate", "manager").stdout
    assert "Successfully rotated manager join token." in out
    new = lab.join_token("manager")
    assert new != old
    with pytest.raises(LabError) as err:
        lab.add("mgrold", manager=True, token=old)
    assert "does not grant access to this swarm" in str(err.value)
    lab.add("manager3", manager=True, token=new)
    assert lab.role("manager3") == "manager"
    lab.wait_ready(timeout=60)
    # the manager that joined after the rotation signs with the new root
    root = cluster(lab).root_ca_cert
    assert leaf_issued_by(disk(lab, "manager3").cert_pem, root)


def test_short_lived_certificates_are_renewed_before_they_expire(lab: Lab) -> None:
    out = sw(lab, "update", "--cert-expiry", "30s")
    assert "Swarm updated." in out.stdout
    refused = sw(lab, "update", "--cert-expiry", "5s", check=False)
    assert refused.returncode != 0 and "at least" in refused.stderr
    # a rotation without -d waits for the end (every node renewed with the 30 s
    # lifetime), showing Docker's progress, then prints the new root
    out = sw(lab, "ca", "--rotate").stdout
    assert "rotated TLS certificates:" in out and "rotated CA certificates:" in out
    assert f"{len(lab.names())}/{len(lab.names())} nodes" in out and "1/1" in out
    assert load_certificates(out[out.index("-----BEGIN"):].encode()) == \
        load_certificates(cluster(lab).root_ca_cert)
    assert sw(lab, "ca", "--rotate", "-q").stdout.startswith("-----BEGIN CERTIFICATE-----")
    names = lab.names()
    for name in names:
        creds = disk(lab, name)
        life = creds.info.not_after - creds.info.not_before
        assert life.total_seconds() < 30 + 6 * 60, (name, life)  # 30 s + the CA's backdating
    # every node replaces its certificate before it expires, twice, and stays Ready
    first = {n: disk(lab, n).info for n in names}
    seen: dict[str, set[int]] = {n: {serial(lab, n)} for n in names}

    def renewed_twice() -> bool:
        for n in names:
            info = disk(lab, n).info
            assert info.not_after > dt.datetime.now(dt.timezone.utc), \
                f"{n} let its certificate expire"
            seen[n].add(serial(lab, n))
        return all(len(s) >= 3 for s in seen.values())
    wait(renewed_twice, 90, "every node to renew its 30 s certificate twice")
    assert all(disk(lab, n).info.not_after > first[n].not_after for n in names)
    wait(lambda: set(ready_rows(lab).values()) == {"Ready"} and
         Counter(ready_rows(lab).values())["Ready"] == len(names), 30, "every node Ready")
    # the manager port presents the renewed certificate
    leaf = presented(lab, "manager1")[0]
    assert leaf.serial_number == serial(lab, "manager1") or \
        leaf.not_valid_after_utc > first["manager1"].not_after


def openssl_root(directory: Path, name: str) -> tuple[Path, Path]:
    """A root CA made the way an operator makes one: openssl, an RSA key, CA:TRUE."""
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                    "-days", "3650", "-subj", f"/CN={name}", "-keyout", str(key),
                    "-out", str(cert), "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                   check=True, capture_output=True)
    return cert, key


def test_rotation_to_the_operators_own_root(lab: Lab, tmp_path: Path) -> None:
    cert_file, key_file = openssl_root(tmp_path, "operator-root")
    given = load_certificates(cert_file.read_bytes())
    # Docker's flag rules, and a key that is not the certificate's
    refused = sw(lab, "ca", "--ca-cert", str(cert_file), "--ca-key", str(key_file), check=False)
    assert refused.returncode != 0 and "requires the `--rotate` flag" in refused.stderr
    refused = sw(lab, "ca", "--rotate", "--ca-cert", str(cert_file), check=False)
    assert refused.returncode != 0 and "requires that a --ca-key flag" in refused.stderr
    _, other_key = openssl_root(tmp_path, "other")
    refused = sw(lab, "ca", "--rotate", "--ca-cert", str(cert_file), "--ca-key",
                 str(other_key), check=False)
    assert refused.returncode != 0 and "does not match" in refused.stderr
    assert not cluster(lab).HasField("root_rotation")

    # the rotation waits until every node holds a certificate from the given root
    out = sw(lab, "ca", "--rotate", "--ca-cert", str(cert_file), "--ca-key", str(key_file)).stdout
    assert "rotated CA certificates:" in out
    assert load_certificates(out[out.index("-----BEGIN"):].encode()) == given
    final = cluster(lab)
    assert not final.HasField("root_rotation")
    assert load_certificates(final.root_ca_cert) == given
    assert not final.root_ca_key and not final.spec.ca_config.signing_ca_key  # never answered
    assert tokens.parse(final.join_tokens.worker).digest == tokens.ca_digest(final.root_ca_cert)
    names = lab.names()
    for name in names:
        wait(lambda: leaf_issued_by(disk(lab, name).cert_pem, cert_file.read_bytes())
             and load_certificates(disk(lab, name).ca_pem) == given,
             30, f"{name} to hold a certificate from the operator's root and trust it only")
    for name in (n for n in names if lab.role(n) == "manager"):
        wait(lambda: pkinode.chains_to(presented(lab, name), given), 30,
             f"{name} to present a chain to the operator's root")
    # the managers sign with the given key from now on: a node joining now gets it
    lab.add("worker3", token=lab.join_token("worker"))
    assert leaf_issued_by(disk(lab, "worker3").cert_pem, cert_file.read_bytes())
    lab.wait_ready(timeout=60)
    # the spec sent back as GetCluster returns it (swarm update) starts no new rotation
    assert "Swarm updated." in sw(lab, "update", "--task-history-limit", "4").stdout
    assert not cluster(lab).HasField("root_rotation")


CFSSL_PORT = 8888
CFSSL_CONFIG = ('{"signing": {"default": {"expiry": "2160h", "usages": '
                '["signing", "key encipherment", "server auth", "client auth"]}}}')


def cfssl_server_cert(directory: Path, ca: Path, ca_key: Path, ip: str) -> tuple[Path, Path]:
    """The TLS certificate of the cfssl endpoint, from the CA it signs for (the managers
    verify the endpoint against that root, as Docker's do)."""
    key, csr, cert = directory / "cfssl-key.pem", directory / "cfssl.csr", directory / "cfssl.pem"
    ext = directory / "cfssl-ext.cnf"
    ext.write_text(f"subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-subj", "/CN=cfssl", "-keyout", str(key), "-out", str(csr)],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey",
                    str(ca_key), "-CAcreateserial", "-days", "365", "-extfile", str(ext),
                    "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def cfssl_signed_serials(log: Path) -> set[int]:
    """The serial numbers `cfssl serve` logged as signed."""
    return {int(line.rsplit(" ", 1)[1]) for line in log.read_text().splitlines()
            if "signed certificate with serial number" in line}


def test_rotation_to_an_external_cfssl_ca(lab: Lab, tmp_path: Path) -> None:
    if shutil.which("cfssl") is None:
        pytest.fail("cfssl is not installed (scripts/setup.sh installs golang-cfssl)")
    ca, ca_key = openssl_root(tmp_path, "cfssl-root")
    root = load_certificates(ca.read_bytes())
    host = "manager1"
    ip = lab.ip(host)
    tls_cert, tls_key = cfssl_server_cert(tmp_path, ca, ca_key, ip)
    (tmp_path / "config.json").write_text(CFSSL_CONFIG)
    log = tmp_path / "cfssl.log"
    argv, env = lab.exec_argv(host, ["cfssl", "serve", "-address", "0.0.0.0", "-port",
                                     str(CFSSL_PORT), "-ca", str(ca), "-ca-key", str(ca_key),
                                     "-config", str(tmp_path / "config.json"),
                                     "-tls-cert", str(tls_cert), "-tls-key", str(tls_key)])
    url = f"https://{ip}:{CFSSL_PORT}/api/v1/cfssl/sign"
    with open(log, "wb") as out:
        server = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait(lambda: "Now listening" in log.read_text() or server.poll() is not None, 20,
             "cfssl serve to listen")
        assert server.poll() is None, log.read_text()
        # Docker's rules: an external CA rotation names the CA's certificate
        refused = sw(lab, "ca", "--rotate", "--external-ca", f"protocol=cfssl,url={url}",
                     check=False)
        assert refused.returncode != 0 and "requires the `--ca-cert` flag" in refused.stderr
        refused = sw(lab, "ca", "--rotate", "--ca-cert", str(ca), "--external-ca",
                     "protocol=acme,url=https://x", check=False)
        assert refused.returncode != 0 and "unrecognized external CA protocol" in refused.stderr
        # as Docker: the managers check that the external CA answers with that root
        closed = f"https://{ip}:{CFSSL_PORT + 1}/api/v1/cfssl/sign"
        refused = sw(lab, "ca", "--rotate", "--ca-cert", str(ca), "--external-ca",
                     f"protocol=cfssl,url={closed}", check=False)
        assert refused.returncode != 0 and "reachable external CA" in refused.stderr
        assert not cluster(lab).HasField("root_rotation")

        out = sw(lab, "ca", "--rotate", "--ca-cert", str(ca), "--external-ca",
                 f"protocol=cfssl,url={url}").stdout
        assert load_certificates(out[out.index("-----BEGIN"):].encode()) == root
        final = cluster(lab)
        assert load_certificates(final.root_ca_cert) == root and not final.root_ca_key
        assert [c.url for c in final.spec.ca_config.external_cas] == [url]
        # every node renewed through cfssl: its certificate is from the external root and
        # cfssl logged signing it
        names = lab.names()
        for name in names:
            wait(lambda: leaf_issued_by(disk(lab, name).cert_pem, ca.read_bytes())
                 and load_certificates(disk(lab, name).ca_pem) == root, 30,
                 f"{name} to hold a certificate from the external root and trust it only")
        signed = cfssl_signed_serials(log)
        assert {serial(lab, n) for n in names} <= signed
        # a node joining now is signed by cfssl too
        lab.add("worker4", token=lab.join_token("worker"))
        assert leaf_issued_by(disk(lab, "worker4").cert_pem, ca.read_bytes())
        assert serial(lab, "worker4") in cfssl_signed_serials(log)
        # and so is a manager (it gets no root key from the leader: there is none)
        lab.add("manager4", manager=True, token=lab.join_token("manager"))
        assert lab.role("manager4") == "manager"
        assert serial(lab, "manager4") in cfssl_signed_serials(log)
        lab.wait_ready(timeout=60)
        # the external CA can't be dropped while it is the only one that signs
        other, _ = openssl_root(tmp_path, "other")
        refused = sw(lab, "update", "--external-ca", f"protocol=cfssl,url={url},cacert={other}",
                     check=False)
        assert refused.returncode != 0 and "at least one external CA" in refused.stderr
        # with the root's key, the managers sign again (no rotation: the same root)
        sw(lab, "ca", "--rotate", "--ca-cert", str(ca), "--ca-key", str(ca_key))
        assert not cluster(lab).HasField("root_rotation")
    finally:
        server.terminate()
        server.wait(timeout=10)
    lab.add("worker5", token=lab.join_token("worker"))
    assert leaf_issued_by(disk(lab, "worker5").cert_pem, ca.read_bytes())
    assert serial(lab, "worker5") not in cfssl_signed_serials(log)
