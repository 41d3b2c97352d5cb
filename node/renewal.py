"""Keeping a running node's certificate fresh, and following root CA rotations.

``CertRenewer`` runs on every node (manager and worker). It renews the node's
certificate at a random point between 50% and 80% of its life
(``pki.node.renewal_time``), and at once when the dispatcher says the root
that signs certificates changed (a root rotation). When the cluster's trusted
roots change without the certificate needing to (a rotation finished), it
rewrites the trusted roots and drops the cross-signed intermediate. New
credentials are saved atomically and put in the ``CredentialsHolder``, whose
listeners (the gRPC server's certificate fetcher, the agent's channel)
use them without a restart. A manager also keeps its on-disk root CA key in
step with the cluster's root after a rotation.
"""
from __future__ import annotations

import asyncio
import datetime as _dt
import logging
from pathlib import Path
from typing import Callable, Optional

from manager.ca import cluster_of
from node import credentials
from pki import node as pkinode
from pki import rotation
from pki.ca import RootCA
from pki.holder import CredentialsHolder
from proto import objects_pb2 as pb
from raft.api import ObjectStore
from worker.clock import wait_event

RETRY_MIN = 1.0   # seconds between failed renewals, doubling...
RETRY_MAX = 30.0  # ...up to this


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def tls_info(creds: pkinode.NodeCredentials) -> pb.NodeTLSInfo:
    """What the node reports to the dispatcher about its credentials."""
    info = rotation.tls_info(creds)
    return pb.NodeTLSInfo(trust_root=info.trust_root, cert_issuer_subject=info.issuer_subject,
                          cert_issuer_public_key=info.issuer_public_key)


class CertRenewer:
    """Renews this node's certificate on time and on root changes."""

    def __init__(self, data_dir: Path, holder: CredentialsHolder,
                 managers: Callable[[], list[str]], node_id: str,
                 store: Optional[ObjectStore] = None,
                 paused: Callable[[], bool] = lambda: False,
                 kek: Optional[bytes] = None) -> None:
        self.data_dir = data_dir
        self.kek = kek  # a manager's private-key passphrase (pki.keystore); None on workers
        self.holder = holder
        self.managers = managers
        self.store = store  # a manager's store: to keep the root CA key on disk in step
        # True while a role change is pending: a renewal would already carry the new
        # role, and the role change renews (and restarts the node) by itself.
        self.paused = paused
        self._wake = asyncio.Event()
        self._roots: tuple[bytes, bytes] = (b"", b"")  # (trusted bundle, issuing root) last told
        self.log = logging.LoggerAdapter(logging.getLogger(__name__), {"node": node_id})

    # ---------------------------------------------------------------- hook --

    def roots_changed(self, bundle: bytes, issuing: bytes) -> None:
        """From the session message: the cluster's roots. Wakes the loop when
        this node must renew or re-trust."""
        if not bundle or (bundle, issuing) == self._roots:
            return
        self._roots = (bundle, issuing)
        action = rotation.node_action(self.holder.current(), bundle, issuing)
        if action is not rotation.NodeAction.NONE:
            self.log.info("the cluster's root CA changed: %s", action.value)
            self._wake.set()

    # ---------------------------------------------------------------- loop --

    async def run(self) -> None:
        retry = RETRY_MIN
        while True:
            creds = self.holder.current()
            action = rotation.node_action(creds, *self._roots)
            if action is rotation.NodeAction.NONE:
                due = pkinode.renewal_time(creds.cert_pem)
                delay = max(0.0, (due - _now()).total_seconds())
                self.log.info("certificate renewal due at %s", due.isoformat(timespec="seconds"))
                if await wait_event(self._wake, delay):
                    self._wake.clear()
                    continue  # told something: decide again
                action = rotation.NodeAction.RENEW
            if self.paused():
                self.log.info("certificate %s postponed: a role change is pending", action.value)
                if await wait_event(self._wake, RETRY_MAX):
                    self._wake.clear()
                continue
            try:
                await asyncio.to_thread(self._apply, action)
                retry = RETRY_MIN
            except Exception as exc:  # noqa: BLE001 - any failure: retry later
                self.log.warning("certificate %s failed (%s); retrying in %.0fs",
                                 action.value, exc, retry)
                if await wait_event(self._wake, retry):
                    self._wake.clear()
                retry = min(retry * 2, RETRY_MAX)

    def _apply(self, action: rotation.NodeAction) -> None:
        """Blocking: renew (or re-trust), save, put in force."""
        creds = self.holder.current()
        if action is rotation.NodeAction.RETRUST:
            new = rotation.retrusted(creds, self._roots[0])
            pkinode.save(self.data_dir, new, kek=self.kek)
            self.log.info("now trusting %d root CA certificate(s)",
                          new.ca_pem.count(b"-----BEGIN CERTIFICATE-----"))
        else:
            new = credentials.renew(self.data_dir, creds, self.managers(), kek=self.kek)
            info = new.info
            self.log.info("certificate renewed: valid until %s", info.not_after.isoformat())
            if self._roots[0] and rotation.node_action(new, *self._roots) \
                    is rotation.NodeAction.RETRUST:
                new = rotation.retrusted(new, self._roots[0])
                pkinode.save(self.data_dir, new, kek=self.kek)
        self.holder.update(new)
        self._sync_root_key()

    def _sync_root_key(self) -> None:
        """On a manager: after a rotation, the new root and its key on disk."""
        if self.store is None:
            return
        cluster = cluster_of(self.store)
        if cluster is None or not cluster.root_ca_key:
            return
        d = pkinode.cert_dir(self.data_dir)
        try:
            if RootCA.load(d, kek=self.kek).cert_pem == cluster.root_ca_cert:
                return
        except (OSError, ValueError):
            pass
        RootCA.from_pem(cluster.root_ca_cert, cluster.root_ca_key).save(d, kek=self.kek)
        self.log.info("root CA key replaced after the root rotation")
