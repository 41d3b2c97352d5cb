"""Tests of pki/: the root CA, node credentials, join tokens, unlock keys and
key wrapping (pure), and real grpc.aio mutual-TLS servers on 127.0.0.1."""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from pki import node, tls, tokens
from pki.ca import BACKDATE, CAError, RootCA, load_certificates

CLUSTER = "c" * 25


# ------------------------------------------------------------------ helpers --

@pytest.fixture(scope="module")
def root() -> RootCA:
    return RootCA.create()


@pytest.fixture(scope="module")
def other_root() -> RootCA:
    return RootCA.create()


def credentials(ca: RootCA, node_id: str, role: str, ips: tuple[str, ...] = (),
                expiry: dt.timedelta = dt.timedelta(days=90)) -> node.NodeCredentials:
    key_pem, csr_pem = node.new_key_and_csr(node_id)
    cert = ca.issue(csr_pem, node_id, role, CLUSTER, expiry=expiry, ip_addresses=ips)
    return node.NodeCredentials(key_pem, cert, ca.cert_pem)


def leaf(pem: bytes) -> x509.Certificate:
    return load_certificates(pem)[0]


def attr(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(oid)]


def sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ext.get_values_for_type(x509.DNSName), [str(i) for i in ext.get_values_for_type(x509.IPAddress)]


def near(a: dt.datetime, b: dt.datetime, tolerance: dt.timedelta = dt.timedelta(minutes=10)) -> bool:
    return abs(a - b) <= tolerance


# ----------------------------------------------------------------- root CA --

def test_root_ca_is_self_signed_p256_swarm_ca_for_20_years(root: RootCA) -> None:
    cert = root.cert
    assert attr(cert, NameOID.COMMON_NAME) == ["swarm-ca"]
    assert cert.subject == cert.issuer
    cert.verify_directly_issued_by(cert)
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=19 * 365) < life < dt.timedelta(days=21 * 365)


def test_root_ca_save_load_round_trip_with_private_key_mode(tmp_path, root: RootCA) -> None:
    root.save(tmp_path / "ca")
    assert stat.S_IMODE(os.stat(tmp_path / "ca" / "swarm-root-ca.key").st_mode) == 0o600
    loaded = RootCA.load(tmp_path / "ca")
    assert loaded.cert == root.cert and loaded.can_sign
    assert loaded.key_pem == root.key_pem
    cert_only = RootCA.from_pem(root.cert_pem)
    assert not cert_only.can_sign
    with pytest.raises(CAError, match="does not hold the root CA key"):
        cert_only.issue(node.new_key_and_csr()[1], "n1", "worker", CLUSTER)


def test_root_ca_refuses_a_key_of_another_root(root: RootCA, other_root: RootCA) -> None:
    with pytest.raises(CAError, match="does not match"):
        RootCA.from_pem(root.cert_pem, other_root.key_pem)


# ------------------------------------------------------- node certificates --

@pytest.mark.parametrize("role,ou", [("worker", "swarm-worker"), ("manager", "swarm-manager")])
def test_issued_subject_ou_per_role_and_sans(root: RootCA, role: str, ou: str) -> None:
    creds = credentials(root, "node1", role, ips=("10.0.0.7",))
    cert = leaf(creds.cert_pem)
    assert attr(cert, NameOID.ORGANIZATION_NAME) == [CLUSTER]
    assert attr(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == [ou]
    assert attr(cert, NameOID.COMMON_NAME) == ["node1"]
    assert cert.issuer == root.cert.subject
    cert.verify_directly_issued_by(root.cert)
    dns, ips = sans(cert)
    assert dns == ["node1", ou]
    assert ips == (["10.0.0.7"] if role == "manager" else [])
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    info = node.parse_certificate(creds.cert_pem)
    assert (info.node_id, info.role, info.cluster_id) == ("node1", role, CLUSTER)


def test_issued_default_expiry_is_90_days_and_custom_expiry_is_kept(root: RootCA) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    key_pem, csr = node.new_key_and_csr()
    default = node.parse_certificate(root.issue(csr, "n1", "worker", CLUSTER))
    assert near(default.not_after, now + dt.timedelta(days=90))
    short = node.parse_certificate(root.issue(csr, "n1", "worker", CLUSTER, expiry=dt.timedelta(hours=1)))
    assert near(short.not_after, now + dt.timedelta(hours=1))
    assert short.not_before <= now


def test_issued_certificate_never_outlives_the_root() -> None:
    small = RootCA.create(validity=dt.timedelta(days=10))
    csr = node.new_key_and_csr()[1]
    info = node.parse_certificate(small.issue(csr, "n1", "worker", CLUSTER))
    assert info.not_after == small.cert.not_valid_after_utc


def test_issue_ignores_the_csr_subject_and_uses_its_key(root: RootCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    forged = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "swarm-manager")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(forged).sign(key, hashes.SHA256())
    cert = leaf(root.issue(csr.public_bytes(serialization.Encoding.PEM), "n9", "worker", CLUSTER))
    assert attr(cert, NameOID.COMMON_NAME) == ["n9"]
    assert attr(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == ["swarm-worker"]
    assert cert.public_key() == key.public_key()


def test_issue_refuses_bad_requests(root: RootCA) -> None:
    csr_pem = node.new_key_and_csr()[1]
    with pytest.raises(CAError, match="unknown node role 'admin'"):
        root.issue(csr_pem, "n1", "admin", CLUSTER)
    with pytest.raises(CAError, match="malformed certificate signing request"):
        root.issue(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                   "n1", "worker", CLUSTER)
    with pytest.raises(CAError, match="too short"):
        root.issue(csr_pem, "n1", "worker", CLUSTER, expiry=dt.timedelta(seconds=5))
    with pytest.raises(CAError, match="invalid IP address"):
        root.issue(csr_pem, "n1", "manager", CLUSTER, ip_addresses=["not-an-ip"])
    weak = ec.generate_private_key(ec.SECP521R1())
    weak_csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(weak, hashes.SHA256())
    with pytest.raises(CAError, match="unsupported elliptic curve"):
        root.issue(weak_csr.public_bytes(serialization.Encoding.PEM), "n1", "worker", CLUSTER)


def test_issue_refuses_a_csr_whose_signature_does_not_verify(root: RootCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = bytearray(x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # inside the signature value
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CAError, match="invalid signature"):
        root.issue(tampered, "n1", "worker", CLUSTER)


def test_parse_certificate_refuses_a_non_node_certificate(root: RootCA) -> None:
    with pytest.raises(ValueError, match="organizational unit"):
        node.parse_certificate(root.cert_pem)


# -------------------------------------------------------------- rotation --

def server_verify(roots: list[x509.Certificate], chain_pem: bytes) -> None:
    chain = load_certificates(chain_pem)
    verifier = PolicyBuilder().store(Store(roots)).build_server_verifier(x509.DNSName("swarm-manager"))
    verifier.verify(chain[0], chain[1:])


def test_cross_signed_new_root_is_trusted_by_old_root_holders(root: RootCA) -> None:
    new = RootCA.create()
    cross_pem = root.cross_sign(new)
    cross = leaf(cross_pem)
    assert cross.subject == new.cert.subject and cross.public_key() == new.cert.public_key()
    assert cross.issuer == root.cert.subject
    cross.verify_directly_issued_by(root.cert)
    assert cross.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    transitional = RootCA.from_pem(new.cert_pem, new.key_pem, intermediates_pem=cross_pem)
    chain_pem = transitional.issue(node.new_key_and_csr()[1], "m1", "manager", CLUSTER)
    assert len(load_certificates(chain_pem)) == 2
    server_verify([root.cert], chain_pem)             # a node still on the old root
    server_verify([new.cert], chain_pem)              # a node already on the new root
    server_verify([root.cert, new.cert], chain_pem)   # a node trusting both
    bare = new.issue(node.new_key_and_csr()[1], "m1", "manager", CLUSTER)
    with pytest.raises(VerificationError):
        server_verify([root.cert], bare)              # without the bridge: refused
    assert node.chains_to(load_certificates(chain_pem), [root.cert])
    assert not node.chains_to(load_certificates(bare), [root.cert])


def test_cross_sign_needs_the_old_key(root: RootCA) -> None:
    with pytest.raises(CAError, match="needs the current root CA key"):
        RootCA.from_pem(root.cert_pem).cross_sign(RootCA.create())


# ------------------------------------------------------- node credentials --

def test_key_and_csr_are_p256_and_the_csr_verifies() -> None:
    key_pem, csr_pem = node.new_key_and_csr("n1")
    key = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.is_signature_valid and csr.public_key() == key.public_key()


def test_credentials_save_and_load_with_file_modes(tmp_path, root: RootCA) -> None:
    creds = credentials(root, "w1", "worker")
    assert not node.exists(tmp_path)
    node.save(tmp_path, creds)
    d = tmp_path / "certificates"
    assert sorted(p.name for p in d.iterdir()) == ["swarm-node.crt", "swarm-node.key", "swarm-root-ca.crt"]
    assert stat.S_IMODE(os.stat(d / "swarm-node.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert node.exists(tmp_path)
    assert node.load(tmp_path) == creds
    assert node.load(tmp_path).identity == node.Identity("w1", "worker", CLUSTER)


def test_load_refuses_mismatched_or_foreign_credentials(tmp_path, root: RootCA, other_root: RootCA) -> None:
    creds = credentials(root, "w1", "worker")
    node.save(tmp_path, node.NodeCredentials(node.generate_key(), creds.cert_pem, creds.ca_pem))
    with pytest.raises(ValueError, match="key does not match"):
        node.load(tmp_path)
    node.save(tmp_path, node.NodeCredentials(creds.key_pem, creds.cert_pem, other_root.cert_pem))
    with pytest.raises(ValueError, match="not issued by a trusted root"):
        node.load(tmp_path)


def test_load_finishes_a_renewal_interrupted_between_renames(tmp_path, root: RootCA) -> None:
    old = credentials(root, "w1", "worker")
    new = credentials(root, "w1", "worker")
    node.save(tmp_path, old)
    d = tmp_path / "certificates"
    # A crash after the key was renamed but before the certificate was.
    (d / "swarm-node.key").write_bytes(new.key_pem)
    (d / "swarm-node.crt.new").write_bytes(new.cert_pem)
    assert node.load(tmp_path) == new
    # A crash while the new certificate was still being written: the old pair stands.
    node.save(tmp_path, old)
    (d / "swarm-node.key.new").write_bytes(new.key_pem)
    assert node.load(tmp_path) == old
    assert not (d / "swarm-node.key.new").exists()


def test_renewal_time_is_between_50_and_80_percent_of_life(root: RootCA) -> None:
    creds = credentials(root, "w1", "worker", expiry=dt.timedelta(hours=10))
    info = creds.info
    issued = info.not_before + BACKDATE  # the CA backdates not-before
    life = info.not_after - issued
    rng = random.Random(7)
    fractions = [(node.renewal_time(creds.cert_pem, rng) - issued) / life for _ in range(2000)]
    assert all(0.5 <= f <= 0.8 for f in fractions)
    assert min(fractions) < 0.52 and max(fractions) > 0.78  # spread over the whole window
    assert info.not_before < node.renewal_time(creds.cert_pem) < info.not_after


def test_renewal_of_a_short_certificate_is_not_due_at_issuance(root: RootCA) -> None:
    """A certificate shorter than the CA's backdating is due 50-80% into its real life."""
    creds = credentials(root, "w1", "worker", expiry=dt.timedelta(seconds=30))
    now = dt.datetime.now(dt.timezone.utc)
    due = node.renewal_time(creds.cert_pem)
    assert now + dt.timedelta(seconds=13) < due < now + dt.timedelta(seconds=25)


# ------------------------------------------------------------- join tokens --

def test_token_round_trip_and_widths(root: RootCA) -> None:
    token = tokens.generate(root.cert_pem)
    prefix, version, digest, secret = token.split("-")
    assert (prefix, version, len(digest), len(secret)) == ("SWMTKN", "1", 50, 25)
    assert tokens.parse(token) == (digest, secret)
    assert str(tokens.parse(token)) == token
    der = root.cert.public_bytes(serialization.Encoding.DER)
    assert int(digest, 36) == int.from_bytes(hashlib.sha256(der).digest(), "big")
    assert tokens.generate(root.cert_pem) != token
    assert tokens.parse(f"  {token}\n") == (digest, secret)


def test_new_join_tokens_for_the_cluster_object(root: RootCA) -> None:
    pair = tokens.new_join_tokens(root.cert_pem)
    assert pair.worker != pair.manager
    assert tokens.ca_matches(pair.worker, root.cert_pem) and tokens.ca_matches(pair.manager, root.cert_pem)
    assert tokens.role_for_token(pair.manager, pair.worker, pair.manager) == "manager"


def test_base36_is_fixed_width() -> None:
    assert tokens.to_base36(0, 5) == "00000"
    assert tokens.to_base36(35, 2) == "0z"
    with pytest.raises(ValueError):
        tokens.to_base36(36 ** 3, 3)


GOOD_DIGEST = "0" * 49 + "1"
GOOD_SECRET = "a" * 25


@pytest.mark.parametrize("token,reason", [
    ("", "the token is empty"),
    ("hello", "does not start with SWMTKN-"),
    ("SWMKEY-1-abc", "does not start with SWMTKN-"),
    (f"SWMTKN-2-{GOOD_DIGEST}-{GOOD_SECRET}", "unsupported token version '2'"),
    (f"SWMTKN-1-{GOOD_DIGEST}", "3 dash-separated parts instead of 4"),
    (f"SWMTKN-1-{GOOD_DIGEST}-{GOOD_SECRET}-x", "5 dash-separated parts instead of 4"),
    (f"SWMTKN-1-{GOOD_DIGEST[:-1]}-{GOOD_SECRET}", "the CA digest has 49 characters instead of 50"),
    (f"SWMTKN-1-{GOOD_DIGEST}-{GOOD_SECRET}a", "the secret has 26 characters instead of 25"),
    (f"SWMTKN-1-{'A' * 50}-{GOOD_SECRET}", "the CA digest has characters other than 0-9 and a-z"),
    (f"SWMTKN-1-{GOOD_DIGEST}-{'_' * 25}", "the secret has characters other than 0-9 and a-z"),
    (f"SWMTKN-1-{'z' * 50}-{GOOD_SECRET}", "larger than a SHA-256 value"),
])
def test_malformed_tokens_say_what_is_wrong(token: str, reason: str) -> None:
    with pytest.raises(ValueError) as err:
        tokens.parse(token)
    message = str(err.value)
    assert message.startswith("invalid join token: ")
    assert reason in message
    assert "expected SWMTKN-1-<CA digest: 50 base36 characters>-<secret: 25 base36 characters>" in message


def test_ca_matches_the_right_root_only(root: RootCA, other_root: RootCA) -> None:
    token = tokens.generate(root.cert_pem)
    assert tokens.ca_matches(token, root.cert_pem)
    assert not tokens.ca_matches(token, other_root.cert_pem)
    assert tokens.ca_matches(token, other_root.cert_pem + root.cert_pem)  # rotation bundle


def test_secret_comparison_and_role_for_token(root: RootCA) -> None:
    worker, manager = tokens.generate(root.cert_pem), tokens.generate(root.cert_pem)
    assert tokens.same_secret(worker, worker)
    assert not tokens.same_secret(worker, manager)
    assert not tokens.same_secret("garbage", worker)
    assert tokens.role_for_token(worker, worker, manager) == "worker"
    assert tokens.role_for_token(manager, worker, manager) == "manager"
    assert tokens.role_for_token(tokens.generate(root.cert_pem), worker, manager) is None
    assert tokens.role_for_token("SWMTKN-1-x", worker, manager) is None


# ----------------------------------------------------- unlock keys and DEK --

def test_unlock_key_round_trip() -> None:
    key = tokens.generate_unlock_key()
    assert key.startswith("SWMKEY-1-") and "=" not in key
    raw = tokens.parse_unlock_key(key)
    assert len(raw) == 32
    assert tokens.parse_unlock_key(key + "\n") == raw
    assert tokens.generate_unlock_key() != key


@pytest.mark.parametrize("text,reason", [
    ("", "the key is empty"),
    ("SWMTKN-1-abc", "does not start with SWMKEY-1-"),
    ("SWMKEY-1-not base64!", "is not base64"),
    ("SWMKEY-1-AAAA", "holds 3 bytes instead of 32"),
])
def test_malformed_unlock_keys_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match="invalid unlock key: ") as err:
        tokens.parse_unlock_key(text)
    assert reason in str(err.value) and "SWMKEY-1-<base64 of 32 bytes>" in str(err.value)


def test_wrap_and_unwrap_dek() -> None:
    dek, kek = tokens.new_key(), tokens.parse_unlock_key(tokens.generate_unlock_key())
    blob = tokens.wrap_dek(dek, kek)
    assert dek not in blob
    assert tokens.unwrap_dek(blob, kek) == dek
    assert tokens.wrap_dek(dek, kek) != blob  # fresh nonce each time


def test_unwrap_with_a_wrong_kek_says_so() -> None:
    blob = tokens.wrap_dek(tokens.new_key(), tokens.new_key())
    with pytest.raises(tokens.WrongKeyError, match="wrong unlock key"):
        tokens.unwrap_dek(blob, tokens.new_key())
    with pytest.raises(ValueError, match="not a wrapped data key"):
        tokens.unwrap_dek(b"junk", tokens.new_key())
    with pytest.raises(ValueError, match="must be 32 bytes"):
        tokens.wrap_dek(tokens.new_key(), b"short")


def test_data_cipher_round_trip_and_wrong_key() -> None:
    dek = tokens.new_key()
    blob = tokens.DataCipher(dek).encrypt(b"service web")
    assert b"service web" not in blob
    assert tokens.DataCipher(dek).decrypt(blob) == b"service web"
    with pytest.raises(tokens.WrongKeyError):
        tokens.DataCipher(tokens.new_key()).decrypt(blob)


# ------------------------------------------------------------ pure pinning --

def test_pin_ca_picks_the_root_named_by_the_token(root: RootCA, other_root: RootCA) -> None:
    server = credentials(root, "m1", "manager")
    chain = load_certificates(server.cert_pem + root.cert_pem)
    assert tls.pin_ca(chain, tokens.generate(root.cert_pem)) == root.cert_pem
    with pytest.raises(tls.CAPinError, match="does not match the join token's CA digest"):
        tls.pin_ca(chain, tokens.generate(other_root.cert_pem))
    # The right root replayed next to a certificate it never issued.
    impostor = credentials(other_root, "m1", "manager")
    with pytest.raises(tls.CAPinError, match="was not issued by the CA"):
        tls.pin_ca(load_certificates(impostor.cert_pem + root.cert_pem), tokens.generate(root.cert_pem))
    with pytest.raises(ValueError, match="invalid join token"):
        tls.pin_ca(chain, "SWMTKN-1-bad")


# ------------------------------------------------------- real gRPC servers --

SERVICE = "shoal.test.Probe"


@dataclass
class Probe:
    """A tiny servicer: Whoami reports the caller, ManagersOnly needs role manager."""

    calls: list[str] = field(default_factory=list)

    async def whoami(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.calls.append("Whoami")
        ident = tls.peer_identity(context)
        return b"anonymous" if ident is None else f"{ident.node_id}/{ident.role}/{ident.cluster_id}".encode()

    async def managers_only(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.calls.append("ManagersOnly")
        ident = await tls.require_role(context, "manager", cluster_id=CLUSTER)
        return ident.node_id.encode()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(SERVICE, {
            "Whoami": grpc.unary_unary_rpc_method_handler(self.whoami),
            "ManagersOnly": grpc.unary_unary_rpc_method_handler(self.managers_only),
        })


@dataclass
class Manager:
    probe: Probe
    mtls_port: int
    join_port: int


async def start_manager(creds: node.NodeCredentials) -> tuple[grpc.aio.Server, Manager]:
    probe = Probe()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([probe.handler()])
    mtls_port = server.add_secure_port("127.0.0.1:0", tls.server_credentials(creds, require_client_auth=True))
    join_port = server.add_secure_port("127.0.0.1:0", tls.server_credentials(creds, require_client_auth=False))
    await server.start()
    return server, Manager(probe, mtls_port, join_port)


@pytest.fixture
async def manager(root: RootCA) -> AsyncIterator[Manager]:
    server, m = await start_manager(credentials(root, "mgr1", "manager", ips=("127.0.0.1",)))
    yield m
    await server.stop(None)


async def call(port: int, creds: grpc.ChannelCredentials, method: str = "Whoami") -> bytes:
    async with tls.secure_channel(f"127.0.0.1:{port}", creds) as channel:
        return await channel.unary_unary(f"/{SERVICE}/{method}")(b"", timeout=10)


async def test_worker_certificate_reaches_a_method_with_its_identity(root: RootCA, manager: Manager) -> None:
    worker = credentials(root, "wrk1", "worker")
    assert await call(manager.mtls_port, tls.client_credentials(worker)) == f"wrk1/worker/{CLUSTER}".encode()


async def test_role_check_refuses_a_worker_and_admits_a_manager(root: RootCA, manager: Manager) -> None:
    worker = credentials(root, "wrk1", "worker")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(manager.mtls_port, tls.client_credentials(worker), "ManagersOnly")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "role worker" in (err.value.details() or "")
    other = credentials(root, "mgr2", "manager")
    assert await call(manager.mtls_port, tls.client_credentials(other), "ManagersOnly") == b"mgr2"


async def test_no_client_certificate_is_refused_where_required(root: RootCA, manager: Manager) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(manager.mtls_port, tls.join_credentials(root.cert_pem))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert manager.probe.calls == []


async def test_certificate_from_another_ca_is_refused(root: RootCA, other_root: RootCA, manager: Manager) -> None:
    stranger = credentials(other_root, "wrk1", "worker")
    # It trusts our root, so the server side is what refuses it.
    creds = node.NodeCredentials(stranger.key_pem, stranger.cert_pem, root.cert_pem)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(manager.mtls_port, tls.client_credentials(creds))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert manager.probe.calls == []


async def test_a_worker_certificate_cannot_serve_as_a_manager(root: RootCA) -> None:
    server, m = await start_manager(credentials(root, "wrk9", "worker"))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(m.join_port, tls.join_credentials(root.cert_pem))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert m.probe.calls == []
    finally:
        await server.stop(None)


async def test_join_port_serves_a_node_without_a_certificate_anonymously(root: RootCA, manager: Manager) -> None:
    assert await call(manager.join_port, tls.join_credentials(root.cert_pem)) == b"anonymous"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(manager.join_port, tls.join_credentials(root.cert_pem), "ManagersOnly")
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_fetch_and_pin_ca_then_join_with_the_pinned_ca(root: RootCA, manager: Manager) -> None:
    token = tokens.generate(root.cert_pem)
    for port in (manager.join_port, manager.mtls_port):
        ca_pem = await tls.fetch_and_pin_ca_async("127.0.0.1", port, token)
        assert ca_pem == root.cert_pem
    assert manager.probe.calls == []
    assert await call(manager.join_port, tls.join_credentials(ca_pem)) == b"anonymous"


async def test_fetch_and_pin_ca_with_a_wrong_digest_raises_before_any_rpc(
        root: RootCA, other_root: RootCA, manager: Manager) -> None:
    wrong = tokens.generate(other_root.cert_pem)
    with pytest.raises(tls.CAPinError, match="does not match the join token's CA digest"):
        await tls.fetch_and_pin_ca_async("127.0.0.1", manager.join_port, wrong)
    with pytest.raises(ValueError, match="invalid join token"):
        await tls.fetch_and_pin_ca_async("127.0.0.1", manager.join_port, "SWMTKN-1-nope")
    assert manager.probe.calls == []


async def test_fetch_and_pin_ca_reports_an_unreachable_manager(root: RootCA) -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(tls.CAPinError, match="could not read the TLS certificate"):
            tls.fetch_and_pin_ca("127.0.0.1", port, tokens.generate(root.cert_pem), timeout=5)


async def test_rotation_old_root_nodes_trust_a_manager_reissued_by_the_new_root(root: RootCA) -> None:
    new = RootCA.create()
    transitional = RootCA.from_pem(new.cert_pem, new.key_pem, intermediates_pem=root.cross_sign(new))
    both = root.cert_pem + new.cert_pem
    key_pem, csr = node.new_key_and_csr()
    mgr = node.NodeCredentials(key_pem, transitional.issue(csr, "mgr1", "manager", CLUSTER), both)
    server, m = await start_manager(mgr)
    try:
        still_old = credentials(root, "wrk1", "worker")      # offline during the rotation
        already_new = node.NodeCredentials(*_issue_pair(transitional, "wrk2"), both)
        assert await call(m.mtls_port, tls.client_credentials(still_old)) == f"wrk1/worker/{CLUSTER}".encode()
        assert await call(m.mtls_port, tls.client_credentials(already_new)) == f"wrk2/worker/{CLUSTER}".encode()
        new_token = tokens.generate(new.cert_pem)
        assert await tls.fetch_and_pin_ca_async("127.0.0.1", m.join_port, new_token) == new.cert_pem
    finally:
        await server.stop(None)
    # Control: the same manager without the cross-signed bridge is refused by old-root nodes.
    bare = node.NodeCredentials(key_pem, new.issue(csr, "mgr1", "manager", CLUSTER), both)
    server, m = await start_manager(bare)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(m.mtls_port, tls.client_credentials(still_old))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert m.probe.calls == []
    finally:
        await server.stop(None)


def _issue_pair(ca: RootCA, node_id: str) -> tuple[bytes, bytes]:
    key_pem, csr = node.new_key_and_csr()
    return key_pem, ca.issue(csr, node_id, "worker", CLUSTER)
