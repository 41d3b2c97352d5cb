"""Raft over mutual TLS (raft/tls_transport.py, pki/raft_tls.py): real stores,
real pysyncobj, real TLS on loopback sockets.

Covers: three managers replicate; a worker certificate, a certificate from
another CA, a client without a certificate and a plain (non-TLS) raft node
get no connection and no data while the cluster keeps working; the bytes
on the wire are TLS records only; a renewed certificate applies to new
connections without a restart; every root of the trusted bundle counts
(CA rotation).
"""
from __future__ import annotations

import logging
import os
import socket
import ssl
import struct
import threading
import time
import zlib
from typing import Callable, Optional

import pysyncobj.pickle as syncobj_pickle
import pytest
from cryptography import x509

from pki import node as pkinode
from pki.ca import RootCA, cert_pem
from pki.raft_tls import RaftTLS, from_data_dir
from proto import model
from proto import objects_pb2 as pb
from raft import actions
from raft.errors import Unavailable
from raft.store import Store
from raft.tls_transport import TlsConnection
from tests.helpers import wait
from tests.test_store import FAST, POLL, free_port

CLUSTER = "cluster-7f3a"


# ---------------------------------------------------------------- helpers ----

def issue(root: RootCA, node_id: str, role: str = "manager", cluster_id: str = CLUSTER,
          ca_pem: Optional[bytes] = None) -> pkinode.NodeCredentials:
    key, csr = pkinode.new_key_and_csr(node_id)
    cert = root.issue(csr, node_id, role, cluster_id)
    return pkinode.NodeCredentials(key, cert, ca_pem if ca_pem is not None else root.cert_pem)


class Holder:
    """A credentials source whose credentials a test can swap (a renewal)."""

    def __init__(self, creds: pkinode.NodeCredentials) -> None:
        self.creds = creds

    def __call__(self) -> pkinode.NodeCredentials:
        return self.creds


class Refusals(logging.Handler):
    """Collects the raft refusal log lines of every store in the process."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "refused" in message:
            with self._lock:
                self.lines.append((getattr(record, "node", "?"), message))

    def matching(self, *words: str) -> list[tuple[str, str]]:
        with self._lock:
            return [(n, m) for n, m in self.lines if all(w in m for w in words)]


@pytest.fixture
def refusals():
    handler = Refusals()
    logger = logging.getLogger("raft.store")
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def service(name: str, **labels: str) -> pb.Service:
    svc = pb.Service(id=model.new_id())
    svc.spec.annotations.name = name
    for k, v in labels.items():
        svc.spec.annotations.labels[k] = v
    return svc


def leader_of(stores: list[Store]) -> Store:
    return wait(lambda: next((s for s in stores if s.is_leader()), None), 15, "a raft leader",
                interval=POLL)


def tls_peers(store: Store) -> dict[str, str]:
    """Raft address -> node ID of the peer, for this store's connected TLS connections."""
    return store._replica.transport.tls_peers()


def start_all(stores: list[Store]) -> None:
    for s in stores:
        s.start()
    for s in stores:
        s.wait_ready(15)


def close_all(stores: list[Store]) -> None:
    for s in stores:
        s.close()


def make_store(tmp_path, name: str, addr: str, peers: list[str],
               creds: Optional[Callable[[], pkinode.NodeCredentials]], bind: Optional[str] = None) -> Store:
    return Store(name, str(tmp_path / name), bind or addr, [p for p in peers if p != addr],
                 advertise_addr=addr, tuning=FAST,
                 tls=RaftTLS(creds) if creds is not None else None)


@pytest.fixture
def root() -> RootCA:
    return RootCA.create()


@pytest.fixture
def tls_cluster(tmp_path, root):
    addrs = sorted(f"127.0.0.1:{free_port()}" for _ in range(3))
    holders = [Holder(issue(root, f"manager{i}")) for i in range(3)]
    stores = [make_store(tmp_path, f"manager{i}", a, addrs, holders[i]) for i, a in enumerate(addrs)]
    try:
        start_all(stores)
        yield stores, holders
    finally:
        close_all(stores)


def frame(message: object) -> bytes:
    data = zlib.compress(syncobj_pickle.dumps(message), 3)
    return struct.pack("<I", len(data)) + data


def unframe(data: bytes) -> list:
    """Decodes raft messages framed as pysyncobj frames them, as far as the bytes allow."""
    out = []
    while len(data) >= 4:
        for fmt in ("<I", "<i"):
            (length,) = struct.unpack_from(fmt, data)
            if 0 <= length <= len(data) - 4:
                break
        else:
            break
        try:
            out.append(syncobj_pickle.loads(zlib.decompress(data[4:4 + length])))
        except Exception:
            break
        data = data[4 + length:]
    return out


def raw_tls_client(addr: str, creds: Optional[pkinode.NodeCredentials],
                   trust: bytes) -> ssl.SSLSocket:
    """A blocking TLS client to a raft port, presenting `creds` (or no certificate)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cadata=trust.decode())
    if creds is not None:
        d = f"/tmp/raft-tls-test-{os.getpid()}-{threading.get_ident()}.pem"
        with open(os.open(d, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(creds.cert_pem + creds.key_pem)
        try:
            ctx.load_cert_chain(d)
        finally:
            os.unlink(d)
    host, port = addr.rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=5)
    return ctx.wrap_socket(raw)


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, Optional[str]]:
    """Everything the peer sends until it closes; and the error that ended it, if any."""
    sock.settimeout(timeout)
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ssl.SSLError, OSError) as exc:
            return got, str(exc)
        if not chunk:
            return got, None
        got += chunk
    raise AssertionError(f"the raft port kept the connection open ({len(got)} bytes received)")


# ------------------------------------------------------------ peer rules ----

def test_check_peer_accepts_managers_of_this_cluster_only(root):
    me = issue(root, "me")
    rules = RaftTLS(Holder(me))

    def der(creds: pkinode.NodeCredentials) -> bytes:
        return x509.load_pem_x509_certificate(creds.cert_pem).public_bytes(
            serialization_der())

    assert rules.check_peer(der(issue(root, "other-manager"))) == "other-manager"
    with pytest.raises(ValueError, match="certificate OU swarm-worker"):
        rules.check_peer(der(issue(root, "a-worker", role="worker")))
    with pytest.raises(ValueError, match="cluster someone-else"):
        rules.check_peer(der(issue(root, "foreign", cluster_id="someone-else")))
    with pytest.raises(ValueError, match="not a swarm node certificate"):
        rules.check_peer(root.cert.public_bytes(serialization_der()))


def serialization_der():
    from cryptography.hazmat.primitives.serialization import Encoding
    return Encoding.DER


# ------------------------------------------------------------ replication ----

def test_three_managers_replicate_over_mutual_tls(tls_cluster):
    stores, _ = tls_cluster
    leader = leader_of(stores)
    followers = [s for s in stores if s is not leader]
    svc = service("over-tls")
    leader.commit([actions.create(svc)])
    wait(lambda: all(f.get("service", svc.id) for f in followers), 10, "replication", interval=POLL)
    version = followers[0].commit([actions.create(service("from-a-follower"))])
    wait(lambda: all(s.version >= version for s in stores), 10, "forwarded write everywhere",
         interval=POLL)
    # Every raft connection is TLS, and each side knows the other's node ID.
    for s in stores:
        expected = {o.raft_addr: o.node_id for o in stores if o is not s}
        wait(lambda s=s, e=expected: tls_peers(s) == e, 10, f"TLS peers of {s.node_id}",
             interval=POLL)


@pytest.mark.parametrize("kind", ["worker", "other-ca", "plain"])
def test_intruder_member_gets_no_connection_and_no_data(tmp_path, root, refusals, kind):
    """A 4th raft member that is not a manager of this cluster: the three managers
    add it to raft (as a join would), but it never gets a connection or an entry."""
    addrs = sorted(f"127.0.0.1:{free_port()}" for _ in range(4))
    intruder_addr = addrs.pop(1)  # dials the lowest manager; the two highest dial it
    managers = [make_store(tmp_path, f"manager{i}", a, addrs, Holder(issue(root, f"manager{i}")))
                for i, a in enumerate(addrs)]
    if kind == "worker":
        creds: Optional[Holder] = Holder(issue(root, "intruder", role="worker"))
        reasons = [("certificate OU swarm-worker",)]
    elif kind == "other-ca":
        creds = Holder(issue(RootCA.create(), "intruder"))
        reasons = [("certificate not trusted",)]
    else:
        creds = None
        reasons = [("not a TLS raft connection",), ("no TLS handshake within",)]
    intruder = make_store(tmp_path, "intruder", intruder_addr, addrs + [intruder_addr], creds)
    try:
        start_all(managers)
        leader = leader_of(managers)
        leader.commit([actions.create(service("secret-before", db="hunter2"))])
        leader.add_member(intruder_addr)
        intruder.start()
        for reason in reasons:
            wait(lambda r=reason: refusals.matching(*r), 15,
                 f"a manager to refuse the intruder ({' '.join(reason)})", interval=POLL)
        seen_connected = set()
        for i in range(10):  # the cluster keeps working, with the intruder knocking
            version = managers[i % 3].commit([actions.create(service(f"after-{i}"))])
            for m in managers:
                seen_connected |= m.reachable_members()
                seen_connected |= set(tls_peers(m))
        wait(lambda: all(m.version >= version for m in managers), 10, "replication", interval=POLL)
        # Let the intruder retry past its reconnect delay, then look again.
        tries = len(refusals.lines)
        wait(lambda: len(refusals.lines) >= tries + 2, 15, "further refusals", interval=POLL)
        for m in managers:
            seen_connected |= m.reachable_members()
            seen_connected |= set(tls_peers(m))
        assert intruder_addr not in seen_connected
        assert intruder.version == 0
        assert intruder.get("service", "secret-before") is None
        assert intruder.list("service") == []
        assert len(intruder._replica.journal) <= 1  # at most its own empty first entry
        assert intruder.leader() is None
        assert {n for n, _ in refusals.lines} <= {m.node_id for m in managers} | {"intruder"}
    finally:
        intruder.close()
        close_all(managers)


def test_raw_clients_get_nothing_from_the_raft_port(tls_cluster, root, refusals):
    """Only a member's raft connection gets raft traffic. A manager certificate
    gets a TLS connection, held open until it names its raft address, but no
    admin command answers and no read-only replica feed; without a manager
    certificate of this cluster the connection ends right after the handshake."""
    stores, _ = tls_cluster
    leader = leader_of(stores)
    leader.commit([actions.create(service("log-entry"))])

    with raw_tls_client(leader.raft_addr, issue(root, "manager-x"), root.cert_pem) as s:
        s.settimeout(1.0)
        with pytest.raises(socket.timeout):  # accepted: the server waits for its address
            s.recv(65536)
    for message, reason in ((["status"], "admin commands are not served"),
                            (["add", "127.0.0.1:1"], "admin commands are not served"),
                            ("readonly", "read-only raft replicas are not served"),
                            ("127.0.0.1:1", "manager-x is not a raft member here")):
        with raw_tls_client(leader.raft_addr, issue(root, "manager-x"), root.cert_pem) as s:
            s.sendall(frame(message))
            got, _ = read_until_closed(s)
        assert got == b"", f"{message!r} was answered"
        wait(lambda r=reason: refusals.matching(r), 10, f"refusal: {reason}", interval=POLL)
    assert leader.members() == sorted(st.raft_addr for st in stores)

    def attempt(creds, trust=root.cert_pem):
        try:
            s = raw_tls_client(leader.raft_addr, creds, trust)
        except (ssl.SSLError, OSError) as exc:
            return b"", str(exc)
        with s:
            try:
                s.sendall(frame(["status"]) + frame("readonly"))
            except (ssl.SSLError, OSError) as exc:
                return b"", str(exc)
            return read_until_closed(s)

    for creds in (issue(root, "w1", role="worker"),
                  issue(root, "m-other", cluster_id="other-cluster"),
                  issue(RootCA.create(), "m-foreign"),
                  None):
        got, _ = attempt(creds)
        assert got == b"", f"{creds and creds.identity} received {len(got)} bytes"

    # A plain (non-TLS) raft client: at most a TLS alert comes back, never a raft message.
    host, port = leader.raft_addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(frame(["status"]) + frame("readonly"))
        got, _ = read_until_closed(s)
    assert unframe(got) == [] and (got == b"" or got[0] == 0x15)
    leader.commit([actions.create(service("still-working"))])


# ------------------------------------------------------------- the wire ----

class Relay:
    """Forwards TCP connections from its own port to a target port and keeps every byte."""

    def __init__(self, target: str, port: int) -> None:
        self.target = target
        self.port = port
        self.addr = f"127.0.0.1:{self.port}"
        self.streams: list[bytearray] = []
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            host, port = self.target.rsplit(":", 1)
            try:
                upstream = socket.create_connection((host, int(port)), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._socks += [client, upstream]
                there, back = bytearray(), bytearray()
                self.streams += [there, back]
            threading.Thread(target=self._pump, args=(client, upstream, there), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, back), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bytearray) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    record += data
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def captured(self) -> list[bytes]:
        with self._lock:
            return [bytes(s) for s in self.streams]

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for s in self._socks:
                s.close()


def tls_records(stream: bytes) -> list[int]:
    """The record types of a TLS byte stream; AssertionError when it is not one."""
    types = []
    pos = 0
    while pos + 5 <= len(stream):
        kind, major, length = stream[pos], stream[pos + 1], int.from_bytes(stream[pos + 3:pos + 5], "big")
        assert kind in (0x14, 0x15, 0x16, 0x17) and major == 3, f"not a TLS record at byte {pos}"
        types.append(kind)
        pos += 5 + length
    assert pos >= len(stream) - 4 or pos == len(stream)
    return types


def relayed_cluster(tmp_path, root: Optional[RootCA]) -> tuple[list[Store], list[Relay]]:
    """Three stores whose every raft connection passes through a recording relay:
    each store advertises its relay's address and listens on its own port."""
    ports: list[int] = []
    while len(ports) < 6:       # the stores' and the relays' ports, all different (each
        port = free_port()      # is only checked free, not held, until it is bound)
        if port not in ports:
            ports.append(port)
    binds = [f"127.0.0.1:{p}" for p in ports[:3]]
    relays = [Relay(b, p) for b, p in zip(binds, ports[3:])]
    addrs = [r.addr for r in relays]
    stores = [make_store(tmp_path, f"manager{i}", addrs[i], addrs,
                         Holder(issue(root, f"manager{i}")) if root else None, bind=binds[i])
              for i in range(3)]
    return stores, relays


@pytest.mark.parametrize("secure", [False, True], ids=["plain-control", "tls"])
def test_wire_carries_no_plaintext(tmp_path, root, secure):
    """Payload encryption is off (the store's default cipher is the identity):
    in plain mode the committed value is readable on the wire (the control),
    with TLS the wire holds TLS records only and no trace of it."""
    marker = "wire-" + os.urandom(12).hex()
    stores, relays = relayed_cluster(tmp_path, root if secure else None)
    try:
        start_all(stores)
        leader = leader_of(stores)
        svc = service(marker, password=marker)
        leader.commit([actions.create(svc)])
        wait(lambda: all(s.get("service", svc.id) for s in stores), 10, "replication",
             interval=POLL)
        streams = [s for r in relays for s in r.captured() if s]
        assert streams, "nothing went through the relays"
        wire = b"".join(streams)
        decoded = repr([unframe(s) for s in streams]).encode()
        if not secure:
            assert marker.encode() in decoded or marker.encode() in wire
            return
        assert marker.encode() not in wire
        assert marker.encode() not in decoded
        for s in streams:
            types = tls_records(s)
            assert types[0] == 0x16  # every connection opens with a TLS handshake
            assert 0x17 in types
    finally:
        close_all(stores)
        for r in relays:
            r.close()


# ------------------------------------------------------- renewal, rotation ----

def test_renewed_certificate_is_used_for_new_connections_without_restart(tmp_path, root):
    addrs = sorted(f"127.0.0.1:{free_port()}" for _ in range(3))
    holders = [Holder(issue(root, f"manager{i}")) for i in range(3)]
    stores = [make_store(tmp_path, f"manager{i}", a, addrs, holders[i]) for i, a in enumerate(addrs)]
    restarted: Optional[Store] = None
    try:
        start_all(stores)
        renewing, other = stores[0], stores[1]
        thread = renewing._replica._thread
        old_der = _leaf_der(holders[0].creds)
        wait(lambda: _peer_cert(other, renewing.raft_addr) == old_der, 10, "first connection",
             interval=POLL)

        holders[0].creds = issue(root, "manager0")  # renewal: new key and certificate
        new_der = _leaf_der(holders[0].creds)
        assert new_der != old_der
        # Restart the *other* side, so that fresh connections to and from it are made.
        other.close()
        restarted = make_store(tmp_path, "manager1", other.raft_addr, addrs, holders[1])
        stores[1] = restarted
        restarted.start()
        restarted.wait_ready(15)
        wait(lambda: _peer_cert(restarted, renewing.raft_addr) == new_der, 15,
             "the renewed certificate on a new connection", interval=POLL)
        assert renewing._replica._thread is thread and renewing._replica.alive()
        version = renewing.commit([actions.create(service("after-renewal"))])
        wait(lambda: restarted.version >= version, 10, "replication after renewal", interval=POLL)
    finally:
        close_all(stores)


def _leaf_der(creds: pkinode.NodeCredentials) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding
    return x509.load_pem_x509_certificate(creds.cert_pem).public_bytes(Encoding.DER)


def _peer_cert(store: Store, addr: str) -> Optional[bytes]:
    return store._replica.transport.tls_peer_certificates().get(addr)


def test_every_trusted_root_counts_during_a_rotation(tmp_path, root):
    """Managers trusting the old and the new root accept certificates from either;
    a manager trusting only the old root accepts a new-root certificate through
    the cross-signed intermediate it carries."""
    new_root = RootCA.create()
    bridged = RootCA(cert=new_root.cert, key=new_root.key,
                     intermediates=[x509.load_pem_x509_certificate(root.cross_sign(new_root))])
    both = root.cert_pem + new_root.cert_pem
    addrs = sorted(f"127.0.0.1:{free_port()}" for _ in range(3))
    creds = [issue(root, "old-only", ca_pem=root.cert_pem),
             issue(root, "old-cert", ca_pem=both),
             issue(bridged, "new-cert", ca_pem=both)]
    stores = [make_store(tmp_path, c.identity.node_id, a, addrs, Holder(c)) for c, a in zip(creds, addrs)]
    try:
        start_all(stores)
        leader = leader_of(stores)
        version = leader.commit([actions.create(service("rotating"))])
        wait(lambda: all(s.version >= version for s in stores), 10, "replication", interval=POLL)
        for s in stores:
            expected = {o.raft_addr: o.node_id for o in stores if o is not s}
            wait(lambda s=s, e=expected: tls_peers(s) == e, 10, f"TLS peers of {s.node_id}",
                 interval=POLL)
    finally:
        close_all(stores)


def test_credentials_from_a_data_dir(tmp_path, root):
    creds = issue(root, "saved")
    pkinode.save(tmp_path, creds)
    assert from_data_dir(tmp_path).client_context() is not None
    assert from_data_dir(tmp_path).cluster_id == CLUSTER
    with pytest.raises(FileNotFoundError):
        from_data_dir(tmp_path / "nowhere")


def test_tls_and_password_are_exclusive(tmp_path, root):
    with pytest.raises(ValueError, match="not both"):
        Store("n", str(tmp_path), f"127.0.0.1:{free_port()}", password="x",
              tls=RaftTLS(Holder(issue(root, "n"))))


def test_new_manager_joins_and_catches_up_from_a_snapshot_over_tls(tmp_path, root):
    """The join path (a member added by the leader, then started with its manager
    certificate) works over TLS, also when the log was compacted and the newcomer
    needs the snapshot, which travels in several chunks."""
    from raft.replica import RaftTuning
    tuning = RaftTuning(heartbeat=0.05, election_min=0.2, election_max=0.4, connection_timeout=1.0,
                        reconnect=0.2, leader_fallback=1.0, compaction_entries=10)
    addrs = sorted(f"127.0.0.1:{free_port()}" for _ in range(3))
    stores = [Store(f"manager{i}", str(tmp_path / f"manager{i}"), a, [p for p in addrs if p != a],
                    tuning=tuning, tls=RaftTLS(Holder(issue(root, f"manager{i}"))))
              for i, a in enumerate(addrs)]
    try:
        start_all(stores)
        leader = leader_of(stores)
        bulky = os.urandom(3000).hex()
        for i in range(40):
            leader.commit([actions.create(service(f"bulk-{i}", blob=bulky))])
        wait(lambda: os.path.exists(os.path.join(leader.raft_dir, "snapshot")), 15,
             "a raft snapshot on the leader", interval=POLL)
        addr = f"127.0.0.1:{free_port()}"
        try:
            leader.add_member(addr, timeout=0.5)
        except Unavailable:
            pass  # commits once the newcomer runs (as RaftMembership.JoinRaft does)
        joined = Store("manager9", str(tmp_path / "manager9"), addr, addrs, tuning=tuning,
                       tls=RaftTLS(Holder(issue(root, "manager9"))))
        stores.append(joined)
        joined.start()
        joined.wait_ready(20)
        wait(lambda: len(joined.list("service")) == 40, 20, "the newcomer to catch up",
             interval=POLL)
        assert joined.by_name("service", "bulk-39").spec.annotations.labels["blob"] == bulky
        assert joined._replica.journal[0][1] > 1  # it started from the snapshot, not entry 1
        wait(lambda: addr in leader.members(), 10, "the membership change to commit", interval=POLL)
        version = joined.commit([actions.create(service("from-the-newcomer"))])
        wait(lambda: all(s.version >= version for s in stores), 10, "replication", interval=POLL)
    finally:
        close_all(stores)


def test_quiet_connections_between_followers_stay_up(tls_cluster):
    """Followers exchange nothing while a leader leads; their TLS connection must
    not be timed out and re-handshaken (only handshakes have a deadline).
    An election in the window (a loaded machine) makes the candidate send on the
    quiet connection, which pysyncobj then rightly finds stale: such a window
    is observed again."""
    stores, _ = tls_cluster
    for _ in range(5):
        leader = leader_of(stores)
        a, b = [s for s in stores if s is not leader]
        transport = max(a, b, key=lambda s: s.raft_addr)._replica.transport  # the side that dials
        other = min(a, b, key=lambda s: s.raft_addr).raft_addr

        def connection() -> Optional[TlsConnection]:
            conn = transport._connected_tls().get(other)
            return conn if conn is not None and conn.established_at is not None else None

        first = wait(connection, 10, "the follower-to-follower connection", interval=POLL)
        since = first.established_at
        terms = [s._replica.raftCurrentTerm for s in stores]
        deadline = time.monotonic() + 3 * FAST.connection_timeout
        while time.monotonic() < deadline:  # traffic flows, but only through the leader
            leader.commit([actions.create(service(f"tick-{time.monotonic()}"))])
        if [s._replica.raftCurrentTerm for s in stores] != terms:
            continue  # an election happened: look at a calm window instead
        assert connection() is first and first.established_at == since
        return
    raise AssertionError("no window without an election in 5 tries")
