"""The operator's own root CA (`swarm ca --rotate --ca-cert --ca-key`): pure parts.

The checks of pki.givenroot, the control API's rules (manager.controlapi.cluster:
a rotation to the given root, never storing its key), the API answers' redaction,
and the CLI's flag rules (cli.commands_ca.parse_root_flags).
"""
from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Optional

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from cli.client import CLIError
from cli.commands_ca import parse_root_flags
from cli.parsing import UsageError
from manager import ca as managerca
from manager import redact
from manager.controlapi import cluster as clusterrules
from manager.controlapi.common import Code, Refusal
from pki import givenroot, rotation
from pki.ca import CAError, RootCA, load_certificates
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb
from tests.test_pki_rotation import issue

NOW = dt.datetime.now(dt.timezone.utc)


def pem_key(key: object) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                             serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def make_ca(key: object = None, ca: Optional[bool] = True, days: int = 3650,
            start: dt.timedelta = dt.timedelta(minutes=-5), signer: object = None,
            signer_name: str = "", name: str = "Operator Root CA") -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a CA made as an operator would (openssl/cfssl alike)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, signer_name)]) \
        if signer is not None else subject
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(key.public_key())  # type: ignore[attr-defined]
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW + start).not_valid_after(NOW + dt.timedelta(days=days)))
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                                        critical=True)
    cert = builder.sign(signer or key, hashes.SHA256())  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.PEM), pem_key(key)


# ------------------------------------------------------------ pki.givenroot --

def test_an_ecdsa_root_with_its_key_is_taken() -> None:
    cert, key = make_ca()
    root = givenroot.check_root(cert, key)
    assert root.can_sign and load_certificates(root.cert_pem) == load_certificates(cert)


def test_an_rsa_root_signs_node_certificates_that_chain_to_it() -> None:
    cert, key = make_ca(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    root = givenroot.check_root(cert, key)
    creds = issue(root, "node1")
    assert rotation.issued_by(creds.cert_pem, cert)


@pytest.mark.parametrize("kwargs,message", [
    ({"ca": False}, "not a CA certificate"),
    ({"ca": None}, "not a CA certificate"),
    ({"days": -1, "start": dt.timedelta(days=-30)}, "has expired"),
    ({"start": dt.timedelta(days=2)}, "not valid yet"),
    ({"days": 100}, "expires too soon"),
])
def test_a_root_docker_would_refuse_is_refused(kwargs: dict, message: str) -> None:
    cert, key = make_ca(**kwargs)
    with pytest.raises(CAError, match=message):
        givenroot.check_root(cert, key)


def test_an_intermediate_is_not_a_root() -> None:
    parent = ec.generate_private_key(ec.SECP256R1())
    cert, key = make_ca(signer=parent, signer_name="parent")
    with pytest.raises(CAError, match="not self-signed"):
        givenroot.check_root(cert, key)


def test_the_key_must_be_the_certificates() -> None:
    cert, _ = make_ca()
    _, other = make_ca()
    with pytest.raises(CAError, match="does not match"):
        givenroot.check_root(cert, other)


def test_unreadable_encrypted_or_weak_keys_and_bundles_are_refused() -> None:
    cert, key = make_ca()
    with pytest.raises(CAError, match="not a PEM-encoded private key"):
        givenroot.check_root(cert, b"junk")
    with pytest.raises(CAError, match="not a PEM-encoded certificate"):
        givenroot.check_root(b"junk", key)
    loaded = serialization.load_pem_private_key(key, None)
    encrypted = loaded.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(CAError, match="encrypted"):
        givenroot.check_root(cert, encrypted)
    other, _ = make_ca()
    with pytest.raises(CAError, match="holds 2 certificates"):
        givenroot.check_root(cert + other, key)
    weak_cert, weak_key = make_ca(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(CAError, match="too small"):
        givenroot.check_root(weak_cert, weak_key)


# ------------------------------------------------------ control API rules --

def a_cluster() -> tuple[pb.Cluster, RootCA]:
    old = RootCA.create()
    cluster = pb.Cluster(id="c1", root_ca_cert=old.cert_pem)
    cluster.spec.annotations.name = "default"
    cluster.meta.version = 3
    return cluster, old


def update(cluster: pb.Cluster, cert: bytes = b"", key: bytes = b"",
           force: bool = False) -> cpb.UpdateClusterRequest:
    req = cpb.UpdateClusterRequest(cluster_id=cluster.id, cluster_version=3)
    req.spec.CopyFrom(cluster.spec)
    req.spec.ca_config.signing_ca_cert = cert
    req.spec.ca_config.signing_ca_key = key
    if force:
        req.spec.ca_config.force_rotate += 1
    return req


class Rotations:
    """The start_rotation the manager passes in, recording what it was asked."""

    def __init__(self, old: RootCA) -> None:
        self.old = old
        self.asked: list[Optional[RootCA]] = []

    def __call__(self, cluster: pb.Cluster, new_root: Optional[RootCA]) -> pb.RootRotation:
        self.asked.append(new_root)
        return managerca.start_rotation(cluster, self.old, new_root)


def refused(code: Code, text: str, call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Refusal) as err:
        call()
    assert err.value.code == code and text in err.value.message, err.value.message


def test_a_given_root_starts_a_rotation_to_it_and_its_key_is_not_kept_in_the_spec() -> None:
    cluster, old = a_cluster()
    cert, key = make_ca()
    rotations = Rotations(old)
    new = clusterrules.updated_cluster(cluster, update(cluster, cert, key), rotations)
    assert len(rotations.asked) == 1 and rotations.asked[0] is not None
    rot = new.root_rotation
    assert load_certificates(rot.ca_cert) == load_certificates(cert)
    assert RootCA.from_pem(rot.ca_cert, rot.ca_key).can_sign
    # the cross-signed certificate: the new root's key, signed by the old root
    cross = load_certificates(rot.cross_signed_ca_cert)[0]
    assert cross.public_key() == load_certificates(cert)[0].public_key()
    cross.verify_directly_issued_by(old.cert)
    assert new.spec.ca_config.signing_ca_key == b""
    assert givenroot.same_certificate(new.spec.ca_config.signing_ca_cert, cert)
    assert new.spec.ca_config.force_rotate == cluster.spec.ca_config.force_rotate
    # a node renewed during the rotation holds a certificate from the given root
    signer = managerca.signing_root(new, old)
    creds = issue(signer, "n1", trust=managerca.trusted_roots(new, old))
    assert rotation.issued_by(creds.cert_pem, cert)
    # the rotation finishes on the given root, its key the cluster's
    done = managerca.finished_rotation(new)
    assert load_certificates(done.root_ca_cert) == load_certificates(cert)
    assert managerca.current_root(done, old).can_sign


def test_the_spec_sent_back_unchanged_starts_nothing() -> None:
    cluster, old = a_cluster()
    cert, key = make_ca()
    rotations = Rotations(old)
    new = clusterrules.updated_cluster(cluster, update(cluster, cert, key), rotations)
    new.meta.version = 3
    answer = redact.cluster(new)   # what GetCluster returns
    again = clusterrules.updated_cluster(new, update(answer, answer.spec.ca_config.signing_ca_cert),
                                         rotations)
    assert len(rotations.asked) == 1 and again.root_rotation == new.root_rotation
    # the same root with its key again: already rotating to it
    again = clusterrules.updated_cluster(new, update(new, cert, key), rotations)
    assert len(rotations.asked) == 1 and again.root_rotation == new.root_rotation


def test_the_current_root_given_back_abandons_a_rotation() -> None:
    cluster, old = a_cluster()
    rotations = Rotations(old)
    new = clusterrules.updated_cluster(cluster, update(cluster, force=True), rotations)
    assert new.HasField("root_rotation") and rotations.asked == [None]
    new.meta.version = 3
    back = clusterrules.updated_cluster(new, update(new, old.cert_pem, old.key_pem), rotations)
    assert not back.HasField("root_rotation") and len(rotations.asked) == 1


def test_bad_given_roots_are_refused_by_the_api() -> None:
    cluster, old = a_cluster()
    rotations = Rotations(old)
    cert, key = make_ca()
    refused(Code.INVALID_ARGUMENT, "the signing CA certificate must be provided too",
            lambda: clusterrules.updated_cluster(cluster, update(cluster, b"", key), rotations))
    refused(Code.INVALID_ARGUMENT, "there must be at least one external CA",
            lambda: clusterrules.updated_cluster(cluster, update(cluster, cert), rotations))
    expired, expired_key = make_ca(days=-1, start=dt.timedelta(days=-9))
    refused(Code.INVALID_ARGUMENT, "invalid root CA: the CA certificate has expired",
            lambda: clusterrules.updated_cluster(cluster, update(cluster, expired, expired_key),
                                                 rotations))
    # a new certificate for the current root's key is no rotation
    same_key, _ = make_ca(key=old.key, name="reissued")
    refused(Code.INVALID_ARGUMENT, "the current root's key",
            lambda: clusterrules.updated_cluster(cluster, update(cluster, same_key, old.key_pem),
                                                 rotations))
    assert rotations.asked == []


def test_redaction_strips_a_signing_key() -> None:
    cluster, _ = a_cluster()
    cluster.spec.ca_config.signing_ca_key = b"secret"
    assert redact.cluster(cluster).spec.ca_config.signing_ca_key == b""


# -------------------------------------------------------------- CLI flags --

def ns(rotate: bool = True, cert: Optional[str] = None,
       key: Optional[str] = None) -> argparse.Namespace:
    return argparse.Namespace(rotate=rotate, ca_cert=cert, ca_key=key)


def test_cli_root_flags_follow_docker(tmp_path: Path) -> None:
    cert, key = make_ca()
    (tmp_path / "ca.pem").write_bytes(cert)
    (tmp_path / "ca-key.pem").write_bytes(key)
    c, k = str(tmp_path / "ca.pem"), str(tmp_path / "ca-key.pem")
    assert parse_root_flags(ns()) is None
    given = parse_root_flags(ns(cert=c, key=k))
    assert given is not None and (given.cert, given.key) == (cert, key)
    with pytest.raises(UsageError, match="`--ca-cert` flag requires the `--rotate` flag"):
        parse_root_flags(ns(rotate=False, cert=c, key=k))
    with pytest.raises(UsageError, match="`--ca-key` flag requires the `--rotate` flag"):
        parse_root_flags(ns(rotate=False, key=k))
    with pytest.raises(UsageError, match="--ca-key flag requires that a --ca-cert"):
        parse_root_flags(ns(key=k))
    with pytest.raises(UsageError, match="--ca-cert flag requires that a --ca-key"):
        parse_root_flags(ns(cert=c))
    with pytest.raises(CLIError, match="cannot read --ca-cert"):
        parse_root_flags(ns(cert=str(tmp_path / "missing.pem"), key=k))
    _, other = make_ca()
    (tmp_path / "other-key.pem").write_bytes(other)
    with pytest.raises(CLIError, match="invalid root CA .*does not match"):
        parse_root_flags(ns(cert=c, key=str(tmp_path / "other-key.pem")))
