"""`swarm ca`: show the cluster's root CA certificate, or rotate it.

Without flags it prints the root certificate (PEM). `--rotate` raises the
cluster spec's force_rotate counter: the leader makes a new root cross-signed
by the old one, every node renews, and once all have a certificate from the
new root it replaces the old one. `--rotate --ca-cert FILE --ca-key FILE`
rotates to the operator's own root instead (sent as the spec's
signing_ca_cert/signing_ca_key, checked here and by the manager with
`pki.givenroot`); `--ca-cert FILE --external-ca protocol=cfssl,url=URL` without
the key rotates to a root whose key stays with an external cfssl CA, which then
signs every node certificate. As in Docker, those flags need `--rotate`.
Unless `-d`, the command follows that with Docker's two progress bars (TLS certificates rotated N/M nodes; CA certificate
rotated 0/1 then 1/1) and prints the new root at the end. `--cert-expiry`
changes the node certificate lifetime (with or without a rotation).

`rotation_status` is pure (cluster + nodes -> counts); `render` formats them.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Callable, Optional

from cli import externalca
from cli.commands_swarm import ClusterChanges, _get_cluster, apply_changes, parse_changes
from cli.client import CLIError
from cli.context import Context
from cli.parsing import UsageError
from pki import givenroot, rotation
from pki.ca import CAError
from proto import control_pb2 as cpb
from proto import objects_pb2 as pb

POLL_INTERVAL = 0.2
BAR_WIDTH = 30


@dataclass(frozen=True)
class RotationStatus:
    nodes_done: int
    nodes: int
    root_done: bool


def rotation_status(cluster: pb.Cluster, nodes: list[pb.Node], new_root: bytes) -> RotationStatus:
    """How far the rotation to ``new_root`` has come."""
    if not cluster.HasField("root_rotation") and cluster.root_ca_cert == new_root:
        return RotationStatus(len(nodes), len(nodes), True)
    target = cluster.root_rotation.ca_cert if cluster.HasField("root_rotation") else new_root
    infos = [rotation.TLSInfo(n.description.tls_info.trust_root,
                              n.description.tls_info.cert_issuer_subject,
                              n.description.tls_info.cert_issuer_public_key) for n in nodes]
    done, total = rotation.progress(infos, target)
    return RotationStatus(done, total, False)


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    """`[=====>      ]`: Docker's progress bar."""
    if total <= 0:
        return "[" + " " * width + "]"
    filled = min(width, done * width // total)
    head = ">" if filled < width else ""
    return "[" + "=" * filled + head + " " * (width - filled - len(head)) + "]"


def render(status: RotationStatus) -> list[str]:
    return [f"rotated TLS certificates:  {bar(status.nodes_done, status.nodes)} "
            f"{status.nodes_done}/{status.nodes} nodes",
            f"rotated CA certificates:   {bar(int(status.root_done), 1)} "
            f"{int(status.root_done)}/1"]


def parse_ca_flags(ns: argparse.Namespace) -> Optional[int]:
    """The new certificate lifetime in ns when --cert-expiry was given; UsageError when bad."""
    if ns.cert_expiry is None:
        return None
    update_ns = argparse.Namespace(dispatcher_heartbeat=None, task_history_limit=None,
                                   cert_expiry=ns.cert_expiry)
    return parse_changes(update_ns).cert_expiry_ns


@dataclass(frozen=True)
class GivenRoot:
    """The root of `--ca-cert` / `--ca-key` as read from their files (PEM); no key
    when an external CA (`--external-ca`, its list in `external_cas`) holds it."""

    cert: bytes
    key: bytes
    external_cas: tuple[pb.ExternalCA, ...] = ()


def _read_pem(path: str, flag: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise CLIError(f"Error: cannot read {flag} {path}: {exc.strerror or exc}") from None


def parse_root_flags(ns: argparse.Namespace) -> Optional[GivenRoot]:
    """The root of `--ca-cert`/`--ca-key`/`--external-ca`, read and checked, or None
    when not given. Refused as Docker does: any of them without `--rotate`, a key
    without its certificate, a certificate with neither its key nor an external CA,
    an external CA without the certificate it signs with."""
    external = getattr(ns, "external_ca", None)
    for flag, value in (("--ca-cert", ns.ca_cert), ("--ca-key", ns.ca_key),
                        ("--external-ca", external)):
        if value is not None and not ns.rotate:
            raise UsageError(f"`{flag}` flag requires the `--rotate` flag to update the CA")
    cas = externalca.parse_external_cas(external) or []
    if ns.ca_cert is None and ns.ca_key is None and not cas:
        return None
    if ns.ca_cert is None:
        if ns.ca_key is not None:
            raise UsageError("the --ca-key flag requires that a --ca-cert flag be provided "
                             "as well")
        raise UsageError("rotating to an external CA requires the `--ca-cert` flag to specify "
                         "the external CA's cert - to add an external CA with the current "
                         "root CA certificate, use the `update` command instead")
    if ns.ca_key is None and not cas:
        raise UsageError("the --ca-cert flag requires that a --ca-key flag and/or "
                         "--external-ca flag be provided as well")
    cert = _read_pem(ns.ca_cert, "--ca-cert")
    key = _read_pem(ns.ca_key, "--ca-key") if ns.ca_key is not None else None
    try:
        givenroot.check_root(cert, key)
    except CAError as exc:
        files = ns.ca_cert if ns.ca_key is None else f"{ns.ca_cert}, {ns.ca_key}"
        raise CLIError(f"Error: invalid root CA ({files}): {exc}") from None
    for ca in cas:
        ca.ca_cert = cert   # as Docker: the external CAs sign for the given root
    return GivenRoot(cert, key or b"", tuple(cas))


def ca(ctx: Context, ns: argparse.Namespace) -> int:
    expiry = parse_ca_flags(ns)
    if ns.detach and not ns.rotate:
        raise UsageError("--detach only applies to --rotate")
    given = parse_root_flags(ns)
    cluster = _get_cluster(ctx)
    if not ns.rotate and expiry is None:
        ctx.out.write(cluster.root_ca_cert.decode())
        return 0
    spec = apply_changes(cluster.spec, ClusterChanges(cert_expiry_ns=expiry))
    if given is not None:
        spec.ca_config.signing_ca_cert = given.cert
        spec.ca_config.signing_ca_key = given.key
        if given.external_cas:
            del spec.ca_config.external_cas[:]
            spec.ca_config.external_cas.extend(given.external_cas)
    elif ns.rotate:
        spec.ca_config.signing_ca_cert = b""   # as Docker: a generated root this time
        spec.ca_config.force_rotate += 1
    updated = ctx.call("UpdateCluster", cpb.UpdateClusterRequest(
        cluster_id=cluster.id, cluster_version=cluster.meta.version, spec=spec)).cluster
    if not ns.rotate:
        ctx.out.write(updated.root_ca_cert.decode())
        return 0
    if ns.detach:
        return 0
    new_root = updated.root_rotation.ca_cert or updated.root_ca_cert
    wait_for_rotation(ctx, new_root, quiet=ns.quiet)
    ctx.out.write(_get_cluster(ctx).root_ca_cert.decode())
    return 0


def wait_for_rotation(ctx: Context, new_root: bytes, quiet: bool = False,
                      sleep: Callable[[float], None] = time.sleep) -> None:
    """Polls until every node rotated and the new root is the cluster's; shows progress."""
    shown: list[str] = []
    tty = ctx.is_tty()
    while True:
        cluster = _get_cluster(ctx)
        nodes = list(ctx.call("ListNodes", cpb.ListNodesRequest()).nodes)
        status = rotation_status(cluster, nodes, new_root)
        lines = render(status)
        if not quiet and lines != shown:
            if tty and shown:
                ctx.out.write(f"\x1b[{len(shown)}A")
            for line in lines:
                ctx.out.write(("\x1b[2K" if tty else "") + line + "\n")
            ctx.out.flush()
            shown = lines
        if status.root_done:
            return
        sleep(POLL_INTERVAL)


def declare_ca(parser: argparse.ArgumentParser) -> None:
    """Declares `swarm ca [--rotate [--ca-cert F --ca-key F]] [--cert-expiry D] [-d] [-q]`."""
    parser.add_argument("--rotate", action="store_true",
                        help="Rotate the swarm CA - if no certificate or key are provided, "
                             "new ones will be generated")
    parser.add_argument("--ca-cert", metavar="pem-file", default=None,
                        help="Path to the PEM-formatted root CA certificate to use for the "
                             "new cluster")
    parser.add_argument("--ca-key", metavar="pem-file", default=None,
                        help="Path to the PEM-formatted root CA key to use for the new cluster")
    parser.add_argument("--external-ca", action="append", default=None, metavar="external-ca",
                        help="Specifications of one or more certificate signing endpoints "
                             "(protocol=cfssl,url=https://...[,cacert=FILE]; repeatable)")
    parser.add_argument("--cert-expiry", default=None,
                        help="Validity period for node certificates (ns|us|ms|s|m|h) "
                             "(default 2160h0m0s)")
    parser.add_argument("-d", "--detach", action="store_true",
                        help="Exit immediately instead of waiting for the root rotation "
                             "to converge")
    parser.add_argument("-q", "--quiet", action="store_true", help="Suppress progress output")
    parser.set_defaults(handler=ca)
