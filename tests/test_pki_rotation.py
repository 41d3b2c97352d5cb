"""Root CA rotation and certificate replacement: pure decisions and real TLS.

Chains issued during a rotation (leaf from the new key + the old root's
cross-signature) must verify for peers trusting only the old root and for
peers trusting only the new one; after the rotation the old root is gone from
what nodes trust and present. Real grpc.aio servers on 127.0.0.1 show a
server picking up new credentials without a restart.
"""
from __future__ import annotations

import datetime as dt

import grpc
import pytest
from cryptography import x509
from cryptography.x509 import verification as v

from pki import node, rotation, tls
from cli.environment import MIN_EXPIRY_ENV, min_cert_expiry
from pki.ca import RootCA, load_certificates
from pki.holder import CredentialsHolder
from pki.rotation import NodeAction

CLUSTER = "c0ffee"
SERVICE = "shoal.test.RotProbe"


def issue(ca: RootCA, node_id: str, role: str = "worker", trust: bytes | None = None,
          expiry: dt.timedelta = dt.timedelta(days=1)) -> node.NodeCredentials:
    key_pem, csr_pem = node.new_key_and_csr(node_id)
    cert = ca.issue(csr_pem, node_id, role, CLUSTER, expiry=expiry, ip_addresses=["127.0.0.1"])
    return node.NodeCredentials(key_pem, cert, trust if trust is not None else ca.cert_pem)


@pytest.fixture
def old() -> RootCA:
    return RootCA.create()


@pytest.fixture
def rot(old: RootCA) -> rotation.Rotation:
    return rotation.begin(old)


def signer(rot: rotation.Rotation) -> RootCA:
    return rotation.issuing_ca(rot.new_root.cert_pem, rot.new_root.key_pem, rot.cross_signed_pem)


def verify_chain(chain_pem: bytes, roots_pem: bytes) -> bool:
    """Whether a full X.509 path validation (cryptography's verifier, as a TLS
    server checks a client) accepts the chain against the roots."""
    store = v.Store(load_certificates(roots_pem))
    chain = load_certificates(chain_pem)
    verifier = v.PolicyBuilder().store(store).time(
        dt.datetime.now(dt.timezone.utc)).build_client_verifier()
    try:
        verifier.verify(chain[0], chain[1:])
        return True
    except v.VerificationError:
        return False


# ------------------------------------------------------------ pure logic --

def test_begin_cross_signs_the_new_root_with_the_old(old: RootCA, rot: rotation.Rotation) -> None:
    cross = load_certificates(rot.cross_signed_pem)[0]
    assert cross.public_key() == rot.new_root.cert.public_key()
    cross.verify_directly_issued_by(old.cert)
    assert rot.new_root.can_sign and rot.new_root.cert != old.cert


def test_leaf_from_new_key_chains_to_old_root_and_to_new_root(old: RootCA, rot: rotation.Rotation) -> None:
    creds = issue(signer(rot), "w1")
    chain = load_certificates(creds.cert_pem)
    assert len(chain) == 2 and chain[1] == load_certificates(rot.cross_signed_pem)[0]
    assert node.chains_to(chain, [old.cert])            # through the cross-signed certificate
    assert node.chains_to(chain[:1], [rot.new_root.cert])  # directly
    assert not node.chains_to(chain[:1], [old.cert])    # without the intermediate: no
    assert verify_chain(creds.cert_pem, old.cert_pem)
    assert verify_chain(creds.cert_pem, rot.new_root.cert_pem)
    assert not verify_chain(creds.cert_pem, RootCA.create().cert_pem)


def test_trust_bundle_holds_both_roots_during_rotation_then_new_only(old: RootCA, rot: rotation.Rotation) -> None:
    both = rotation.trust_bundle(old.cert_pem, rot.new_root.cert_pem)
    assert load_certificates(both) == [old.cert, rot.new_root.cert]
    assert rotation.trust_bundle(both, rot.new_root.cert_pem) == both  # no duplicates
    assert load_certificates(rotation.trust_bundle(rot.new_root.cert_pem)) == [rot.new_root.cert]


def test_node_with_old_certificate_renews_then_retrusts_at_the_end(old: RootCA, rot: rotation.Rotation) -> None:
    both = rotation.trust_bundle(old.cert_pem, rot.new_root.cert_pem)
    before = issue(old, "w1")
    assert rotation.node_action(before, old.cert_pem, old.cert_pem) is NodeAction.NONE
    assert rotation.node_action(before, both, rot.new_root.cert_pem) is NodeAction.RENEW
    during = issue(signer(rot), "w1", trust=both)
    assert rotation.node_action(during, both, rot.new_root.cert_pem) is NodeAction.NONE
    # the rotation finished: the cluster trusts the new root only
    assert rotation.node_action(during, rot.new_root.cert_pem, rot.new_root.cert_pem) is NodeAction.RETRUST
    after = rotation.retrusted(during, rot.new_root.cert_pem)
    assert load_certificates(after.ca_pem) == [rot.new_root.cert]
    assert load_certificates(after.cert_pem) == load_certificates(during.cert_pem)[:1]  # intermediate gone
    after.check()
    assert not node.chains_to(load_certificates(after.cert_pem), [old.cert])  # old root is gone
    assert rotation.node_action(after, rot.new_root.cert_pem, rot.new_root.cert_pem) is NodeAction.NONE
    with pytest.raises(ValueError):
        rotation.retrusted(before, rot.new_root.cert_pem)  # an old certificate cannot drop the old root


def test_tls_info_and_progress_count_nodes_with_new_issuer(old: RootCA, rot: rotation.Rotation) -> None:
    both = rotation.trust_bundle(old.cert_pem, rot.new_root.cert_pem)
    old_node = rotation.tls_info(issue(old, "a"))
    old_cert_new_trust = rotation.tls_info(issue(old, "b", trust=both))
    renewed = rotation.tls_info(issue(signer(rot), "c", trust=both))
    assert old_node.issuer_subject == old.cert.subject.public_bytes()
    assert not rotation.node_rotated(old_node, rot.new_root.cert_pem)
    assert not rotation.node_rotated(old_cert_new_trust, rot.new_root.cert_pem)
    assert rotation.node_rotated(renewed, rot.new_root.cert_pem)
    assert rotation.progress([old_node, old_cert_new_trust, renewed], rot.new_root.cert_pem) == (1, 3)
    assert rotation.progress([renewed], rot.new_root.cert_pem) == (1, 1)
    assert not rotation.node_rotated(rotation.TLSInfo(b"", b"", b""), rot.new_root.cert_pem)


def test_min_cert_expiry_defaults_to_an_hour_and_has_a_test_override(monkeypatch) -> None:
    monkeypatch.delenv(MIN_EXPIRY_ENV, raising=False)
    assert min_cert_expiry() == dt.timedelta(hours=1)
    monkeypatch.setenv(MIN_EXPIRY_ENV, "30s")
    assert min_cert_expiry() == dt.timedelta(seconds=30)
    monkeypatch.setenv(MIN_EXPIRY_ENV, "2m")
    assert min_cert_expiry() == dt.timedelta(minutes=2)
    monkeypatch.setenv(MIN_EXPIRY_ENV, "1")
    assert min_cert_expiry() == dt.timedelta(seconds=10)  # never below the CA's floor


# --------------------------------------------------------------- real TLS --

async def whoami(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    ident = tls.peer_identity(context)
    return b"anonymous" if ident is None else ident.node_id.encode()


async def start_server(holder: CredentialsHolder) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        SERVICE, {"Whoami": grpc.unary_unary_rpc_method_handler(whoami)})])
    port = server.add_secure_port("127.0.0.1:0", tls.dynamic_server_credentials(holder, True))
    await server.start()
    return server, port


async def call(port: int, creds: node.NodeCredentials) -> bytes:
    async with tls.secure_channel(f"127.0.0.1:{port}", tls.client_credentials(creds)) as ch:
        return await ch.unary_unary(f"/{SERVICE}/Whoami")(b"", timeout=10)


def presented_leaf(port: int) -> x509.Certificate:
    return tls.fetch_server_chain("127.0.0.1", port)[0]


async def test_server_switches_certificate_and_trust_without_restart(old: RootCA, rot: rotation.Rotation) -> None:
    both = rotation.trust_bundle(old.cert_pem, rot.new_root.cert_pem)
    holder = CredentialsHolder(issue(old, "m1", "manager"))
    server, port = await start_server(holder)
    try:
        first = presented_leaf(port)
        assert await call(port, issue(old, "w-old")) == b"w-old"
        # the rotation starts: the manager renews from the new key and trusts both roots
        holder.update(issue(signer(rot), "m1", "manager", trust=both))
        second = presented_leaf(port)
        assert second != first
        second.verify_directly_issued_by(rot.new_root.cert)
        # a worker still holding only the old root and an old certificate gets in
        assert await call(port, issue(old, "w-offline")) == b"w-offline"
        # a renewed worker (new key, cross-signed chain) gets in
        assert await call(port, issue(signer(rot), "w-new", trust=both)) == b"w-new"
        # the rotation ends: the manager trusts only the new root
        holder.update(rotation.retrusted(holder.current(), rot.new_root.cert_pem))
        assert await call(port, issue(rot.new_root, "w-after", trust=rot.new_root.cert_pem)) == b"w-after"
        with pytest.raises(grpc.aio.AioRpcError):
            await call(port, issue(old, "w-stale"))  # old certificates are refused now
        chain = tls.fetch_server_chain("127.0.0.1", port)
        assert not node.chains_to(chain[:-1], [old.cert])  # presents no path to the old root
        assert node.chains_to(chain, [rot.new_root.cert])
    finally:
        await server.stop(None)


def test_holder_notifies_listeners_once_per_change(old: RootCA) -> None:
    a, b = issue(old, "n1"), issue(old, "n1")
    holder = CredentialsHolder(a)
    seen: list[node.NodeCredentials] = []
    holder.subscribe(seen.append)
    holder.update(a)
    holder.update(b)
    assert seen == [b] and holder.current() == b and holder.version == 2


# ------------------------------------------- the cluster object (manager.ca) --

def test_cluster_rotation_fields_sign_trust_finish_and_redact(old: RootCA) -> None:
    from manager import ca as mca
    from pki import tokens
    from proto import objects_pb2 as pb

    cluster = pb.Cluster(id="c", root_ca_cert=old.cert_pem)
    cluster.join_tokens.CopyFrom(tokens.new_join_tokens(old.cert_pem))
    disk_root = RootCA.from_pem(old.cert_pem, old.key_pem)
    assert mca.signing_root(cluster, disk_root) is disk_root
    assert mca.trusted_roots(cluster, disk_root) == old.cert_pem

    cluster.root_rotation.CopyFrom(mca.start_rotation(cluster, disk_root))
    new_pem = cluster.root_rotation.ca_cert
    signer = mca.signing_root(cluster, disk_root)
    assert signer.cert_pem == new_pem and signer.intermediates
    assert load_certificates(mca.trusted_roots(cluster, disk_root)) == \
        [old.cert, load_certificates(new_pem)[0]]
    assert mca.issuing_cert(cluster) == new_pem
    shown = mca.redacted(cluster)
    assert shown.root_rotation.ca_cert == new_pem and not shown.root_rotation.ca_key

    done = mca.finished_rotation(cluster)
    assert done.root_ca_cert == new_pem and not done.HasField("root_rotation")
    assert mca.signing_root(done, disk_root).cert_pem == new_pem  # the key lives in the store
    assert mca.trusted_roots(done, disk_root) == new_pem
    for role in ("worker", "manager"):
        before = tokens.parse(getattr(cluster.join_tokens, role))
        after = tokens.parse(getattr(done.join_tokens, role))
        assert after.secret == before.secret and after.digest == tokens.ca_digest(new_pem)
    assert not mca.redacted(done).root_ca_key and done.root_ca_key


async def test_reconciler_finishes_once_every_node_reports_the_new_issuer(tmp_path, old: RootCA) -> None:
    """On a real one-node raft store: the rotation ends exactly when the last node rotated."""
    import asyncio

    from lab.localnode import free_port
    from manager import ca as mca
    from proto import objects_pb2 as pb
    from raft import actions
    from raft.replica import RaftTuning
    from raft.store import Store

    tuning = RaftTuning(heartbeat=0.05, election_min=0.2, election_max=0.4,
                        connection_timeout=1.0, reconnect=0.2, leader_fallback=1.0)
    store = Store("n1", str(tmp_path), f"127.0.0.1:{free_port(span=1)}", tuning=tuning)
    store.start()
    reconciler = None
    try:
        await asyncio.to_thread(store.wait_ready, 10)
        disk_root = RootCA.from_pem(old.cert_pem, old.key_pem)
        cluster = pb.Cluster(id="c", root_ca_cert=old.cert_pem)
        cluster.root_rotation.CopyFrom(mca.start_rotation(cluster, disk_root))
        signer = mca.signing_root(cluster, disk_root)
        both = mca.trusted_roots(cluster, disk_root)

        def node_obj(node_id: str, creds: node.NodeCredentials) -> pb.Node:
            info = rotation.tls_info(creds)
            n = pb.Node(id=node_id)
            n.description.tls_info.trust_root = info.trust_root
            n.description.tls_info.cert_issuer_subject = info.issuer_subject
            n.description.tls_info.cert_issuer_public_key = info.issuer_public_key
            return n

        await store.acommit([actions.create(cluster),
                             actions.create(node_obj("a", issue(signer, "a", trust=both))),
                             actions.create(node_obj("b", issue(old, "b")))])
        reconciler = mca.RotationReconciler(store, "n1")
        assert not await reconciler.check()
        assert store.get("cluster", "c").HasField("root_rotation")
        reconciler.start()
        b = store.get("node", "b")
        renewed = node_obj("b", issue(signer, "b", trust=both))
        renewed.meta.CopyFrom(b.meta)
        await store.acommit([actions.update(renewed)])
        for _ in range(200):  # poll for up to 10 s
            if not store.get("cluster", "c").HasField("root_rotation"):
                break
            await asyncio.sleep(0.05)
        final = store.get("cluster", "c")
        assert not final.HasField("root_rotation")
        assert final.root_ca_cert == cluster.root_rotation.ca_cert and final.root_ca_key
    finally:
        if reconciler is not None:
            await reconciler.stop()
        store.close()
