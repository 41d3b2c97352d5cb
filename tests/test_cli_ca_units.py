"""`swarm ca`: flag checks and the rotation progress display (pure parts)."""
from __future__ import annotations

import argparse

import pytest

from cli.commands_ca import bar, parse_ca_flags, render, rotation_status
from cli.parsing import UsageError
from pki import rotation
from pki.ca import RootCA
from proto import objects_pb2 as pb
from tests.test_pki_rotation import issue


def node_with(creds) -> pb.Node:
    info = rotation.tls_info(creds)
    n = pb.Node(id="n")
    n.description.tls_info.trust_root = info.trust_root
    n.description.tls_info.cert_issuer_subject = info.issuer_subject
    n.description.tls_info.cert_issuer_public_key = info.issuer_public_key
    return n


def test_bar_is_docker_like() -> None:
    assert bar(0, 4, 8) == "[>       ]"
    assert bar(2, 4, 8) == "[====>   ]"
    assert bar(4, 4, 8) == "[========]"


def test_rotation_status_counts_nodes_then_the_root() -> None:
    old = RootCA.create()
    rot = rotation.begin(old)
    new_pem = rot.new_root.cert_pem
    signer = rotation.issuing_ca(new_pem, rot.new_root.key_pem, rot.cross_signed_pem)
    both = rotation.trust_bundle(old.cert_pem, new_pem)
    cluster = pb.Cluster(root_ca_cert=old.cert_pem)
    cluster.root_rotation.ca_cert = new_pem
    nodes = [node_with(issue(old, "a")), node_with(issue(signer, "b", trust=both))]
    status = rotation_status(cluster, nodes, new_pem)
    assert (status.nodes_done, status.nodes, status.root_done) == (1, 2, False)
    assert render(status)[0].endswith("1/2 nodes") and render(status)[1].endswith("0/1")
    done = pb.Cluster(root_ca_cert=new_pem)
    status = rotation_status(done, nodes, new_pem)
    assert status.root_done and render(status)[1].endswith("1/1")


def test_ca_cert_expiry_flag_is_checked() -> None:
    assert parse_ca_flags(argparse.Namespace(cert_expiry=None)) is None
    assert parse_ca_flags(argparse.Namespace(cert_expiry="2h")) == 7200 * 10**9
    with pytest.raises(UsageError, match="at least 1h"):
        parse_ca_flags(argparse.Namespace(cert_expiry="5m"))
