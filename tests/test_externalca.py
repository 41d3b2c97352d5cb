"""`--external-ca` (cfssl): the pure parts.

The flag's parsing (cli.externalca) and its use by `swarm ca`, `swarm update` and
`swarm init`; the control API's rules for a root whose key the cluster does not
hold; the cfssl request, answer and the checks on the certificate that comes
back (manager.externalca). A real `cfssl serve` signs in tests/test_e2e_certs.py.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

import pytest

from cli.commands_ca import parse_root_flags
from cli.commands_swarm import apply_changes, parse_changes
from cli.externalca import parse_external_ca
from cli.parsing import UsageError
from manager import ca as managerca
from manager import externalca
from manager.controlapi import cluster as clusterrules
from manager.controlapi.common import Code, Refusal
from node.config import ClusterSettings, first_cluster_spec
from pki import node as pkinode
from pki.ca import RootCA, load_certificates
from proto import objects_pb2 as pb
from tests.test_givenroot import Rotations, a_cluster, make_ca, update

URL = "https://10.0.0.9:8888/api/v1/cfssl/sign"


# --------------------------------------------------------------- the flag --

def test_the_flag_is_parsed_as_docker_parses_it(tmp_path: Path) -> None:
    cert, _ = make_ca()
    (tmp_path / "ca.pem").write_bytes(cert)
    ca = parse_external_ca(f"protocol=CFSSL,url={URL},cacert={tmp_path / 'ca.pem'}")
    assert (ca.protocol, ca.url, ca.ca_cert, dict(ca.options)) == ("cfssl", URL, cert, {})
    for text, message in [
        (f"url={URL}", "needs a protocol= parameter"),
        ("protocol=cfssl", "needs a url= parameter"),
        (f"protocol=acme,url={URL}", "unrecognized external CA protocol acme"),
        ("protocol=cfssl,url=http://10.0.0.9:8888/x", "an https URL is required"),
        (f"protocol=cfssl,url={URL},nonsense", "invalid field 'nonsense' must be a key=value"),
        # a key Shoal would not use (here a typo of cacert) is refused, not kept unused
        (f"protocol=cfssl,url={URL},cacrt={tmp_path / 'ca.pem'}",
         "invalid --external-ca field 'cacrt': the accepted keys are protocol, url, cacert"),
        (f"protocol=cfssl,url={URL},cacert={tmp_path / 'missing.pem'}",
         "unable to read CA cert for external CA"),
    ]:
        with pytest.raises(UsageError, match=message):
            parse_external_ca(text)


def ca_ns(tmp_path: Path, rotate: bool = True, cert: bool = True, key: bool = False,
          external: Optional[list[str]] = None) -> argparse.Namespace:
    c, k = make_ca()
    (tmp_path / "ca.pem").write_bytes(c)
    (tmp_path / "ca-key.pem").write_bytes(k)
    return argparse.Namespace(rotate=rotate, ca_cert=str(tmp_path / "ca.pem") if cert else None,
                              ca_key=str(tmp_path / "ca-key.pem") if key else None,
                              external_ca=external)


def test_swarm_ca_external_ca_follows_docker(tmp_path: Path) -> None:
    given = parse_root_flags(ca_ns(tmp_path, external=[f"protocol=cfssl,url={URL}"]))
    assert given is not None and given.key == b""
    # the external CAs sign for the given certificate
    assert [(c.url, c.ca_cert) for c in given.external_cas] == [(URL, given.cert)]
    with pytest.raises(UsageError, match="`--external-ca` flag requires the `--rotate` flag"):
        parse_root_flags(ca_ns(tmp_path, rotate=False, cert=False,
                               external=[f"protocol=cfssl,url={URL}"]))
    with pytest.raises(UsageError, match="requires the `--ca-cert` flag to specify the "
                                         "external CA's cert"):
        parse_root_flags(ca_ns(tmp_path, cert=False, external=[f"protocol=cfssl,url={URL}"]))
    with pytest.raises(UsageError, match="a --ca-key flag and/or --external-ca flag"):
        parse_root_flags(ca_ns(tmp_path))


def test_swarm_update_replaces_the_external_cas() -> None:
    ns = argparse.Namespace(dispatcher_heartbeat=None, task_history_limit=None,
                            cert_expiry=None, external_ca=[f"protocol=cfssl,url={URL}"])
    spec = pb.ClusterSpec()
    spec.ca_config.external_cas.add(protocol="cfssl", url="https://old/x")
    new = apply_changes(spec, parse_changes(ns))
    assert [c.url for c in new.ca_config.external_cas] == [URL]
    assert [c.url for c in spec.ca_config.external_cas] == ["https://old/x"]


def test_swarm_init_external_cas_reach_the_first_spec() -> None:
    settings = ClusterSettings(external_cas=[{"protocol": "cfssl", "url": URL,
                                              "options": {"a": "b"}, "ca_cert": ""}])
    init = json.loads(json.dumps(settings.as_init()))   # as node.json keeps it
    spec = first_cluster_spec(init)
    assert [(c.protocol, c.url, dict(c.options)) for c in spec.ca_config.external_cas] == \
        [("cfssl", URL, {"a": "b"})]
    assert not first_cluster_spec(ClusterSettings().as_init()).ca_config.external_cas


# ------------------------------------------------------ control API rules --

def keyless_update(cluster: pb.Cluster, cert: bytes, url: str = URL):  # type: ignore[no-untyped-def]
    req = update(cluster, cert)
    req.spec.ca_config.external_cas.add(protocol="cfssl", url=url, ca_cert=cert)
    return req


def test_a_root_without_its_key_is_signed_for_by_its_external_ca() -> None:
    cluster, old = a_cluster()
    cert, key = make_ca()
    rotations = Rotations(old)
    new = clusterrules.updated_cluster(cluster, keyless_update(cluster, cert), rotations)
    assert new.root_rotation.ca_cert and not new.root_rotation.ca_key
    cross = load_certificates(new.root_rotation.cross_signed_ca_cert)[0]
    cross.verify_directly_issued_by(old.cert)   # the old root still vouches for it
    assert not managerca.signing_root(new, old).can_sign
    assert load_certificates(externalca.keyless_signer(new)) == load_certificates(cert)
    assert [c.url for c in externalca.for_root(new, cert)] == [URL]
    done = managerca.finished_rotation(new)
    assert externalca.root_is_external(done) and not done.root_ca_key
    assert not managerca.current_root(done, old).can_sign   # never the old key from disk
    # the external CA can't be replaced by one signing for another root
    done.meta.version = 3
    other, _ = make_ca()
    req = update(done, done.spec.ca_config.signing_ca_cert)
    del req.spec.ca_config.external_cas[:]
    req.spec.ca_config.external_cas.add(protocol="cfssl", url=URL, ca_cert=other)
    with pytest.raises(Refusal, match="at least one external CA"):
        clusterrules.updated_cluster(done, req, rotations)
    # rotating away from it needs its key first
    with pytest.raises(Refusal, match="rotating away from a root CA whose key"):
        clusterrules.updated_cluster(done, update(done, done.spec.ca_config.signing_ca_cert,
                                                  force=True), Rotations(old))
    # given the key, the managers sign again, with no rotation
    back = clusterrules.updated_cluster(done, update(done, cert, key), rotations)
    assert back.root_ca_key and not back.HasField("root_rotation")
    assert not externalca.root_is_external(back) and managerca.current_root(back, old).can_sign


def test_a_keyless_root_needs_an_external_ca_that_signs_for_it() -> None:
    cluster, old = a_cluster()
    cert, _ = make_ca()
    other, _ = make_ca()
    req = keyless_update(cluster, other)
    req.spec.ca_config.signing_ca_cert = cert
    with pytest.raises(Refusal, match="at least one external CA"):
        clusterrules.updated_cluster(cluster, req, Rotations(old))


@pytest.mark.parametrize("protocol,url,message", [
    ("acme", URL, "unsupported external CA protocol 'acme'"),
    ("cfssl", "http://10.0.0.9/x", "an https URL is required"),
])
def test_unusable_external_cas_are_refused(protocol: str, url: str, message: str) -> None:
    cluster, old = a_cluster()
    req = update(cluster)
    req.spec.ca_config.external_cas.add(protocol=protocol, url=url)
    with pytest.raises(Refusal) as err:
        clusterrules.updated_cluster(cluster, req, Rotations(old))
    assert err.value.code == Code.INVALID_ARGUMENT and message in err.value.message


# ----------------------------------------------------------------- cfssl --

def test_the_sign_request_names_the_identity_the_cluster_decides() -> None:
    _, csr = pkinode.new_key_and_csr("whatever")
    body = json.loads(externalca.sign_request(csr, "n1", "manager", "c1", ["10.0.0.2"]))
    assert body["certificate_request"] == csr.decode()
    assert body["hosts"] == ["n1", "swarm-manager", "10.0.0.2"]
    assert body["subject"] == {"CN": "n1", "names": [{"O": "c1", "OU": "swarm-manager"}]}


def test_cfssl_answers_are_read_with_their_reasons() -> None:
    ok = {"success": True, "result": {"certificate": "PEM"}, "errors": [], "messages": []}
    assert externalca.parse_response(json.dumps(ok).encode()) == b"PEM"
    bad = {"success": False, "result": None,
           "errors": [{"code": 2000, "message": "Invalid request"}]}
    with pytest.raises(externalca.ExternalCAError, match="refused to sign: Invalid request"):
        externalca.parse_response(json.dumps(bad).encode())
    with pytest.raises(externalca.ExternalCAError, match="not JSON"):
        externalca.parse_response(b"<html>")


def test_only_the_nodes_certificate_from_the_root_is_taken() -> None:
    root = RootCA.create()
    key, csr = pkinode.new_key_and_csr("n1")
    good = root.issue(csr, "n1", "worker", "c1")
    leaf = externalca.check_issued(good, csr, root.cert_pem, "n1", "worker", "c1")
    assert load_certificates(leaf) == load_certificates(good)[:1]
    stranger = RootCA.create()
    with pytest.raises(externalca.ExternalCAError, match="does not chain to the cluster's root"):
        externalca.check_issued(stranger.issue(csr, "n1", "worker", "c1"), csr,
                                root.cert_pem, "n1", "worker", "c1")
    _, other_csr = pkinode.new_key_and_csr("n1")
    with pytest.raises(externalca.ExternalCAError, match="not for the node's key"):
        externalca.check_issued(root.issue(other_csr, "n1", "worker", "c1"), csr,
                                root.cert_pem, "n1", "worker", "c1")
    with pytest.raises(externalca.ExternalCAError, match="instead of 'swarm-manager'"):
        externalca.check_issued(good, csr, root.cert_pem, "n1", "manager", "c1")


def test_an_unreachable_external_ca_is_named_in_the_error() -> None:
    root = RootCA.create()
    _, csr = pkinode.new_key_and_csr("n1")
    cas = [pb.ExternalCA(protocol="cfssl", url="https://127.0.0.1:1/api/v1/cfssl/sign")]
    with pytest.raises(externalca.ExternalCAError,
                       match="https://127.0.0.1:1/api/v1/cfssl/sign: cannot reach it"):
        externalca.sign(cas, csr, "n1", "worker", "c1", [], root.cert_pem, timeout=5)
    with pytest.raises(externalca.ExternalCAError, match="no external CA"):
        externalca.sign([], csr, "n1", "worker", "c1", [], root.cert_pem)


def test_swarm_info_lists_the_external_cas_as_docker() -> None:
    from cli.pretty import info_text
    from proto import control_pb2 as cpb
    cluster = pb.Cluster(id="c")
    cluster.spec.ca_config.external_cas.add(protocol="cfssl", url=URL)
    text = info_text(cpb.InfoResponse(node_id="n", is_manager=True, cluster_id="c"),
                     "unix:///s", "1", cluster)
    assert f"   External CAs:\n     cfssl: {URL}\n" in text


def test_an_external_ca_is_reachable_only_with_a_certificate_from_its_root(tmp_path: Path) -> None:
    """A real TLS server on loopback, its certificate from `root`: reachable for `root`,
    not for another root; a closed port is not reachable at all."""
    import socket
    import ssl
    import threading

    root = RootCA.create()
    key, csr = pkinode.new_key_and_csr("cfssl")
    (tmp_path / "srv.pem").write_bytes(root.issue(csr, "cfssl", "manager", "c",
                                                  ip_addresses=["127.0.0.1"]))
    (tmp_path / "srv-key.pem").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "srv.pem", tmp_path / "srv-key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve(handshakes: int) -> None:
        for _ in range(handshakes):
            conn, _ = listener.accept()
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass
    thread = threading.Thread(target=serve, args=(2,), daemon=True)
    thread.start()
    try:
        cas = [pb.ExternalCA(protocol="cfssl", url=f"https://127.0.0.1:{port}/api/v1/cfssl/sign")]
        assert externalca.unreachable(cas, root.cert_pem) is None
        problem = externalca.unreachable(cas, RootCA.create().cert_pem)
        assert problem is not None and "certificate verify failed" in problem
        thread.join(timeout=10)
    finally:
        listener.close()
    closed = [pb.ExternalCA(protocol="cfssl", url="https://127.0.0.1:1/x")]
    assert "https://127.0.0.1:1/x" in (externalca.unreachable(closed, root.cert_pem) or "")


def test_swarm_init_parses_the_flag_into_its_settings(tmp_path: Path) -> None:
    from cli import node_commands
    from cli.main import build_parser
    cert, _ = make_ca()
    (tmp_path / "ca.pem").write_bytes(cert)
    args = build_parser().parse_args(["init", "--external-ca", f"protocol=cfssl,url={URL}",
                                      "--external-ca", f"protocol=cfssl,url={URL}2,cacert="
                                      f"{tmp_path / 'ca.pem'}"])
    spec = first_cluster_spec(node_commands.cluster_settings(args).as_init())
    assert [(c.url, c.ca_cert) for c in spec.ca_config.external_cas] == \
        [(URL, b""), (URL + "2", cert)]
    with pytest.raises(UsageError, match="needs a url= parameter"):
        node_commands.cluster_settings(build_parser().parse_args(
            ["init", "--external-ca", "protocol=cfssl"]))
